package main

// Kernel tests on a Go program (testdata/targets/gotarget): %return without
// a uretprobe (Go would crash on one), entry probes that fire once per call
// however often the stack grows, Go's argument registers, and Go names.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// goCounts is what gotarget printed about its own calls.
type goCounts struct {
	work, iSum, resultSum int64 // "work CALLS SUM(i) SUM(work(i))"
	deep                  int64
	generic               int64
	method                int64
	other                 int64
}

// runGoTarget releases a started gotarget, reads its counts, and waits
// for it to exit 0.
func runGoTarget(t *testing.T, p *targets.Process) goCounts {
	t.Helper()
	p.GoNoWait(t)
	var c goCounts
	fields := map[string][]*int64{
		"work": {&c.work, &c.iSum, &c.resultSum}, "deep": {&c.deep}, "generic": {&c.generic},
		"method": {&c.method}, "other": {&c.other},
	}
	for range len(fields) {
		f := strings.Fields(p.Line(t))
		dst, ok := fields[f[0]]
		if !ok || len(f) < len(dst)+1 {
			t.Fatalf("gotarget printed %q", f)
		}
		for i, d := range dst {
			*d, _ = strconv.ParseInt(f[i+1], 10, 64)
		}
	}
	if calls := p.Wait(t); int64(calls) != c.work {
		t.Fatalf("gotarget: calls %d, work %d", calls, c.work)
	}
	return c
}

// attachGo traces a new gotarget with the probes (%s is its path) until
// it exits, and returns its counts and the hits.
func attachGo(t *testing.T, probes ...string) (goCounts, *attachRun, string) {
	t.Helper()
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "gotarget")
	target := targets.Start(t, bin)
	args := []string{"--pid", fmt.Sprint(target.PID)}
	for _, p := range probes {
		args = append(args, strings.ReplaceAll(p, "%s", bin))
	}
	a := startAttach(t, args...)
	a.waitReady(t)
	counts := runGoTarget(t, target)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	if s := a.summary(t); num(s["lost"]) != 0 || num(s["unknown"]) != 0 || num(s["unresolved"]) != 0 || num(s["undecoded"]) != 0 {
		t.Errorf("summary %v", s)
	}
	return counts, a, bin
}

// TestGoReturnProbe: %return on a Go function counts every return with its
// value, and the program runs to its end (a uretprobe would crash it with
// "fatal error: unknown caller pc" when its goroutines' stacks move).
func TestGoReturnProbe(t *testing.T) {
	c, a, bin := attachGo(t, "%s:main.work%return rv=$retval:s64", "%s:main.deep%return")
	ready := a.ofType("ready")[0]
	for _, e := range ready["events"].([]any) {
		ev := e.(map[string]any)
		if ev["return"] != true || ev["binary"] != bin {
			t.Errorf("ready event %v: want a return probe on %s", ev, bin)
		}
	}
	var work, deep, sum int64
	for _, h := range a.ofType("hit") {
		switch h["probe"] {
		case "main_work__return":
			work++
			sum += num(h["retval"])
			if h["retval"] != h["args"].(map[string]any)["rv"] {
				t.Fatalf("hit %v: retval is not rv", h)
			}
		case "main_deep__return":
			deep++
		default:
			t.Fatalf("hit on %v", h["probe"])
		}
	}
	if work != c.work || sum != c.resultSum {
		t.Errorf("main.work returns: %d hits summing to %d; the program made %d calls summing to %d", work, sum, c.work, c.resultSum)
	}
	if deep != c.deep {
		t.Errorf("main.deep returns: %d hits, the program made %d calls", deep, c.deep)
	}
}

// TestGoEntryOncePerCall: an entry probe on a Go function whose stack
// grows (51 goroutines recursing 1000 deep with 256-byte frames) counts
// each call once: it sits after the stack check, which morestack re-runs.
func TestGoEntryOncePerCall(t *testing.T) {
	c, a, _ := attachGo(t, "%s:main.deep", "%s:main.huge")
	hits := map[any]int64{}
	for _, h := range a.ofType("hit") {
		hits[h["probe"]]++
	}
	if c.deep != 51000 || hits["main_deep"] != c.deep {
		t.Errorf("main.deep: %d hits, the program counted %d calls (want 51000)", hits["main_deep"], c.deep)
	}
	if hits["main_huge"] != 20 {
		t.Errorf("main.huge: %d hits, want 20", hits["main_huge"])
	}
}

// TestGoArgs: arg1 is RAX in a Go binary (Go's register ABI).
func TestGoArgs(t *testing.T) {
	c, a, _ := attachGo(t, "%s:main.work i=arg1:s64")
	var n, sum int64
	for _, h := range a.ofType("hit") {
		n++
		sum += num(h["args"].(map[string]any)["i"])
	}
	if n != c.work || sum != c.iSum || sum != 1999000 {
		t.Errorf("main.work: %d hits with arg1 summing to %d; the program: %d calls, sum %d (want 1999000)", n, sum, c.work, c.iSum)
	}
}

// TestGoNamesAndGlobs: a method by a glob, every instance of a generic
// function by "[...]", and a generic function's %return.
func TestGoNamesAndGlobs(t *testing.T) {
	c, a, _ := attachGo(t, "%s:main.(*Counter).*", "%s:main.Sum[...]", "%s:main.Sum[go.shape.int]%return")
	bySymbol := map[string]int64{}
	var intReturns, intSum int64
	for _, h := range a.ofType("hit") {
		if h["probe"] == "main_Sum_go_shape_int___return" {
			intReturns++
			intSum += num(h["retval"])
			continue
		}
		bySymbol[h["symbol"].(string)]++
	}
	if bySymbol["main.(*Counter).Add"] != c.method {
		t.Errorf("main.(*Counter).Add: %d hits, %d calls (hits by symbol %v)", bySymbol["main.(*Counter).Add"], c.method, bySymbol)
	}
	if n, m := bySymbol["main.Sum[go.shape.int]"], bySymbol["main.Sum[go.shape.float64]"]; n+m != c.generic || n != m {
		t.Errorf("main.Sum: %d + %d hits, %d calls", n, m, c.generic)
	}
	// Sum([]int{1, 2, 3}) is 6, called as many times as Sum of floats.
	if intReturns != c.generic/2 || intSum != 6*intReturns {
		t.Errorf("main.Sum[go.shape.int]%%return: %d hits summing to %d, want %d returning 6", intReturns, intSum, c.generic/2)
	}
}

// TestGoReturnRefused: a %return that cannot be put on RET instructions
// (a tail call, no RET) is refused with exit 2 and one line, --force or
// not, before anything is written to uprobe_events.
func TestGoReturnRefused(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "gotarget")
	for _, tc := range []struct{ probe, mention string }{
		{"main.(*Outer).Add%return", "tail call"},
		{"main.spin%return", "no RET instruction"},
	} {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/force=%v", tc.probe, force), func(t *testing.T) {
				before := readUprobeEvents(t)
				args := []string{"attach", "--duration", "1s"}
				if force {
					args = append(args, "--force")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, binary, append(args, bin+":"+tc.probe)...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 2 {
					t.Fatalf("exit %v, want 2; stderr: %s", err, stderr.String())
				}
				msg := strings.TrimSpace(stderr.String())
				if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.mention) {
					t.Errorf("want one line mentioning %q, got:\n%s", tc.mention, msg)
				}
				checkUnchanged(t, "uprobe_events", before, readUprobeEvents(t), cmd.Process.Pid, dir)
			})
		}
	}
}
