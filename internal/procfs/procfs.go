// Package procfs is the one reader of /proc. Every file is parsed by a pure
// function over its bytes, and every path starts at a configurable root, so
// the parsers and the readers both run on fixtures without root or a live
// process.
package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoProcess is wrapped by the errors of a read under Root/PID when the
// process does not exist, or exited while it was being read.
var ErrNoProcess = errors.New("no such process")

// ErrMalformed is wrapped by the errors of the parsers when a file does not
// have the kernel's format.
var ErrMalformed = errors.New("malformed /proc file")

// FS reads the proc file system mounted at Root. Root "" means "/proc".
// Another root is a fixture, or the /proc of another pid namespace.
type FS struct {
	Root string
}

// New returns the FS mounted at root ("" for "/proc").
func New(root string) FS {
	return FS{Root: root}
}

func (fs FS) root() string {
	if fs.Root == "" {
		return "/proc"
	}
	return fs.Root
}

// path returns Root/PID/name.
func (fs FS) path(pid int, name string) string {
	return filepath.Join(fs.root(), strconv.Itoa(pid), name)
}

// readFile reads Root/PID/name.
func (fs FS) readFile(pid int, name string) ([]byte, error) {
	b, err := os.ReadFile(fs.path(pid, name))
	if err != nil {
		return nil, processError(err)
	}
	return b, nil
}

// processError marks err, from a read under Root/PID, as ErrNoProcess when
// the process is gone: its directory no longer exists (ENOENT), or a file
// opened just before it exited reads ESRCH. err already names the path.
func processError(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %w", ErrNoProcess, err)
	}
	return err
}

// Comm returns the command name of pid (/proc/PID/comm) without the newline
// the kernel adds. It is the name as of now: prctl(PR_SET_NAME) or an exec
// may have changed it since Stat's copy was read.
func (fs FS) Comm(pid int) (string, error) {
	b, err := fs.readFile(pid, "comm")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Environ returns the value of the environment variable name as pid was
// started with it (/proc/PID/environ), and whether it was set.
func (fs FS) Environ(pid int, name string) (string, bool, error) {
	b, err := fs.readFile(pid, "environ")
	if err != nil {
		return "", false, err
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true, nil
		}
	}
	return "", false, nil
}

// Exe returns the path of the executable of pid (the /proc/PID/exe link),
// as the kernel prints it: in the process's mount namespace, and ending in
// " (deleted)" when the file was removed.
//
// A kernel thread or a zombie has no executable: the link reads ENOENT
// while the process exists, and the error wraps os.ErrNotExist but not
// ErrNoProcess.
func (fs FS) Exe(pid int) (string, error) {
	exe, err := os.Readlink(fs.path(pid, "exe"))
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Lstat(fs.path(pid, "")); statErr == nil {
			return "", err
		}
	}
	if err != nil {
		return "", processError(err)
	}
	return exe, nil
}

// Threads returns the thread ids of pid (the entries of /proc/PID/task), in
// ascending order.
func (fs FS) Threads(pid int) ([]int, error) {
	entries, err := os.ReadDir(fs.path(pid, "task"))
	if err != nil {
		return nil, processError(err)
	}
	return numericNames(entries), nil
}

// PIDs returns the processes (thread group leaders) of Root, in ascending
// order. Threads that are not leaders are not listed, though Root/TID is
// readable for them too.
func (fs FS) PIDs() ([]int, error) {
	entries, err := os.ReadDir(fs.root())
	if err != nil {
		return nil, err
	}
	return numericNames(entries), nil
}

// numericNames returns the names of entries that are decimal ids, sorted.
func numericNames(entries []os.DirEntry) []int {
	ids := make([]int, 0, len(entries))
	for _, e := range entries {
		if id, err := parseID(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Self returns the pid of the calling process as Root sees it (the Root/self
// link). It differs from os.Getpid when Root belongs to another pid
// namespace; when this process is not visible there, the error wraps
// ErrNoProcess.
func (fs FS) Self() (int, error) {
	path := filepath.Join(fs.root(), "self")
	link, err := os.Readlink(path)
	if err != nil {
		return 0, processError(err)
	}
	pid, err := parseID(link)
	if err != nil {
		return 0, fmt.Errorf("%s -> %q: %w", path, link, ErrMalformed)
	}
	return pid, nil
}

// parseID parses a pid or tid as the kernel prints it: decimal, no sign.
// pid_max is at most 2^22, so 31 bits hold any.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	return int(n), err
}
