// Package session is the one place that orders the work of an attach:
// resolve → record → define → open → stream → tear down.
//
// Order matters twice. On the way in, the side-band (fork, exec, mmap,
// exit records of every task) starts before /proc is scanned, and each
// process found is recorded in the process table before any perf event is
// opened, so no process that maps a probed file can slip between the scan
// and the arming, and no hit can come from a process we do not know. On the
// way out, perf events are closed first (disarming), the rings are drained
// so every hit written before the close is delivered, and only then are the
// trace events removed from uprobe_events (the kernel refuses while a perf
// event is open).
//
// Two ways of arming, by scope:
//   - every process that maps a probed file (the default, and --comm): one
//     perf event per trace event per CPU for all tasks. The kernel arms the
//     uprobe in every process mapping the file, and at every later mmap of it
//     (exec, dlopen) before the process can run the code; forked children
//     keep it. No process can be missed or disarmed, whatever its timing. The
//     task-finder records new processes from the side-band, which the
//     time-ordered merge delivers before their first hit.
//   - --pid and run: perf events on the chosen processes' threads only (other
//     processes mapping the file are not slowed down), with inherit for the
//     threads and children they create, and enable_on_exec for a command we
//     launch stopped before exec.
package session

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/tracefs"
)

// Config is what an attach was asked to do.
type Config struct {
	Probes      []string // probe words, e.g. "libc.so.6:malloc size=%di:u64"
	PIDs        []int    // whole processes to trace; empty: every process mapping a probed file
	Follow      bool     // with PIDs: their descendants too, existing and new
	Comm        string   // only processes with this command name
	Launch      int      // run: pid of a child stopped before exec, armed with enable_on_exec
	Force       bool     // accept offsets not proven to be instruction boundaries
	BufferPages int      // ring size per CPU in pages; 0: perfevent.DefaultPagesPerCPU
	ProcRoot    string   // "" means /proc
	// Root resolves the probes' paths inside another mount namespace's
	// view, e.g. /proc/PID/root for a container; the probes bind to the
	// inodes found there.
	Root string
	// Log receives warnings; nil means os.Stderr.
	Log io.Writer
	// StatsInterval, if set, has the sink report the counters that often.
	StatsInterval time.Duration
	// Program is run's command (its program file): library names in the
	// probes resolve through its RUNPATH/RPATH first, as its loader will.
	Program string
	// StackDepth > 0: every hit carries its user call stack, at most this
	// many frames (--stacks, --stack-depth).
	StackDepth int
}

// perProcess: arm chosen processes only (--pid, run), not every mapper.
func (c *Config) perProcess() bool { return len(c.PIDs) > 0 || c.Launch > 0 }

// followsChildren: a child of a recorded process is recorded too.
func (c *Config) followsChildren() bool { return !c.perProcess() || c.Follow || c.Launch > 0 }

// Probe is one armed probe: one function (or offset) of one file.
type Probe struct {
	Target probe.Target // Target.Event is the probe's name in the output
	trace  *traceEvent
	binary string
}

// Name is the probe's name in the output: the symbol, made unique.
func (p *Probe) Name() string { return p.Target.Event }

// Binary is the probed file's path as the traced processes see it (inside
// their container, with Config.Root).
func (p *Probe) Binary() string {
	if p.binary == "" {
		return p.Target.Path
	}
	return p.binary
}

// Group is the tracefs group of the probe's trace event.
func (p *Probe) Group() string {
	if p.trace == nil || p.trace.event == nil {
		return ""
	}
	return p.trace.event.Group
}

// traceEvent is one trace event in tracefs. All the probes of one file
// with the same kind and fetch args share one trace event, as the kernel
// allows (a glob gives hundreds): opening and closing a perf event
// costs the kernel a grace period per trace event (~75 ms to close), so
// 500 separate events took 40 s to detach and one takes 0.1 s. A hit tells
// its probe by address: __probe_ip (or __probe_func on return), mapped back
// to a file offset through the process's mappings.
type traceEvent struct {
	name     string // in tracefs: p<N>_<first probe's name>
	event    *tracefs.Event
	file     finder.FileID
	decoder  *perfevent.Decoder
	retval   string // name of the argument fetching $retval, if any
	probes   []*Probe
	byOffset map[uint64]*Probe
}

// Hit is one delivered uprobe hit.
type Hit struct {
	Probe   *Probe
	Process *finder.Process // never nil: unknown processes are counted, not delivered
	TID     int
	CPU     int
	TimeNS  uint64 // CLOCK_MONOTONIC
	Payload perfevent.Payload
	Retval  *perfevent.Value // return probes: the $retval argument
	// StackIPs is the user call stack with Config.StackDepth, innermost
	// first (frame 0 the probed instruction, then return addresses); nil
	// without. Frames symbolizes it.
	StackIPs []uint64

	symbolize *symbolizer
	atEntry   bool    // the probe is at a function's first instruction
	frames    []Frame // Frames' result for this hit
	framesOK  bool
}

