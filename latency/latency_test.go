package latency

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// ev is one input of a Tracker: an entry, a return or a thread exit.
type ev struct {
	op     byte // 'e', 'r', 'x'
	k      Key
	tid    int
	ns, sp uint64
}

func (e ev) apply(t *Tracker) {
	switch e.op {
	case 'e':
		t.Entry(e.k, e.tid, e.ns, e.sp)
	case 'r':
		t.Return(e.k, e.tid, e.ns, e.sp)
	case 'x':
		t.ThreadExit(e.tid)
	}
}

var f, g = Key{Func: 1}, Key{Func: 2}

func entry(k Key, tid int, ns, sp uint64) ev { return ev{'e', k, tid, ns, sp} }
func ret(k Key, tid int, ns, sp uint64) ev   { return ev{'r', k, tid, ns, sp} }
func exit(tid int) ev                        { return ev{op: 'x', tid: tid} }
func grp(k Key, group string) Key            { k.Group = group; return k }

// durations is what a Key's histogram should hold.
type durations struct {
	k  Key
	ns []uint64
}

// want builds the Result that durations d should give, bucketing on its
// own rather than through the code under test.
func (d durations) want() Result {
	r := Result{Key: d.k, Count: uint64(len(d.ns)), MinNS: slices.Min(d.ns), MaxNS: slices.Max(d.ns)}
	counts := map[uint64]uint64{} // bucket low bound → count
	for _, ns := range d.ns {
		r.SumNS += ns
		low := uint64(0)
		if ns > 0 {
			low = 1
			for low*2 <= ns {
				low *= 2
			}
		}
		counts[low]++
	}
	first, last := r.MinNS, r.MaxNS
	for low := uint64(0); low <= last; {
		high := max(1, low*2)
		if high > first {
			r.Buckets = append(r.Buckets, Bucket{LowNS: low, HighNS: high, Count: counts[low]})
		}
		low = high
	}
	return r
}

