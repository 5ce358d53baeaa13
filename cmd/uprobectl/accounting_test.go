package main

// Accounting under churn (issue 7): every hit the targets made is delivered,
// filtered or counted lost — exactly — and none is "unknown", whatever the
// processes do (stay zombies, run from another overlay mount of the same
// image) and however slow the consumer is.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// The reproducer: a child calls a probed function 100,000 times and
// stays a zombie while uprobectl is stopped for longer than the task-finder's
// check interval (10 s); resumed, uprobectl must deliver every hit,
// attributed to the child.
func TestZombieHitsAfterStall(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "zombie")
	target := targets.Start(t, bin, "100000")
	a := startAttach(t, "--buffer-pages", "4096", bin+":fn")
	a.waitReady(t)
	a.cmd.Process.Signal(syscall.SIGSTOP)
	target.Release(t)
	child := strings.TrimPrefix(target.Line(t), "child ")
	time.Sleep(12 * time.Second) // the child is a zombie; its hits wait in the rings
	a.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(500 * time.Millisecond)
	target.GoNoWait(t) // the parent reaps it now
	calls := target.Wait(t)
	a.stop(t)
	byPID, hits := a.hitsBy(nil)
	s := a.checkSummary(t)
	t.Logf("child %s: calls %d, delivered %d; summary %v", child, calls, hits, s)
	if hits != calls || byPID[atoi64(t, child)] != calls {
		t.Errorf("calls %d, delivered %d (%d from the child %s)", calls, hits, byPID[atoi64(t, child)], child)
	}
}

// Two containers of one image: two overlay mounts share the lower layer,
// and the kernel binds the uprobe to the file underneath, so a probe set
// through mount A fires in processes started from mount B too. In the
// default scope both are delivered; with --container-pid (the container
// that sees mount A) B's hits are filtered. Never unknown.
func TestTwoOverlayMountsOfOneImage(t *testing.T) {
	dir := kernelTest(t)
	lower := filepath.Join(dir, "lower")
	os.Mkdir(lower, 0o755)
	targets.Build(t, lower, "counter-pie")
	var mounts [2]string
	for i, name := range []string{"a", "b"} {
		for _, sub := range []string{"upper", "work", "merged"} {
			os.MkdirAll(filepath.Join(dir, name, sub), 0o755)
		}
		mounts[i] = filepath.Join(dir, name, "merged")
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(dir, name, "upper"), filepath.Join(dir, name, "work"))
		if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, mounts[i]).CombinedOutput(); err != nil {
			t.Fatalf("mount overlay (the kernel has overlayfs): %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", mounts[i]).Run() })
	}
	binA, binB := filepath.Join(mounts[0], "counter-pie"), filepath.Join(mounts[1], "counter-pie")
	for _, scope := range []string{"default", "container"} {
		t.Run(scope, func(t *testing.T) {
			args := []string{binA + ":fn"}
			if scope == "container" {
				// This test's own root is the "container" that sees mount A.
				args = append([]string{"--container-pid", fmt.Sprint(os.Getpid())}, args...)
			}
			a := startAttach(t, args...)
			a.waitReady(t)
			ta, tb := targets.Start(t, binA, "4000"), targets.Start(t, binB, "3000")
			ta.GoNoWait(t)
			tb.GoNoWait(t)
			callsA, callsB := ta.Wait(t), tb.Wait(t)
			a.stop(t)
			byPID, _ := a.hitsBy(nil)
			s := a.summary(t)
			t.Logf("A %d calls, %d delivered; B %d calls, %d delivered; summary %v", callsA, byPID[int64(ta.PID)], callsB, byPID[int64(tb.PID)], s)
			wantB, wantFiltered := callsB, 0
			if scope == "container" {
				wantB, wantFiltered = 0, callsB
			}
			if byPID[int64(ta.PID)] != callsA || byPID[int64(tb.PID)] != wantB || num(s["filtered"]) != int64(wantFiltered) {
				t.Errorf("delivered A %d of %d, B %d (want %d), filtered %v (want %d)", byPID[int64(ta.PID)], callsA, byPID[int64(tb.PID)], wantB, s["filtered"], wantFiltered)
			}
			if num(s["unknown"]) != 0 || num(s["lost"]) != 0 {
				t.Errorf("unknown %v, lost %v", s["unknown"], s["lost"])
			}
		})
	}
}

// A consumer slower than the hits: the kernel drops what the ring cannot
// hold, and every dropped hit is counted — delivered + lost = calls
// exactly — while lost counts hits only (the side-band has rings of its
// own). The test fails if nothing was lost: then it tested nothing.
func TestSlowConsumerAccountsExactly(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	target := targets.Start(t, bin, "1000000")
	cmd := exec.Command(binary, "attach", "--json", "--buffer-pages", "64", "--pid", fmt.Sprint(target.PID), bin+":fn")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.Contains(lines.Text(), `"type":"ready"`) {
	}
	target.GoNoWait(t)
	hits, summary := 0, ""
	for n := 0; lines.Scan(); n++ {
		if n%50 == 0 {
			time.Sleep(time.Millisecond) // a slow consumer, like jq
		}
		if strings.Contains(lines.Text(), `"type":"hit"`) {
			hits++
		} else if strings.Contains(lines.Text(), `"type":"summary"`) {
			summary = lines.Text()
		}
	}
	calls := target.Wait(t)
	cmd.Wait()
	var s struct{ Hits, Lost, LostSideband, Unknown int }
	if err := json.Unmarshal([]byte(strings.ReplaceAll(summary, "lost_sideband", "lostsideband")), &s); err != nil {
		t.Fatalf("summary %q: %v", summary, err)
	}
	t.Logf("calls %d, delivered %d, lost %d, lost_sideband %d", calls, hits, s.Lost, s.LostSideband)
	if s.Lost == 0 {
		t.Fatal("nothing was lost: the consumer was not slow enough for this test to test anything")
	}
	if s.Hits != hits || hits+s.Lost != calls || s.Unknown != 0 {
		t.Errorf("calls %d but delivered %d (summary %d) + lost %d: accounting is off by %d", calls, hits, s.Hits, s.Lost, calls-hits-s.Lost)
	}
}

func atoi64(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// --duration is the tracing window: it starts at ready. Arming a glob of
// every libc function takes a while; the window must not shrink by it.
func TestDurationCountsFromReady(t *testing.T) {
	kernelTest(t)
	a := startAttach(t, "--duration", "400ms", "libc.so.6:[a-m]*")
	a.waitReady(t)
	readyAt := time.Now()
	if code := a.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, a.stderr.String())
	}
	if window := time.Since(readyAt); window < 350*time.Millisecond {
		t.Errorf("ended %s after ready: --duration 400ms must count from ready", window)
	}
}
