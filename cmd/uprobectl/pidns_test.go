package main

// A sidecar killed with its PID namespace: uprobectl runs as pid 1 of its
// own namespace (unshare), is killed with SIGKILL, which kills the
// namespace, and leaves its events behind. Seen from the initial pid
// namespace its owner is provably dead: `list` says so, and `clean`, or
// the next run, removes the group.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/procfs"
	"github.com/uprobectl/uprobectl/internal/targets"
)

func TestPIDNSKilledSidecarIsReaped(t *testing.T) {
	for _, reaper := range []string{"clean", "next attach"} {
		t.Run(reaper, func(t *testing.T) {
			dir := kernelTest(t)
			targets.NeedTool(t, "unshare", "util-linux")
			if link, err := os.Readlink("/proc/self/ns/pid"); err != nil || link != "pid:[4026531836]" {
				targets.Missing(t, fmt.Sprintf("the initial pid namespace (in %s, %v): a dead namespace cannot be told from one out of sight", link, err))
			}
			bin := targets.Build(t, dir, "counter-pie")

			// Another uprobectl (another test, another engineer's run) may
			// reap the dead group before this test looks: then try again.
			var group string
			for attempt := 1; ; attempt++ {
				group = killedSidecar(t, bin)
				owner := listOwner(t, group)
				if owner != "" {
					if owner != "dead" {
						t.Fatalf("list: the owner of %s is %q, want dead", group, owner)
					}
					// Still there after list: list reads, never removes.
					if len(eventsOf(t, group)) == 0 {
						t.Fatalf("list removed %s", group)
					}
					break
				}
				if attempt == 3 {
					t.Fatalf("the group of the killed sidecar vanished before list could see it, %d times", attempt)
				}
				t.Logf("%s was reaped by another uprobectl before list; again", group)
			}

			switch reaper {
			case "clean":
				out, err := exec.Command(binary, "clean").CombinedOutput()
				if err != nil {
					t.Fatalf("clean: %v\n%s", err, out)
				}
				if !strings.Contains(string(out), "removed "+group+" ") {
					t.Errorf("clean does not report removing %s:\n%s", group, out)
				}
			case "next attach":
				// A run in the initial namespace reaps before it defines.
				a := startAttach(t, "--duration", "100ms", bin+":fn")
				a.waitReady(t)
				if code := a.wait(t); code != 0 {
					t.Fatalf("attach exit %d: %s", code, a.stderr.String())
				}
			}
			if left := eventsOf(t, group); len(left) > 0 {
				t.Errorf("%s reaped nothing; uprobe_events still holds:\n%s", reaper, strings.Join(left, "\n"))
			}
		})
	}
}

// killedSidecar runs `uprobectl attach bin:fn` as pid 1 of a new pid
// namespace, waits for it to be ready, kills it with SIGKILL (which kills
// the namespace) and returns its group, whose events it left behind.
func killedSidecar(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", binary, "attach", "--json", "--quiet", bin+":fn")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ready := make(chan bool, 2)
	go func() {
		lines := bufio.NewScanner(stdout)
		sent := false
		for lines.Scan() {
			if !sent && strings.Contains(lines.Text(), `"type":"ready"`) {
				ready <- true
				sent = true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			exited = true
			t.Fatalf("uprobectl in its pid namespace ended before ready: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("uprobectl in its pid namespace: no ready line in 60s")
		// (the cleanup kills it; its stderr is not safe to read here)
	}

	// The group is named after uprobectl as it sees itself: pid 1 of its
	// namespace, and its start time.
	proc := procfs.New("")
	sidecar := childOf(t, cmd.Process.Pid)
	ns, err := proc.NamespaceInode(sidecar, "pid")
	if err != nil {
		t.Fatal(err)
	}
	st, err := proc.Stat(sidecar)
	if err != nil {
		t.Fatal(err)
	}
	group := fmt.Sprintf("uprobectl_%d_1_%d", ns, st.StartTime)
	// Whatever happens below, the group does not outlive the test.
	t.Cleanup(func() {
		for _, line := range eventsOf(t, group) {
			event := strings.SplitN(strings.Fields(line)[0], ":", 2)[1]
			appendUprobeEvents(t, "-:"+event)
		}
	})
	if len(eventsOf(t, group)) == 0 {
		t.Fatalf("the sidecar's group %s is not in uprobe_events:\n%s", group, readUprobeEvents(t))
	}

	if err := syscall.Kill(sidecar, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// unshare reaps its child, then dies of the same signal: the
	// namespace is gone.
	cmd.Wait()
	exited = true
	if _, err := proc.Stat(sidecar); err == nil {
		t.Fatalf("pid %d (the namespace's init) still exists", sidecar)
	}
	if len(eventsOf(t, group)) == 0 {
		t.Logf("%s is gone already (reaped by another uprobectl)", group)
	}
	return group
}

// listOwner returns what `uprobectl list --json` says of the owner of
// group: "alive", "dead", "unknown (...)", or "" if it does not list it.
func listOwner(t *testing.T, group string) string {
	t.Helper()
	out, err := exec.Command(binary, "list", "--json").Output()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		var g struct{ Group, Owner string }
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatalf("list line %q: %v", line, err)
		}
		if g.Group == group {
			return g.Owner
		}
	}
	return ""
}

// eventsOf returns the lines of uprobe_events in group.
func eventsOf(t *testing.T, group string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(readUprobeEvents(t), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0][strings.IndexByte(f[0], ':')+1:], group+"/") {
			out = append(out, line)
		}
	}
	return out
}