func TestTracker(t *testing.T) {
	tests := []struct {
		name   string
		events []ev
		want   []durations
		stats  Stats
	}{
		{
			name:   "pair",
			events: []ev{entry(f, 1, 100, 1000), ret(f, 1, 350, 1008)},
			want:   []durations{{f, []uint64{250}}},
			stats:  Stats{Paired: 1},
		},
		{
			name: "pairs in sequence",
			events: []ev{
				entry(f, 1, 100, 1000), ret(f, 1, 200, 1008),
				entry(f, 1, 300, 1000), ret(f, 1, 700, 1008),
			},
			want:  []durations{{f, []uint64{100, 400}}},
			stats: Stats{Paired: 2},
		},
		{
			name: "recursion",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 900), entry(f, 1, 20, 800),
				ret(f, 1, 30, 808), ret(f, 1, 50, 908), ret(f, 1, 100, 1008),
			},
			want:  []durations{{f, []uint64{10, 40, 100}}},
			stats: Stats{Paired: 3},
		},
		{
			name: "recursion without sp: LIFO",
			events: []ev{
				entry(f, 1, 0, 0), entry(f, 1, 10, 0), entry(f, 1, 20, 0),
				ret(f, 1, 30, 0), ret(f, 1, 50, 0), ret(f, 1, 100, 0),
			},
			want:  []durations{{f, []uint64{10, 40, 100}}},
			stats: Stats{Paired: 3},
		},
		{
			name: "return without sp pairs with the innermost",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 900),
				ret(f, 1, 30, 0), ret(f, 1, 50, 0),
			},
			want:  []durations{{f, []uint64{20, 50}}},
			stats: Stats{Paired: 2},
		},
		{
			name: "entry without sp pairs with any return reaching it",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 0),
				ret(f, 1, 30, 908), ret(f, 1, 50, 1008),
			},
			want:  []durations{{f, []uint64{20, 50}}},
			stats: Stats{Paired: 2},
		},
		{
			name: "longjmp: the returns never seen are skipped",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 900), entry(f, 1, 20, 800),
				ret(f, 1, 100, 1008),
			},
			want:  []durations{{f, []uint64{100}}},
			stats: Stats{Paired: 1, Skipped: 2},
		},
		{
			name: "longjmp, then a call at the same depth",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 900), // left by longjmp
				entry(f, 1, 20, 900), ret(f, 1, 25, 908),
				ret(f, 1, 100, 1008),
			},
			want:  []durations{{f, []uint64{5, 100}}},
			stats: Stats{Paired: 2, Skipped: 1},
		},
		{
			name:   "return without entry",
			events: []ev{ret(f, 1, 100, 1008)},
			stats:  Stats{Unmatched: 1},
		},
		{
			name: "return of a call entered before tracing, inside an open one",
			events: []ev{
				entry(f, 1, 0, 1000),
				ret(f, 1, 10, 908), // deeper than the open entry
				ret(f, 1, 20, 1008),
			},
			want:  []durations{{f, []uint64{20}}},
			stats: Stats{Paired: 1, Unmatched: 1},
		},
		{
			name: "return of a call entered before tracing, outside an open one",
			events: []ev{
				entry(f, 1, 0, 1000),
				ret(f, 1, 10, 2008), // the open entry's frame is gone
			},
			stats: Stats{Unmatched: 1, Skipped: 1},
		},
		{
			name:   "running at the end",
			events: []ev{entry(f, 1, 0, 1000), entry(f, 1, 10, 900), ret(f, 1, 20, 908)},
			want:   []durations{{f, []uint64{10}}},
			stats:  Stats{Paired: 1, Unfinished: 1},
		},
		{
			name: "thread exit",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 1, 10, 900), entry(g, 1, 15, 800),
				entry(f, 2, 20, 1000),
				exit(1),
				ret(f, 1, 30, 908), // a new thread with the same tid
				ret(f, 2, 40, 1008),
				exit(3), // never seen
			},
			want:  []durations{{f, []uint64{20}}},
			stats: Stats{Paired: 1, Unfinished: 3, Unmatched: 1},
		},
		{
			name: "two threads interleaved",
			events: []ev{
				entry(f, 1, 0, 1000), entry(f, 2, 5, 1000),
				entry(f, 1, 6, 900), entry(f, 2, 7, 900),
				ret(f, 2, 8, 908), ret(f, 1, 9, 908),
				ret(f, 1, 20, 1008), ret(f, 2, 100, 1008),
			},
			want:  []durations{{f, []uint64{3, 1, 20, 95}}},
			stats: Stats{Paired: 4},
		},
		{
			name: "two functions",
			events: []ev{
				entry(f, 1, 0, 1000), entry(g, 1, 10, 900), ret(g, 1, 15, 908),
				entry(g, 1, 20, 900), // left by longjmp: f's return does not skip it
				ret(f, 1, 100, 1008),
			},
			want:  []durations{{f, []uint64{100}}, {g, []uint64{5}}},
			stats: Stats{Paired: 2, Unfinished: 1},
		},
		{
			name: "groups",
			events: []ev{
				entry(grp(f, "b"), 1, 0, 1000), ret(f, 1, 10, 1008),
				entry(grp(f, "a"), 1, 20, 1000), ret(f, 1, 50, 1008),
				entry(grp(f, "b"), 1, 60, 1000), ret(f, 1, 70, 1008),
				entry(f, 1, 80, 1000), ret(f, 1, 81, 1008),
				// the return's group wins
				entry(grp(f, "a"), 1, 100, 1000), ret(grp(f, "ret=-1"), 1, 107, 1008),
				// different groups of one function still pair
				entry(grp(f, "b"), 1, 200, 1000), entry(grp(f, "a"), 1, 210, 900),
				ret(f, 1, 213, 908), ret(f, 1, 220, 1008),
				entry(grp(g, "a"), 1, 300, 1000), ret(g, 1, 302, 1008),
			},
			want: []durations{
				{f, []uint64{1}},
				{grp(f, "a"), []uint64{30, 3}},
				{grp(f, "b"), []uint64{10, 10, 20}},
				{grp(f, "ret=-1"), []uint64{7}},
				{grp(g, "a"), []uint64{2}},
			},
			stats: Stats{Paired: 8},
		},
		{
			name:   "time going backwards counts 0",
			events: []ev{entry(f, 1, 100, 1000), ret(f, 1, 90, 1008)},
			want:   []durations{{f, []uint64{0}}},
			stats:  Stats{Paired: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New()
			for _, e := range tt.events {
				e.apply(tr)
			}
			var want []Result
			for _, d := range tt.want {
				want = append(want, d.want())
			}
			if got := tr.Results(); !equalResults(got, want) {
				t.Errorf("Results() =\n%+v\nwant\n%+v", got, want)
			}
			if got := tr.Stats(); got != tt.stats {
				t.Errorf("Stats() = %+v, want %+v", got, tt.stats)
			}
		})
	}
}

