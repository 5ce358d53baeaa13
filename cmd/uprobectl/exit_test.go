package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// TestEveryWayOutRemovesEvents: whatever ends an attach, its events are
// gone from uprobe_events afterwards (kernelTest checks), and the exit code
// says how it ended.
func TestEveryWayOutRemovesEvents(t *testing.T) {
	cases := []struct {
		name     string
		flags    []string
		stop     func(a *attachRun, target *targets.Process, t *testing.T)
		wantCode int
	}{
		{"target exits", nil, func(a *attachRun, p *targets.Process, t *testing.T) { p.Go(t) }, 0},
		{"duration", []string{"--duration", "1s"}, func(*attachRun, *targets.Process, *testing.T) {}, 0},
		{"max hits", []string{"--max-hits", "10"}, func(a *attachRun, p *targets.Process, t *testing.T) { p.Go(t) }, 0},
		{"SIGINT", nil, func(a *attachRun, _ *targets.Process, _ *testing.T) { a.cmd.Process.Signal(os.Interrupt) }, 0},
		{"SIGTERM", nil, func(a *attachRun, _ *targets.Process, _ *testing.T) { a.cmd.Process.Signal(syscall.SIGTERM) }, 0},
		{"SIGHUP", nil, func(a *attachRun, _ *targets.Process, _ *testing.T) { a.cmd.Process.Signal(syscall.SIGHUP) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := kernelTest(t)
			bin := targets.Build(t, dir, "counter-pie")
			target := targets.Start(t, bin, "500")
			a := startAttach(t, append(tc.flags, "--pid", fmt.Sprint(target.PID), bin+":fn", "libc.so.6:malloc*")...)
			ready := a.waitReady(t)
			if !strings.Contains(readUprobeEvents(t), ready["group"].(string)+"/") {
				t.Fatal("attach is ready but its event is not in uprobe_events")
			}
			tc.stop(a, target, t)
			if code := a.wait(t); code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.wantCode, a.stderr.String())
			}
			s := a.summary(t)
			if tc.name == "max hits" && num(s["hits"]) != 10 {
				t.Errorf("--max-hits 10 delivered %v hits", s["hits"])
			}
		})
	}
}

// TestBrokenPipe: `uprobectl attach ... | head -1` must still clean up when
// head exits and stdout breaks.
func TestBrokenPipe(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	target := targets.Start(t, bin, "100000")
	cmd := exec.Command("sh", "-c", fmt.Sprintf("%s attach --json --pid %d %s:fn | head -3", binary, target.PID, bin))
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var group string // uprobe_events names the file /proc/self/fd/N: find the attach by its group
	waitFor(t, func() bool { group = groupOfChild(t, cmd.Process.Pid); return group != "" })
	target.Go(t)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	waitFor(t, func() bool { return !strings.Contains(readUprobeEvents(t), group+"/") })
}

// TestSIGKILLThenClean: a killed attach leaves its group; `list` shows its
// owner dead; `clean` removes it and nothing else.
func TestSIGKILLThenClean(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	target := targets.Start(t, bin, "10")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), bin+":fn")
	ready := a.waitReady(t)
	group := ready["group"].(string)
	a.cmd.Process.Kill()
	a.wait(t)
	if !strings.Contains(readUprobeEvents(t), group) {
		t.Fatalf("after SIGKILL the group %s should still be there (nothing can clean on SIGKILL)", group)
	}
	list, err := exec.Command(binary, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(list), group) || !strings.Contains(string(list), "dead") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	out, err := exec.Command(binary, "clean").CombinedOutput()
	if err != nil || !strings.Contains(string(out), group) {
		t.Fatalf("clean: %v\n%s", err, out)
	}
	if strings.Contains(readUprobeEvents(t), group) {
		t.Fatalf("clean left %s", group)
	}
}

