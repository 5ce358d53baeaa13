package main

// Task-finder tests: every process that maps a probed file — running before
// attach, forked, exec'd or dlopen'ing after it, with any number of threads —
// is traced, every hit is delivered and attributed, none comes from an
// unknown process. The targets count their own calls: the sum is the truth.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// stop ends an attach with SIGINT once the targets are done: Close drains
// the rings, so every hit written before is still delivered.
func (a *attachRun) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(os.Interrupt)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
}

// hitsBy counts the hits per pid (and returns the total), keeping only
// those keep accepts.
func (a *attachRun) hitsBy(keep func(h map[string]any) bool) (map[int64]int, int) {
	byPID := map[int64]int{}
	total := 0
	for _, h := range a.ofType("hit") {
		if keep == nil || keep(h) {
			byPID[num(h["pid"])]++
			total++
		}
	}
	return byPID, total
}

func (a *attachRun) checkSummary(t *testing.T) map[string]any {
	t.Helper()
	s := a.summary(t)
	for _, k := range []string{"unknown", "lost", "undecoded", "unresolved"} {
		if num(s[k]) != 0 {
			t.Errorf("summary %s = %v, want 0 (%v)", k, s[k], s)
		}
	}
	return s
}

func TestDefaultScopeRunningBeforeAttach(t *testing.T) {
	for _, threads := range []string{"1", "4"} {
		t.Run("threads="+threads, func(t *testing.T) {
			dir := kernelTest(t)
			bin := targets.Build(t, dir, "counter-pie")
			target := targets.Start(t, bin, "4000", threads)
			a := startAttach(t, bin+":fn i=arg1:s64")
			ready := a.waitReady(t)
			if num(ready["processes"]) != 1 {
				t.Errorf("ready found %v processes, want the 1 running target", ready["processes"])
			}
			calls := target.Go(t)
			a.stop(t)
			if byPID, total := a.hitsBy(nil); total != calls || byPID[int64(target.PID)] != calls {
				t.Fatalf("hits %d (%v), calls %d", total, byPID, calls)
			}
			a.checkSummary(t)
		})
	}
}

// TestForkStorm: 200 children, each calling fn from its first instruction
// after fork, with the parent exec'd after attach (default scope), or
// running before attach and followed (--pid --follow).
func TestForkStorm(t *testing.T) {
	cases := []struct {
		name   string
		before bool // the target runs before attach
		flags  func(pid int) []string
	}{
		{"exec after attach, every mapper", false, func(int) []string { return nil }},
		{"running before attach, every mapper", true, func(int) []string { return nil }},
		{"--pid --follow", true, func(pid int) []string { return []string{"--pid", fmt.Sprint(pid), "--follow"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := kernelTest(t)
			bin := targets.Build(t, dir, "forker")
			var target *targets.Process
			pid := 0
			if tc.before {
				target = targets.Start(t, bin, "200", "50")
				pid = target.PID
			}
			a := startAttach(t, append(tc.flags(pid), bin+":fn i=arg1:s64")...)
			a.waitReady(t)
			if !tc.before {
				target = targets.Start(t, bin, "200", "50")
			}
			calls := target.Go(t)
			a.stop(t)
			byPID, total := a.hitsBy(nil)
			if total != calls {
				t.Fatalf("hits %d, calls %d", total, calls)
			}
			if len(byPID) != 201 {
				t.Errorf("hits from %d processes, want 201 (parent + 200 children)", len(byPID))
			}
			s := a.checkSummary(t)
			if num(s["tracked"]) != 0 {
				t.Errorf("%v processes still tracked after they all exited", s["tracked"])
			}
		})
	}
}

// TestDlopenAfterAttach: a library nobody maps at attach, loaded later.
func TestDlopenAfterAttach(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "dlopener")
	lib := targets.LibPath(dir, "libcounter.so")
	a := startAttach(t, lib+":lib_fn x=arg1:s64")
	a.waitReady(t)
	target := targets.Start(t, bin, lib, "3000")
	calls := target.Go(t)
	a.stop(t)
	if _, total := a.hitsBy(nil); total != calls {
		t.Fatalf("hits %d, calls %d", total, calls)
	}
	a.checkSummary(t)
}

// TestRunCommand: run -- CMD traces the command from its first instruction,
// and its children. Five runs: without uprobectl's all-task hold on the
// breakpoint, one run in five lost a child's hits (the kernel removed its
// breakpoint; perf record -- cmd does the same).
func TestRunCommand(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "forker")
	for run := 0; run < 5; run++ {
		runForker(t, dir, bin)
	}
}