func equalResults(a, b []Result) bool {
	return slices.EqualFunc(a, b, func(x, y Result) bool {
		return x.Key == y.Key && x.Count == y.Count && x.MinNS == y.MinNS && x.MaxNS == y.MaxNS &&
			x.SumNS == y.SumNS && slices.Equal(x.Buckets, y.Buckets)
	})
}

func TestBuckets(t *testing.T) {
	tests := []struct {
		ns        uint64
		low, high uint64
	}{
		{0, 0, 1},
		{1, 1, 2},
		{2, 2, 4},
		{3, 2, 4},
		{4, 4, 8},
		{1023, 512, 1024},
		{1024, 1024, 2048},
		{1<<63 - 1, 1 << 62, 1 << 63},
		{1 << 63, 1 << 63, 1<<64 - 1},
		{1<<64 - 1, 1 << 63, 1<<64 - 1},
	}
	for _, tt := range tests {
		tr := New()
		tr.Entry(f, 1, 0, 1000)
		tr.Return(f, 1, tt.ns, 1008)
		rs := tr.Results()
		want := []Bucket{{LowNS: tt.low, HighNS: tt.high, Count: 1}}
		if len(rs) != 1 || !slices.Equal(rs[0].Buckets, want) {
			t.Errorf("%d ns: Results() = %+v, want buckets %+v", tt.ns, rs, want)
		}
	}

	// The range runs from the first non-empty bucket to the last.
	tr := New()
	for _, d := range []uint64{1023, 2, 3, 1024, 3} {
		tr.Entry(f, 1, 0, 1000)
		tr.Return(f, 1, d, 1008)
	}
	want := []Bucket{
		{2, 4, 3}, {4, 8, 0}, {8, 16, 0}, {16, 32, 0}, {32, 64, 0}, {64, 128, 0},
		{128, 256, 0}, {256, 512, 0}, {512, 1024, 1}, {1024, 2048, 1},
	}
	if got := tr.Results()[0].Buckets; !slices.Equal(got, want) {
		t.Errorf("buckets of 1023, 2, 3, 1024, 3 ns = %+v, want %+v", got, want)
	}
}

func TestMaxOpen(t *testing.T) {
	const extra = 10
	tr := New()
	sp := func(depth int) uint64 { return 1<<20 - uint64(depth)*64 }
	for d := range MaxOpen + extra {
		tr.Entry(f, 1, uint64(d), sp(d))
	}
	if s := tr.stack(1, f.Func); len(s.ring) != MaxOpen {
		t.Errorf("%d open entries use a ring of %d, want %d", MaxOpen+extra, len(s.ring), MaxOpen)
	}
	if got, want := tr.Stats(), (Stats{Skipped: extra, Unfinished: MaxOpen}); got != want {
		t.Errorf("after %d entries: Stats() = %+v, want %+v", MaxOpen+extra, got, want)
	}
	// The innermost MaxOpen pair, each lasting 1000 ns; the dropped ones
	// have no entry left.
	for d := MaxOpen + extra - 1; d >= 0; d-- {
		tr.Return(f, 1, uint64(d)+1000, sp(d)+8)
	}
	if got, want := tr.Stats(), (Stats{Paired: MaxOpen, Skipped: extra, Unmatched: extra}); got != want {
		t.Errorf("after the returns: Stats() = %+v, want %+v", got, want)
	}
	if rs := tr.Results(); len(rs) != 1 || rs[0].Count != MaxOpen || rs[0].MinNS != 1000 || rs[0].MaxNS != 1000 {
		t.Errorf("Results() = %+v, want %d pairs of 1000 ns", rs, MaxOpen)
	}
}

