// Package finder is the task-finder: it knows which processes map a probed
// file and records each of them (the process table) before anything arms a
// probe for it, so a hit never lands on an unknown process.
package finder

import "github.com/uprobectl/uprobectl/internal/procfs"

// ErrNoProcess is returned when a process does not exist (or exited while
// it was being read). It is procfs's own, so errors from either match.
var ErrNoProcess = procfs.ErrNoProcess

// Process is what the table records of one traced process.
type Process struct {
	PID       int       // in our PID namespace
	PPID      int       // parent, in our PID namespace
	NSPID     int       // in the process's own (innermost) PID namespace
	Comm      string    // /proc/PID/comm at the time it was recorded
	Exe       string    // /proc/PID/exe target ("" if unreadable: kernel thread, exited)
	StartTime uint64    // field 22 of /proc/PID/stat, clock ticks since boot: tells a reused PID apart
	Cgroup    string    // the cgroup v2 path ("0::" line of /proc/PID/cgroup)
	Maps      []Mapping // where the probed files are mapped, when recorded
	// Images: every executable file mapping, kept only for stacks
	// (TrackerConfig.KeepImages): from /proc when recorded, then from the
	// mmap records; emptied by exec.
	Images Images
	// Filtered: recorded, but outside the scope (another name than --comm,
	// another container's view of the file): its hits are counted, not
	// delivered.
	Filtered bool
	// Via says how the process was recorded: "scan" (/proc at start),
	// "pid" (--pid, run), "fork", "mmap" (exec or dlopen of a probed file),
	// "late" (/proc, after the side-band lost its records).
	Via string
}

// FileOffset turns an address in p into an offset in file, through the
// mappings known when p was recorded.
func (p *Process) FileOffset(file FileID, addr uint64) (uint64, bool) {
	for _, m := range p.Maps {
		if m.File == file {
			if off, ok := m.FileOffset(addr); ok {
				return off, true
			}
		}
	}
	return 0, false
}

// ReadProcess records the process pid from procRoot (normally "/proc").
// Only stat is required: the other files fill what they can, as a kernel
// thread has no exe and an exiting process loses its files one by one.
func ReadProcess(procRoot string, pid int) (*Process, error) {
	proc := procfs.New(procRoot)
	st, err := proc.Stat(pid)
	if err != nil {
		return nil, err
	}
	p := &Process{PID: pid, PPID: st.PPID, NSPID: pid, Comm: st.Comm, StartTime: st.StartTime}
	if comm, err := proc.Comm(pid); err == nil {
		p.Comm = comm
	}
	p.Exe, _ = proc.Exe(pid)
	if status, err := proc.Status(pid); err == nil {
		if status.Tgid > 0 && status.Tgid != pid {
			// pid names a thread: the process is its thread group.
			return ReadProcess(procRoot, status.Tgid)
		}
		if ns := status.InnermostPID(); ns > 0 {
			p.NSPID = ns
		}
	}
	if cgroup, err := proc.Cgroup(pid); err == nil {
		p.Cgroup = cgroup
	}
	return p, nil
}

// Threads lists the thread ids of pid from /proc/PID/task.
func Threads(procRoot string, pid int) ([]int, error) {
	return procfs.New(procRoot).Threads(pid)
}

// OldestWithComm returns the pid of the oldest process named comm, or 0.
func OldestWithComm(procRoot, comm string) int {
	proc := procfs.New(procRoot)
	pids, _ := proc.PIDs()
	best, bestStart := 0, uint64(0)
	for _, pid := range pids {
		st, err := proc.Stat(pid)
		if err != nil || st.Comm != comm {
			continue
		}
		if best == 0 || st.StartTime < bestStart {
			best, bestStart = pid, st.StartTime
		}
	}
	return best
}
