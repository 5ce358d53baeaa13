package session

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// arm opens the perf events of every probe on every thread of p, which must
// already be in the table. Threads are enumerated again after each round of
// opening: a thread created before its creator's events were open is found
// by the next enumeration, one created after inherits them.
func (s *Session) arm(p *finder.Process) error {
	armed := map[int]bool{}
	for {
		tids, err := finder.Threads(s.procRoot(), p.PID)
		if errors.Is(err, finder.ErrNoProcess) {
			return nil // exited: nothing to arm
		}
		if err != nil {
			return err
		}
		var fresh []int
		for _, tid := range tids {
			if !armed[tid] {
				fresh = append(fresh, tid)
				armed[tid] = true
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := s.armThreads(p.PID, fresh); err != nil {
			return err
		}
	}
}

// armThreads opens every trace event on the given threads of pid,
// concurrently.
func (s *Session) armThreads(pid int, tids []int) error {
	type job struct{ tid, trace int }
	jobs := make([]job, 0, len(tids)*len(s.traces))
	for _, tid := range tids {
		for i := range s.traces {
			jobs = append(jobs, job{tid, i})
		}
	}
	opened := make([]*perfevent.Attachment, len(jobs))
	err := parallel(len(jobs), func(i int) error {
		j := jobs[i]
		ev := s.traces[j.trace].event
		a, err := s.rings.Attach(ev.ID, j.tid, perfevent.AttachOptions{Inherit: true})
		if errors.Is(err, perfevent.ErrThreadGone) {
			return nil // the thread exited: it can make no more hits
		}
		if err != nil {
			return fmt.Errorf("arm trace event %s/%s for pid %d tid %d: %w", ev.Group, ev.Name, pid, j.tid, err)
		}
		opened[i] = a
		return nil
	})
	opened = slices.DeleteFunc(opened, func(a *perfevent.Attachment) bool { return a == nil })
	s.mu.Lock()
	s.attachments[pid] = append(s.attachments[pid], opened...)
	s.mu.Unlock()
	return err
}

// checkFileBudget fails early, with the arithmetic, when arming would need
// more file descriptors than the process may open: one perf event per
// trace event (probe word), thread and CPU.
func (s *Session) checkFileBudget() error {
	threads := 0
	for pid := range s.table.All() {
		if tids, err := finder.Threads(s.procRoot(), pid); err == nil {
			threads += len(tids)
		}
	}
	cpus := len(s.rings.CPUs())
	need := uint64(len(s.traces) * threads * cpus)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	const reserve = 64 // stdio, tracefs files, pidfds
	if need+reserve > lim.Cur {
		return badInput(fmt.Errorf("arming needs %d perf events (%d probe words × %d threads × %d CPUs) but the open-file limit is %d: narrow the probes or --pid, or raise `ulimit -n` (hard limit %d)",
			need, len(s.traces), threads, cpus, lim.Cur, lim.Max))
	}
	return nil
}