func TestThreadExitFrees(t *testing.T) {
	tr := New()
	for tid := range 100 {
		tr.Entry(f, tid, 0, 1000)
		tr.Entry(g, tid, 0, 900)
		tr.Return(g, tid, 10, 908)
	}
	for tid := range 100 {
		tr.ThreadExit(tid)
	}
	if len(tr.threads) != 0 || tr.last != nil {
		t.Errorf("after every thread exited: %d threads kept, last stack %p", len(tr.threads), tr.last)
	}
	if got, want := tr.Stats(), (Stats{Paired: 100, Unfinished: 100}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestNoAllocs(t *testing.T) {
	tr := New()
	var ns uint64
	pair := func() {
		for tid := range 4 {
			tr.Entry(grp(f, "a"), tid, ns, 1000)
			tr.Entry(f, tid, ns+1, 900)
			tr.Entry(g, tid, ns+2, 800)
			tr.Return(g, tid, ns+3, 808)
			tr.Return(f, tid, ns+4, 908)
			tr.Return(f, tid, ns+5, 1008)
		}
		ns += 10
	}
	pair() // the stacks and histograms
	if n := testing.AllocsPerRun(100, pair); n != 0 {
		t.Errorf("pairing allocates %v times per run, want 0", n)
	}
}

// TestModel checks random streams against a plain implementation of the
// rules, and the invariants of Stats.
func TestModel(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 0))
		tr := New()
		m := newModel()
		var entries, returns uint64
		var ns uint64
		for range 2000 {
			ns += rng.Uint64N(1000)
			k := Key{Func: rng.IntN(2), Group: []string{"", "x"}[rng.IntN(2)]}
			tid := rng.IntN(3)
			var e ev
			switch n := rng.IntN(100); {
			case n < 1:
				e = exit(tid)
			case n < 50:
				entries++
				e = entry(k, tid, ns, m.nextSP(tid, k.Func, rng))
			default:
				returns++
				e = ret(k, tid, ns, m.returnSP(tid, k.Func, rng))
			}
			e.apply(tr)
			m.apply(e)
		}
		if got, want := tr.Results(), m.results(); !equalResults(got, want) {
			t.Fatalf("seed %d: Results() =\n%+v\nwant\n%+v", seed, got, want)
		}
		s := tr.Stats()
		if s != m.stats() {
			t.Fatalf("seed %d: Stats() = %+v, want %+v", seed, s, m.stats())
		}
		if s.Paired+s.Skipped+s.Unfinished != entries || s.Paired+s.Unmatched != returns {
			t.Fatalf("seed %d: Stats() = %+v for %d entries and %d returns", seed, s, entries, returns)
		}
	}
}

// model is the pairing rules done the obvious way.
type model struct {
	open                                   map[threadFunc][]call
	durations                              map[Key][]uint64
	paired, unmatched, skipped, unfinished uint64
}

type threadFunc struct{ tid, fn int }

func newModel() *model {
	return &model{open: map[threadFunc][]call{}, durations: map[Key][]uint64{}}
}

// nextSP is an sp for a new entry: mostly below the innermost open one,
// sometimes unknown, sometimes equal (a call after a longjmp).
func (m *model) nextSP(tid, fn int, rng *rand.Rand) uint64 {
	if rng.IntN(10) == 0 {
		return 0
	}
	sp := uint64(1 << 20)
	if s := m.open[threadFunc{tid, fn}]; len(s) > 0 && s[len(s)-1].sp != 0 {
		sp = s[len(s)-1].sp - 64*uint64(rng.IntN(2))
	}
	return sp
}

