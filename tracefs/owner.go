package tracefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Owner identifies the uprobectl process that owns a group: the inode of
// its pid namespace, its pid in that namespace, and its start time, so a
// reused pid is not mistaken for the owner.
type Owner struct {
	// PIDNS is the inode number of the owner's pid namespace
	// (/proc/PID/ns/pid).
	PIDNS uint64
	// PID is the owner's pid (thread group id) in that namespace.
	PID int
	// StartTime is field 22 of /proc/PID/stat: clock ticks after boot at
	// which the process started.
	StartTime uint64
}

// Self returns the Owner of the calling process.
func Self() (Owner, error) {
	ns, err := pidNS("/proc/self/ns/pid")
	if err != nil {
		return Owner{}, fmt.Errorf("owner: %w", err)
	}
	st, err := readProcStat("/proc/self/stat")
	if err != nil {
		return Owner{}, fmt.Errorf("owner: %w", err)
	}
	return Owner{PIDNS: ns, PID: os.Getpid(), StartTime: st.startTime}, nil
}

// Group returns the owner's group name, "uprobectl_NS_PID_START", e.g.
// "uprobectl_4026531836_12345_987654". Its longest form (20-digit namespace
// and start time, 10-digit pid) has 62 bytes, within the kernel's 63.
func (o Owner) Group() string {
	return fmt.Sprintf("%s%d_%d_%d", GroupPrefix, o.PIDNS, o.PID, o.StartTime)
}

// ParseGroup parses a group name made by Owner.Group. It reports false for
// any other group, including uprobectl groups of another form.
func ParseGroup(group string) (Owner, bool) {
	rest, ok := strings.CutPrefix(group, GroupPrefix)
	if !ok {
		return Owner{}, false
	}
	f := strings.Split(rest, "_")
	if len(f) != 3 {
		return Owner{}, false
	}
	ns, err1 := strconv.ParseUint(f[0], 10, 64)
	pid, err2 := strconv.ParseInt(f[1], 10, 32)
	start, err3 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || pid <= 0 {
		return Owner{}, false
	}
	o := Owner{PIDNS: ns, PID: int(pid), StartTime: start}
	if o.Group() != group { // no signs, leading zeros or other spellings
		return Owner{}, false
	}
	return o, true
}

// Alive reports whether the owner process still runs, as seen from this
// process's pid namespace.
//
// known is false when it cannot be judged: the owner's pid namespace is not
// ours, /proc is not our pid namespace's, or /proc could not be read. Then
// alive is true: callers never remove what they cannot prove dead.
// A pid that exists with another start time is a reused pid: dead. A
// zombie whose thread group has no other thread left is dead.
func (o Owner) Alive() (alive bool, known bool) {
	ns, err := pidNS("/proc/self/ns/pid")
	if err != nil || ns != o.PIDNS || !procIsOurs() || o.PID <= 0 {
		return true, false
	}
	dir := "/proc/" + strconv.Itoa(o.PID)
	st, err := readProcStat(dir + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return false, true
	}
	if err != nil {
		return true, false
	}
	if st.startTime != o.StartTime {
		return false, true
	}
	if st.state == 'Z' || st.state == 'X' {
		// A zombie leader may still have live threads (the main thread
		// called pthread_exit): only an empty thread group is dead.
		tasks, err := os.ReadDir(dir + "/task")
		if err != nil {
			return true, false
		}
		return len(tasks) > 1, true
	}
	return true, true
}

// procIsOurs reports whether /proc belongs to our pid namespace: then
// /proc/self names our own pid.
func procIsOurs() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

func pidNS(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

type procStat struct {
	state     byte
	startTime uint64
}

// readProcStat reads the state (field 3) and start time (field 22) of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// itself contain spaces and parentheses, so fields are counted from the
// last ')'.
func readProcStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc stat %q: no ')': %w", b, ErrInvalid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc stat %q: too few fields: %w", b, ErrInvalid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat: start time %q: %w", f[19], ErrInvalid)
	}
	return procStat{state: f[0][0], startTime: start}, nil
}

// OwnedGroup is a group of a uprobectl owner, for `uprobectl list`.
type OwnedGroup struct {
	Group string
	Owner Owner
	// Alive and Known are Owner.Alive's answer.
	Alive, Known bool
	// Events are the group's lines of uprobe_events.
	Events []Definition
}

// OwnedGroups returns the owner groups (see ParseGroup) that have events,
// sorted by name, with the liveness of their owners. Groups of other tools
// and uprobectl groups of another form are not listed.
func (fs *FS) OwnedGroups() ([]OwnedGroup, error) {
	defs, err := fs.Definitions()
	if err != nil {
		return nil, err
	}
	return ownedGroups(defs), nil
}

func ownedGroups(defs []Definition) []OwnedGroup {
	byName := map[string]*OwnedGroup{}
	var out []*OwnedGroup
	for _, d := range defs {
		g, ok := byName[d.Group]
		if !ok {
			owner, ok := ParseGroup(d.Group)
			if !ok {
				continue
			}
			alive, known := owner.Alive()
			g = &OwnedGroup{Group: d.Group, Owner: owner, Alive: alive, Known: known}
			byName[d.Group] = g
			out = append(out, g)
		}
		g.Events = append(g.Events, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	res := make([]OwnedGroup, len(out))
	for i, g := range out {
		res[i] = *g
	}
	return res
}

// Reap removes the groups of owners that are provably dead (Known and not
// Alive) and returns the groups it removed. It never touches another
// tool's group, a group of a live owner, or one whose owner it cannot
// judge.
//
// A group that cannot be removed (ErrBusy: something still holds a perf
// event on it) does not stop the others: Reap goes on and returns the
// removed groups together with an error joining the failures, which wrap
// ErrBusy and the like.
func (fs *FS) Reap() ([]OwnedGroup, error) {
	groups, err := fs.OwnedGroups()
	if err != nil {
		return nil, fmt.Errorf("reap: %w", err)
	}
	var removed []OwnedGroup
	var errs []error
	for _, g := range groups {
		if g.Alive || !g.Known {
			continue
		}
		if err := fs.RemoveGroup(g.Group); err != nil {
			errs = append(errs, fmt.Errorf("reap group of dead pid %d: %w", g.Owner.PID, err))
			continue
		}
		removed = append(removed, g)
	}
	return removed, errors.Join(errs...)
}
