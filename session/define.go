package session

import (
	"errors"
	"fmt"
	"maps"
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

// probeSet owns the probes and their trace events: defining them (at
// start, and again when a probed file is replaced) and the lock-free view
// the hit path reads.
type probeSet struct {
	fs    *tracefs.FS
	group string   // this run's tracefs group, named after its owner
	words []string // the probe words, resolved again when a file is replaced

	mu         sync.Mutex // serializes defining and arming
	probes     []*Probe
	traces     []*traceEvent
	traceCount int                                    // trace events defined, for their names
	planned    int                                    // probes being defined at start, for progress
	count      atomic.Int64                           // len(probes), for Stats without mu
	byID       atomic.Pointer[map[uint64]*traceEvent] // trace event id -> its probes; replaced, never changed
	// checkBudget refuses, before anything is written, a number of trace
	// events the arming could not open (file descriptors).
	checkBudget func(traces int) error
	stacks      bool // entry probes fetch stackReturnArg
}

// traceOf returns the trace event of a sample's event id. Lock-free.
func (ps *probeSet) traceOf(id uint64) *traceEvent {
	if m := ps.byID.Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// identifyFiles returns the probed files as the kernel binds them (see
// finder.FileSet): their (device, inode), and which are on overlayfs.
func identifyFiles(targets []probe.Target) (*finder.FileSet, error) {
	files, overlay, err := filesOf(targets)
	if err != nil {
		return nil, err
	}
	return finder.NewFileSet(files, overlay), nil
}

// filesOf returns the files of targets by the identity of the file Resolve
// opened (fstat, fstatfs), never by walking their paths again: a path may
// name another file by now, the open file is the one the kernel arms.
func filesOf(targets []probe.Target) (files, overlay []finder.FileID, err error) {
	seen := map[probe.FileID]bool{}
	for _, t := range targets {
		if seen[t.File] {
			continue
		}
		seen[t.File] = true
		if t.File == (probe.FileID{}) {
			return nil, nil, fmt.Errorf("internal error: %s was not opened by probe.Resolve", t.Path)
		}
		if t.Overlay {
			overlay = append(overlay, finder.FileID(t.File))
		} else {
			files = append(files, finder.FileID(t.File))
		}
	}
	return files, overlay, nil
}

func pathsOf(targets []probe.Target) []string {
	var paths []string
	for _, t := range targets {
		if !slices.Contains(paths, t.Path) {
			paths = append(paths, t.Path)
		}
	}
	return paths
}

// define creates the trace events of targets in this run's owner group,
// after reaping the groups of uprobectl runs that died without cleaning up.
func (ps *probeSet) define(targets []probe.Target, display func(string) string, warnf func(string, ...any)) error {
	ps.planned = len(targets)
	owner, err := tracefs.Self()
	if err != nil {
		return err
	}
	if reaped, err := ps.fs.Reap(); err != nil {
		warnf("reaping events of dead uprobectl runs: %v", err)
	} else if len(reaped) > 0 {
		warnf("removed %d event group(s) left by dead uprobectl runs", len(reaped))
	}
	ps.group = owner.Group()
	_, err = ps.defineTraces(targets, display)
	return err
}

// shareKey is what the probes of one trace event have in common.
type shareKey struct {
	file   probe.FileID
	ret    bool
	atRET  bool // a Go return probe: entry-style probes on its RETs
	fetchs string
}

// withKernelArgs returns t with the fetch args its trace event gets: a
// return probe always fetches its return value, and a Go function's return
// (no uretprobe: Go would crash; a p: probe on each RET) finds it in RAX.
func withKernelArgs(t probe.Target, stacks bool) probe.Target {
	if stacks && atFunctionEntry(t) {
		t.Args = append(slices.Clip(t.Args), probe.Arg{Name: stackReturnArg, Expr: "$stack0", Type: "x64", Given: "$stack0"})
	}
	if t.Return && retvalArg(t.Args) == "" {
		t.Args = append(slices.Clip(t.Args), probe.Arg{Name: "retval", Expr: "$retval", Type: "s64", Given: "$retval"})
	}
	if len(t.ReturnSites) > 0 {
		t.Args = probe.RetvalInRegister(t.Args)
	}
	return t
}

func fetchArgs(t probe.Target) []string {
	args := make([]string, len(t.Args))
	for j, a := range t.Args {
		args[j] = a.Fetch()
	}
	return args
}

// shareKeyOf groups t (with its kernel args) with the probes it shares a
// trace event with.
func shareKeyOf(t probe.Target) shareKey {
	return shareKey{t.File, t.Return, len(t.ReturnSites) > 0, strings.Join(fetchArgs(t), " ")}
}

// stackReturnArg is the fetch arg an entry probe gets with stacks: the
// word at the stack pointer, the return address into the caller. The
// kernel's frame-pointer walk starts from %rbp, which at a function's
// first instruction is still the caller's: it reports the caller's caller
// next, unless the function starts with push %rbp (6.18 fixes that case
// up itself). Debian's libc malloc starts with push %r12: without this,
// malloc's caller was missing from every stack.
const stackReturnArg = "stack_ret"

// atFunctionEntry: t probes the first instruction of a function (or, in Go,
// right after the stack check, where the stack pointer has not moved).
func atFunctionEntry(t probe.Target) bool {
	return t.Symbol != "" && !t.Return && (t.Spec == nil || !t.Spec.USDT && t.Spec.SymbolOffset == 0 && !t.Spec.HasFileOffset)
}

// traceEventCount is how many trace events targets will take.
func traceEventCount(targets []probe.Target, stacks bool) int {
	keys := map[shareKey]bool{}
	for _, t := range targets {
		keys[shareKeyOf(withKernelArgs(t, stacks))] = true
	}
	return len(keys)
}

// defineTraces defines one trace event per (file, kind, fetch args),
// holding every probe that shares them, and publishes them for the hit
// path. It returns the new trace events, not yet armed. display turns a
// resolved path into the one the traced processes see.
//
// The kernel is given each target's KernelPath, the file Resolve opened and
// read: the probe.Opened that holds it must still be open.
func (ps *probeSet) defineTraces(targets []probe.Target, display func(string) string) ([]*traceEvent, error) {
	if display == nil {
		display = func(p string) string { return p }
	}
	shared := map[shareKey]*traceEvent{}
	var specs []tracefs.UprobeSpec
	var traces []*traceEvent
	var probes []*Probe
	for i := range targets {
		t := targets[i]
		if t.Return && retvalArg(t.Args) == "" {
			t.Args = append(slices.Clip(t.Args), probe.Arg{Name: "retval", Expr: "$retval", Type: "s64", Given: "$retval"})
		}
		retval := retvalArg(t.Args)
		atRET := len(t.ReturnSites) > 0
		t = withKernelArgs(t, ps.stacks)
		args := fetchArgs(t)
		if t.KernelPath == "" || t.File == (probe.FileID{}) {
			return nil, fmt.Errorf("internal error: %s was not opened by probe.Resolve with an Opened", t.Path)
		}
		key := shareKeyOf(t)
		te := shared[key]
		if te == nil {
			ps.traceCount++
			te = &traceEvent{name: traceEventName(ps.traceCount, t), file: finder.FileID(t.File), retval: retval, byOffset: map[uint64]*Probe{}}
			shared[key] = te
			traces = append(traces, te)
		}
		offsets := t.KernelOffsets() // a Go return: its RETs, all one probe
		if te.byOffset[offsets[0]] != nil {
			continue // the same function named twice: one probe
		}
		p := &Probe{Target: t, trace: te, binary: display(t.Path)}
		te.probes = append(te.probes, p)
		probes = append(probes, p)
		for _, off := range offsets {
			te.byOffset[off] = p
			// te's first target's file: the same inode (shareKey), and one
			// descriptor per inode (probe.Opened).
			specs = append(specs, tracefs.UprobeSpec{Event: te.name, Path: te.probes[0].Target.KernelPath, Offset: off, RefCtr: t.RefCtr, Return: t.Return && !atRET, Args: args})
		}
	}
	// Every kernel limit is checked before the first write: here the open
	// files the arming will need.
	if ps.checkBudget != nil {
		if err := ps.checkBudget(len(ps.traces) + len(traces)); err != nil {
			return nil, err
		}
	}
	events, err := ps.fs.Define(ps.group, specs)
	if err != nil {
		if errors.Is(err, tracefs.ErrPermission) {
			return nil, environmentError(err)
		}
		return nil, badInput(err)
	}
	// From here on Close removes them with the group.
	ps.probes = append(ps.probes, probes...)
	ps.count.Store(int64(len(ps.probes)))
	next := map[uint64]*traceEvent{}
	if cur := ps.byID.Load(); cur != nil {
		next = maps.Clone(*cur)
	}
	for i, te := range traces {
		te.event = events[i]
		te.decoder, err = perfevent.NewDecoder(te.event.Format, displayOf(te.probes[0].Target.Args))
		if err != nil {
			return nil, err
		}
		next[te.event.ID] = te
	}
	ps.traces = append(ps.traces, traces...)
	ps.byID.Store(&next)
	return traces, nil
}

// remove removes this run's trace events. EBUSY means a perf event is
// still being released by the kernel; it is retried for a bounded time.
func (ps *probeSet) remove() error {
	if ps.fs == nil || ps.group == "" || len(ps.probes) == 0 {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := ps.fs.RemoveGroup(ps.group)
		if err == nil || !errors.Is(err, tracefs.ErrBusy) || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("remove trace events of group %s (run `uprobectl clean` later): %w", ps.group, err)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// traceEventName names the n-th trace event after its first probe.
func traceEventName(n int, first probe.Target) string {
	name := fmt.Sprintf("p%d_%s", n, first.Event)
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// rearm arms the probes of path again on the file now at that path: a
// package upgrade renames a new inode over it, and the kernel keeps the
// probes on the old inode (processes still running it keep working), so
// processes started on the new one would get nothing. It runs on its own
// goroutine; what it reports goes through s.later to the reader.
func (s *Session) rearm(path string) {
	ps := s.probes
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if s.closed.Load() {
		return
	}
	if _, err := os.Stat(path); err != nil {
		return // gone for now
	}
	// The files are read and armed through one open descriptor each, held
	// until their trace events are defined (the kernel then holds its own).
	opened := probe.NewOpened()
	defer opened.Close()
	opts := s.resolveOptions()
	opts.Opened = opened
	var targets []probe.Target
	armed := false
	for _, w := range ps.words {
		spec, err := probe.ParseSpec(w)
		if err != nil {
			continue
		}
		ts, err := probe.Resolve(spec, opts)
		if err != nil {
			continue
		}
		for _, t := range ts {
			if t.Path != path {
				continue
			}
			if _, _, ok := s.finder.Files().Match(finder.FileID(t.File)); ok {
				armed = true // not replaced, or armed already
				continue
			}
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		if !armed {
			s.later(func() { s.warnf("%s was replaced and its probes no longer resolve in the new file", path) })
		}
		return
	}
	probe.AssignEventNames(targets)
	files, overlay, err := filesOf(targets)
	if err != nil {
		s.later(func() { s.warnf("%s was replaced; arming the new file failed: %v", path, err) })
		return
	}
	// Known to the task-finder before anything is armed on it.
	s.finder.SetFiles(s.finder.Files().With(files, overlay))
	traces, err := ps.defineTraces(targets, s.displayPath)
	opened.Close() // defined (or not): the kernel holds its own reference
	if err == nil {
		err = s.arms.armTraces(traces, s.finder.All())
	}
	if err != nil {
		s.later(func() { s.warnf("%s was replaced; arming the new file failed: %v", path, err) })
		return
	}
	s.later(func() { s.sink.Rearmed(path, len(targets)) })
}