// returnSP is an sp for a return: mostly an open entry's + 8, the
// innermost's more often than not.
func (m *model) returnSP(tid, fn int, rng *rand.Rand) uint64 {
	s := m.open[threadFunc{tid, fn}]
	switch n := rng.IntN(10); {
	case n == 0:
		return 0
	case n == 1 || len(s) == 0:
		return 1<<20 - 64*uint64(rng.IntN(8)) + 8
	case n < 7:
		return s[len(s)-1].sp + 8
	default:
		return s[rng.IntN(len(s))].sp + 8
	}
}

func (m *model) apply(e ev) {
	tf := threadFunc{e.tid, e.k.Func}
	switch e.op {
	case 'e':
		m.open[tf] = append(m.open[tf], call{sp: e.sp, ns: e.ns, group: e.k.Group})
	case 'x':
		for tf, s := range m.open {
			if tf.tid == e.tid {
				m.unfinished += uint64(len(s))
				delete(m.open, tf)
			}
		}
	case 'r':
		s := m.open[tf]
		if e.sp != 0 {
			for len(s) > 0 && s[len(s)-1].sp != 0 && s[len(s)-1].sp < e.sp-8 {
				s = s[:len(s)-1]
				m.skipped++
			}
			if len(s) > 0 && s[len(s)-1].sp != 0 && s[len(s)-1].sp != e.sp-8 {
				m.open[tf] = s
				m.unmatched++
				return
			}
		}
		if len(s) == 0 {
			m.open[tf] = s
			m.unmatched++
			return
		}
		c := s[len(s)-1]
		m.open[tf] = s[:len(s)-1]
		m.paired++
		k := e.k
		if k.Group == "" {
			k.Group = c.group
		}
		m.durations[k] = append(m.durations[k], e.ns-c.ns)
	}
}

func (m *model) results() []Result {
	var rs []Result
	for k, ns := range m.durations {
		rs = append(rs, durations{k, ns}.want())
	}
	slices.SortFunc(rs, func(a, b Result) int {
		return cmp.Or(cmp.Compare(a.Key.Func, b.Key.Func), cmp.Compare(a.Key.Group, b.Key.Group))
	})
	return rs
}

func (m *model) stats() Stats {
	s := Stats{Paired: m.paired, Unmatched: m.unmatched, Skipped: m.skipped, Unfinished: m.unfinished}
	for _, o := range m.open {
		s.Unfinished += uint64(len(o))
	}
	return s
}

// BenchmarkPair times an Entry and its Return. An op is a round of
// entries, depth nested ones in each of the threads of a round (entered
// one thread after the other, so that consecutive hits are of different
// threads), then their returns; rounds cycle through the threads.
func BenchmarkPair(b *testing.B) {
	for _, bc := range []struct {
		name                  string
		threads, round, depth int
	}{
		{"flat", 1, 1, 1},
		{"depth=8", 1, 1, 8},
		{"threads=1000", 1000, 1, 1},
		{"threads=1000,interleaved=4", 1000, 4, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := New()
			var ns uint64
			tid := 0
			sp := func(d int) uint64 { return 1<<20 - uint64(d)*64 }
			b.ReportAllocs()
			for b.Loop() {
				for i := range bc.round {
					for d := range bc.depth {
						tr.Entry(f, tid+i, ns, sp(d))
						ns++
					}
				}
				for i := range bc.round {
					for d := bc.depth - 1; d >= 0; d-- {
						tr.Return(f, tid+i, ns, sp(d)+8)
						ns++
					}
				}
				tid = (tid + bc.round) % bc.threads
			}
			if pairs := bc.round * bc.depth; pairs > 1 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pairs), "ns/pair")
			}
		})
	}
}
