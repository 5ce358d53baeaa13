package session

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/tracefs"
)

// armedSet is what the hit path needs to know of the armed probes. It is
// replaced as a whole when probes are added (a replaced file), never
// changed, so the hit path reads it without a lock.
type armedSet struct {
	byID  map[uint64]*traceEvent // trace event id -> its probes
	files map[finder.FileID]bool // the inodes probes are defined on
	paths map[string]bool        // the probed paths, to notice a replaced file
}

func identifyFiles(targets []probe.Target) (map[finder.FileID]bool, error) {
	files := map[finder.FileID]bool{}
	for _, t := range targets {
		id, err := finder.Identify(t.Path)
		if err != nil {
			return nil, badInput(err)
		}
		files[id] = true
	}
	return files, nil
}

func pathsOf(targets []probe.Target) map[string]bool {
	paths := map[string]bool{}
	for _, t := range targets {
		paths[t.Path] = true
	}
	return paths
}

// define creates the trace events of targets in this run's owner group,
// after reaping the groups of uprobectl runs that died without cleaning up.
func (s *Session) define(targets []probe.Target) error {
	owner, err := tracefs.Self()
	if err != nil {
		return err
	}
	if reaped, err := s.fs.Reap(); err != nil {
		s.warnf("reaping events of dead uprobectl runs: %v", err)
	} else if len(reaped) > 0 {
		s.warnf("removed %d event group(s) left by dead uprobectl runs", len(reaped))
	}
	s.group = owner.Group()
	_, err = s.defineTraces(targets)
	return err
}

// defineTraces defines one trace event per (file, kind, fetch args),
// holding every probe that shares them, and publishes them for the hit
// path. It returns the new trace events, not yet armed.
func (s *Session) defineTraces(targets []probe.Target) ([]*traceEvent, error) {
	type shareKey struct {
		path   string
		ret    bool
		fetchs string
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
		args := make([]string, len(t.Args))
		for j, a := range t.Args {
			args[j] = a.Fetch()
		}
		key := shareKey{t.Path, t.Return, strings.Join(args, " ")}
		te := shared[key]
		if te == nil {
			id, err := finder.Identify(t.Path)
			if err != nil {
				return nil, badInput(err)
			}
			s.traceCount++
			te = &traceEvent{name: traceEventName(s.traceCount, t), file: id, retval: retvalArg(t.Args), byOffset: map[uint64]*Probe{}}
			shared[key] = te
			traces = append(traces, te)
		}
		if te.byOffset[t.Offset] != nil {
			continue // the same function named twice: one probe
		}
		p := &Probe{Target: t, trace: te, binary: s.displayPath(t.Path)}
		te.probes = append(te.probes, p)
		te.byOffset[t.Offset] = p
		probes = append(probes, p)
		specs = append(specs, tracefs.UprobeSpec{Event: te.name, Path: t.Path, Offset: t.Offset, Return: t.Return, Args: args})
	}
	events, err := s.fs.Define(s.group, specs)
	if err != nil {
		if errors.Is(err, tracefs.ErrPermission) {
			return nil, environmentError(err)
		}
		return nil, badInput(err)
	}
	// From here on Close removes them with the group.
	s.probes = append(s.probes, probes...)
	s.probeCount.Store(int64(len(s.probes)))
	cur := s.armed.Load()
	next := &armedSet{byID: maps.Clone(cur.byID), files: maps.Clone(cur.files), paths: cur.paths}
	for i, te := range traces {
		te.event = events[i]
		te.decoder, err = perfevent.NewDecoder(te.event.Format, displayOf(te.probes[0].Target.Args))
		if err != nil {
			return nil, err
		}
		next.byID[te.event.ID] = te
		next.files[te.file] = true
	}
	s.traces = append(s.traces, traces...)
	s.armed.Store(next)
	return traces, nil
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
// processes started on the new one would get nothing.
func (s *Session) rearm(path string) {
	s.defineMu.Lock()
	defer s.defineMu.Unlock()
	if s.closed.Load() {
		return
	}
	id, err := finder.Identify(path)
	if err != nil || s.armed.Load().files[id] {
		return // gone for now, or already armed
	}
	var targets []probe.Target
	for _, w := range s.words {
		spec, err := probe.ParseSpec(w)
		if err != nil {
			continue
		}
		ts, err := probe.Resolve(spec, s.resolveOptions())
		if err != nil {
			continue
		}
		for _, t := range ts {
			if t.Path == path {
				targets = append(targets, t)
			}
		}
	}
	if len(targets) == 0 {
		s.later(func() { s.warnf("%s was replaced and its probes no longer resolve in the new file", path) })
		return
	}
	probe.AssignEventNames(targets)
	traces, err := s.defineTraces(targets)
	if err == nil {
		err = s.armTraces(traces)
	}
	if err != nil {
		s.later(func() { s.warnf("%s was replaced; arming the new file failed: %v", path, err) })
		return
	}
	s.later(func() { s.sink.Rearmed(path, len(targets)) })
}

// later runs f on the reader goroutine, after the current round: the sink
// is not safe for concurrent use.
func (s *Session) later(f func()) {
	s.mu.Lock()
	s.deferred = append(s.deferred, f)
	s.mu.Unlock()
}
