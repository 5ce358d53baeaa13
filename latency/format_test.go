package latency

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	bar := func(n int) string { return "|" + strings.Repeat("@", n) + strings.Repeat(" ", barWidth-n) + "|" }
	tests := []struct {
		name string
		ns   []uint64
		want string
	}{
		{
			name: "microseconds",
			ns:   []uint64{702310, 1893114, 1000000, 1124604},
			want: "nanoseconds:\n" +
				"[512K, 1M)             2 " + bar(52) + "\n" +
				"[1M, 2M)               2 " + bar(52) + "\n" +
				"count 4, min 702.310 us, avg 1180.007 us, max 1893.114 us\n",
		},
		{
			name: "gap, [0] and [1], rounded avg",
			ns:   []uint64{0, 1, 1, 1, 5},
			want: "nanoseconds:\n" +
				"[0]                    1 " + bar(17) + "\n" +
				"[1]                    3 " + bar(52) + "\n" +
				"[2, 4)                 0 " + bar(0) + "\n" +
				"[4, 8)                 1 " + bar(17) + "\n" +
				"count 5, min 0.000 us, avg 0.002 us, max 0.005 us\n",
		},
		{
			name: "seconds",
			ns:   []uint64{1_500_000_000, 600_000_000},
			want: "nanoseconds:\n" +
				"[512M, 1G)             1 " + bar(52) + "\n" +
				"[1G, 2G)               1 " + bar(52) + "\n" +
				"count 2, min 600000.000 us, avg 1050000.000 us, max 1500000.000 us\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New()
			for _, d := range tt.ns {
				tr.Entry(f, 1, 0, 0)
				tr.Return(f, 1, d, 0)
			}
			var b strings.Builder
			if err := tr.Results()[0].Format(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("Format wrote\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestFormatExact(t *testing.T) {
	// As the doc comment shows it, byte for byte.
	r := Result{
		Key: f, Count: 3, MinNS: 600, MaxNS: 1800, SumNS: 3900,
		Buckets: []Bucket{{512, 1024, 1}, {1024, 2048, 2}},
	}
	want := `nanoseconds:
[512, 1K)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[1K, 2K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
count 3, min 0.600 us, avg 1.300 us, max 1.800 us
`
	var b strings.Builder
	if err := r.Format(&b); err != nil || b.String() != want {
		t.Errorf("Format wrote\n%s(error %v), want\n%s", b.String(), err, want)
	}

	b.Reset()
	if err := (Result{Key: f}).Format(&b); err != nil || b.String() != "nanoseconds:\ncount 0\n" {
		t.Errorf("Format of no pairs wrote %q (error %v), want %q", b.String(), err, "nanoseconds:\ncount 0\n")
	}
}

func TestLabel(t *testing.T) {
	for b, want := range map[int]string{
		0: "[0]", 1: "[1]", 2: "[2, 4)", 10: "[512, 1K)", 11: "[1K, 2K)", 20: "[512K, 1M)",
		31: "[1G, 2G)", 41: "[1T, 2T)", 51: "[1P, 2P)", 61: "[1E, 2E)", 64: "[8E, 16E)",
	} {
		low, high := bucketBounds(b)
		if got := (Bucket{LowNS: low, HighNS: high}).label(); got != want {
			t.Errorf("bucket %d [%d, %d): label %q, want %q", b, low, high, got, want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestFormatError(t *testing.T) {
	if err := (Result{}).Format(failWriter{}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Format to a failing writer: %v, want %v", err, os.ErrClosed)
	}
}

func ExampleResult_Format() {
	tr := New()
	for _, d := range []uint64{600, 1500, 1800} {
		tr.Entry(Key{Func: 1}, 1, 0, 0)
		tr.Return(Key{Func: 1}, 1, d, 0)
	}
	for _, r := range tr.Results() {
		os.Stdout.WriteString("latency of ./server:handle\n")
		r.Format(os.Stdout)
	}
	// Output:
	// latency of ./server:handle
	// nanoseconds:
	// [512, 1K)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
	// [1K, 2K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
	// count 3, min 0.600 us, avg 1.300 us, max 1.800 us
}
