// Package latency times function calls from the uprobe hits on their entry
// and their return: it pairs each return with its entry in the same thread
// and keeps a log2 histogram of the durations per function (and group).
// It owns the pairing and the histograms, nothing else: the caller decides
// which hits are entries and returns, what a function and a group are, and
// tells it when a thread exits.
//
// Pairing, per thread and function, is that of scripts/func-latency: the
// open entries form a stack, and a return is matched by stack pointer. On
// x86-64 a return's sp is its entry's + 8 (the ret popped the return
// address), and the stack grows down, so an open entry whose sp is below
// the returning call's entry sp belongs to a frame that is gone: it was
// left by longjmp or an exception, or its return was never probed (the
// kernel installs at most 64 nested uretprobes per task). Such entries are
// discarded, so one lost return does not shift every later pair, and
// recursive calls are each timed right.
package latency

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// MaxOpen is how many open entries a thread keeps per function. Beyond it
// the oldest is dropped (counted in Stats.Skipped): a function that never
// returns, or recurses without end, cannot grow memory without bound.
const MaxOpen = 1024 // a power of two: the ring of open entries fills exactly

// retSPDelta is a return's sp minus its entry's on x86-64: the return
// probe fires after ret popped the 8-byte return address.
const retSPDelta = 8

// Key names a histogram.
type Key struct {
	Func  int    // the probed function, as the caller numbers them
	Group string // an optional grouping value (a fetch argument's, a return value), "" for none
}

// Stats counts what did not make a pair. Every entry ends up in exactly one
// of Paired, Skipped and Unfinished; every return in Paired or Unmatched.
type Stats struct {
	Paired uint64 // returns paired with their entry: the calls in the histograms
	// Unmatched counts returns with no open entry to pair with: the call
	// started before tracing did, or its entry was lost or dropped.
	Unmatched uint64
	// Skipped counts entries discarded without a return: a later return
	// of the same function in the thread came from an outer call, so
	// their frames were gone (longjmp, exception, beyond the kernel's 64
	// nested uretprobes), or the thread had MaxOpen entries of the
	// function open already.
	Skipped uint64
	// Unfinished counts entries still open (calls running now, or at the
	// end of tracing) and those dropped by ThreadExit.
	Unfinished uint64
}

// Tracker pairs entries and returns per thread and accumulates the
// durations per Key. It is not safe for concurrent use: it is meant to be
// fed, in time order, by the one goroutine that reads the hits.
//
// Memory: per thread and function it has seen, a stack of at most MaxOpen
// open entries, kept (and reused, so pairing does not allocate) until
// ThreadExit; per Key, one histogram of 65 buckets. Finding a thread's
// stack of a function is linear in the functions the thread has called:
// fine for the few functions one traces the latency of.
type Tracker struct {
	threads map[int]*thread
	hists   map[Key]*hist
	stats   Stats // Unfinished: only the entries dropped by ThreadExit
	open    uint64

	// The stack used last: a return often follows its entry, and hashing
	// is most of the cost of a pair.
	lastTID, lastFn int
	last            *stack
}

// thread is the open entries of one thread: stacks[i] those of fns[i].
type thread struct {
	fns    []int
	stacks []*stack
}

// New returns an empty Tracker.
func New() *Tracker {
	return &Tracker{threads: make(map[int]*thread), hists: make(map[Key]*hist)}
}

// Entry records that thread tid entered function k.Func at time ns
// (CLOCK_MONOTONIC nanoseconds) with stack pointer sp, 0 if unknown. The
// pair will be counted under k.Group unless the return names a group.
func (t *Tracker) Entry(k Key, tid int, ns, sp uint64) {
	s := t.stack(tid, k.Func)
	if s == nil {
		th := t.threads[tid]
		if th == nil {
			th = new(thread)
			t.threads[tid] = th
		}
		s = new(stack)
		th.fns = append(th.fns, k.Func)
		th.stacks = append(th.stacks, s)
		t.last = s
	}
	if s.push(call{sp: sp, ns: ns, group: k.Group}) {
		t.stats.Skipped++
	} else {
		t.open++
	}
}

// Return records that function k.Func returned in thread tid at time ns,
// with stack pointer sp at the return probe, 0 if unknown. It pairs with
// the innermost open entry of k.Func in tid whose sp is sp-8, after
// discarding (Stats.Skipped) the open entries below that sp, which never
// returned. With sp 0 it pairs with the innermost open entry (plain LIFO),
// and an open entry whose sp is 0 pairs with any return that reaches it.
// With no entry to pair with, the return is counted in Stats.Unmatched.
//
// The pair's duration, ns minus the entry's (0 if time went backwards), is
// counted under Key{k.Func, k.Group} if k.Group is not "", else under the
// Group given to Entry: a group can come from an argument at the entry or
// from the return value.
func (t *Tracker) Return(k Key, tid int, ns, sp uint64) {
	s := t.stack(tid, k.Func)
	if s == nil || s.n == 0 {
		t.stats.Unmatched++
		return
	}
	if sp >= retSPDelta { // below is 0, unknown, or nonsense: no matching
		want := sp - retSPDelta
		for s.n > 0 {
			c := s.top()
			if c.sp == 0 || c.sp >= want {
				break
			}
			s.pop()
			t.open--
			t.stats.Skipped++
		}
		if s.n == 0 {
			t.stats.Unmatched++
			return
		}
		if c := s.top(); c.sp != 0 && c.sp != want {
			// The innermost open entry is an outer call: this one's
			// entry was not seen. The open ones are still running.
			t.stats.Unmatched++
			return
		}
	}
	c := s.pop()
	t.open--
	t.stats.Paired++
	var d uint64
	if ns > c.ns {
		d = ns - c.ns
	}
	if k.Group == "" {
		k.Group = c.group
	}
	if s.hist == nil || s.histGroup != k.Group {
		s.hist = t.hists[k]
		if s.hist == nil {
			s.hist = &hist{min: d}
			t.hists[k] = s.hist
		}
		s.histGroup = k.Group
	}
	s.hist.add(d)
}

