// Tests of the example scripts (malloc-free-by-process, func-latency,
// lock-holders) on real uprobes: each runs against a C target from
// testdata/targets that counts its own calls, and the numbers the script
// prints are compared with the target's. The scripts find uprobectl through
// $UPROBECTL, built once by TestMain. Kernel tests share tracefs: run them
// with go test -p 1, as scripts/test does.
package scripts

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
)

var uprobectlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scripts-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	uprobectlBin = filepath.Join(dir, "uprobectl")
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.Command(goCmd, "build", "-o", uprobectlBin, "../cmd/uprobectl").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build uprobectl: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTools: the kernel (root, tracefs) and jq, which the scripts use.
func requireTools(t *testing.T) {
	t.Helper()
	targets.RequireKernel(t)
	targets.NeedTool(t, "jq", "jq")
}

// buildC compiles testdata/targets/NAME.c into a temporary directory.
func buildC(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	src := filepath.Join(targets.Source(), name+".c")
	if b, err := exec.Command("gcc", "-O0", "-pthread", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// --- uprobe_events: nothing of our runs may remain ---

func readEvents(t *testing.T) []string {
	t.Helper()
	var err error
	for _, p := range []string{"/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"} {
		var b []byte
		if b, err = os.ReadFile(p); err == nil {
			return strings.Split(strings.TrimSpace(string(b)), "\n")
		}
	}
	t.Fatalf("read uprobe_events: %v", err)
	return nil
}

// checkEvents snapshots uprobe_events and, when the test ends, checks that
// no event of the groups our runs used remains. Other tests may be using
// tracefs at the same time, so foreign lines may come and go: they are
// only logged.
func checkEvents(t *testing.T, groups *[]string) {
	t.Helper()
	before := readEvents(t)
	t.Cleanup(func() {
		after := readEvents(t)
		old := map[string]bool{}
		for _, l := range before {
			old[l] = true
		}
		for _, l := range after {
			for _, g := range *groups {
				if strings.Contains(l, ":"+g+"/") {
					t.Errorf("uprobe_events still holds an event of our run (group %s): %s", g, l)
				}
			}
			if l != "" && !old[l] {
				t.Logf("foreign uprobe_events line appeared meanwhile: %s", l)
			}
		}
	})
}

// --- targets ---

// target is a C target: it prints "ready PID", waits for a line on stdin,
// works, prints "KEY VALUE" lines.
type target struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	pid   int
}

func startTarget(t *testing.T, path string, args ...string) *target {
	t.Helper()
	cmd := exec.Command(path, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &target{cmd: cmd, stdin: stdin, lines: make(chan string, 64), pid: cmd.Process.Pid}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tg.lines <- sc.Text()
		}
		close(tg.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	select {
	case l := <-tg.lines:
		if !strings.HasPrefix(l, "ready ") {
			t.Fatalf("%s: expected its ready line, got %q", path, l)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not print its ready line", path)
	}
	return tg
}

// release writes the go line; with closeStdin the target exits once done.
func (tg *target) release(t *testing.T, closeStdin bool) {
	t.Helper()
	fmt.Fprintln(tg.stdin, "go")
	if closeStdin {
		tg.stdin.Close()
	}
}

// results reads "KEY VALUE" lines until the target prints its "calls" line.
func (tg *target) results(t *testing.T) map[string]string {
	t.Helper()
	res := map[string]string{}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-tg.lines:
			if !ok {
				t.Fatalf("target %d ended without its calls line (got %v)", tg.pid, res)
			}
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				res[l[:i]] = l[i+1:] // "mutex m1 0x…": key "mutex m1"
			}
			if strings.HasPrefix(l, "calls ") {
				return res
			}
		case <-deadline:
			t.Fatalf("target %d did not finish", tg.pid)
		}
	}
}

