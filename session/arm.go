package session

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// armTraces opens the perf events of new trace events: for every task when
// the scope is every mapper, else on each recorded process's threads.
func (s *Session) armTraces(traces []*traceEvent) error {
	if !s.cfg.perProcess() {
		opened := make([]*perfevent.Attachment, len(traces))
		err := parallel(len(traces), func(i int) error {
			a, err := s.rings.Attach(traces[i].event.ID, perfevent.AllThreads, perfevent.AttachOptions{})
			if err != nil {
				return fmt.Errorf("arm trace event %s/%s: %w", traces[i].event.Group, traces[i].event.Name, err)
			}
			opened[i] = a
			return nil
		})
		s.mu.Lock()
		s.global = append(s.global, slices.DeleteFunc(opened, func(a *perfevent.Attachment) bool { return a == nil })...)
		s.mu.Unlock()
		return err
	}
	if s.cfg.followsChildren() {
		for _, te := range traces {
			a, err := s.rings.HoldArmed(te.event.ID)
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.global = append(s.global, a)
			s.mu.Unlock()
		}
	}
	for _, p := range s.table.All() {
		if err := s.armProcess(p, traces); err != nil {
			return err
		}
	}
	return nil
}

// armProcess opens the trace events on every thread of p, which must
// already be in the table. Threads are enumerated again after each round of
// opening: a thread created before its creator's events were open is found
// by the next enumeration, one created after inherits them.
func (s *Session) armProcess(p *finder.Process, traces []*traceEvent) error {
	opts := perfevent.AttachOptions{Inherit: true, EnableOnExec: p.PID == s.cfg.Launch}
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
		if err := s.armThreads(p.PID, fresh, traces, opts); err != nil {
			return err
		}
	}
}

// armThreads opens the trace events on the given threads of pid,
// concurrently.
func (s *Session) armThreads(pid int, tids []int, traces []*traceEvent, opts perfevent.AttachOptions) error {
	type job struct{ tid, trace int }
	jobs := make([]job, 0, len(tids)*len(traces))
	for _, tid := range tids {
		for i := range traces {
			jobs = append(jobs, job{tid, i})
		}
	}
	opened := make([]*perfevent.Attachment, len(jobs))
	err := parallel(len(jobs), func(i int) error {
		j := jobs[i]
		ev := traces[j.trace].event
		a, err := s.rings.Attach(ev.ID, j.tid, opts)
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
// trace event and CPU, for all tasks or for each traced thread.
func (s *Session) checkFileBudget() error {
	threads := 1
	if s.cfg.perProcess() {
		threads = 0
		for pid := range s.table.All() {
			if tids, err := finder.Threads(s.procRoot(), pid); err == nil {
				threads += len(tids)
			}
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
		return badInput(fmt.Errorf("arming needs %d perf events (%d trace events × %d threads × %d CPUs) but the open-file limit is %d: narrow the probes or --pid, or raise `ulimit -n` (hard limit %d)",
			need, len(s.traces), threads, cpus, lim.Cur, lim.Max))
	}
	return nil
}
