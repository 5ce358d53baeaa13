package main

// User call stacks on the real kernel, on a C target with two call paths
// to one function (main→a→b→c→leaf twice as often as main→x→leaf): every
// hit's stack, the folded counts, the pprof profile read back, and the
// first stack per key, against what the program did.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// stackNames are the symbols of a JSON stack, innermost first, down to main.
func stackNames(t *testing.T, h map[string]any) []string {
	t.Helper()
	frames, _ := h["stack"].([]any)
	var names []string
	for _, f := range frames {
		sym, _ := f.(map[string]any)["symbol"].(string)
		names = append(names, sym)
		if sym == "main" {
			break
		}
	}
	return names
}

func TestStacksEveryHit(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "stacks")
	target := targets.Start(t, bin, "500")
	a := startAttach(t, "--stacks", "--pid", fmt.Sprint(target.PID), bin+":leaf key=arg1:s64")
	a.waitReady(t)
	calls := target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	paths := map[string]int{}
	for i, h := range a.ofType("hit") {
		names := strings.Join(stackNames(t, h), ",")
		paths[names]++
		frame0 := h["stack"].([]any)[0].(map[string]any)
		if frame0["offset"] != float64(0) || frame0["binary"] != bin {
			t.Fatalf("hit %d: frame 0 %v, want leaf+0 in %s", i, frame0, bin)
		}
		// Every function down to main keeps a frame pointer: no frame
		// down to main's caller is unreliable.
		stack := h["stack"].([]any)
		for j, f := range stack[:min(len(stack), len(strings.Split(names, ","))+1)] {
			if f.(map[string]any)["unreliable"] == true {
				t.Fatalf("hit %d: frame %d %v marked unreliable", i, j, f)
			}
		}
	}
	if calls != 1500 || paths["leaf,c,b,a,main"] != 1000 || paths["leaf,x,main"] != 500 || len(paths) != 2 {
		t.Errorf("stacks %v for %d calls, want 1000 leaf,c,b,a,main and 500 leaf,x,main", paths, calls)
	}
	a.checkSummary(t)
}

// TestStacksCounted: --count --stacks prints folded stacks; --pprof writes
// a profile whose samples sum to the calls; --first-stack --by keeps each
// key's exact count and the stack of the path that called it first.
func TestStacksCounted(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "stacks")
	prof := filepath.Join(dir, "leaf.pb.gz")
	out, err := exec.Command(binary, "run", "--count", "--stacks", "--pprof", prof, bin+":leaf", "--", "sh", "-c", "echo go | "+bin+" 500").Output()
	if err != nil {
		t.Fatalf("run --count --stacks: %v", err)
	}
	folded := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "ready ") || strings.HasPrefix(line, "calls ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if !strings.HasPrefix(line, "stacks;") || i < 0 {
			t.Fatalf("not a folded line: %q", line)
		}
		stack := line[:i]
		if j := strings.Index(stack, ";main;"); j >= 0 {
			stack = stack[j+1:] // what is above main depends on libc's frames
		}
		folded[stack] = line[i+1:]
	}
	if folded["main;a;b;c;leaf"] != "1000" || folded["main;x;leaf"] != "500" || len(folded) != 2 {
		t.Errorf("folded stacks %v, want main;a;b;c;leaf 1000 and main;x;leaf 500:\n%s", folded, out)
	}
	f, err := os.Open(prof)
	if err != nil {
		t.Fatalf("--pprof wrote nothing: %v", err)
	}
	p, err := profile.Parse(f)
	f.Close()
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	byLeafCaller := map[string]int64{}
	for _, s := range p.Sample {
		if len(s.Location) < 2 {
			t.Fatalf("sample with %d locations", len(s.Location))
		}
		byLeafCaller[s.Location[0].Line[0].Function.Name+"<"+s.Location[1].Line[0].Function.Name] += s.Value[0]
	}
	if byLeafCaller["leaf<c"] != 1000 || byLeafCaller["leaf<x"] != 500 {
		t.Errorf("pprof samples %v, want leaf<c 1000, leaf<x 500", byLeafCaller)
	}
	if tool, err := exec.LookPath("go"); err == nil {
		top, err := exec.Command(tool, "tool", "pprof", "-top", prof).CombinedOutput()
		if err != nil || !strings.Contains(string(top), "1500") || !strings.Contains(string(top), "leaf") {
			t.Errorf("go tool pprof -top: %v\n%s", err, top)
		}
	}

	// --first-stack --by key: five keys of 300 calls; key 2 first came
	// through x, the others through a.
	target := targets.Start(t, bin, "500")
	a := startAttach(t, "--first-stack", "--by", "key", "--pid", fmt.Sprint(target.PID), bin+":leaf key=arg1:s64")
	a.waitReady(t)
	target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	counts := a.ofType("count")
	if len(counts) != 5 {
		t.Fatalf("%d count lines, want 5 (one per key)", len(counts))
	}
	for _, c := range counts {
		key := num(c["by"].(map[string]any)["key"])
		want := "leaf,c,b,a,main"
		if key == 2 {
			want = "leaf,x,main"
		}
		if got := strings.Join(stackNames(t, c), ","); num(c["hits"]) != 300 || got != want {
			t.Errorf("key %d: %v hits, first stack %s; want 300, %s", key, c["hits"], got, want)
		}
	}
	if s := a.summary(t); num(s["groups"]) != 5 {
		t.Errorf("summary groups %v, want 5", s["groups"])
	}
}