func (tg *target) exit(t *testing.T) {
	t.Helper()
	tg.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- tg.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("target %d: %v", tg.pid, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("target %d did not exit", tg.pid)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// --- running a script ---

// run is a script running in its own process group, as a shell runs a
// foreground job: SIGINT to the group is Ctrl-C.
type run struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	ready          chan string // the uprobectl group, once armed
	done           chan struct{}
	err            error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var groupRE = regexp.MustCompile(`\(uprobectl group (\S+)\); Ctrl-C to stop`)

func startScript(t *testing.T, env []string, script string, args ...string) *run {
	t.Helper()
	cmd := exec.Command("./"+script, args...)
	cmd.Env = append(append(os.Environ(), "UPROBECTL="+uprobectlBin), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &run{cmd: cmd, ready: make(chan string, 1), done: make(chan struct{})}
	cmd.Stdout = &r.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			r.stderr.Write([]byte(l + "\n"))
			if m := groupRE.FindStringSubmatch(l); m != nil {
				r.ready <- m[1]
			}
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default: // a failed test: stop it as Ctrl-C would, then for good
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-r.done
			}
		}
	})
	return r
}

// waitReady waits for the "…; Ctrl-C to stop" line and records the group.
func (r *run) waitReady(t *testing.T, groups *[]string) {
	t.Helper()
	select {
	case g := <-r.ready:
		*groups = append(*groups, g)
	case <-r.done:
		t.Fatalf("%s ended before tracing: %v\nstderr:\n%s", r.cmd.Path, r.err, r.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not arm its probes\nstderr:\n%s", r.cmd.Path, r.stderr.String())
	}
}

// wait waits for the script's end and returns its exit code.
func (r *run) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not end\nstderr:\n%s", r.cmd.Path, r.stderr.String())
	}
	t.Logf("%s %s:\n%s%s", r.cmd.Path, strings.Join(r.cmd.Args[1:], " "), r.stdout.String(), r.stderr.String())
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", r.cmd.Path, r.err)
	return -1
}

// --- usage, bad input ---

func TestUsageAndBadArguments(t *testing.T) {
	// These end before uprobectl starts; without root there is nothing to check.
	var groups []string
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err == nil {
			checkEvents(t, &groups)
		}
	}
	for _, c := range []struct {
		script string
		args   []string
		code   int
		want   string
	}{
		{"malloc-free-by-process", []string{"--help"}, 0, "usage: malloc-free-by-process [--pid PID]... [--duration D]"},
		{"func-latency", []string{"-h"}, 0, "usage: func-latency [--pid PID]... [--duration D] BINARY:FUNCTION"},
		{"lock-holders", []string{"--help"}, 0, "usage: lock-holders [--pid PID]... [--duration D] [LIB]"},
		{"malloc-free-by-process", []string{"--bogus"}, 2, "unknown option --bogus"},
		{"malloc-free-by-process", []string{"extra"}, 2, "unexpected argument"},
		{"malloc-free-by-process", []string{"--pid"}, 2, "--pid needs a PID"},
		{"func-latency", nil, 2, "which function?"},
		{"func-latency", []string{"libc.so.6"}, 2, "expected BINARY:FUNCTION"},
		{"func-latency", []string{"libc.so.6:mall*"}, 2, "one function name"},
		{"func-latency", []string{"libc.so.6:malloc%return"}, 2, "one function name"},
		{"func-latency", []string{"a:f", "b:g"}, 2, "one BINARY:FUNCTION only"},
		{"lock-holders", []string{"a.so", "b.so"}, 2, "one LIB only"},
	} {
		cmd := exec.Command("./"+c.script, c.args...)
		cmd.Env = append(os.Environ(), "UPROBECTL="+uprobectlBin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %v: %v", c.script, c.args, err)
		}
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%s %v: exit %d, want %d with %q; output:\n%s", c.script, c.args, code, c.code, c.want, out)
		}
	}
}

// uprobectl's refusals come through with its exit code; a missing
// uprobectl is an environment error (3).
func TestUprobectlExitCodePassedThrough(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	for _, c := range []struct {
		script string
		env    []string
		args   []string
		code   int
		want   string
	}{
		{"func-latency", nil, []string{"/nonexistent/prog:fn"}, 2, "/nonexistent/prog"},
		{"func-latency", nil, []string{"libc.so.6:no_such_function_here"}, 2, "no_such_function_here"},
		{"malloc-free-by-process", nil, []string{"--pid", "999999999"}, 2, "999999999"},
		{"lock-holders", nil, []string{"--duration", "1s", "no-such-lib.so.9"}, 2, "no-such-lib.so.9"},
		{"malloc-free-by-process", nil, []string{"--duration", "bogus"}, 2, "bogus"},
		{"lock-holders", []string{"UPROBECTL=/nonexistent/uprobectl"}, nil, 3, "/nonexistent/uprobectl"},
	} {
		r := startScript(t, c.env, c.script, c.args...)
		code := r.wait(t)
		if code != c.code || !strings.Contains(r.stderr.String(), c.want) {
			t.Errorf("%s %v: exit %d, want %d with %q in stderr:\n%s", c.script, c.args, code, c.code, c.want, r.stderr.String())
		}
		if r.stdout.String() != "" {
			t.Errorf("%s %v: printed on stdout: %q", c.script, c.args, r.stdout.String())
		}
	}
}

