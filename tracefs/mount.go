package tracefs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/internal/procfs"
)

// Where tracefs is looked for after /proc/self/mountinfo, in order. The
// debugfs path is an automount of tracefs on kernels that have debugfs.
const (
	defaultMount = "/sys/kernel/tracing"
	debugfsMount = "/sys/kernel/debug/tracing"
)

// Open finds tracefs and checks that uprobe events can be defined there.
//
// It looks at the tracefs mounts in /proc/self/mountinfo, then at
// /sys/kernel/tracing and /sys/kernel/debug/tracing; if none is a tracefs,
// it mounts one at /sys/kernel/tracing ("mount -t tracefs nodev").
//
// Errors: ErrNotSupported (wrapped, saying what to do) if the kernel has no
// tracefs or no uprobe_events (CONFIG_UPROBE_EVENTS); ErrPermission if
// tracefs cannot be mounted or uprobe_events cannot be opened for writing.
// Open writes nothing to uprobe_events.
func Open() (*FS, error) {
	var mounts []mountEntry
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		mounts, err = parseMountInfo(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("find tracefs: %w", err)
		}
	}
	for _, dir := range tracefsCandidates(mounts) {
		if !isTracefs(dir) {
			continue
		}
		return openAt(dir)
	}

	// Not mounted anywhere we look: mount it where the kernel documents it.
	if _, err := os.Stat(defaultMount); err != nil {
		return nil, fmt.Errorf("find tracefs: %s does not exist (is sysfs mounted, and the kernel built with CONFIG_TRACING?): %w", defaultMount, ErrNotSupported)
	}
	if err := unix.Mount("nodev", defaultMount, "tracefs", 0, ""); err != nil {
		switch {
		case errors.Is(err, unix.ENODEV):
			return nil, fmt.Errorf("mount tracefs at %s: the kernel has no tracefs (CONFIG_TRACING): %w", defaultMount, ErrNotSupported)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return nil, fmt.Errorf("mount tracefs at %s: needs root or CAP_SYS_ADMIN (or mount it first: mount -t tracefs nodev %s): %w", defaultMount, defaultMount, ErrPermission)
		}
		return nil, fmt.Errorf("mount tracefs at %s: %w", defaultMount, err)
	}
	return openAt(defaultMount)
}

// openAt checks that dir, a tracefs mount, has a writable uprobe_events.
func openAt(dir string) (*FS, error) {
	fs := &FS{Root: dir}
	if _, err := os.Stat(fs.path("uprobe_events")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tracefs at %s has no uprobe_events: the kernel is built without CONFIG_UPROBE_EVENTS: %w", dir, ErrNotSupported)
		}
		return nil, fmt.Errorf("tracefs at %s: %w", dir, permissionOr(err))
	}
	// Opening for writing without O_TRUNC changes nothing; it tells us now,
	// rather than at the first definition, whether we may write.
	f, err := fs.openUprobeEvents()
	if err != nil {
		return nil, fmt.Errorf("open %s for writing: %w", fs.path("uprobe_events"), permissionOr(err))
	}
	f.Close()
	return fs, nil
}

// permissionOr wraps err with ErrPermission and a hint if it is a
// permission error (EACCES, EPERM, or EROFS for a read-only mount).
func permissionOr(err error) error {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS) {
		return fmt.Errorf("%w: needs root, or CAP_SYS_ADMIN/CAP_PERFMON and write access to tracefs (%v)", ErrPermission, err)
	}
	return err
}

func isTracefs(dir string) bool {
	var st unix.Statfs_t
	// A stat of the debugfs path triggers its tracefs automount.
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TRACEFS_MAGIC
}

// mountEntry is one line of /proc/PID/mountinfo; internal/procfs parses it.
type mountEntry = procfs.Mount

// parseMountInfo parses /proc/PID/mountinfo (see procfs.ParseMountInfo);
// a malformed line gives ErrInvalid.
func parseMountInfo(r io.Reader) ([]mountEntry, error) {
	mounts, err := procfs.ParseMountInfo(r)
	if errors.Is(err, procfs.ErrMalformed) {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	return mounts, err
}

// tracefsCandidates lists where to look for tracefs, in order: tracefs
// mounts of the whole filesystem from mountinfo (the documented mount point
// first), then the two well-known paths. Duplicates are dropped.
func tracefsCandidates(mounts []mountEntry) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var fromInfo []string
	for _, m := range mounts {
		// A bind mount of a subdirectory (an instance) has no
		// uprobe_events of its own.
		if m.FSType == "tracefs" && m.Root == "/" {
			fromInfo = append(fromInfo, m.MountPoint)
		}
	}
	for _, p := range fromInfo {
		if p == defaultMount {
			add(p)
		}
	}
	for _, p := range fromInfo {
		add(p)
	}
	add(defaultMount)
	add(debugfsMount)
	return out
}
