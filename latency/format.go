package latency

import (
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// Result is the histogram of one Key.
type Result struct {
	Key                 Key
	Count               uint64 // pairs
	MinNS, MaxNS, SumNS uint64
	// Buckets runs from the first non-empty bucket to the last, the empty
	// ones between them included; nil when Count is 0.
	Buckets []Bucket
}

// Bucket counts the durations in [LowNS, HighNS): [0, 1), [1, 2), then
// powers of two, [2, 4), [4, 8)... The last possible one, [2^63, 2^64),
// has HighNS math.MaxUint64.
type Bucket struct {
	LowNS, HighNS uint64
	Count         uint64
}

// barWidth is the width of the largest bucket's bar, as bpftrace's hist.
const barWidth = 52

// Format writes r as bpftrace's hist() does, and scripts/func-latency
// (which is in microseconds): a line "nanoseconds:" naming the unit of the
// bucket bounds; per bucket a line with its bounds, its count and a bar of
// '@', 52 for the largest bucket; then the count, min, avg and max in
// microseconds, exact to the nanosecond:
//
//	nanoseconds:
//	[512, 1K)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
//	[1K, 2K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
//	count 3, min 0.600 us, avg 1.300 us, max 1.800 us
//
// Bounds are in nanoseconds so that they are exact; K, M, G, T, P and E
// stand for 2^10, 2^20... 2^60 as in bpftrace ([1K, 2K) is 1024 to 2047
// ns). The buckets of 0 and 1 ns are "[0]" and "[1]". Without pairs it
// writes "nanoseconds:" and "count 0". It returns w's error.
func (r Result) Format(w io.Writer) error {
	var b strings.Builder
	b.WriteString("nanoseconds:\n")
	var top uint64
	for _, bk := range r.Buckets {
		top = max(top, bk.Count)
	}
	for _, bk := range r.Buckets {
		n := 0
		if top > 0 {
			hi, lo := bits.Mul64(bk.Count, barWidth) // no overflow, however large the counts
			q, _ := bits.Div64(hi, lo, top)          // Count <= top: hi < top
			n = int(q)
		}
		fmt.Fprintf(&b, "%-16s%8d |%-52s|\n", bk.label(), bk.Count, strings.Repeat("@", n))
	}
	if r.Count == 0 {
		b.WriteString("count 0\n")
	} else {
		avg := r.SumNS / r.Count
		if rem := r.SumNS % r.Count; rem >= r.Count-rem { // round half up
			avg++
		}
		fmt.Fprintf(&b, "count %d, min %s us, avg %s us, max %s us\n", r.Count, micros(r.MinNS), micros(avg), micros(r.MaxNS))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// label is the bucket's bounds as bpftrace prints them: "[0]", "[1]",
// "[2, 4)"... "[512, 1K)", "[1K, 2K)".
func (bk Bucket) label() string {
	switch bk.LowNS {
	case 0:
		return "[0]"
	case 1:
		return "[1]"
	}
	p := bits.TrailingZeros64(bk.LowNS)
	return "[" + power(p) + ", " + power(p+1) + ")"
}

// power returns 2^p with a binary suffix: 512, 1K, 2K... 8E, 16E.
func power(p int) string {
	return strconv.Itoa(1<<(p%10)) + [...]string{"", "K", "M", "G", "T", "P", "E"}[p/10]
}

// micros formats ns in microseconds with three decimals, exactly.
func micros(ns uint64) string {
	return fmt.Sprintf("%d.%03d", ns/1000, ns%1000)
}