// --- malloc-free-by-process ---

type mallocRow struct {
	comm                   string
	mallocs, frees, bytes_ int64
}

// parseMallocTable: PID COMM MALLOCS FREES BYTES, COMM possibly with spaces.
func parseMallocTable(t *testing.T, out string) map[int]mallocRow {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "PID COMM MALLOCS FREES BYTES" {
		t.Fatalf("no table header in:\n%s", out)
	}
	rows := map[int]mallocRow{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Fatalf("bad row %q", l)
		}
		n := len(f)
		rows[int(atoi(t, f[0]))] = mallocRow{strings.Join(f[1:n-3], " "), atoi(t, f[n-3]), atoi(t, f[n-2]), atoi(t, f[n-1])}
	}
	return rows
}

func checkMallocRow(t *testing.T, rows map[int]mallocRow, tg *target, res map[string]string) {
	t.Helper()
	got, ok := rows[tg.pid]
	if !ok {
		t.Errorf("no row for target %d", tg.pid)
		return
	}
	want := mallocRow{"mallocs", atoi(t, res["mallocs"]), atoi(t, res["frees"]), atoi(t, res["bytes"])}
	if got != want {
		t.Errorf("target %d: row %+v, want %+v (the target's own counts)", tg.pid, got, want)
	}
}

func TestMallocFreeByProcess(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "mallocs")
	tg := startTarget(t, bin, "3001", "24", "4096", "100000", "7")
	r := startScript(t, nil, "malloc-free-by-process", "--pid", strconv.Itoa(tg.pid))
	r.waitReady(t, &groups)
	tg.release(t, true)
	res := tg.results(t)
	// The target exits: with --pid, uprobectl ends and the table comes.
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows := parseMallocTable(t, r.stdout.String())
	checkMallocRow(t, rows, tg, res)
	if len(rows) != 1 {
		t.Errorf("rows for other processes than the target: %v", rows)
	}
	if res["mallocs"] != "3001" || res["frees"] != "1501" {
		t.Fatalf("target counted %v", res)
	}
}

// Output redirected to a file, appended to, with stderr: nothing already
// there is lost, and the ready line and the table both land in it.
func TestOutputAppendedToAFile(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "mallocs")
	tg := startTarget(t, bin, "100", "10")
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./malloc-free-by-process", "--pid", strconv.Itoa(tg.pid))
	cmd.Env = append(os.Environ(), "UPROBECTL="+uprobectlBin)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			<-done
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if m := groupRE.FindSubmatch(b); m != nil {
			groups = append(groups, string(m[1]))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready line in the file:\n%s", b)
		}
	}
	tg.release(t, true)
	res := tg.results(t)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("exit: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the script did not end")
	}
	b, _ := os.ReadFile(path)
	out := string(b)
	t.Logf("the file:\n%s", out)
	if !strings.HasPrefix(out, "earlier line\n") || !strings.Contains(out, "Ctrl-C to stop\n") {
		t.Errorf("the file lost what was in it, or the ready line:\n%s", out)
	}
	i := strings.Index(out, "PID ")
	if i < 0 {
		t.Fatalf("no table in the file:\n%s", out)
	}
	checkMallocRow(t, parseMallocTable(t, out[i:]), tg, res)
}

