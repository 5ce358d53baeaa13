package tracefs

import (
	"fmt"
	"sort"
	"testing"
)

const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"

// libcSpecs returns n entry probes at distinct function offsets of libc.
func libcSpecs(tb testing.TB, n int) []UprobeSpec {
	tb.Helper()
	offs, err := funcOffsets(libc)
	if err != nil {
		tb.Fatalf("%s: %v", libc, err)
	}
	distinct := map[uint64]bool{}
	var list []uint64
	for _, o := range offs {
		if !distinct[o] {
			distinct[o] = true
			list = append(list, o)
		}
	}
	if len(list) < n {
		tb.Fatalf("%s: %d distinct functions, want %d", libc, len(list), n)
	}
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	specs := make([]UprobeSpec, n)
	for i := range specs {
		specs[i] = UprobeSpec{Event: fmt.Sprintf("f%d", i), Path: libc, Offset: list[i]}
	}
	return specs
}

// BenchmarkDefine500 defines 500 entry uprobes on libc in one group (ids
// and formats included) and removes the group. Nothing is armed: no perf
// event is opened.
func BenchmarkDefine500(b *testing.B) {
	fs := kernelFS(b)
	group := selfGroup(b)
	guard(b, fs, group)
	specs := libcSpecs(b, 500)
	b.ResetTimer()
	for b.Loop() {
		if _, err := fs.Define(group, specs); err != nil {
			b.Fatal(err)
		}
		if err := fs.RemoveGroup(group); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/event")
}
