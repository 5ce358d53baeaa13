package session

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// Run streams hits to the sink until ctx is done, maxHits hits have been
// delivered (0: no limit), or — when the session traces --pid processes or
// a launched command — every one of them has exited. Call Close
// afterwards: it drains what is still in the rings.
func (s *Session) Run(ctx context.Context, maxHits uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.stop = cancel
	s.maxHits = maxHits
	var roots []int // the processes whose end ends the run
	if s.cfg.perProcess() {
		for pid := range s.table.All() {
			if p := s.table.Lookup(pid); p != nil && (pid == s.cfg.Launch || slices.Contains(s.cfg.PIDs, pid) || !s.cfg.Follow) {
				roots = append(roots, pid)
			}
		}
	}
	watcher, err := newExitWatcher(roots)
	if err != nil {
		return err
	}
	defer watcher.close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watcher.run(ctx, func(pid int, at uint64) {
			s.mu.Lock()
			s.exits = append(s.exits, exitEvent{pid, at})
			s.mu.Unlock()
		}, cancel) // every root process is gone
	}()
	err = s.rings.Read(ctx, s.handle, s.afterRound)
	cancel()
	wg.Wait()
	return err
}

// exitEvent is an exit seen by the watcher, reported once the reader has
// delivered everything recorded before it.
type exitEvent struct {
	pid int
	at  uint64 // CLOCK_MONOTONIC
}

// handle runs for every record, in time order, on the reader goroutine.
// The side-band records keep the process table; samples are the hit path,
// which takes no lock.
func (s *Session) handle(rec *perfevent.Record) {
	switch rec.Kind {
	case perfevent.KindSample:
		s.hit(rec)
	case perfevent.KindLost:
		s.lost.Add(rec.Lost)
	case perfevent.KindFork:
		s.onFork(rec)
	case perfevent.KindComm:
		s.onComm(rec)
	case perfevent.KindMmap:
		s.onMmap(rec)
	case perfevent.KindExit:
		s.onExit(rec)
	}
}

func (s *Session) hit(rec *perfevent.Record) {
	if s.maxHits > 0 && s.hits.Load() >= s.maxHits {
		return
	}
	te := s.armed.Load().byID[perfevent.EventType(rec.Raw)]
	if te == nil {
		s.undecoded.Add(1)
		return
	}
	proc := s.table.Lookup(int(rec.PID))
	if proc == nil {
		if s.cfg.perProcess() || rec.PID == 0 {
			// Children of a --pid process carry its inherited events;
			// pid 0 is a process outside our PID namespace (another pod
			// sharing the file's inode): both are outside the scope.
			s.filtered.Add(1)
			return
		}
		if proc = s.recordLate(int(rec.PID)); proc == nil {
			s.unknown.Add(1)
			return
		}
	}
	if s.cfg.Comm != "" && proc.Comm != s.cfg.Comm {
		s.filtered.Add(1)
		return
	}
	payload, err := te.decoder.Decode(rec.Raw)
	if err != nil {
		s.undecoded.Add(1)
		return
	}
	pr := s.probeOf(te, proc, payload)
	if pr == nil {
		s.unresolved.Add(1)
		return
	}
	h := Hit{Probe: pr, Process: proc, TID: int(rec.TID), CPU: rec.CPU, TimeNS: rec.Time, Payload: payload}
	if te.retval != "" {
		for i := range payload.Args {
			if payload.Args[i].Name == te.retval {
				h.Retval = &payload.Args[i]
			}
		}
	}
	s.sink.Hit(&h)
	if n := s.hits.Add(1); s.maxHits > 0 && n >= s.maxHits && s.stop != nil {
		s.stop()
	}
}

// probeOf tells which probe of a trace event was hit, from the probed
// address and the process's mappings of the file. A mapping made after the
// process was recorded (dlopen) is read then, once, off the hit path's
// usual route.
func (s *Session) probeOf(te *traceEvent, proc *finder.Process, payload perfevent.Payload) *Probe {
	if len(te.probes) == 1 {
		return te.probes[0]
	}
	addr := payload.IP
	if te.decoder.Return {
		addr = payload.Func
	}
	if off, ok := proc.FileOffset(te.file, addr); ok {
		return te.byOffset[off]
	}
	maps, err := finder.Mappings(s.procRoot(), proc.PID, s.armed.Load().files)
	if err != nil {
		return nil
	}
	updated := *proc
	updated.Maps = maps
	s.table.Add(&updated)
	if off, ok := updated.FileOffset(te.file, addr); ok {
		return te.byOffset[off]
	}
	return nil
}

// afterRound runs on the reader goroutine after each delivery round. A
// process whose exit (seen by the pidfd watcher) is older than everything
// delivered can make no more hits: it is retired if its exit record did not
// do it already.
func (s *Session) afterRound(deliveredBefore uint64) {
	s.mu.Lock()
	var done []exitEvent
	kept := s.exits[:0]
	for _, e := range s.exits {
		if e.at < deliveredBefore {
			done = append(done, e)
		} else {
			kept = append(kept, e)
		}
	}
	s.exits = kept
	deferred := s.deferred
	s.deferred = nil
	s.mu.Unlock()
	// Normally the exit record retired them already.
	for _, e := range done {
		if p := s.table.Lookup(e.pid); p != nil {
			s.retire(p)
		}
	}
	for _, f := range deferred {
		f()
	}
	s.sweep()
	if s.cfg.StatsInterval > 0 && time.Since(s.lastStats) >= s.cfg.StatsInterval {
		s.lastStats = time.Now()
		s.sink.Stats(s.Stats())
	}
	s.sink.Flush()
}
