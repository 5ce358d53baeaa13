package session

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// armer owns the perf events that arm the trace events: all-task events
// for the default scope, per-thread events for chosen processes.
type armer struct {
	rings    *perfevent.Rings
	procRoot string
	// perProcess: arm the chosen processes' threads, not every mapper.
	perProcess, followsChildren bool
	launch                      int // run's command: armed with enable_on_exec

	mu          sync.Mutex
	global      []*perfevent.Attachment         // all-task perf events
	attachments map[int][]*perfevent.Attachment // per-process perf events, by pid
	closers     sync.WaitGroup                  // perf events of exited processes being closed

	// planned and opened count perf event attachments, for progress.
	planned, opened atomic.Int64
}

// progress returns how many attachments are open of those planned so far.
func (a *armer) progress() (opened, planned int) {
	return int(a.opened.Load()), int(a.planned.Load())
}

// armTraces opens the perf events of new trace events: for every task when
// the scope is every mapper, else on the threads of each recorded process.
func (a *armer) armTraces(traces []*traceEvent, recorded map[int]*finder.Process) error {
	if !a.perProcess {
		opened := make([]*perfevent.Attachment, len(traces))
		a.planned.Add(int64(len(traces)))
		err := parallel(len(traces), func(i int) error {
			at, err := a.rings.Attach(traces[i].event.ID, perfevent.AllThreads, perfevent.AttachOptions{})
			if err != nil {
				return fmt.Errorf("arm trace event %s/%s: %w", traces[i].event.Group, traces[i].event.Name, err)
			}
			a.opened.Add(1)
			opened[i] = at
			return nil
		})
		a.mu.Lock()
		a.global = append(a.global, slices.DeleteFunc(opened, func(at *perfevent.Attachment) bool { return at == nil })...)
		a.mu.Unlock()
		return err
	}
	if a.followsChildren {
		for _, te := range traces {
			at, err := a.rings.HoldArmed(te.event.ID)
			if err != nil {
				return err
			}
			a.mu.Lock()
			a.global = append(a.global, at)
			a.mu.Unlock()
		}
	}
	for _, p := range recorded {
		if err := a.armProcess(p, traces); err != nil {
			return err
		}
	}
	return nil
}

// release closes the perf events of an exited process, off the reader
// goroutine: closing may wait for a grace period.
func (a *armer) release(pid int) {
	a.mu.Lock()
	closing := a.attachments[pid]
	delete(a.attachments, pid)
	a.mu.Unlock()
	if len(closing) > 0 {
		a.closers.Add(1)
		go func() { defer a.closers.Done(); closeAll(closing) }()
	}
}

// disarmAll closes every perf event, and waits for those being released.
func (a *armer) disarmAll() {
	a.mu.Lock()
	all := a.global
	a.global = nil
	for _, as := range a.attachments {
		all = append(all, as...)
	}
	a.attachments = map[int][]*perfevent.Attachment{}
	a.mu.Unlock()
	closeAll(all)
	a.closers.Wait()
}

// armProcess opens the trace events on every thread of p, which must
// already be in the table. Threads are enumerated again after each round of
// opening: a thread created before its creator's events were open is found
// by the next enumeration, one created after inherits them.
func (a *armer) armProcess(p *finder.Process, traces []*traceEvent) error {
	opts := perfevent.AttachOptions{Inherit: true, EnableOnExec: p.PID == a.launch}
	armed := map[int]bool{}
	for {
		tids, err := finder.Threads(a.procRoot, p.PID)
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
		if err := a.armThreads(p.PID, fresh, traces, opts); err != nil {
			return err
		}
	}
}

// armThreads opens the trace events on the given threads of pid,
// concurrently.
func (a *armer) armThreads(pid int, tids []int, traces []*traceEvent, opts perfevent.AttachOptions) error {
	type job struct{ tid, trace int }
	jobs := make([]job, 0, len(tids)*len(traces))
	for _, tid := range tids {
		for i := range traces {
			jobs = append(jobs, job{tid, i})
		}
	}
	opened := make([]*perfevent.Attachment, len(jobs))
	a.planned.Add(int64(len(jobs)))
	err := parallel(len(jobs), func(i int) error {
		j := jobs[i]
		ev := traces[j.trace].event
		at, err := a.rings.Attach(ev.ID, j.tid, opts)
		if errors.Is(err, perfevent.ErrThreadGone) {
			return nil // the thread exited: it can make no more hits
		}
		if err != nil {
			return fmt.Errorf("arm trace event %s/%s for pid %d tid %d: %w", ev.Group, ev.Name, pid, j.tid, err)
		}
		a.opened.Add(1)
		opened[i] = at
		return nil
	})
	opened = slices.DeleteFunc(opened, func(at *perfevent.Attachment) bool { return at == nil })
	a.mu.Lock()
	a.attachments[pid] = append(a.attachments[pid], opened...)
	a.mu.Unlock()
	return err
}

// checkFileBudget fails early, with the arithmetic, when arming would need
// more file descriptors than the process may open: one perf event per
// trace event and CPU, for all tasks or for each traced thread.
func (a *armer) checkFileBudget(traces int, pids []int) error {
	threads := 1
	if a.perProcess {
		threads = 0
		for _, pid := range pids {
			if tids, err := finder.Threads(a.procRoot, pid); err == nil {
				threads += len(tids)
			}
		}
	}
	cpus := len(a.rings.CPUs())
	need := uint64(traces * threads * cpus)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	const reserve = 64 // stdio, tracefs files, pidfds
	if need+reserve > lim.Cur {
		return badInput(fmt.Errorf("arming needs %d perf events (%d trace events × %d threads × %d CPUs) but the open-file limit is %d: narrow the probes or --pid, or raise `ulimit -n` (hard limit %d)",
			need, traces, threads, cpus, lim.Cur, lim.Max))
	}
	return nil
}