// Frames returns the hit's stack symbolized (nil without stacks). The
// slice is reused for the next hit: the sink copies what it keeps.
func (h *Hit) Frames() []Frame {
	if h.StackIPs == nil || h.symbolize == nil {
		return nil
	}
	if !h.framesOK {
		h.frames = h.symbolize.frames(h.Process, h.StackIPs, h.atEntry, h.frames[:0])
		h.framesOK = true
	}
	return h.frames
}

// Sink receives what a session produces. Calls come from one goroutine at
// a time.
type Sink interface {
	// Process reports "found", "exec" or "exit" of a recorded process.
	Process(event string, p *finder.Process)
	Ready(probes []*Probe, processes int)
	// Progress reports, once a second while start-up takes longer than
	// that, what is being done: stage "define" (trace events written) or
	// "arm" (perf events opened), done of total.
	Progress(stage string, done, total int)
	// Rearmed reports that a probed file was replaced (a new inode renamed
	// over its path) and its probes are armed on the new file too.
	Rearmed(path string, probes int)
	// Stats reports the counters every Config.StatsInterval.
	Stats(st Stats)
	// Hit delivers one hit. h, its payload and its strings are valid only
	// during the call: the hit path reuses them (copy what you keep).
	Hit(h *Hit)
	Flush()
}

// Stats are the counters of the summary. For every run:
// hits made by the traced processes = Hits + Filtered + Lost (+ Unknown,
// Undecoded, Unresolved, which the design keeps at 0), exactly.
type Stats struct {
	Hits uint64 // delivered
	// Lost counts hits the kernel dropped because a hit ring was full
	// (raise --buffer-pages, or consume faster).
	Lost uint64
	// LostSideband counts fork, exit, comm and mmap records the kernel
	// dropped from a side-band ring. What that costs is counted in Late.
	LostSideband uint64
	// Late counts processes and mappings recorded from /proc after the
	// fact because their side-band records were lost. Their hits are
	// delivered all the same.
	Late      uint64
	Unknown   uint64 // hits from processes nothing is known of (invariant: 0)
	Undecoded uint64 // samples whose payload did not match their format
	// Unresolved hits came from a recorded process but at an address in a
	// mapping that was gone before it could be read: the probe of a shared
	// trace event could not be told.
	Unresolved uint64
	// Filtered hits came from processes outside the scope: children of a
	// --pid process without --follow, other names than --comm, another
	// container's view of the file with --container-pid.
	Filtered uint64
	// MissedWindows counts processes that mapped a replaced probed file
	// before its new inode was armed: their hits until then are missing.
	MissedWindows uint64
	Processes     int // processes recorded over the run
	Groups        int // --count: groups counted (probe, process, and stack or --by values)
	Tracked       int // processes in the table now
	Probes        int

	// Own resources, to show they stay bounded on a long run.
	FDs, Goroutines int

	// Exit is how the command of `run` ended, for the summary; nil
	// otherwise (attach, and the periodic stats).
	Exit *ExitStatus
}

// Session is one attach. Each part owns its own state: probes (trace
// events, defined and published for the hit path), arms (the perf events
// that arm them), finder (the process table, fed by the record stream),
// and the stream (the reader loop and its counters).
type Session struct {
	cfg     Config
	sink    Sink
	fs      *tracefs.FS
	rings   *perfevent.Rings
	probes  *probeSet
	arms    *armer
	finder  *finder.Tracker
	proc    *finder.ProcSource // /proc, for the tracker and the start-up scan
	watcher *fileWatcher       // notices a probed file replaced on disk
	stream  stream
	closed  atomic.Bool
	// startMu serializes the sink while Start runs: its progress ticker
	// writes beside the process lines of the initial recording.
	startMu sync.Mutex
}

// ErrBadInput marks errors caused by what the user asked for (exit code 2).
var ErrBadInput = errors.New("bad input")

// ErrEnvironment marks errors caused by the machine: no tracefs, no uprobe
// support, no permission (exit code 3).
var ErrEnvironment = errors.New("environment")

type classified struct {
	class error
	err   error
}

func (c *classified) Error() string    { return c.err.Error() }
func (c *classified) Unwrap() []error  { return []error{c.class, c.err} }
func badInput(err error) error         { return &classified{ErrBadInput, err} }
func environmentError(err error) error { return &classified{ErrEnvironment, err} }