func runForker(t *testing.T, dir, bin string) {
	t.Helper()
	out := filepath.Join(dir, "hits.json")
	cmd := exec.Command(binary, "run", "--json", "--output", out, bin+":fn i=arg1:s64", "--", bin, "50", "100")
	cmd.Stdin = strings.NewReader("go\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	calls := -1
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "calls "); ok {
			calls, _ = strconv.Atoi(rest)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	hits := strings.Count(string(b), `"type":"hit"`)
	if calls != 5100 || hits != calls {
		t.Fatalf("hits %d, calls %d (want 5100)\n%s", hits, calls, stderr.String())
	}
	if !strings.Contains(string(b), `"unknown":0`) {
		t.Errorf("summary: %s", b[strings.LastIndex(string(b), "{"):])
	}
}

// TestSystemTapCase: a process busy calling two probed functions of a
// library is attached while running, another starts after attach; both
// probes keep firing in both for the whole run (nothing is disarmed).
func TestSystemTapCase(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "busy")
	lib := targets.LibPath(dir, "libcounter2.so")
	early := targets.Start(t, bin, "50000") // busy before attach
	// Two processes calling in tight loops on two CPUs leave the reader
	// little CPU: rings big enough for the whole run, so nothing is lost.
	a := startAttach(t, "--buffer-pages", "16384", lib+":lib_a x=arg1:s64", lib+":lib_b x=arg1:s64")
	a.waitReady(t)
	late := targets.Start(t, bin, "50000") // busy after attach
	early.GoNoWait(t)
	late.GoNoWait(t)
	callsEarly, callsLate := early.Wait(t), late.Wait(t)
	a.stop(t)
	counted := func(h map[string]any) bool { return num(h["args"].(map[string]any)["x"]) >= 0 }
	byPID, _ := a.hitsBy(counted)
	if byPID[int64(early.PID)] != callsEarly || byPID[int64(late.PID)] != callsLate {
		t.Fatalf("counted hits early %d/%d, late %d/%d", byPID[int64(early.PID)], callsEarly, byPID[int64(late.PID)], callsLate)
	}
	perProbe := map[string]int{}
	for _, h := range a.ofType("hit") {
		if counted(h) {
			perProbe[fmt.Sprint(h["pid"], h["symbol"])]++
		}
	}
	for _, p := range []*targets.Process{early, late} {
		for _, sym := range []string{"lib_a", "lib_b"} {
			if n := perProbe[fmt.Sprint(p.PID, sym)]; n != 50000 {
				t.Errorf("pid %d %s: %d hits, want 50000", p.PID, sym, n)
			}
		}
	}
	a.checkSummary(t)
}

// TestManyShortLivedProcesses: 1000 processes come and go during one
// attach; the table, fds and threads of uprobectl return to their baseline.
func TestManyShortLivedProcesses(t *testing.T) {
	dir := kernelTest(t)
	counter := targets.Build(t, dir, "counter-pie")
	spawner := targets.Build(t, dir, "spawner")
	a := startAttach(t, "--stats-interval", "200ms", counter+":fn")
	a.waitReady(t)
	baseline := a.waitFor(t, "stats", nil)
	run := targets.Start(t, spawner, "1000", counter, "3")
	calls := run.Go(t)
	after := a.waitFor(t, "stats", func(s map[string]any) bool { return num(s["processes"]) >= 1000 && num(s["tracked"]) == 0 })
	a.stop(t)
	if _, total := a.hitsBy(nil); total != calls || calls != 3000 {
		t.Fatalf("hits %d, calls %d (want 3000)", total, calls)
	}
	t.Logf("before: tracked %v, fds %v, goroutines %v; after 1000 processes: tracked %v, fds %v, goroutines %v, processes seen %v",
		baseline["tracked"], baseline["fds"], baseline["goroutines"], after["tracked"], after["fds"], after["goroutines"], after["processes"])
	if num(after["fds"]) > num(baseline["fds"])+2 || num(after["goroutines"]) > num(baseline["goroutines"])+2 {
		t.Errorf("resources grew: before %v, after %v", baseline, after)
	}
	if s := a.checkSummary(t); num(s["processes"]) < 1000 {
		t.Errorf("summary saw %v processes, want >= 1000", s["processes"])
	}
}

// TestLibraryReplacedByRename: a package upgrade renames a new inode over
// the library while attached; processes on the old inode and on the new one
// are both traced.
func TestLibraryReplacedByRename(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "uselib")
	lib := targets.LibPath(dir, "libcounter.so")
	old := targets.Start(t, bin, "2000")
	a := startAttach(t, lib+":lib_fn x=arg1:s64")
	a.waitReady(t)
	targets.CopyFile(t, lib, lib) // a new inode renamed over the path
	a.waitFor(t, "rearmed", nil)
	fresh := targets.Start(t, bin, "3000")
	old.GoNoWait(t)
	fresh.GoNoWait(t)
	callsOld, callsNew := old.Wait(t), fresh.Wait(t)
	a.stop(t)
	byPID, _ := a.hitsBy(nil)
	if byPID[int64(old.PID)] != callsOld || byPID[int64(fresh.PID)] != callsNew {
		t.Fatalf("old inode: %d hits / %d calls; new inode: %d hits / %d calls",
			byPID[int64(old.PID)], callsOld, byPID[int64(fresh.PID)], callsNew)
	}
	a.checkSummary(t)
}

// TestCommScope: --comm keeps one command name among processes that map
// the same file.
func TestCommScope(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	other := filepath.Join(dir, "other-name")
	if err := os.Link(bin, other); err != nil { // same inode, other comm
		t.Fatal(err)
	}
	wanted := targets.Start(t, bin, "1000")
	unwanted := targets.Start(t, other, "700")
	a := startAttach(t, "--comm", "counter-pie", bin+":fn")
	a.waitReady(t)
	wanted.GoNoWait(t)
	unwanted.GoNoWait(t)
	calls := wanted.Wait(t)
	unwanted.Wait(t)
	a.stop(t)
	byPID, total := a.hitsBy(nil)
	if total != calls || byPID[int64(wanted.PID)] != calls {
		t.Fatalf("hits %v, want %d from pid %d only", byPID, calls, wanted.PID)
	}
	if s := a.checkSummary(t); num(s["filtered"]) != 700 {
		t.Errorf("filtered %v, want the other process's 700", s["filtered"])
	}
}