// Without --pid every process mapping libc is traced, the script's own jq
// and awk included; they run from private copies, so their calls, made for
// each hit they read, are not hits again. Two targets, one row each, and no
// row for any process of the script's, however short-lived (a mkfifo run
// while tracing was one): the fork log knows them all.
func TestMallocFreeByProcessEveryProcess(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "mallocs")
	a := startTarget(t, bin, "2000", "64", "1000")
	b := startTarget(t, bin, "777", "300000")
	libc := mappedInode(t, a.pid, "libc.so.6") // the file probed, as mapped
	forks := startForkLog(t)
	r := startScript(t, nil, "malloc-free-by-process", "--duration", "3s")
	r.waitReady(t, &groups)
	a.release(t, true)
	b.release(t, true)
	// Under the script: uprobectl, then, soon after the ready line, jq and
	// awk, which must run from copies of the loader and libraries: libc's
	// inode, where the probes are, is not mapped in them.
	polled := map[int]bool{}
	private := map[int]bool{}
	for end := time.Now().Add(3 * time.Second); len(private) < 2 && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for pid := range descendants(r.cmd.Process.Pid) {
			polled[pid] = true
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if !bytes.Contains(cmdline, []byte("--library-path")) || private[pid] {
				continue
			}
			private[pid] = true
			if maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err == nil && inodeMapped(maps, libc) {
				t.Errorf("process %d (%q) maps the probed libc", pid, cmdline)
			}
		}
	}
	if len(private) < 2 {
		t.Errorf("processes under the script: %v; %d of them run jq or awk from private copies, want 2", polled, len(private))
	}
	resA, resB := a.results(t), b.results(t)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows := parseMallocTable(t, r.stdout.String())
	checkMallocRow(t, rows, a, resA)
	checkMallocRow(t, rows, b, resB)
	ours := forks.under(t, r.cmd.Process.Pid, polled)
	for pid, row := range rows {
		if ours[pid] {
			t.Errorf("the script traced itself: PID %d %+v", pid, row)
		}
	}
}

// forkLog records every fork and clone on the machine, from the
// sched_process_fork trace event in a tracefs instance of our own (its own
// buffer: the top-level one is left to others): which processes ran under a
// script, even those that lived a millisecond, which polling /proc misses.
type forkLog struct{ dir string }

func startForkLog(t *testing.T) *forkLog {
	t.Helper()
	var root string
	for _, p := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(p, "instances")); err == nil {
			root = p
			break
		}
	}
	if root == "" {
		t.Fatal("no tracefs instances directory: cannot log forks")
	}
	f := &forkLog{filepath.Join(root, "instances", fmt.Sprintf("uprobectl-scripts-test-%d", os.Getpid()))}
	os.Remove(f.dir) // left by a run that was killed
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		t.Fatalf("tracefs instance: %v", err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(f.dir, "events/sched/sched_process_fork/enable"), []byte("0"), 0)
		if err := os.Remove(f.dir); err != nil {
			t.Errorf("remove tracefs instance: %v", err)
		}
	})
	for _, w := range [][2]string{
		{"buffer_size_kb", "8192"}, // per CPU: some 100 000 forks
		{"events/sched/sched_process_fork/enable", "1"},
	} {
		if err := os.WriteFile(filepath.Join(f.dir, w[0]), []byte(w[1]), 0); err != nil {
			t.Fatalf("fork log: write %s: %v", w[0], err)
		}
	}
	return f
}

var (
	forkRE    = regexp.MustCompile(`sched_process_fork: comm=.* pid=(\d+) child_comm=.* child_pid=(\d+)$`)
	entriesRE = regexp.MustCompile(`(?m)^# entries-in-buffer/entries-written: (\d+)/(\d+)`)
)

// under stops the log and returns pid and every process and thread forked
// under it since the log started. seen are processes known to have been
// under pid: a log that misses one of them is broken, and so is one that
// lost events.
func (f *forkLog) under(t *testing.T, pid int, seen map[int]bool) map[int]bool {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "events/sched/sched_process_fork/enable"), []byte("0"), 0); err != nil {
		t.Fatalf("fork log: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "trace"))
	if err != nil {
		t.Fatalf("fork log: %v", err)
	}
	m := entriesRE.FindSubmatch(b)
	if m == nil || string(m[1]) != string(m[2]) {
		t.Fatalf("the fork log lost events (or has no header): %q", m)
	}
	children := map[int][]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := forkRE.FindStringSubmatch(l); m != nil {
			parent, _ := strconv.Atoi(m[1])
			child, _ := strconv.Atoi(m[2])
			children[parent] = append(children[parent], child)
		}
	}
	all := map[int]bool{pid: true}
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, c := range children[p] {
			if !all[c] {
				all[c] = true
				todo = append(todo, c)
			}
		}
	}
	for p := range seen {
		if !all[p] {
			t.Fatalf("the fork log missed process %d under %d (it has %v)", p, pid, all)
		}
	}
	return all
}

