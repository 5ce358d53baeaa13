package perfevent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	perf "github.com/elastic/go-perf"
	"golang.org/x/sys/unix"
)

// ErrThreadGone is returned by Attach when the thread exited before its perf
// events could be opened (ESRCH). Callers attaching to a live process treat
// it as "nothing to arm", not as a failure.
var ErrThreadGone = errors.New("thread exited")

// ErrPermission is returned when perf_event_open refuses us.
var ErrPermission = errors.New("permission denied")

// ErrTooManyFiles is returned when the process runs out of file descriptors:
// every (probe, thread, CPU) needs one.
var ErrTooManyFiles = errors.New("too many open files")

// DefaultPagesPerCPU is the data size of each ring in pages (2 MiB with 4 KiB
// pages). At ~0.5 µs per hit a 256 KiB ring was seen to lose records on these
// machines; 2 MiB leaves room for bursts between two reads.
const DefaultPagesPerCPU = 512

// Rings is one ring buffer per online CPU. Every perf event opened through
// Attach writes into the ring of its CPU.
type Rings struct {
	cpus    []int
	anchors []*perf.Event // anchors[i] owns the ring of cpus[i]
	pending []Record      // read but held back by the time-ordered merge
	arena   []byte        // backing store for Record.Raw of the current batch
}

// OpenRings maps one ring of pagesPerCPU pages (a power of two) on every
// online CPU.
func OpenRings(pagesPerCPU int) (*Rings, error) {
	if pagesPerCPU <= 0 || pagesPerCPU&(pagesPerCPU-1) != 0 {
		return nil, fmt.Errorf("ring size %d pages: must be a power of two", pagesPerCPU)
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	r := &Rings{cpus: cpus}
	for _, cpu := range cpus {
		anchor, err := openAnchor(cpu, pagesPerCPU)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.anchors = append(r.anchors, anchor)
	}
	return r, nil
}

// openAnchor opens the ring owner for one CPU: a dummy software event for
// every task on that CPU (pid -1). It samples nothing; it writes the
// side-band records the task-finder reads — fork, exit, comm (exec), and
// mmap2 of executable mappings with their device and inode — into the same
// ring as the hits, so that, merged by time, a process's fork or mapping of
// a probed file always comes before its first hit. It never exits, so the
// ring outlives any traced thread. It uses the same clock as the trace
// events: the kernel refuses SET_OUTPUT between events of different clocks.
func openAnchor(cpu, pages int) (*perf.Event, error) {
	attr := &perf.Attr{
		Type:   perf.SoftwareEvent,
		Config: uint64(unix.PERF_COUNT_SW_DUMMY),
		Options: perf.Options{
			Task:        true,
			Comm:        true,
			CommExec:    true,
			Mmap:        true,
			Mmap2:       true,
			SampleIDAll: true,
			UseClockID:  true,
			// Wake the reader when a quarter of the ring is used; the reader
			// also polls on a timer, so low rates are not held back long.
			Watermark: true,
		},
		ClockID:      unix.CLOCK_MONOTONIC,
		SampleFormat: sampleFormat,
	}
	attr.SetWakeupWatermark(uint32(pages * os.Getpagesize() / 4))
	ev, err := perf.Open(attr, perf.AllThreads, cpu, nil)
	if err != nil {
		return nil, fmt.Errorf("open ring anchor on cpu %d: %w", cpu, translateOpenError(err))
	}
	if err := ev.MapRingNumPages(pages); err != nil {
		ev.Close()
		err = fmt.Errorf("map the ring of cpu %d (%d pages): %w", cpu, pages, err)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			// Rings beyond kernel.perf_event_mlock_kb count against
			// RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
			return nil, fmt.Errorf("%w (add CAP_IPC_LOCK, raise `ulimit -l`, or lower --buffer-pages): %w", ErrPermission, err)
		}
		return nil, err
	}
	return ev, nil
}

// sampleFormat is shared by the anchors and the trace events: the reader
// decodes every record of a ring with one layout.
var sampleFormat = perf.SampleFormat{Tid: true, Time: true, CPU: true, Raw: true}

// CPUs returns the CPUs that have a ring.
func (r *Rings) CPUs() []int { return r.cpus }

// AttachOptions say how a trace event is opened for a thread.
type AttachOptions struct {
	// Inherit makes threads and child processes created by the thread
	// after the open record into the same rings.
	Inherit bool
	// EnableOnExec leaves the events disabled until the thread calls
	// execve: for a command launched by us and stopped before exec.
	EnableOnExec bool
}

