package tracefs

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/uprobectl/uprobectl/internal/procfs"
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
	proc := procfs.New("")
	self, err := proc.Self()
	if err != nil {
		return Owner{}, fmt.Errorf("owner: %w", err)
	}
	ns, err := proc.NamespaceInode(self, "pid")
	if err != nil {
		return Owner{}, fmt.Errorf("owner: %w", err)
	}
	st, err := proc.Stat(self)
	if err != nil {
		return Owner{}, fmt.Errorf("owner: %w", err)
	}
	return Owner{PIDNS: ns, PID: os.Getpid(), StartTime: st.StartTime}, nil
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
	proc := procfs.New("")
	// /proc/self names our own pid only when /proc is our pid namespace's.
	self, err := proc.Self()
	if err != nil || self != os.Getpid() || o.PID <= 0 {
		return true, false
	}
	if ns, err := proc.NamespaceInode(self, "pid"); err != nil || ns != o.PIDNS {
		return true, false
	}
	st, err := proc.Stat(o.PID)
	if errors.Is(err, procfs.ErrNoProcess) {
		return false, true
	}
	if err != nil {
		return true, false
	}
	if st.StartTime != o.StartTime {
		return false, true
	}
	if st.State == 'Z' || st.State == 'X' {
		// A zombie leader may still have live threads (the main thread
		// called pthread_exit): only an empty thread group is dead.
		tids, err := proc.Threads(o.PID)
		if err != nil {
			return true, false
		}
		return len(tids) > 1, true
	}
	return true, true
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