// mappedInode: the inode of the file named NAME that pid maps.
func mappedInode(t *testing.T, pid int, name string) string {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(l); len(f) == 6 && filepath.Base(f[5]) == name {
			return f[3] + " " + f[4] // device and inode
		}
	}
	t.Fatalf("process %d does not map %s", pid, name)
	return ""
}

func inodeMapped(maps []byte, devInode string) bool {
	for _, l := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(l); len(f) >= 6 && f[3]+" "+f[4] == devInode {
			return true
		}
	}
	return false
}

// descendants: the processes under pid now (from /proc/*/stat).
func descendants(pid int) map[int]bool {
	parent := map[int]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	under := map[int]bool{}
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				under[p] = true
				break
			}
		}
	}
	return under
}

// --- func-latency ---

// histogram: func-latency's output, buckets in nanoseconds, the count line's
// times in microseconds.
type histogram struct {
	buckets             map[string]int64
	order               []string
	count               int64
	minUs, avgUs, maxUs float64
}

var (
	bucketRE = regexp.MustCompile(`^(\[[^\]]*[\])])\s+(\d+) \|[@ ]*\|$`)
	statsRE  = regexp.MustCompile(`^count (\d+), min ([0-9.]+) us, avg ([0-9.]+) us, max ([0-9.]+) us$`)
)

func parseHistogram(t *testing.T, out string) histogram {
	t.Helper()
	h := histogram{buckets: map[string]int64{}, count: -1}
	for _, l := range strings.Split(out, "\n") {
		if m := bucketRE.FindStringSubmatch(l); m != nil {
			h.buckets[m[1]] = atoi(t, m[2])
			h.order = append(h.order, m[1])
		} else if m := statsRE.FindStringSubmatch(l); m != nil {
			h.count = atoi(t, m[1])
			h.minUs, _ = strconv.ParseFloat(m[2], 64)
			h.avgUs, _ = strconv.ParseFloat(m[3], 64)
			h.maxUs, _ = strconv.ParseFloat(m[4], 64)
		}
	}
	if h.count < 0 {
		t.Fatalf("no count line in:\n%s", out)
	}
	return h
}

// sleeper: two threads, the second USEC/2 late, each calling recurse(DEPTH)
// N times; every call of recurse, at every depth, lasts USEC and a little
// more. Pairing across threads would give shorter times, pairing without a
// stack (one slot per thread) would time only the innermost calls.
func TestFuncLatency(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "sleeper")
	const usec = 2200 // [2M, 4M) ns with room for a busy machine's late wake-ups
	tg := startTarget(t, bin, "15", "3", strconv.Itoa(usec))
	r := startScript(t, nil, "func-latency", "--pid", strconv.Itoa(tg.pid), bin+":recurse")
	r.waitReady(t, &groups)
	tg.release(t, true)
	calls := atoi(t, tg.results(t)["calls"])
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if calls != 2*15*4 {
		t.Fatalf("target counted %d calls", calls)
	}
	h := parseHistogram(t, r.stdout.String())
	if h.count != calls {
		t.Errorf("count %d, want the target's %d calls", h.count, calls)
	}
	var sum int64
	for _, c := range h.buckets {
		sum += c
	}
	if sum != h.count {
		t.Errorf("the histogram holds %d calls, the count line %d", sum, h.count)
	}
	// usleep(2200) lasts at least 2200 us, so no call can be below [2M, 4M)
	// ns (2097 to 4194 us), and most are in it: a late wake-up on a busy
	// machine moves a few up.
	if h.minUs < usec {
		t.Errorf("min %.3f us < %d us: entries and returns mispaired", h.minUs, usec)
	}
	if in := h.buckets["[2M, 4M)"]; in < calls*3/4 {
		t.Errorf("[2M, 4M) holds %d of %d calls", in, calls)
	}
	if len(h.order) == 0 || h.order[0] != "[2M, 4M)" {
		t.Errorf("buckets %v, want [2M, 4M) first", h.order)
	}
	if !strings.Contains(r.stdout.String(), "latency of "+bin+":recurse, nanoseconds:\n") {
		t.Errorf("no header line for %s:recurse", bin)
	}
	if strings.Contains(r.stderr.String(), "without a traced") {
		t.Errorf("unpaired calls reported:\n%s", r.stderr.String())
	}
}

