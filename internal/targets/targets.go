// Package targets builds and runs the C test targets under
// testdata/targets: small programs that call a function a known number of
// times and print the count themselves. That count is the ground truth the
// kernel tests compare hits with.
package targets

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/tracefs"
)

// RequireKernel skips a test that needs root and a working tracefs with
// uprobes, unless UPROBECTL_REQUIRE_KERNEL=1 (set by CI), where it fails:
// a kernel test that cannot run there is a failure, not a skip.
func RequireKernel(t testing.TB) {
	t.Helper()
	reason := ""
	switch {
	case os.Geteuid() != 0:
		reason = "needs root"
	case !hasUprobeEvents():
		reason = "needs tracefs with uprobe_events (mount -t tracefs nodev /sys/kernel/tracing)"
	}
	if reason == "" {
		return
	}
	if os.Getenv("UPROBECTL_REQUIRE_KERNEL") == "1" {
		t.Fatalf("kernel test cannot run: %s (UPROBECTL_REQUIRE_KERNEL=1)", reason)
	}
	t.Skip(reason)
}

// Missing skips a kernel test for want of a tool, or fails it when kernel
// tests are required (UPROBECTL_REQUIRE_KERNEL=1): scripts/setup installs
// what the tests need, so in CI a missing tool is a failure.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("UPROBECTL_REQUIRE_KERNEL") == "1" {
		t.Fatalf("%s is missing (UPROBECTL_REQUIRE_KERNEL=1; scripts/setup installs it)", what)
	}
	t.Skipf("%s is missing", what)
}

// NeedTool returns the path of a command a kernel test runs; without it,
// the test is Missing it (pkg names the Debian package, which scripts/setup
// installs).
func NeedTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		Missing(t, fmt.Sprintf("%s (%s)", tool, pkg))
	}
	return path
}

func hasUprobeEvents() bool {
	for _, p := range []string{"/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	// Not mounted yet: the tool mounts it itself, so only the kernel's
	// support matters.
	b, _ := os.ReadFile("/proc/filesystems")
	return strings.Contains(string(b), "tracefs")
}

// Source returns the directory of the C sources.
func Source() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "targets")
}

// Build compiles the target variant into dir and returns the executable:
//
//	counter-pie, counter-nopie, counter-stripped (dynsym only), uselib (+ libcounter.so), mallocer,
//	forker (PIE, -rdynamic), dlopener (+ libcounter.so, not linked: pass
//	LibPath(dir, "libcounter.so") as its first argument), busy (+ libcounter2.so,
//	linked with an rpath to dir), spawner, zombie
func Build(t testing.TB, dir, variant string) string {
	t.Helper()
	src := Source()
	out := filepath.Join(dir, variant)
	var cmds [][]string
	switch variant {
	case "counter-pie":
		cmds = [][]string{{"gcc", "-O0", "-pie", "-fPIE", "-pthread", "-o", out, filepath.Join(src, "counter.c")}}
	case "counter-nopie":
		cmds = [][]string{{"gcc", "-O0", "-no-pie", "-fno-pie", "-pthread", "-o", out, filepath.Join(src, "counter.c")}}
	case "counter-stripped":
		cmds = [][]string{
			{"gcc", "-O0", "-rdynamic", "-pthread", "-o", out, filepath.Join(src, "counter.c")},
			{"strip", "--strip-all", out},
		}
	case "uselib":
		lib := filepath.Join(dir, "libcounter.so")
		cmds = [][]string{
			{"gcc", "-O0", "-shared", "-fPIC", "-o", lib, filepath.Join(src, "libcounter.c")},
			{"gcc", "-O0", "-o", out, filepath.Join(src, "uselib.c"), "-L" + dir, "-lcounter", "-Wl,-rpath," + dir},
		}
	case "mallocer":
		cmds = [][]string{{"gcc", "-O0", "-o", out, filepath.Join(src, "mallocer.c")}}
	case "forker":
		cmds = [][]string{{"gcc", "-O0", "-pie", "-fPIE", "-rdynamic", "-o", out, filepath.Join(src, "forker.c")}}
	case "dlopener":
		lib := filepath.Join(dir, "libcounter.so")
		cmds = [][]string{
			{"gcc", "-O0", "-shared", "-fPIC", "-o", lib, filepath.Join(src, "libcounter.c")},
			{"gcc", "-O0", "-o", out, filepath.Join(src, "dlopener.c"), "-ldl"},
		}
	case "busy":
		lib := filepath.Join(dir, "libcounter2.so")
		cmds = [][]string{
			{"gcc", "-O0", "-shared", "-fPIC", "-o", lib, filepath.Join(src, "libcounter2.c")},
			{"gcc", "-O0", "-pthread", "-o", out, filepath.Join(src, "busy.c"), "-L" + dir, "-lcounter2", "-Wl,-rpath," + dir},
		}
	case "spawner":
		cmds = [][]string{{"gcc", "-O0", "-o", out, filepath.Join(src, "spawner.c")}}
	case "zombie":
		cmds = [][]string{{"gcc", "-O0", "-o", out, filepath.Join(src, "zombie.c")}}
	case "swapper":
		cmds = [][]string{{"gcc", "-O0", "-o", out, filepath.Join(src, "swapper.c"), "-ldl"}}
	case "gotarget":
		// A Go program (gotarget/main.go, under testdata so the module's
		// go vet and go test skip it), built like a user's: optimized.
		cmds = [][]string{{"go", "build", "-o", out, filepath.Join(src, "gotarget", "main.go")}}
	case "cpptarget": // C++: namespaces, overloads, templates
		cmds = [][]string{{"g++", "-O0", "-o", out, filepath.Join(src, "cpptarget.cpp")}}
	case "stacks": // two call paths to leaf, with frame pointers
		cmds = [][]string{{"gcc", "-O0", "-fno-omit-frame-pointer", "-o", out, filepath.Join(src, "stacks.c")}}
	case "usdt": // SDT markers (<sys/sdt.h>, systemtap-sdt-dev)
		cmds = [][]string{{"gcc", "-O0", "-o", out, filepath.Join(src, "usdt.c")}}
	case "privlib": // a private copy of libm.so.6 in dir/libm-private, found through the RUNPATH
		priv := filepath.Join(dir, "libm-private")
		cmds = [][]string{{"mkdir", "-p", priv}, {"cp", "/usr/lib/x86_64-linux-gnu/libm.so.6", priv},
			{"gcc", "-O0", "-fno-builtin", "-o", out, filepath.Join(src, "privlib", "cbrtcaller.c"), "-L" + priv, "-lm", "-Wl,-rpath," + priv}}
	default:
		t.Fatalf("unknown target variant %q", variant)
	}
	for _, c := range cmds {
		if b, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, b)
		}
	}
	return out
}