// Classify marks err as ErrBadInput or ErrEnvironment without changing its
// message.
func Classify(class, err error) error { return &classified{class, err} }
func (s *Session) procRoot() string   { return orDefault(s.cfg.ProcRoot, "/proc") }
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Resolve parses and resolves the probe words into targets without touching
// the kernel. Every error is bad input.
//
// The files the targets name are held open in the returned probe.Opened
// (the targets' KernelPath): the caller closes it once their trace events
// are defined, on every path. On error nothing is left open.
func Resolve(words []string, opts probe.ResolveOptions, warn func(format string, args ...any)) (_ []probe.Target, _ *probe.Opened, err error) {
	opened := probe.NewOpened()
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	opts.Opened = opened
	var targets []probe.Target
	for _, w := range words {
		spec, err := probe.ParseSpec(w)
		if err != nil {
			return nil, nil, badInput(err)
		}
		ts, err := probe.Resolve(spec, opts)
		if err != nil {
			return nil, nil, badInput(err)
		}
		targets = append(targets, ts...)
		if len(ts) > 0 {
			if skipped := ts[0].Spec.Skipped; len(skipped) > 0 {
				warn("%q: skipped %d function(s) the kernel cannot probe: %s", w, len(skipped), strings.Join(skipped, "; "))
			}
		}
	}
	if len(targets) == 0 {
		return nil, nil, badInput(errors.New("no probe given: name one as PATH:SYMBOL, e.g. libc.so.6:malloc"))
	}
	probe.AssignEventNames(targets)
	return targets, opened, nil
}

// Start resolves the probes, starts the side-band, records the processes,
// defines the trace events and arms them. On error everything it did is
// undone.
func Start(cfg Config, sink Sink) (_ *Session, err error) {
	s := &Session{cfg: cfg, sink: sink}
	targets, opened, err := Resolve(cfg.Probes, s.resolveOptions(), s.warnf)
	if err != nil {
		return nil, err
	}
	defer opened.Close() // on every path; closed as soon as the trace events are defined
	if s.fs, err = tracefs.Open(); err != nil {
		return nil, environmentError(err)
	}
	s.probes = &probeSet{fs: s.fs, words: cfg.Probes, stacks: cfg.StackDepth > 0}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	pages := cfg.BufferPages
	if pages == 0 {
		pages = perfevent.DefaultPagesPerCPU
	}
	// The side-band first: a process that maps a probed file after this
	// point shows up in the rings, one that did before shows up in the scan.
	if s.rings, err = perfevent.OpenRings(pages); err != nil {
		return nil, classifyPerfError(err)
	}
	if cfg.StackDepth > 0 {
		if err := s.rings.EnableStacks(cfg.StackDepth); err != nil {
			return nil, badInput(fmt.Errorf("--stack-depth: %w", err))
		}
		s.stream.symbolize = newSymbolizer(s.procRoot())
	}
	s.arms = &armer{rings: s.rings, procRoot: s.procRoot(), perProcess: cfg.perProcess(), followsChildren: cfg.followsChildren(),
		launch: cfg.Launch, attachments: map[int][]*perfevent.Attachment{}}
	// Refuse what cannot be armed before recording or writing anything.
	if err := s.arms.checkFileBudget(traceEventCount(targets, cfg.StackDepth > 0), budgetPIDs(cfg)); err != nil {
		return nil, err
	}
	files, err := identifyFiles(targets)
	if err != nil {
		return nil, err
	}
	s.proc = finder.NewProcSource(s.procRoot())
	s.finder = finder.NewTracker(finder.TrackerConfig{
		Source:     s.proc,
		Scope:      finder.Scope{Chosen: cfg.perProcess(), Follow: cfg.Follow || cfg.Launch > 0, Comm: cfg.Comm, ExactFile: cfg.Root != "", Self: os.Getpid()},
		Files:      files,
		Paths:      pathsOf(targets),
		Report:     s.onProcess,
		KeepImages: cfg.StackDepth > 0,
		Replaced: func(path string) {
			go s.rearm(path)
		},
	})
	// Record before defining and arming.
	if err := s.recordInitialProcesses(); err != nil {
		return nil, err
	}
	s.probes.checkBudget = func(traces int) error {
		return s.arms.checkFileBudget(traces, slices.Collect(maps.Keys(s.finder.All())))
	}
	stopProgress := s.reportProgress()
	defer stopProgress()
	err = s.probes.define(targets, s.displayPath, s.warnf)
	opened.Close() // the kernel holds its own reference to each defined file
	if err != nil {
		return nil, err
	}
	if err := s.arms.armTraces(s.probes.traces, s.finder.All()); err != nil {
		return nil, classifyPerfError(err)
	}
	if !cfg.perProcess() {
		if s.watcher, err = watchFiles(s, pathsOf(targets)); err != nil {
			s.warnf("cannot watch the probed files for replacement: %v", err)
		}
	}
	stopProgress()
	sink.Ready(s.probes.probes, s.finder.Len())
	sink.Flush()
	return s, nil
}