// Beyond 64 nested calls the kernel reports no return: those entries are
// dropped (by stack pointer) without shifting the pairing of the others,
// and every call is either timed or reported.
func TestFuncLatencyDeepRecursion(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "sleeper")
	tg := startTarget(t, bin, "2", "79", "2000")
	r := startScript(t, nil, "func-latency", "--pid", strconv.Itoa(tg.pid), bin+":recurse")
	r.waitReady(t, &groups)
	tg.release(t, true)
	calls := atoi(t, tg.results(t)["calls"])
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	h := parseHistogram(t, r.stdout.String())
	var dropped int64
	if m := regexp.MustCompile(`(\d+) call\(s\) without a traced return`).FindStringSubmatch(r.stderr.String()); m != nil {
		dropped = atoi(t, m[1])
	}
	if h.count+dropped != calls || h.count == 0 {
		t.Errorf("timed %d + reported %d != %d calls", h.count, dropped, calls)
	}
	if h.minUs < 2000 {
		t.Errorf("min %.3f us < 2000 us: entries and returns mispaired", h.minUs)
	}
}

// SIGTERM to the script alone (not its group) goes to uprobectl as SIGINT:
// it ends cleanly, the histogram of what was seen comes out, exit 0.
func TestFuncLatencySIGTERM(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "sleeper")
	tg := startTarget(t, bin, "100000", "0", "1000")
	r := startScript(t, nil, "func-latency", "--pid", strconv.Itoa(tg.pid), bin+":recurse")
	r.waitReady(t, &groups)
	tg.release(t, true)
	time.Sleep(500 * time.Millisecond)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	h := parseHistogram(t, r.stdout.String())
	if h.count < 10 || h.minUs < 1000 {
		t.Errorf("count %d, min %.3f us: want some calls of at least 1000 us", h.count, h.minUs)
	}
	if err := syscall.Kill(tg.pid, 0); err != nil {
		t.Errorf("the target is gone: tracing should have ended on SIGTERM, not on its exit")
	}
}

// --- lock-holders ---

type lockRow struct {
	comm  string
	calls int64
	stack []string // the first stack's frames, innermost first
}

var (
	lockRowRE   = regexp.MustCompile(`^(\d+)\s+(.*?)\s+(0x[0-9a-f]+)\s+(\d+)$`)
	lockFrameRE = regexp.MustCompile(`^    (\S.*)$`)
)

// parseLockTable: PID COMM LOCK CALLS rows, each followed by its stack's
// frames, indented; rows by PID and LOCK.
func parseLockTable(t *testing.T, out string) map[int]map[string]*lockRow {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "PID COMM LOCK CALLS" {
		t.Fatalf("no table header in:\n%s", out)
	}
	rows := map[int]map[string]*lockRow{}
	var last *lockRow
	for _, l := range lines[1:] {
		if m := lockFrameRE.FindStringSubmatch(l); m != nil && last != nil {
			last.stack = append(last.stack, m[1])
			continue
		}
		m := lockRowRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("bad line %q", l)
		}
		pid := int(atoi(t, m[1]))
		if rows[pid] == nil {
			rows[pid] = map[string]*lockRow{}
		}
		if rows[pid][m[3]] != nil {
			t.Errorf("two rows for process %d, lock %s", pid, m[3])
		}
		last = &lockRow{comm: m[2], calls: atoi(t, m[4])}
		rows[pid][m[3]] = last
	}
	return rows
}

var (
	probedFrameRE = regexp.MustCompile(`^pthread_mutex_lock\+0x0 \(libc\.so\.6\)$`)
	lockerFrameRE = regexp.MustCompile(`^(\w+)\+0x[0-9a-f]+ \(locker\)$`)
)

