// Package session is the one place that orders the work of an attach:
// resolve → record → define → open → stream → tear down.
//
// Order matters twice. On the way in, each process is recorded in the
// process table before its perf events are opened (which is what arms the
// uprobe for it), so no hit can come from a process we do not know. On the
// way out, perf events are closed first (disarming), the rings are drained
// so every hit written before the close is delivered, and only then are the
// trace events removed from uprobe_events (the kernel refuses while a perf
// event is open).
package session

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	Force       bool     // accept offsets not proven to be instruction boundaries
	BufferPages int      // ring size per CPU in pages; 0: perfevent.DefaultPagesPerCPU
	ProcRoot    string   // "" means /proc
}

// Probe is one armed probe: one function (or offset) of one file.
type Probe struct {
	Target probe.Target // Target.Event is the probe's name in the output
	trace  *traceEvent
}

// Name is the probe's name in the output: the symbol, made unique.
func (p *Probe) Name() string { return p.Target.Event }

// Group is the tracefs group of the probe's trace event.
func (p *Probe) Group() string { return p.trace.event.Group }

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
}

// Sink receives what a session produces. Calls come from one goroutine.
type Sink interface {
	Process(event string, p *finder.Process)
	Ready(probes []*Probe, processes int)
	Hit(h *Hit)
	Flush()
}

// Stats are the counters of the summary.
type Stats struct {
	Hits      uint64 // delivered
	Lost      uint64 // records the kernel dropped because a ring was full
	Unknown   uint64 // hits from processes not in the table (invariant: 0)
	Undecoded uint64 // samples whose payload did not match their format
	// Unresolved hits came from a recorded process but at an address in a
	// mapping that was gone before it could be read: the probe of a shared
	// trace event could not be told.
	Unresolved uint64
	Processes  int // processes recorded
	Probes     int
}