// TestBadInput: each mistake gets exit code 2 (3 for the environment), one
// line that names the thing, and no change to uprobe_events.
func TestBadInput(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	notELF := filepath.Join(dir, "notes.txt")
	os.WriteFile(notELF, []byte("hello\n"), 0o644)
	fnOff := symbolOffset(t, bin, "fn")
	cases := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"missing file", []string{"/nonexistent/bin:fn"}, 2, "/nonexistent/bin"},
		{"not ELF", []string{notELF + ":fn"}, 2, "not an ELF"},
		{"unknown symbol", []string{bin + ":no_such_fn"}, 2, "no_such_fn"},
		{"glob matches nothing", []string{bin + ":zz*"}, 2, "zz*"},
		{"bad fetch arg", []string{bin + ":fn x=%zz:u64"}, 2, "%zz"},
		{"bad type", []string{bin + ":fn x=%di:u7"}, 2, "u7"},
		{"$argN refused", []string{bin + ":fn $arg1"}, 2, "arg1"},
		{"retval on entry", []string{bin + ":fn $retval"}, 2, "$retval"},
		{"newline in path", []string{bin + "\n-:probe_uprobectltest/:fn"}, 2, "newline"},
		{"newline in arg", []string{bin + ":fn x=%di\n-:probe_uprobectltest/"}, 2, "newline"},
		{"hash in arg", []string{bin + ":fn x=%di#"}, 2, "#"},
		{"space in path", []string{filepath.Join(dir, "a b") + ":fn"}, 2, ""},
		{"offset inside an instruction", []string{fmt.Sprintf("%s:0x%x", bin, fnOff+2)}, 2, "--force"},
		{"symbol offset inside an instruction", []string{bin + ":fn+2"}, 2, "--force"},
		{"return with offset", []string{bin + ":fn+4%return"}, 2, "return"},
		{"no such pid", []string{"--pid", "999999999", bin + ":fn"}, 2, "999999999"},
		{"no probe", nil, 2, "probe"},
		{"unknown flag", []string{"--bogus", bin + ":fn"}, 2, "bogus"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := readUprobeEvents(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"attach"}, tc.args...)...)
			cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("exit %v, want code %d; stderr: %s", err, tc.code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if tc.name != "unknown flag" && strings.Count(msg, "\n") > 0 {
				t.Errorf("want a one-line error, got:\n%s", msg)
			}
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("error %q does not mention %q", msg, tc.mention)
			}
			checkUnchanged(t, "uprobe_events", before, readUprobeEvents(t), cmd.Process.Pid, dir)
		})
	}
	t.Run("no permission", func(t *testing.T) {
		targets.NeedTool(t, "setpriv", "util-linux")
		before := readUprobeEvents(t)
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", binary, "attach", "libc.so.6:malloc")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("exit %v, want 3; stderr: %s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "root") {
			t.Errorf("error %q does not say what is needed", stderr.String())
		}
		checkUnchanged(t, "uprobe_events", before, readUprobeEvents(t), cmd.Process.Pid, dir)
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLossIsNeverSilent: a reader that stalls makes the rings overflow; the
// hits that were dropped must show up in "lost", even when the traced
// process has exited and nothing else is written to the rings (the kernel
// reports a ring's lost count only with its next record).
func TestLossIsNeverSilent(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	target := targets.Start(t, bin, "400000")
	cmd := exec.Command(binary, "attach", "--json", "--buffer-pages", "16", "--pid", fmt.Sprint(target.PID), bin+":fn")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.Contains(lines.Text(), `"type":"ready"`) {
	}
	target.GoNoWait(t)
	time.Sleep(3 * time.Second) // uprobectl blocks on its full stdout meanwhile
	calls := target.Wait(t)
	hits, summary := 0, ""
	for lines.Scan() {
		if strings.Contains(lines.Text(), `"type":"hit"`) {
			hits++
		} else if strings.Contains(lines.Text(), `"type":"summary"`) {
			summary = lines.Text()
		}
	}
	cmd.Wait()
	var s struct{ Hits, Lost int }
	if err := json.Unmarshal([]byte(summary), &s); err != nil {
		t.Fatalf("summary %q: %v", summary, err)
	}
	t.Logf("calls %d, hits %d, lost %d", calls, s.Hits, s.Lost)
	if s.Lost == 0 {
		t.Fatal("nothing was lost: the stall did not overflow the ring, so this test tested nothing")
	}
	if s.Hits != hits || s.Hits+s.Lost != calls {
		t.Errorf("calls %d but hits %d + lost %d: a loss went unreported (or was over-counted)", calls, s.Hits, s.Lost)
	}
}
