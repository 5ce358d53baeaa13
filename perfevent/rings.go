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

// DefaultPagesPerCPU is the data size of each ring in pages (4 MiB with 4 KiB
// pages). Measured on 2 CPUs with 2 threads making ~900k hits/s (the nop5
// workload of scripts/bench-ingest): 2 MiB rings lost 0-0.7 % of the hits
// in --count and --json runs, 4 MiB rings none in 6 of 6.
const DefaultPagesPerCPU = 1024

// Rings are two ring buffers per online CPU: one for the hits, one for the
// side-band. Every perf event opened through Attach writes into the hit
// ring of its CPU; the side-band rings get the fork, exit, comm and mmap
// records of every task. Two rings, not one, because a kernel LOST record
// only says how many records a ring dropped, not which: with separate rings
// a LOST from a hit ring counts lost hits exactly, one from a side-band
// ring lost process records, and a flood of hits cannot push out the
// records that say which process made them.
type Rings struct {
	cpus     []int
	hits     []*perf.Event // hits[i] owns the hit ring of cpus[i]
	sideband []*perf.Event // sideband[i] owns the side-band ring of cpus[i]
	// hitRings[i] and sidebandRings[i] are their mapped rings.
	hitRings, sidebandRings []*ring
	// queues[i] holds the records read from ring i and not yet delivered,
	// in ring order: hit rings first (one per CPU), then side-band rings.
	queues []queue
	// arenas back Record.Raw and Record.Callchain: each round copies the
	// payloads it reads into a free arena. An arena is reused only once
	// every record read into it has been delivered (a ring read short of
	// its end holds the merge back, so records may wait several rounds);
	// the steady state allocates nothing.
	arenas []arena
	// stackDepth > 0: trace events record the user call chain, at most
	// stackDepth frames (EnableStacks).
	stackDepth int
}

// MaxStackDepth is the kernel's default kernel.perf_event_max_stack: a
// deeper sample_max_stack is refused.
const MaxStackDepth = 127

// EnableStacks makes the trace events attached from now on record the
// user call stack of every hit (frame-pointer walk by the kernel,
// PERF_SAMPLE_CALLCHAIN without kernel frames), at most depth frames.
// Call it before the first Attach: every sample of a ring must have one
// layout.
func (r *Rings) EnableStacks(depth int) error {
	if depth < 1 || depth > MaxStackDepth {
		return fmt.Errorf("stack depth %d: must be 1..%d", depth, MaxStackDepth)
	}
	r.stackDepth = depth
	return nil
}

// arena is one round's copy of payloads; live counts its undelivered
// records.
type arena struct {
	buf  []byte
	live int
}

// queue is one ring's undelivered records; head is the next one.
type queue struct {
	recs []Record
	head int
}

// SidebandPagesPerCPU is the size of each side-band ring: fork, exit, comm
// and executable mmap records of every task on the machine, a few hundred
// bytes per process started. 1 MiB holds the records of thousands of
// process starts between two reads.
const SidebandPagesPerCPU = 256

// OpenRings maps a hit ring of pagesPerCPU pages (a power of two) and a
// side-band ring on every online CPU.
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
		sideband, sidebandRing, err := openAnchor(cpu, SidebandPagesPerCPU, true)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.sideband, r.sidebandRings = append(r.sideband, sideband), append(r.sidebandRings, sidebandRing)
		hits, hitRing, err := openAnchor(cpu, pagesPerCPU, false)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.hits, r.hitRings = append(r.hits, hits), append(r.hitRings, hitRing)
	}
	return r, nil
}

// openAnchor opens a ring owner for one CPU: a dummy software event for
// every task on that CPU (pid -1). It samples nothing. The side-band anchor
// writes the records the task-finder reads — fork, exit, comm (exec), and
// mmap2 of executable mappings with their device and inode — so that,
// merged by time with the hit rings, a process's fork or mapping of a
// probed file always comes before its first hit. A hit anchor writes
// nothing itself: the trace events' perf events are routed into its ring.
// Anchors never exit, so the rings outlive any traced thread. They use the
// same clock as the trace events: the kernel refuses SET_OUTPUT between
// events of different clocks.
func openAnchor(cpu, pages int, sideband bool) (*perf.Event, *ring, error) {
	attr := &perf.Attr{
		Type:   perf.SoftwareEvent,
		Config: uint64(unix.PERF_COUNT_SW_DUMMY),
		Options: perf.Options{
			Task:        sideband,
			Comm:        sideband,
			CommExec:    sideband,
			Mmap:        sideband,
			Mmap2:       sideband,
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
	kind := "hit"
	if sideband {
		kind = "side-band"
	}
	ev, err := perf.Open(attr, perf.AllThreads, cpu, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s ring anchor on cpu %d: %w", kind, cpu, translateOpenError(err))
	}
	rg, err := mapRing(ev, pages)
	if err != nil {
		ev.Close()
		err = fmt.Errorf("map the %s ring of cpu %d (%d pages): %w", kind, cpu, pages, err)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			// Rings beyond kernel.perf_event_mlock_kb count against
			// RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
			return nil, nil, fmt.Errorf("%w (add CAP_IPC_LOCK, raise `ulimit -l`, or lower --buffer-pages): %w", ErrPermission, err)
		}
		return nil, nil, err
	}
	return ev, rg, nil
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
	if r.stackDepth > 0 {
		attr.SampleFormat.Callchain = true
		attr.Options.ExcludeKernelCallchain = true
		// The kernel counts addresses only, not its context markers, and
		// refuses more than kernel.perf_event_max_stack (EOVERFLOW).
		attr.SampleMaxStack = uint16(r.stackDepth)
	}
	a := &Attachment{}
	for i, cpu := range r.cpus {
		ev, err := perf.Open(attr, tid, cpu, nil)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("perf_event_open(trace event %d, tid %d, cpu %d): %w", traceEventID, tid, cpu, translateOpenError(err))
		}
		a.events = append(a.events, ev)
		if err := ev.SetOutput(r.hits[i]); err != nil {
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
	for _, rg := range append(r.hitRings, r.sidebandRings...) {
		rg.unmap()
	}
	for _, a := range append(r.hits, r.sideband...) {
		a.Close()
	}
	r.hits, r.sideband, r.hitRings, r.sidebandRings = nil, nil, nil, nil
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