// Session is one attach.
type Session struct {
	cfg      Config
	sink     Sink
	fs       *tracefs.FS
	group    string
	probes   []*Probe
	traces   []*traceEvent
	byID     map[uint64]*traceEvent // read-only once the events are defined
	files    map[finder.FileID]bool // the probed files
	table    finder.Table
	rings    *perfevent.Rings
	maxHits  uint64
	stop     context.CancelFunc
	stopOnce sync.Once

	mu          sync.Mutex // guards attachments and exits
	attachments map[int][]*perfevent.Attachment
	exits       []exitEvent    // seen by the watcher, not yet reported
	closers     sync.WaitGroup // perf events of exited processes being closed

	hits, lost, unknown, undecoded, unresolved atomic.Uint64
	closed                                     bool
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
func (s *Session) Probes() []*Probe     { return s.probes }
func (s *Session) Group() string        { return s.group }
func (s *Session) Table() *finder.Table { return &s.table }

// Resolve parses and resolves the probe words into targets without touching
// the kernel. Every error is bad input.
func Resolve(words []string, pid int, force bool) ([]probe.Target, error) {
	var targets []probe.Target
	for _, w := range words {
		spec, err := probe.ParseSpec(w)
		if err != nil {
			return nil, badInput(err)
		}
		ts, err := probe.Resolve(spec, probe.ResolveOptions{PID: pid, Force: force})
		if err != nil {
			return nil, badInput(err)
		}
		targets = append(targets, ts...)
		if len(ts) > 0 {
			if skipped := ts[0].Spec.Skipped; len(skipped) > 0 {
				warnf("%q: skipped %d function(s) the kernel cannot probe: %s", w, len(skipped), strings.Join(skipped, "; "))
			}
		}
	}
	if len(targets) == 0 {
		return nil, badInput(errors.New("no probe given: name one as PATH:SYMBOL, e.g. libc.so.6:malloc"))
	}
	probe.AssignEventNames(targets)
	return targets, nil
}

// Start resolves the probes, records the processes, defines the trace
// events and arms them. On error everything it did is undone.
func Start(cfg Config, sink Sink) (_ *Session, err error) {
	s := &Session{cfg: cfg, sink: sink, attachments: map[int][]*perfevent.Attachment{}}
	firstPID := 0
	if len(cfg.PIDs) > 0 {
		firstPID = cfg.PIDs[0]
	}
	targets, err := Resolve(cfg.Probes, firstPID, cfg.Force)
	if err != nil {
		return nil, err
	}
	if s.fs, err = tracefs.Open(); err != nil {
		return nil, environmentError(err)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// Record first: the processes to trace are in the table before any
	// event exists, let alone is armed.
	if err := s.recordInitialProcesses(targets); err != nil {
		return nil, err
	}
	if err := s.define(targets); err != nil {
		return nil, err
	}
	pages := cfg.BufferPages
	if pages == 0 {
		pages = perfevent.DefaultPagesPerCPU
	}
	if s.rings, err = perfevent.OpenRings(pages); err != nil {
		return nil, classifyPerfError(err)
	}
	if err := s.checkFileBudget(); err != nil {
		return nil, err
	}
	for _, p := range s.table.All() {
		if err := s.arm(p); err != nil {
			return nil, classifyPerfError(err)
		}
	}
	sink.Ready(s.probes, s.table.Len())
	sink.Flush()
	return s, nil
}

func classifyPerfError(err error) error {
	if errors.Is(err, perfevent.ErrPermission) {
		return environmentError(err)
	}
	return err
}

// recordInitialProcesses fills the table: the --pid processes, or every
// process that maps one of the probed files now.
func (s *Session) recordInitialProcesses(targets []probe.Target) error {
	files := map[finder.FileID]string{}
	for _, t := range targets {
		id, err := finder.Identify(t.Path)
		if err != nil {
			return badInput(err)
		}
		files[id] = t.Path
	}
	wanted := map[finder.FileID]bool{}
	for id := range files {
		wanted[id] = true
	}
	s.files = wanted
	if len(s.cfg.PIDs) > 0 {
		for _, pid := range s.cfg.PIDs {
			p, err := finder.ReadProcess(s.procRoot(), pid)
			if err != nil {
				return badInput(fmt.Errorf("--pid %d: no such process (list processes with ps, or pgrep NAME)", pid))
			}
			p.Maps, _ = finder.Mappings(s.procRoot(), pid, wanted)
			for id, path := range files {
				if !slices.ContainsFunc(p.Maps, func(m finder.Mapping) bool { return m.File == id }) {
					warnf("pid %d (%s) does not map %s now: no hits from it unless it loads it later", pid, p.Comm, path)
				}
			}
			s.record(p)
		}
		return nil
	}
	mappers, err := finder.ScanMappers(s.procRoot(), wanted)
	if err != nil {
		return err
	}
	for pid, maps := range mappers {
		p, err := finder.ReadProcess(s.procRoot(), pid)
		if err != nil {
			continue // exited during the scan
		}
		p.Maps = maps
		s.record(p)
	}
	if len(mappers) == 0 {
		paths := make([]string, 0, len(files))
		for _, p := range files {
			paths = append(paths, p)
		}
		warnf("no running process maps %s; uprobectl traces the processes that map it when it starts (use --pid, or start the workload first)", strings.Join(paths, ", "))
	}
	return nil
}

func (s *Session) record(p *finder.Process) {
	s.table.Add(p)
	s.sink.Process("found", p)
}

// define creates the trace events in this run's owner group, after reaping
// the groups of uprobectl runs that died without cleaning up: one trace
// event per (file, kind, fetch args), holding every probe that shares them.
func (s *Session) define(targets []probe.Target) error {
	owner, err := tracefs.Self()
	if err != nil {
		return err
	}
	if reaped, err := s.fs.Reap(); err != nil {
		warnf("reaping events of dead uprobectl runs: %v", err)
	} else if len(reaped) > 0 {
		warnf("removed %d event group(s) left by dead uprobectl runs", len(reaped))
	}
	s.group = owner.Group()

	var specs []tracefs.UprobeSpec
	var traces []*traceEvent
	type shareKey struct {
		path   string
		ret    bool
		fetchs string
	}
	shared := map[shareKey]*traceEvent{}
	for i := range targets {
		t := targets[i]
		if t.Return && retvalArg(t.Args) == "" {
			t.Args = append(slices.Clip(t.Args), probe.Arg{Name: "retval", Expr: "$retval", Type: "s64", Given: "$retval"})
		}
		args := make([]string, len(t.Args))
		for j, a := range t.Args {
			args[j] = a.Fetch()
		}
		key := shareKey{t.Path, t.Return, strings.Join(args, " ")}
		te := shared[key]
		if te == nil {
			id, err := finder.Identify(t.Path)
			if err != nil {
				return badInput(err)
			}
			te = &traceEvent{file: id, retval: retvalArg(t.Args), byOffset: map[uint64]*Probe{}}
			shared[key] = te
			traces = append(traces, te)
			te.name = traceEventName(len(traces), t)
		}
		if te.byOffset[t.Offset] != nil {
			continue // the same function named twice: one probe
		}
		p := &Probe{Target: t, trace: te}
		te.probes = append(te.probes, p)
		te.byOffset[t.Offset] = p
		s.probes = append(s.probes, p)
		specs = append(specs, tracefs.UprobeSpec{Event: te.name, Path: t.Path, Offset: t.Offset, Return: t.Return, Args: args})
	}
	events, err := s.fs.Define(s.group, specs)
	if err != nil {
		if errors.Is(err, tracefs.ErrPermission) {
			return environmentError(err)
		}
		return badInput(err)
	}
	s.byID = map[uint64]*traceEvent{}
	for i, te := range traces {
		te.event = events[i]
		te.decoder, err = perfevent.NewDecoder(te.event.Format, displayOf(te.probes[0].Target.Args))
		if err != nil {
			return err
		}
		s.byID[te.event.ID] = te
	}
	s.traces = traces
	return nil
}

// traceEventName names the n-th trace event after its first probe.
func traceEventName(n int, first probe.Target) string {
	name := fmt.Sprintf("p%d_%s", n, first.Event)
	if len(name) > 63 {
		name = name[:63]
	}
	return name
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

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "uprobectl: warning: "+format+"\n", args...)
}

// Stats returns the counters so far.
func (s *Session) Stats() Stats {
	return Stats{
		Hits: s.hits.Load(), Lost: s.lost.Load(), Unknown: s.unknown.Load(), Undecoded: s.undecoded.Load(), Unresolved: s.unresolved.Load(),
		Processes: s.table.Len(), Probes: len(s.probes),
	}
}

// Close tears down in the safe order: close perf events (disarm), drain the
// rings, unmap them, remove the trace events. It is idempotent and is what
// every exit path calls, including a panic's.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.mu.Lock()
	var all []*perfevent.Attachment
	for _, as := range s.attachments {
		all = append(all, as...)
	}
	s.attachments = map[int][]*perfevent.Attachment{}
	s.mu.Unlock()
	closeAll(all)
	s.closers.Wait()
	if s.rings != nil {
		s.rings.Drain(s.handle)
		s.afterRound(^uint64(0))
		s.rings.Close()
	}
	if s.fs != nil && s.group != "" && len(s.probes) > 0 {
		return s.removeGroup()
	}
	return nil
}

// removeGroup removes this run's trace events. EBUSY means a perf event is
// still being released by the kernel; it is retried for a bounded time.
func (s *Session) removeGroup() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.fs.RemoveGroup(s.group)
		if err == nil || !errors.Is(err, tracefs.ErrBusy) || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("remove trace events of group %s (run `uprobectl clean` later): %w", s.group, err)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
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
