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

// initialPIDNS is the inode of the initial pid namespace, the one in which
// every process of the machine has a pid. The kernel fixes it
// (PID_NS_INIT_INO in <linux/nsfs.h> since Linux 6.18, PROC_PID_INIT_INO in
// <linux/proc_ns.h> before) below the numbers it hands the other
// namespaces (proc_alloc_inum, from 0xF0000000 up).
const initialPIDNS = 0xEFFFFFFC

// Alive reports whether the owner process still runs.
//
// known is false when it cannot be judged; then alive is true: callers
// never remove what they cannot prove dead. The owner is judged
//
//   - in our pid namespace: by its pid. No such pid is dead; a pid that
//     exists with another start time is a reused pid: dead.
//   - in another pid namespace, when we are in the initial one and so see
//     every process (and /proc hides none: no hidepid=invisible or
//     ptraceable): the owner is the process whose pid namespace is the
//     owner's, whose pid there (the last of NSpid) is the owner's pid, and
//     whose start time is the owner's. None is dead: the namespace has no
//     process left (the sidecar was killed with its namespace), or has
//     others but not the owner. A namespace's inode may be reused by a new
//     namespace once the old one is gone; the pid and start time tell its
//     processes from the owner.
//   - otherwise (another namespace, seen from a namespace that is not the
//     initial one; a /proc that is not our namespace's): unknown.
//
// A start time (field 22 of /proc/PID/stat, ticks since boot) does not
// depend on the pid namespace, but the kernel shifts it by the reader's
// time namespace: another start time proves a reused pid only when the
// process is in our time namespace, else the answer is unknown. A zombie
// whose thread group has no other thread left is dead. A process whose
// files cannot be read (EACCES), where it could be the owner, makes the
// answer unknown.
func (o Owner) Alive() (alive bool, known bool) {
	return o.judge(procfs.New(""), os.Getpid())
}

// judge is Alive as seen through proc by the process whose pid in its own
// pid namespace is getpid.
func (o Owner) judge(proc procfs.FS, getpid int) (alive bool, known bool) {
	// /proc/self names our own pid only when /proc is our pid namespace's.
	self, err := proc.Self()
	if err != nil || self != getpid || o.PID <= 0 {
		return true, false
	}
	ns, err := proc.NamespaceInode(self, "pid")
	if err != nil {
		return true, false
	}
	if ns == o.PIDNS {
		return o.judgeProcess(proc, self, o.PID)
	}
	// In the initial namespace, /proc is the initial namespace's (no other
	// proc lists us), and every process has a pid there.
	if ns != initialPIDNS {
		return true, false
	}
	switch hide, err := proc.HidePID(); {
	case err != nil:
		return true, false
	case hide == "invisible" || hide == "ptraceable" || hide == "2" || hide == "4":
		// Processes we may not ptrace are missing from the scan.
		return true, false
	}
	return o.scan(proc, self)
}

// scan looks for the owner, in a pid namespace that is not ours, among all
// the processes of proc, which is the initial namespace's. The owner found
// alive settles it; any process that might be the owner but cannot be
// judged makes the answer unknown; else the owner is dead.
func (o Owner) scan(proc procfs.FS, self int) (alive bool, known bool) {
	pids, err := proc.PIDs()
	if err != nil {
		return true, false
	}
	known = true
	for _, pid := range pids {
		ns, nsErr := proc.NamespaceInode(pid, "pid")
		if errors.Is(nsErr, procfs.ErrNoProcess) || (nsErr == nil && ns != o.PIDNS) {
			continue // gone, or in another namespace
		}
		// The namespace is the owner's, or unreadable (EACCES: an LSM
		// may forbid it even to root): the pid in its own namespace
		// tells whether it may be the owner. status needs no privilege.
		st, err := proc.Status(pid)
		if errors.Is(err, procfs.ErrNoProcess) {
			continue
		}
		if err != nil || len(st.NSpid) == 0 { // no NSpid before Linux 4.1
			known = false
			continue
		}
		// One pid: a process of the initial namespace, not the owner's.
		if len(st.NSpid) == 1 || st.InnermostPID() != o.PID {
			continue
		}
		if nsErr != nil {
			known = false
			continue
		}
		a, k := o.judgeProcess(proc, self, pid)
		if k && a {
			return true, true
		}
		known = known && k
	}
	if !known {
		return true, false
	}
	return false, true
}

// judgeProcess judges whether the process with pid (in proc's namespace)
// is the owner: the owner's pid in its own namespace is known to name it.
func (o Owner) judgeProcess(proc procfs.FS, self, pid int) (alive bool, known bool) {
	st, err := proc.Stat(pid)
	if errors.Is(err, procfs.ErrNoProcess) {
		return false, true
	}
	if err != nil {
		return true, false
	}
	if st.StartTime != o.StartTime {
		if sameTimeNamespace(proc, self, pid) {
			return false, true // a reused pid
		}
		return true, false
	}
	if st.State == 'Z' || st.State == 'X' {
		// A zombie leader may still have live threads (the main thread
		// called pthread_exit): only an empty thread group is dead.
		tids, err := proc.Threads(pid)
		if err != nil {
			return true, false
		}
		return len(tids) > 1, true
	}
	return true, true
}

// sameTimeNamespace reports whether pid is in our time namespace, so that
// the start times we read of it are those it reads of itself. A kernel
// without time namespaces (no /proc/self/ns/time) has one for all.
func sameTimeNamespace(proc procfs.FS, self, pid int) bool {
	if pid == self {
		return true
	}
	ours, err := proc.NamespaceInode(self, "time")
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	theirs, err2 := proc.NamespaceInode(pid, "time")
	return err == nil && err2 == nil && ours == theirs
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
