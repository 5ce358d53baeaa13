package main

// C++ names and bare library names, on the real kernel: demangled probe
// words and globs count exactly what the C++ target counted itself; a bare
// "libm.so.6" finds the private copy a running program loaded through its
// RUNPATH, in the default scope and for run.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// cppCalls reads the per-function lines of a released cpptarget ("calls
// NAME N", seven of them) and its total.
func cppCalls(t *testing.T, p *targets.Process) (map[string]int, int) {
	t.Helper()
	calls := map[string]int{}
	for range 7 {
		line := p.Line(t)
		rest, ok := strings.CutPrefix(line, "calls ")
		i := strings.LastIndexByte(rest, ' ')
		n, err := strconv.Atoi(rest[i+1:])
		if !ok || i < 0 || err != nil {
			t.Fatalf("cpptarget printed %q", line)
		}
		calls[rest[:i]] = n
	}
	return calls, p.Wait(t)
}

func TestCppSymbols(t *testing.T) {
	dir := t.TempDir()
	bin := targets.Build(t, dir, "cpptarget")
	out, err := exec.Command(binary, "symbols", bin, "ns::*").Output()
	if err != nil {
		t.Fatalf("symbols: %v", err)
	}
	for _, name := range []string{"ns::Class::method(int)", "ns::Class::method(int, int)", "int ns::twice<int>(int)", "ns::inner::bump(unsigned int)", "ns::operator+(ns::Vec, ns::Vec)"} {
		if !strings.Contains(string(out), "  "+name+"\n") {
			t.Errorf("symbols does not list %s:\n%s", name, out)
		}
	}
	if strings.Contains(string(out), "_ZN") {
		t.Errorf("text lists mangled names:\n%s", out)
	}
	out, err = exec.Command(binary, "symbols", "--json", bin, "ns::Class::method(int)").Output()
	if err != nil {
		t.Fatalf("symbols --json: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(out, &rec); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if rec["symbol"] != "_ZN2ns5Class6methodEi" || rec["demangled"] != "ns::Class::method(int)" {
		t.Errorf("symbols --json: %s", out)
	}
	// A glob with a space, as a shell argument: spaces do not count.
	out, err = exec.Command(binary, "symbols", bin, "ns::Class::method(int, *)").Output()
	if err != nil || strings.Count(string(out), "\n") != 2 || !strings.Contains(string(out), "ns::Class::method(int, int)") {
		t.Errorf("symbols with a spaced glob: %v\n%s", err, out)
	}
}

// TestCppProbeCounts: demangled names (overloads told apart by their
// parameters, written without spaces), a glob over template instances, an
// operator and a bare qualified name (every overload) count exactly.
func TestCppProbeCounts(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "cpptarget")
	target := targets.Start(t, bin, "300")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID),
		bin+":ns::Class::method(int) x=arg2:s32",
		bin+":ns::Class::method(int,int)",
		bin+":*ns::twice<*",
		bin+":ns::inner::bump(unsignedint) x=arg1:u32",
		bin+":ns::operator+(ns::Vec,ns::Vec)%return",
	)
	ready := a.waitReady(t)
	events, _ := ready["events"].([]any)
	if len(events) != 6 {
		t.Fatalf("ready: %d events, want 6: %v", len(events), ready)
	}
	for _, e := range events {
		e := e.(map[string]any)
		if sym, _ := e["symbol"].(string); !strings.Contains(sym, "ns::") || !strings.HasPrefix(e["mangled"].(string), "_ZN") {
			t.Errorf("ready event %v: want the demangled symbol and the mangled one", e)
		}
	}
	target.GoNoWait(t)
	calls, total := cppCalls(t, target)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	a.checkSummary(t)
	hits := map[string]int{}
	for _, h := range a.ofType("hit") {
		sym, _ := h["symbol"].(string)
		hits[sym]++
		if sym == "ns::Class::method(int)" && num(h["args"].(map[string]any)["x"]) >= 300 {
			t.Fatalf("method(int) argument %v, want < 300", h["args"])
		}
	}
	for _, tc := range []struct{ hit, call string }{
		{"ns::Class::method(int)", "ns::Class::method(int)"},
		{"ns::Class::method(int, int)", "ns::Class::method(int, int)"},
		{"int ns::twice<int>(int)", "ns::twice<int>(int)"},
		{"long ns::twice<long>(long)", "ns::twice<long>(long)"},
		{"ns::inner::bump(unsigned int)", "ns::inner::bump(unsigned int)"},
		{"ns::operator+(ns::Vec, ns::Vec)", "ns::operator+(ns::Vec, ns::Vec)"},
	} {
		if calls[tc.call] == 0 || hits[tc.hit] != calls[tc.call] {
			t.Errorf("%s: %d hits, %d calls", tc.hit, hits[tc.hit], calls[tc.call])
		}
	}
	if glob := hits["int ns::twice<int>(int)"] + hits["long ns::twice<long>(long)"]; glob != 9*300 {
		t.Errorf("glob *ns::twice<*: %d hits, want %d", glob, 9*300)
	}
	if total != 28*300 {
		t.Errorf("target total %d", total)
	}
}

