package main

// End-to-end tests of the uprobectl binary on the real kernel: real uprobes
// on C targets that count their own calls. Each test checks that
// uprobe_events is back to what it was, and leaves a foreign (perf probe
// style) event in place to prove it is never touched.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
)

var binary string // the uprobectl built for these tests

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "uprobectl-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "uprobectl")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build uprobectl: %v\n%s", err, out)
		os.Exit(1)
	}
	reapTestEvents()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const uprobeEvents = "/sys/kernel/tracing/uprobe_events"

func readUprobeEvents(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(uprobeEvents)
	if err != nil {
		t.Fatalf("read uprobe_events: %v", err)
	}
	return string(b)
}

// testGroup holds the events the tests define themselves (the canary, the
// perf stat references), each named NAME_PID after the test process.
const testGroup = "probe_uprobectltest"

// reapTestEvents removes the events of testGroup left by a test process
// that died before its cleanup ran (SIGKILL, a timeout): nobody else
// removes them. Events of live processes (a test run in parallel) stay.
func reapTestEvents() {
	b, err := os.ReadFile(uprobeEvents)
	if err != nil {
		return // tracefs not mounted yet: nothing was left there
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(line, " ")
		event, ok := strings.CutPrefix(name, "p:"+testGroup+"/")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(event, '_')
		pid, err := strconv.Atoi(event[i+1:])
		if i < 0 || err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if f, err := os.OpenFile(uprobeEvents, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			f.WriteString("-:" + testGroup + "/" + event + "\n")
			f.Close()
		}
	}
}

// appendUprobeEvents writes a command the way every tool must: O_APPEND.
func appendUprobeEvents(t testing.TB, cmd string) {
	t.Helper()
	f, err := os.OpenFile(uprobeEvents, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cmd + "\n"); err != nil {
		t.Fatalf("write %q to uprobe_events: %v", cmd, err)
	}
}

// kernelTest prepares a kernel test: tracefs mounted, a foreign event
// defined like `perf probe -x BIN fn` would, and a check at the end that
// uprobe_events holds exactly what it held before (foreign event included).
func kernelTest(t *testing.T) (dir string) {
	t.Helper()
	targets.RequireKernel(t)
	if _, err := os.Stat(uprobeEvents); err != nil {
		// uprobectl mounts tracefs by itself; run it once so the test can read it.
		exec.Command(binary, "list").Run()
	}
	dir = t.TempDir()
	foreignBin := targets.Build(t, dir, "counter-nopie")
	off := symbolOffset(t, foreignBin, "fn")
	appendUprobeEvents(t, fmt.Sprintf("p:%s/fn_%d %s:0x%x", testGroup, os.Getpid(), foreignBin, off))
	before := readUprobeEvents(t)
	canary := fmt.Sprintf("p:%s/fn_%d %s:0x%016x", testGroup, os.Getpid(), foreignBin, off)
	t.Cleanup(func() {
		after := readUprobeEvents(t)
		appendUprobeEvents(t, fmt.Sprintf("-:%s/fn_%d", testGroup, os.Getpid()))
		targets.CheckEvents(t, before, after, canary)
	})
	return dir
}

func symbolOffset(t testing.TB, bin, sym string) uint64 {
	t.Helper()
	out, err := exec.Command(binary, "symbols", "--json", bin, sym).Output()
	if err != nil {
		t.Fatalf("uprobectl symbols %s %s: %v", bin, sym, err)
	}
	var s struct{ Offset uint64 }
	if err := json.Unmarshal(bytes.SplitN(out, []byte("\n"), 2)[0], &s); err != nil || s.Offset == 0 {
		t.Fatalf("symbols output %q: %v", out, err)
	}
	return s.Offset
}

// attachRun is a running `uprobectl attach --json`.
type attachRun struct {
	cmd    *exec.Cmd
	lines  chan map[string]any
	stderr bytes.Buffer
	done   chan struct{}
	all    []map[string]any
}