// Attachment is the set of perf events (one per CPU) of one trace event on
// one thread.
type Attachment struct {
	events []*perf.Event
}

// AllThreads, as the tid of Attach, opens the trace event for every task:
// the kernel then arms the uprobe in every process that maps the file, now
// and at every later mmap, with no window.
const AllThreads = perf.AllThreads

// Attach opens the trace event with the given id for thread tid on every
// CPU, routes each into its CPU's ring and enables it. The events are opened
// disabled so that no sample is produced before its ring is set. On failure
// nothing stays open. A thread that has exited gives ErrThreadGone.
func (r *Rings) Attach(traceEventID uint64, tid int, opts AttachOptions) (*Attachment, error) {
	attr := &perf.Attr{
		Type:         perf.TracepointEvent,
		Config:       traceEventID,
		Sample:       1,
		SampleFormat: sampleFormat,
		Options: perf.Options{
			Disabled:     true,
			Inherit:      opts.Inherit,
			EnableOnExec: opts.EnableOnExec,
			SampleIDAll:  true,
			UseClockID:   true,
		},
		ClockID: unix.CLOCK_MONOTONIC,
	}
	a := &Attachment{}
	for i, cpu := range r.cpus {
		ev, err := perf.Open(attr, tid, cpu, nil)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("perf_event_open(trace event %d, tid %d, cpu %d): %w", traceEventID, tid, cpu, translateOpenError(err))
		}
		a.events = append(a.events, ev)
		if err := ev.SetOutput(r.anchors[i]); err != nil {
			a.Close()
			return nil, fmt.Errorf("route perf event (tid %d, cpu %d) to its ring: %w", tid, cpu, err)
		}
	}
	if !opts.EnableOnExec {
		for _, ev := range a.events {
			if err := ev.Enable(); err != nil {
				a.Close()
				return nil, fmt.Errorf("enable perf event (tid %d): %w", tid, err)
			}
		}
	}
	return a, nil
}

// HoldArmed opens, on every CPU, a disabled perf event for all tasks on the
// trace event. It records nothing. It exists for one kernel behaviour
// measured on 6.18: with per-task events only, a child forked by a traced
// process sometimes loses the breakpoint after some hits (the uprobe's perf
// filter stops matching its mm and the kernel removes it: 5 runs in 25 of a
// 50-child fork storm lost hits, under `perf record -- cmd` too). An
// all-task event, enabled or not, makes the filter match every mm, so the
// kernel never removes the breakpoint from any process; samples still come
// only from the per-task events.
func (r *Rings) HoldArmed(traceEventID uint64) (*Attachment, error) {
	attr := &perf.Attr{
		Type:    perf.TracepointEvent,
		Config:  traceEventID,
		Sample:  1,
		Options: perf.Options{Disabled: true, UseClockID: true},
		ClockID: unix.CLOCK_MONOTONIC,
	}
	a := &Attachment{}
	for _, cpu := range r.cpus {
		ev, err := perf.Open(attr, perf.AllThreads, cpu, nil)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("perf_event_open(trace event %d, all tasks, cpu %d, disabled): %w", traceEventID, cpu, translateOpenError(err))
		}
		a.events = append(a.events, ev)
	}
	return a, nil
}

// Close closes the perf events. Closing the last perf event of a trace event
// is what disarms the uprobe; it costs the kernel a grace period (~75 ms on
// these machines), so callers close many attachments concurrently. Close is
// idempotent.
func (a *Attachment) Close() error {
	var first error
	for _, ev := range a.events {
		if err := ev.Close(); err != nil && first == nil {
			first = err
		}
	}
	a.events = nil
	return first
}

// Close unmaps the rings. Records still in them are lost: call Drain first.
func (r *Rings) Close() error {
	for _, a := range r.anchors {
		a.Close()
	}
	r.anchors = nil
	return nil
}

func translateOpenError(err error) error {
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%w: %w", ErrThreadGone, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (run as root, or with CAP_PERFMON and kernel.perf_event_paranoid <= 1): %w", ErrPermission, err)
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return fmt.Errorf("%w (one perf event per probe, thread and CPU; raise `ulimit -n`): %w", ErrTooManyFiles, err)
	}
	return err
}

// onlineCPUs parses /sys/devices/system/cpu/online ("0-3,5").
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("parse cpu list %q: range %q ends before it starts", s, part)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
