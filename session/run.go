package session

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// stream is the reader loop's own state: everything here is touched by
// the reader goroutine only, but the counters, which Stats reads.
type stream struct {
	maxHits   uint64
	stop      context.CancelFunc
	lastStats time.Time
	counts    counters
	// payload and delivered are reused for every hit: the hit path
	// allocates nothing (the sink must not keep them past its call).
	payload   perfevent.Payload
	delivered Hit
	ips       []uint64    // the stack's addresses, reused
	frames    []Frame     // Hit.Frames' buffer, reused
	symbolize *symbolizer // with stacks

	mu       sync.Mutex
	deferred []func() // to run on the reader goroutine (from rearm)
}

// counters of the hit path, besides the task-finder's own.
type counters struct {
	hits, lost, lostSideband, undecoded, unresolved atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{Hits: c.hits.Load(), Lost: c.lost.Load(), LostSideband: c.lostSideband.Load(),
		Undecoded: c.undecoded.Load(), Unresolved: c.unresolved.Load()}
}

// Run streams hits to the sink until ctx is done, maxHits hits have been
// delivered (0: no limit), or — when the session traces --pid processes or
// a launched command — every one of them has exited. Call Close
// afterwards: it drains what is still in the rings.
func (s *Session) Run(ctx context.Context, maxHits uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.stream.stop = cancel
	s.stream.maxHits = maxHits
	var roots []int // the processes whose end ends the run
	if s.cfg.perProcess() {
		for pid := range s.finder.All() {
			if pid == s.cfg.Launch || slices.Contains(s.cfg.PIDs, pid) || !s.cfg.Follow {
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
		// When every root is gone the run ends; Close then drains the
		// rings, so their last hits are still delivered.
		watcher.run(ctx, cancel)
	}()
	err = s.rings.Read(ctx, s.handle, s.afterRound)
	cancel()
	wg.Wait()
	return err
}

// handle runs for every record, in time order, on the reader goroutine.
// The side-band records go to the task-finder; samples are the hit path,
// which takes no lock.
func (s *Session) handle(rec *perfevent.Record) {
	switch rec.Kind {
	case perfevent.KindSample:
		s.hit(rec)
	case perfevent.KindLost:
		if rec.Sideband {
			s.stream.counts.lostSideband.Add(rec.Lost)
		} else {
			s.stream.counts.lost.Add(rec.Lost)
		}
		s.finder.Observe(rec)
	default:
		s.finder.Observe(rec)
	}
}

func (s *Session) hit(rec *perfevent.Record) {
	c := &s.stream.counts
	if s.stream.maxHits > 0 && c.hits.Load() >= s.stream.maxHits {
		return // the run is ending (--max-hits)
	}
	te := s.probes.traceOf(perfevent.EventType(rec.Raw))
	if te == nil {
		c.undecoded.Add(1)
		return
	}
	payload := &s.stream.payload
	if err := te.decoder.DecodeInto(rec.Raw, payload); err != nil {
		c.undecoded.Add(1)
		return
	}
	addr := payload.IP
	if te.decoder.Return {
		addr = payload.Func
	}
	proc, off, offOK, verdict := s.finder.Attribute(int(rec.PID), te.file, addr)
	if verdict != finder.Deliver {
		return // counted by the task-finder
	}
	pr := te.probes[0]
	if len(te.probes) > 1 {
		if pr = te.byOffset[off]; !offOK || pr == nil {
			c.unresolved.Add(1)
			return
		}
	}
	h := &s.stream.delivered
	*h = Hit{Probe: pr, Process: proc, TID: int(rec.TID), CPU: rec.CPU, TimeNS: rec.Time, Payload: *payload}
	if z := s.stream.symbolize; z != nil {
		ips := rec.UserFrames(s.stream.ips[:0])
		if n := len(h.Payload.Args); n > 0 && h.Payload.Args[n-1].Name == stackReturnArg {
			// An entry probe: the caller is the return address at the
			// stack pointer; the kernel's walk skipped it unless the
			// function starts with push %rbp.
			ret := h.Payload.Args[n-1].Uint
			h.Payload.Args = h.Payload.Args[:n-1]
			h.atEntry = true
			if len(ips) > 0 && ret != 0 && (len(ips) < 2 || ips[1] != ret) {
				ips = slices.Insert(ips, 1, ret)
			}
		}
		s.stream.ips = ips
		h.StackIPs, h.symbolize, h.frames = ips, z, s.stream.frames[:0]
	}
	if te.retval != "" {
		for i := range payload.Args {
			if payload.Args[i].Name == te.retval {
				h.Retval = &payload.Args[i]
			}
		}
	}
	s.sink.Hit(h)
	if h.frames != nil {
		s.stream.frames = h.frames[:0] // keep what the stack's frames grew to
	}
	if n := c.hits.Add(1); s.stream.maxHits > 0 && n >= s.stream.maxHits && s.stream.stop != nil {
		s.stream.stop()
	}
}

// afterRound runs on the reader goroutine after each delivery round, with
// the time before which every record has been delivered: the task-finder
// retires what the stream has proven done.
func (s *Session) afterRound(deliveredBefore uint64) {
	s.finder.Settle(deliveredBefore)
	s.stream.mu.Lock()
	deferred := s.stream.deferred
	s.stream.deferred = nil
	s.stream.mu.Unlock()
	for _, f := range deferred {
		f()
	}
	if s.cfg.StatsInterval > 0 && time.Since(s.stream.lastStats) >= s.cfg.StatsInterval {
		s.stream.lastStats = time.Now()
		s.sink.Stats(s.Stats())
	}
	s.sink.Flush()
}

// later runs f on the reader goroutine, after the current round: the sink
// is not safe for concurrent use.
func (s *Session) later(f func()) {
	s.stream.mu.Lock()
	s.stream.deferred = append(s.stream.deferred, f)
	s.stream.mu.Unlock()
}