func startAttach(t *testing.T, args ...string) *attachRun {
	t.Helper()
	a := &attachRun{lines: make(chan map[string]any, 1<<16), done: make(chan struct{})}
	a.cmd = exec.Command(binary, append([]string{"attach", "--json"}, args...)...)
	a.cmd.Stderr = &a.stderr
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Kill(); <-a.done })
	go func() {
		defer close(a.done)
		defer close(a.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"type": "bad-json", "line": sc.Text()}
			}
			a.lines <- m
		}
	}()
	return a
}

// waitReady reads lines until {"type":"ready"}.
func (a *attachRun) waitReady(t *testing.T) map[string]any {
	t.Helper()
	return a.waitFor(t, "ready", nil)
}

// waitFor reads lines until one of type typ that ok accepts (any, if nil).
func (a *attachRun) waitFor(t *testing.T, typ string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, open := <-a.lines:
			if !open {
				a.cmd.Wait()
				t.Fatalf("attach ended before a %s line: %s", typ, a.stderr.String())
			}
			a.all = append(a.all, m)
			if m["type"] == typ && (ok == nil || ok(m)) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s line in 60s: %s", typ, a.stderr.String())
		}
	}
}

// wait collects the remaining lines and the exit code. An attach that does
// not end within a minute is a failure (and is sent SIGQUIT for its stacks).
func (a *attachRun) wait(t *testing.T) int {
	t.Helper()
	timer := time.AfterFunc(time.Minute, func() { a.cmd.Process.Signal(syscall.SIGQUIT) })
	defer timer.Stop()
	for m := range a.lines {
		a.all = append(a.all, m)
	}
	err := a.cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("attach did not end within a minute; its stacks:\n%s", a.stderr.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (a *attachRun) ofType(typ string) []map[string]any {
	var out []map[string]any
	for _, m := range a.all {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

func (a *attachRun) summary(t *testing.T) map[string]any {
	t.Helper()
	s := a.ofType("summary")
	if len(s) != 1 {
		t.Fatalf("want one summary line, got %d; stderr: %s", len(s), a.stderr.String())
	}
	return s[0]
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestAttachCountsExactly: for each kind of ELF file the hits equal the
// calls the target counted itself, with the arguments read right, and the
// summary reports no loss and no unknown process.
func TestAttachCountsExactly(t *testing.T) {
	cases := []struct {
		name    string
		variant string
		probe   string // %s is the target path (or its directory for the library)
		args    []string
		threads int
	}{
		{"pie", "counter-pie", "%s:fn i=arg1:s64 s=+0(arg2):string", []string{"2000"}, 1},
		{"non-pie", "counter-nopie", "%s:fn i=arg1:s64 s=+0(arg2):string", []string{"2000"}, 1},
		{"stripped via dynsym", "counter-stripped", "%s:fn i=arg1:s64 s=+0(arg2):string", []string{"2000"}, 1},
		{"shared library", "uselib", "%s/libcounter.so:lib_fn i=arg1:s64", []string{"2000"}, 1},
		{"threads before and after attach", "counter-pie", "%s:fn i=arg1:s64 s=+0(arg2):string", []string{"8000", "4"}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := kernelTest(t)
			bin := targets.Build(t, dir, tc.variant)
			target := targets.Start(t, bin, tc.args...)
			where := bin
			if tc.variant == "uselib" {
				where = dir
			}
			a := startAttach(t, "--pid", fmt.Sprint(target.PID), fmt.Sprintf(tc.probe, where))
			a.waitReady(t)
			calls := target.Go(t)
			if code := a.wait(t); code != 0 {
				t.Fatalf("attach exit %d: %s", code, a.stderr.String())
			}
			hits := a.ofType("hit")
			if len(hits) != calls {
				t.Fatalf("hits %d, calls %d (stderr: %s)", len(hits), calls, a.stderr.String())
			}
			seen := map[int64]bool{}
			tids := map[int64]bool{}
			for _, h := range hits {
				args := h["args"].(map[string]any)
				seen[num(args["i"])] = true
				tids[num(h["tid"])] = true
				if num(h["pid"]) != int64(target.PID) {
					t.Fatalf("hit from pid %v, target is %d", h["pid"], target.PID)
				}
				if s, ok := args["s"]; ok && s != "hello" {
					t.Fatalf("string arg %q, want hello", s)
				}
			}
			if len(seen) != calls {
				t.Errorf("%d distinct i values in %d hits: arguments misread", len(seen), calls)
			}
			if tc.threads > 1 && len(tids) != 2*tc.threads {
				t.Errorf("hits from %d threads, want %d", len(tids), 2*tc.threads)
			}
			s := a.summary(t)
			if num(s["hits"]) != int64(calls) || num(s["lost"]) != 0 || num(s["unknown"]) != 0 {
				t.Errorf("summary %v, want hits=%d lost=0 unknown=0", s, calls)
			}
		})
	}
}

// TestAttachMallocOfOneProcess: libc's malloc, found by library name, for
// one running process: only its hits, with the size argument read right.
func TestAttachMallocOfOneProcess(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "mallocer")
	target := targets.Start(t, bin, "3000", "4242")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), "libc.so.6:malloc size=arg1:u64")
	a.waitReady(t)
	calls := target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	sized := 0
	for _, h := range a.ofType("hit") {
		if num(h["pid"]) != int64(target.PID) {
			t.Fatalf("hit from pid %v, traced only %d", h["pid"], target.PID)
		}
		if num(h["args"].(map[string]any)["size"]) == 4242 {
			sized++
		}
	}
	if sized != calls {
		t.Fatalf("malloc(4242) hits %d, calls %d", sized, calls)
	}
}

// TestReturnProbe: %return gives the return value as "retval".
func TestReturnProbe(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "uselib")
	target := targets.Start(t, bin, "100")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), filepath.Join(dir, "libcounter.so")+":lib_fn%return rv=$retval:s64")
	a.waitReady(t)
	calls := target.Go(t)
	a.wait(t)
	hits := a.ofType("hit")
	if len(hits) != calls {
		t.Fatalf("hits %d, calls %d: %s", len(hits), calls, a.stderr.String())
	}
	sum := int64(0)
	for _, h := range hits {
		sum += num(h["retval"])
	}
	// lib_fn(x) returns 2x for x = 0..calls-1.
	if want := int64(calls * (calls - 1)); sum != want {
		t.Fatalf("sum of retvals %d, want %d", sum, want)
	}
}

// TestGlobOfHundreds: one glob arming hundreds of libc functions (perf
// probe refuses more than 127 per command) attaches, attributes each hit to
// the right function by address, and detaches clean.
func TestGlobOfHundreds(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "mallocer")
	target := targets.Start(t, bin, "2000", "4242")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), "libc.so.6:[a-g]*")
	ready := a.waitReady(t)
	if n := num(ready["probes"]); n < 500 {
		t.Fatalf("glob armed %d probes, want >= 500", n)
	}
	calls := target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, a.stderr.String())
	}
	bySymbol := map[string]int{}
	for _, h := range a.ofType("hit") {
		bySymbol[h["symbol"].(string)]++
	}
	if bySymbol["free"] < calls {
		t.Errorf("free hits %d, the target freed %d times (hits by symbol: %v)", bySymbol["free"], calls, bySymbol)
	}
	for sym := range bySymbol {
		if sym == "" || sym[0] < 'a' || sym[0] > 'g' {
			t.Errorf("hit attributed to %q, outside the glob", sym)
		}
	}
	if s := a.summary(t); num(s["unknown"]) != 0 || num(s["lost"]) != 0 {
		t.Errorf("summary %v", s)
	}
}
