package finder

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// FileID names a file by device and inode, the way the kernel binds a uprobe
// and the way /proc/PID/maps shows a mapping. Paths are not compared: a
// mapped path can carry " (deleted)", or be another mount namespace's view.
type FileID struct {
	Dev uint64 // unix.Mkdev(major, minor)
	Ino uint64
}

func (id FileID) String() string {
	return fmt.Sprintf("%d:%d inode %d", unix.Major(id.Dev), unix.Minor(id.Dev), id.Ino)
}

// Mapping is one mapping of a probed file in a process: the range of
// addresses and the file offset of its start. It turns a probe's address
// (as a hit reports it) back into the file offset the probe was defined at.
type Mapping struct {
	File       FileID // the probed file (for a view, the file it is a view of)
	Start, End uint64
	Offset     uint64
	View       bool // another overlay mount's view of File (FileSet)
}

// FileOffset returns the file offset of addr, if this mapping holds it.
func (m Mapping) FileOffset(addr uint64) (uint64, bool) {
	if addr < m.Start || addr >= m.End {
		return 0, false
	}
	return addr - m.Start + m.Offset, true
}