// TestCppRunText: text hits name C++ functions by their demangled names;
// a bare qualified name probes every overload.
func TestCppRunText(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "cpptarget")
	out := filepath.Join(dir, "hits.txt")
	cmd := exec.Command(binary, "run", "--output", out, bin+":ns::Class::method", "--", bin, "20")
	cmd.Stdin = strings.NewReader("go\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		n    int
	}{{"ns::Class::method(int)", 20}, {"ns::Class::method(double)", 40}, {"ns::Class::method(int, int)", 60}} {
		if got := strings.Count(string(b), "] "+tc.name+"\n"); got != tc.n {
			t.Errorf("%d text hits on %s, want %d\n%s", got, tc.name, tc.n, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "calls 560") {
		t.Errorf("target output %q", stdout.String())
	}
}

// privlibTarget builds the program linked with a private copy of
// libm.so.6 (on its RUNPATH) and returns it with that copy's real path.
func privlibTarget(t *testing.T, dir string) (bin, lib string) {
	t.Helper()
	bin = targets.Build(t, dir, "privlib")
	lib, err := filepath.EvalSymlinks(filepath.Join(dir, "libm-private", "libm.so.6"))
	if err != nil {
		t.Fatal(err)
	}
	return bin, lib
}

// TestBareLibraryPrivateCopy: `attach libm.so.6:cbrt` (default scope)
// started while a program runs with its own copy of libm.so.6 probes that
// copy too, and counts its calls exactly.
func TestBareLibraryPrivateCopy(t *testing.T) {
	dir := kernelTest(t)
	bin, lib := privlibTarget(t, dir)
	const n = 1234
	target := targets.Start(t, bin, strconv.Itoa(n))
	if line := target.Line(t); line != "libm "+lib {
		t.Fatalf("the target loaded %q, want %s", line, lib)
	}
	a := startAttach(t, "libm.so.6:cbrt")
	ready := a.waitReady(t)
	var binaries []string
	for _, e := range ready["events"].([]any) {
		binaries = append(binaries, e.(map[string]any)["binary"].(string))
	}
	if len(binaries) != 2 || !strings.Contains(strings.Join(binaries, " "), lib) {
		t.Fatalf("ready events on %q, want the system libm and %s", binaries, lib)
	}
	calls := target.Go(t)
	a.stop(t)
	a.checkSummary(t)
	byPID, _ := a.hitsBy(func(h map[string]any) bool { return h["binary"] == lib })
	all, _ := a.hitsBy(nil)
	if calls != n || byPID[int64(target.PID)] != n || all[int64(target.PID)] != n {
		t.Fatalf("calls %d, hits on %s %d, all hits %d (want %d)\n%s", calls, lib, byPID[int64(target.PID)], all[int64(target.PID)], n, a.stderr.String())
	}
}

// TestBareLibraryRun: run resolves a bare name through the command's own
// RUNPATH, before the command has loaded anything.
func TestBareLibraryRun(t *testing.T) {
	dir := kernelTest(t)
	bin, lib := privlibTarget(t, dir)
	out := filepath.Join(dir, "hits.json")
	cmd := exec.Command(binary, "run", "--json", "--output", out, "libm.so.6:cbrt", "--", bin, "321")
	cmd.Stdin = strings.NewReader("go\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "calls 321\n") {
		t.Fatalf("target output %q", stdout.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hits, readyOn := 0, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		switch m["type"] {
		case "ready":
			b, _ := json.Marshal(m["events"])
			readyOn = string(b)
		case "hit":
			if m["binary"] != lib {
				t.Fatalf("hit on %v, want %s", m["binary"], lib)
			}
			hits++
		}
	}
	if hits != 321 || !strings.Contains(readyOn, lib) {
		t.Fatalf("hits %d (want 321), ready events %s\n%s", hits, readyOn, stderr.String())
	}
}