// locker: main locks m1 and m2 once each from first_site(), then two threads
// lock them N1+N3 and N2 more times from other functions. Ctrl-C (SIGINT to
// the script's process group) ends the run while the target still lives.
func TestLockHolders(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "locker")
	tg := startTarget(t, bin, "1000", "500", "700")
	r := startScript(t, nil, "lock-holders", "--pid", strconv.Itoa(tg.pid))
	r.waitReady(t, &groups)
	tg.release(t, false)
	res := tg.results(t)
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	tg.exit(t)

	rows := parseLockTable(t, r.stdout.String())
	for pid := range rows {
		if pid != tg.pid {
			t.Errorf("rows of another process, %d: %v", pid, rows[pid])
		}
	}
	for _, name := range []string{"m1", "m2"} {
		addr := res["mutex "+name]
		got, ok := rows[tg.pid][addr]
		if !ok {
			t.Errorf("no row for %s (%s)", name, addr)
			continue
		}
		if want := atoi(t, res["locks "+name]); got.calls != want || got.comm != "locker" {
			t.Errorf("%s: %d calls by %s, want %d calls by locker", name, got.calls, got.comm, want)
		}
		// The first call is first_site's, from main: the first stack is
		// theirs, never the workers'. Frame 0 is the probed function, then
		// its caller first_site (put back by uprobectl where the kernel's
		// frame-pointer walk from a function's entry skips it), then main.
		if len(got.stack) == 0 || !probedFrameRE.MatchString(got.stack[0]) {
			t.Errorf("%s: stack %q, want pthread_mutex_lock+0x0 (libc.so.6) first", name, got.stack)
			continue
		}
		var callers []string
		for _, f := range got.stack[1:] {
			if m := lockerFrameRE.FindStringSubmatch(f); m != nil {
				callers = append(callers, m[1])
			}
		}
		if len(callers) < 2 || callers[0] != "first_site" || callers[1] != "main" || !lockerFrameRE.MatchString(got.stack[1]) {
			t.Errorf("%s: the locker frames of the first stack are %q, want first_site (frame 1) then main: %q", name, callers, got.stack)
		}
	}
	// first_site locks m1 and m2 from two call sites.
	if a, b := rows[tg.pid][res["mutex m1"]], rows[tg.pid][res["mutex m2"]]; a != nil && b != nil && len(a.stack) > 1 && len(b.stack) > 1 && a.stack[1] == b.stack[1] {
		t.Errorf("m1 and m2 have the same first caller %q: they are locked from two call sites", a.stack[1])
	}
}

// Without --pid: every process that maps libc, the script's own included;
// the target's rows are right and none is the script's (a mkfifo run while
// tracing was one).
func TestLockHoldersEveryProcess(t *testing.T) {
	requireTools(t)
	var groups []string
	checkEvents(t, &groups)
	bin := buildC(t, "locker")
	tg := startTarget(t, bin, "300", "200", "100")
	forks := startForkLog(t)
	r := startScript(t, nil, "lock-holders", "--duration", "3s")
	r.waitReady(t, &groups)
	polled := descendants(r.cmd.Process.Pid) // uprobectl at least
	tg.release(t, false)
	res := tg.results(t)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	tg.exit(t)
	ours := forks.under(t, r.cmd.Process.Pid, polled)
	rows := parseLockTable(t, r.stdout.String())
	for pid := range rows {
		if ours[pid] {
			t.Errorf("the script traced itself: process %d", pid)
		}
	}
	for _, name := range []string{"m1", "m2"} {
		var got int64
		if row := rows[tg.pid][res["mutex "+name]]; row != nil {
			got = row.calls
		}
		if want := atoi(t, res["locks "+name]); got != want {
			t.Errorf("%s: %d calls, want %d", name, got, want)
		}
	}
}

// The code common to the scripts is in lib.sh, which each sources from its
// own directory: what is fixed there (never tracing itself) is fixed in all.
// None keeps a copy of it.
func TestCommonCodeInLib(t *testing.T) {
	const source = `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"` + "\n"
	lib, err := os.ReadFile("lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"malloc-free-by-process", "func-latency", "lock-holders"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, "\n"+source) {
			t.Errorf("%s does not source lib.sh: no line %q", name, source)
		}
		if strings.Contains(s, "# ---- common to the uprobectl example scripts") {
			t.Errorf("%s still holds the common block", name)
		}
		for _, fn := range regexp.MustCompile(`(?m)^(\w+)\(\) \{`).FindAllStringSubmatch(string(lib), -1) {
			if strings.Contains(s, "\n"+fn[0]) {
				t.Errorf("%s defines %s again: it is lib.sh's", name, fn[1])
			}
		}
	}
}