// LibPath returns the path of a library Build put next to a variant in dir
// (libcounter.so for uselib and dlopener, libcounter2.so for busy).
func LibPath(dir, name string) string { return filepath.Join(dir, name) }

// CopyFile copies src to dst with src's permission bits, as a new file: a
// new inode with the same contents (dst is replaced if it exists).
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		t.Fatal(err)
	}
}

// Process is a running target waiting for its go line.
type Process struct {
	PID   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// Start runs the target and waits for its "ready PID" line.
func Start(t testing.TB, path string, args ...string) *Process {
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
		t.Fatalf("start %s: %v", path, err)
	}
	p := &Process{PID: cmd.Process.Pid, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	if !p.lines.Scan() || !strings.HasPrefix(p.lines.Text(), "ready ") {
		t.Fatalf("%s did not print its ready line: %q", path, p.lines.Text())
	}
	return p
}

// Go lets the target make its calls, waits for it to exit and returns the
// number of calls it counted itself: GoNoWait, then Wait.
func (p *Process) Go(t testing.TB) int {
	t.Helper()
	p.GoNoWait(t)
	return p.Wait(t)
}

// GoNoWait writes the go line to the target and closes its stdin, without
// waiting for it, so that a test can release several targets at once and
// then Wait for each.
func (p *Process) GoNoWait(t testing.TB) {
	t.Helper()
	fmt.Fprintln(p.stdin, "go")
	p.stdin.Close()
}

// Wait waits (up to 2 minutes) for a released target to exit, which must
// be with status 0, and returns the number of calls it printed.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	done := make(chan struct{})
	calls := -1
	go func() {
		defer close(done)
		for p.lines.Scan() {
			if rest, ok := strings.CutPrefix(p.lines.Text(), "calls "); ok {
				calls, _ = strconv.Atoi(rest)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("target %d did not finish", p.PID)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("target %d: %v", p.PID, err)
	}
	if calls < 0 {
		t.Fatalf("target %d printed no call count", p.PID)
	}
	return calls
}

// Line returns the next line the target prints (after its go line: a
// target that reports more than "calls N").
func (p *Process) Line(t testing.TB) string {
	t.Helper()
	if !p.lines.Scan() {
		t.Fatalf("target %d: no more output", p.PID)
	}
	return p.lines.Text()
}

// Release writes one more line to a target that waits for it.
func (p *Process) Release(t testing.TB) {
	t.Helper()
	fmt.Fprintln(p.stdin, "go")
}

// Signal sends sig to the target process (not to its children).
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// CheckEvents compares uprobe_events after a kernel test with before it.
// With UPROBECTL_EXACT_EVENTS=1 (CI: nothing else defines uprobes there)
// the whole file must be unchanged. Otherwise the machine may be shared —
// other tools, and other uprobectl runs, define and remove their own
// events while the tests run — so only what the test owns is checked: the
// canary line it wrote is intact, and no uprobectl group appeared whose
// owner is dead (a run of this test left its events behind).
func CheckEvents(t testing.TB, before, after, canary string) {
	t.Helper()
	if os.Getenv("UPROBECTL_EXACT_EVENTS") == "1" {
		if after != before {
			t.Errorf("uprobe_events changed:\nbefore:\n%safter:\n%s", before, after)
		}
		return
	}
	if canary != "" && !strings.Contains(after, canary+"\n") {
		t.Errorf("the canary line %q is gone from uprobe_events:\n%s", canary, after)
	}
	for _, line := range strings.Split(after, "\n") {
		if line == "" || strings.Contains(before, line+"\n") {
			continue
		}
		group, _, _ := strings.Cut(strings.TrimLeft(strings.Fields(line)[0], "pr:"), "/")
		if owner, ok := tracefs.ParseGroup(group); ok {
			if alive, known := owner.Alive(); known && !alive {
				t.Errorf("left behind in uprobe_events (owner %d is dead): %s", owner.PID, line)
			}
		}
	}
}