// TestStacksCpp: a C++ frame is demangled.
func TestStacksCpp(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "cpptarget")
	out := filepath.Join(dir, "hits.json")
	if b, err := exec.Command(binary, "run", "--json", "--stacks", "--max-hits", "5", "--output", out, bin+":ns::inner::bump", "--", "sh", "-c", "echo go | "+bin+" 20").CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, b)
	}
	hits := readHits(t, out)
	if len(hits) == 0 {
		t.Fatal("no hits")
	}
	names := stackNames(t, hits[0])
	if len(names) < 2 || names[0] != "ns::inner::bump(unsigned int)" || names[len(names)-1] != "main" {
		t.Errorf("stack %q: want ns::inner::bump(unsigned int) first, main last", names)
	}
}

// TestLatency: --latency pairs every entry with its return: each function
// gets a histogram of exactly its calls, and --by splits it per key.
func TestLatency(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "stacks")
	out := filepath.Join(dir, "latency.json")
	if b, err := exec.Command(binary, "run", "--latency", "--json", "--by", "key", "--output", out,
		bin+":leaf key=arg1:s64", bin+":a", "--", "sh", "-c", "echo go | "+bin+" 500 >/dev/null").CombinedOutput(); err != nil {
		t.Fatalf("run --latency: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	var stats map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad line %q", line)
		}
		switch m["type"] {
		case "latency":
			var inBuckets int64
			for _, b := range m["buckets"].([]any) {
				inBuckets += num(b.(map[string]any)["count"])
			}
			if inBuckets != num(m["count"]) || num(m["min_ns"]) <= 0 || num(m["min_ns"]) > num(m["avg_ns"]) || num(m["avg_ns"]) > num(m["max_ns"]) {
				t.Errorf("latency line %v: buckets sum %d", m, inBuckets)
			}
			by, _ := m["by"].(map[string]any)
			counts[fmt.Sprintf("%v key=%v", m["symbol"], by["key"])] = num(m["count"])
		case "latency_stats":
			stats = m
		}
	}
	want := map[string]int64{"a key=-": 1000}
	for k := range 5 {
		want[fmt.Sprintf("leaf key=%d", k)] = 300
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("latency counts %v, want %v", counts, want)
	}
	if num(stats["paired"]) != 2500 || num(stats["unmatched"]) != 0 || num(stats["skipped"]) != 0 || num(stats["unfinished"]) != 0 {
		t.Errorf("latency_stats %v, want 2500 paired and nothing else", stats)
	}
}

// TestFirstStackMemoryFlat: with --first-stack uprobectl's peak memory
// does not grow with the calls: 1M calls take no more than 100k (5 keys
// either way).
func TestFirstStackMemoryFlat(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "stacks")
	peak := func(n int) (int64, string) {
		cmd := exec.Command(binary, "run", "--first-stack", "--by", "key", "--json", bin+":leaf key=arg1:s64",
			"--", "sh", "-c", fmt.Sprintf("echo go | %s %d >/dev/null", bin, n))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, string(out) // KiB
	}
	small, _ := peak(100_000 / 3)
	large, out := peak(1_000_000 / 3)
	t.Logf("peak RSS: %d KiB for 100k calls, %d KiB for 1M", small, large)
	if large > small+small/4+4096 {
		t.Errorf("peak RSS grew from %d KiB (100k calls) to %d KiB (1M calls)", small, large)
	}
	var hits, lost int64
	for _, line := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["type"] == "count" {
			hits += num(m["hits"])
		}
		if json.Unmarshal([]byte(line), &m) == nil && m["type"] == "summary" {
			lost = num(m["lost"])
		}
	}
	if hits+lost != 999_999 {
		t.Errorf("counted %d + lost %d, want 999999 calls", hits, lost)
	}
}
