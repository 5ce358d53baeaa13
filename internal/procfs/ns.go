package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NamespaceInode returns the inode number of the namespace of pid of the
// given kind, a name under /proc/PID/ns ("pid", "mnt", ...). The kernel
// names a namespace by its nsfs inode, so two processes share a namespace
// when these numbers are equal. The number comes from the link text
// ("pid:[4026531836]"), which readlink gives without following the link.
func (fs FS) NamespaceInode(pid int, kind string) (uint64, error) {
	path := fs.path(pid, "ns/"+kind)
	link, err := os.Readlink(path)
	if err != nil {
		return 0, processError(err)
	}
	ino, err := parseNamespaceLink(link, kind)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return ino, nil
}

// parseNamespaceLink returns the inode of a /proc/PID/ns link text
// "KIND:[INODE]".
func parseNamespaceLink(link, kind string) (uint64, error) {
	rest, okPrefix := strings.CutPrefix(link, kind+":[")
	digits, okSuffix := strings.CutSuffix(rest, "]")
	ino, err := strconv.ParseUint(digits, 10, 64)
	if !okPrefix || !okSuffix || err != nil {
		return 0, fmt.Errorf("namespace link %q: %w", link, ErrMalformed)
	}
	return ino, nil
}