// stack returns the stack of function fn in thread tid, nil if it has none.
func (t *Tracker) stack(tid, fn int) *stack {
	if t.last != nil && t.lastTID == tid && t.lastFn == fn {
		return t.last
	}
	t.last, t.lastTID, t.lastFn = nil, tid, fn
	if th := t.threads[tid]; th != nil {
		if i := slices.Index(th.fns, fn); i >= 0 {
			t.last = th.stacks[i]
		}
	}
	return t.last
}

// ThreadExit drops the state of thread tid; its open entries are counted
// in Stats.Unfinished. The caller must call it for every thread it saw, or
// the memory of threads that came and went is kept.
func (t *Tracker) ThreadExit(tid int) {
	th := t.threads[tid]
	if th == nil {
		return
	}
	for _, s := range th.stacks {
		t.open -= uint64(s.n)
		t.stats.Unfinished += uint64(s.n)
	}
	delete(t.threads, tid)
	t.last = nil
}

// Stats returns the counts so far.
func (t *Tracker) Stats() Stats {
	s := t.stats
	s.Unfinished += t.open
	return s
}

// Results returns the histogram of every Key with at least one pair,
// sorted by Func, then Group.
func (t *Tracker) Results() []Result {
	rs := make([]Result, 0, len(t.hists))
	for k, h := range t.hists {
		rs = append(rs, h.result(k))
	}
	slices.SortFunc(rs, func(a, b Result) int {
		return cmp.Or(cmp.Compare(a.Key.Func, b.Key.Func), strings.Compare(a.Key.Group, b.Key.Group))
	})
	return rs
}

// call is an open entry.
type call struct {
	sp, ns uint64
	group  string
}

// stack is the open entries of one function in one thread, oldest first,
// in a ring so that dropping the oldest at MaxOpen costs no copy.
type stack struct {
	ring []call // len a power of two, at most MaxOpen
	head int    // index of the oldest
	n    int

	hist      *hist // the histogram of the last pair, Key{fn, histGroup}
	histGroup string
}

func (s *stack) top() *call { return &s.ring[(s.head+s.n-1)&(len(s.ring)-1)] }

func (s *stack) pop() call {
	p := s.top()
	c := *p
	p.group = "" // not kept alive by a free slot
	s.n--
	return c
}

// push adds c as the innermost entry; it reports whether the oldest was
// dropped to make room.
func (s *stack) push(c call) (dropped bool) {
	if s.n == len(s.ring) {
		if s.n >= MaxOpen {
			s.ring[s.head].group = ""
			s.head = (s.head + 1) & (len(s.ring) - 1)
			s.n--
			dropped = true
		} else {
			s.grow()
		}
	}
	s.ring[(s.head+s.n)&(len(s.ring)-1)] = c
	s.n++
	return dropped
}

func (s *stack) grow() {
	r := make([]call, max(2*len(s.ring), 4))
	for i := range s.n {
		r[i] = s.ring[(s.head+i)&(len(s.ring)-1)]
	}
	s.ring, s.head = r, 0
}

// hist accumulates durations; bucket b counts [2^(b-1), 2^b) ns, bucket 0
// the durations of 0 ns, so b is bits.Len64 of the duration.
type hist struct {
	count, min, max, sum uint64
	buckets              [65]uint64
}

func (h *hist) add(d uint64) {
	h.count++
	h.sum += d
	h.min = min(h.min, d)
	h.max = max(h.max, d)
	h.buckets[bits.Len64(d)]++
}

func (h *hist) result(k Key) Result {
	r := Result{Key: k, Count: h.count, MinNS: h.min, MaxNS: h.max, SumNS: h.sum}
	lo := slices.IndexFunc(h.buckets[:], func(c uint64) bool { return c != 0 })
	if lo < 0 {
		return r
	}
	hi := len(h.buckets) - 1
	for h.buckets[hi] == 0 {
		hi--
	}
	r.Buckets = make([]Bucket, 0, hi-lo+1)
	for b := lo; b <= hi; b++ {
		low, high := bucketBounds(b)
		r.Buckets = append(r.Buckets, Bucket{LowNS: low, HighNS: high, Count: h.buckets[b]})
	}
	return r
}

// bucketBounds returns the bounds of bucket b; the last one's upper bound,
// 2^64, is MaxUint64.
func bucketBounds(b int) (low, high uint64) {
	if b > 0 {
		low = 1 << (b - 1)
	}
	if b == 64 {
		return low, 1<<64 - 1
	}
	return low, 1 << b
}