// reportProgress reports the define and arm stages once a second until the
// returned func is called (idempotent): arming thousands of probes in a
// busy machine takes seconds, and a silent tool looks hung.
func (s *Session) reportProgress() (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				stage, n, total := "define", int(s.probes.count.Load()), s.probes.planned
				if armed, of := s.arms.progress(); of > 0 {
					stage, n, total = "arm", armed, of
				}
				s.startMu.Lock()
				s.sink.Progress(stage, n, total)
				s.sink.Flush()
				s.startMu.Unlock()
			}
		}
	}()
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// onProcess reports the task-finder's found, exec and exit to the sink; an
// exited process's own perf events (--pid) are closed.
func (s *Session) onProcess(event string, p *finder.Process) {
	s.startMu.Lock()
	s.sink.Process(event, p)
	s.startMu.Unlock()
	if event == "exit" {
		s.arms.release(p.PID)
	}
}

// resolveOptions: library names resolve through the maps of the first
// chosen process, paths inside Config.Root.
func (s *Session) resolveOptions() probe.ResolveOptions {
	pid := s.cfg.Launch
	if len(s.cfg.PIDs) > 0 {
		pid = s.cfg.PIDs[0]
	}
	return probe.ResolveOptions{PID: pid, Root: s.cfg.Root, Force: s.cfg.Force, Program: s.cfg.Program}
}

// displayPath is how the traced processes see a resolved path.
func (s *Session) displayPath(p string) string {
	root := strings.TrimSuffix(s.cfg.Root, "/")
	if root != "" && strings.HasPrefix(p, root+"/") {
		return strings.TrimPrefix(p, root)
	}
	return p
}

func classifyPerfError(err error) error {
	if errors.Is(err, perfevent.ErrPermission) {
		return environmentError(err)
	}
	return err
}

func retvalArg(args []probe.Arg) string {
	for _, a := range args {
		if a.Expr == "$retval" {
			return a.Name
		}
	}
	return ""
}

// displayOf tells the decoder which arguments were asked for as hex or char:
// the format file shows them as plain u64/u8.
func displayOf(args []probe.Arg) perfevent.Display {
	d := perfevent.Display{}
	for _, a := range args {
		typ, _, _ := strings.Cut(a.Type, "[")
		switch {
		case strings.HasPrefix(typ, "x"):
			d[a.Name] = perfevent.Hex
		case typ == "char":
			d[a.Name] = perfevent.Char
		}
	}
	return d
}

func (s *Session) warnf(format string, args ...any) {
	w := s.cfg.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "uprobectl: warning: "+format+"\n", args...)
}

func countFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// Stats returns the counters so far. Safe from any goroutine.
func (s *Session) Stats() Stats {
	st := s.stream.counts.stats()
	if s.finder != nil {
		c := &s.finder.Counters
		st.Late, st.Filtered, st.Unknown = c.Late.Load(), c.Filtered.Load(), c.Unknown.Load()
		st.MissedWindows, st.Processes, st.Tracked = c.MissedWindows.Load(), int(c.Recorded.Load()), s.finder.Len()
	}
	if s.probes != nil {
		st.Probes = int(s.probes.count.Load())
	}
	st.FDs, st.Goroutines = countFDs(), runtime.NumGoroutine()
	return st
}

// Close tears down in the safe order: close perf events (disarm), drain the
// rings and make the kernel report what it dropped, unmap them, remove the
// trace events. It is idempotent and is what every exit path calls,
// including a panic's.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.watcher != nil {
		s.watcher.close()
	}
	if s.probes == nil {
		return nil
	}
	s.probes.mu.Lock() // no rearm may start now
	defer s.probes.mu.Unlock()
	if s.arms != nil {
		s.arms.disarmAll()
	}
	if s.rings != nil {
		if s.finder != nil {
			s.rings.Drain(s.handle)
			if err := s.rings.FlushLost(); err != nil {
				s.warnf("the kernel's count of dropped records may be incomplete: %v", err)
			}
			s.rings.Drain(s.handle)
			s.afterRound(^uint64(0))
		}
		s.rings.Close()
	}
	return s.probes.remove()
}

// closeAll closes attachments concurrently: the kernel spends a grace period
// on the last close of each trace event.
func closeAll(as []*perfevent.Attachment) {
	parallel(len(as), func(i int) error { as[i].Close(); return nil })
}

// parallel runs f(0..n-1) on a bounded number of goroutines and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	const workers = 16
	var (
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// budgetPIDs are the processes whose threads per-process arming opens
// perf events on, as far as they are known before recording.
func budgetPIDs(cfg Config) []int {
	pids := slices.Clone(cfg.PIDs)
	if cfg.Launch > 0 {
		pids = append(pids, cfg.Launch)
	}
	return pids
}
