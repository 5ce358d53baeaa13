package main

// What held under attack and must keep holding (issue 8, "Keep").

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// Twenty uprobectl runs on one function at once: each defines its own
// group, each counts every call exactly, and all of them clean up.
func TestTwentyConcurrentRunsExact(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	runs := make([]*attachRun, 20)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = startAttach(t, bin+":fn")
		}()
	}
	wg.Wait()
	groups := map[string]bool{}
	for _, a := range runs {
		groups[a.waitReady(t)["group"].(string)] = true
	}
	if len(groups) != len(runs) {
		t.Fatalf("%d runs share %d groups", len(runs), len(groups))
	}
	calls := targets.Start(t, bin, "20000", "2").Go(t)
	for i, a := range runs {
		a.stop(t)
		if _, hits := a.hitsBy(nil); hits != calls {
			t.Errorf("run %d: %d hits of %d calls", i, hits, calls)
		}
		a.checkSummary(t)
	}
	events := readUprobeEvents(t)
	for g := range groups {
		if strings.Contains(events, g+"/") {
			t.Errorf("group %s left behind", g)
		}
	}
}

// Without --metrics-addr nothing listens: a sidecar must not open a port
// nobody asked for.
func TestNothingListensWithoutMetrics(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	a := startAttach(t, bin+":fn")
	a.waitReady(t)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid), fd.Name()))
		if strings.HasPrefix(link, "socket:") {
			t.Errorf("fd %s is a socket (%s) without --metrics-addr", fd.Name(), link)
		}
	}
	a.stop(t)
}

// A traced program named to forge output — ESC sequences and a newline in
// its file name, hence in its comm and exe — cannot put a raw control
// character into text output or split a hit line in two.
func TestHostileNameCannotForgeTextOutput(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	// A hard link: the same inode (so the probe on bin fires), run under
	// a name no probe path may hold.
	hostile := filepath.Join(dir, "x\x1b[2J\nFAKE")
	if err := os.Link(bin, hostile); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "attach", bin+":fn")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "Ctrl-C") })
	calls := targets.Start(t, hostile, "50").Go(t)
	waitFor(t, func() bool { return strings.Count(stdout.String(), "\n") >= calls })
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if lines := strings.Count(stdout.String(), "\n"); lines != calls {
		t.Errorf("%d calls gave %d text lines", calls, lines)
	}
	if !strings.Contains(stdout.String(), `x\x1b[2J\nFAKE`) {
		t.Errorf("hit lines do not name the process, escaped:\n%s", stdout.String())
	}
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		for i, c := range []byte(out) {
			if (c < 0x20 && c != '\n') || c == 0x7f {
				t.Fatalf("%s holds a raw control character %#x at %d: %q", name, c, i, out[max(0, i-40):min(len(out), i+40)])
			}
		}
		if strings.Contains(out, "\nFAKE") {
			t.Errorf("%s has a forged line:\n%s", name, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
