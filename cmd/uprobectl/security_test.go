package main

// The symlink race of --container-pid (issue 8, item 1): a hostile process
// in the container swaps a directory of the probed path with a symlink to an
// absolute path, in a loop. If uprobectl resolved the path in user space and
// handed the kernel /proc/PID/root/... to walk again, the kernel would follow
// the container's absolute symlink from the host's root and arm the host's
// file (at an offset read from the container's file: not an instruction
// boundary of the host's code). Every attach must either be refused (exit 2)
// or arm the container's file; the host's file is never armed.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
	"github.com/uprobectl/uprobectl/tracefs"
)

func TestContainerSymlinkSwapNeverArmsHostFile(t *testing.T) {
	dir := kernelTest(t)
	targets.NeedTool(t, "unshare", "util-linux")
	swapper := targets.Build(t, dir, "swapper")
	targets.Build(t, dir, "uselib") // libcounter.so: the container's library (lib_fn)
	targets.Build(t, dir, "busy")   // libcounter2.so: the host's, other code (lib_a, lib_b)

	// The host's library at an absolute path H/lib/libh.so, held mapped by a
	// host process.
	host := filepath.Join(dir, "host")
	if err := os.MkdirAll(host+"/lib", 0o755); err != nil {
		t.Fatal(err)
	}
	hostLib := host + "/lib/libh.so"
	targets.CopyFile(t, targets.LibPath(dir, "libcounter2.so"), hostLib)
	holder := targets.Start(t, swapper, hostLib)

	// The container: a private mount namespace where C (a tmpfs) holds
	// C/opt/lib/libh.so, a copy of libcounter.so, and C/optlink -> H, while
	// H itself is an empty tmpfs inside: the symlink means nothing in the
	// container, and the host's library seen from the host's root. The
	// container's process maps its library, then swaps C/opt and C/optlink.
	c := filepath.Join(dir, "c")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	inside := c + "/opt/lib/libh.so"
	script := fmt.Sprintf("mount -t tmpfs none %[1]s && mkdir -p %[1]s/opt/lib && cp %[2]s %[3]s && ln -s %[4]s %[1]s/optlink && "+
		"mount -t tmpfs none %[4]s && exec %[5]s %[3]s %[1]s/opt %[1]s/optlink",
		c, targets.LibPath(dir, "libcounter.so"), inside, host, swapper)
	container := exec.Command("unshare", "--mount", "--fork", "--kill-child", "sh", "-c", script)
	stdout, _ := container.StdoutPipe()
	container.Stderr = os.Stderr
	if err := container.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { container.Process.Kill(); container.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready ") {
		t.Fatalf("the container's swapper did not start: %q", lines.Text())
	}
	cpid, _ := strconv.Atoi(strings.TrimPrefix(lines.Text(), "ready "))
	t.Cleanup(func() { syscall.Kill(cpid, syscall.SIGKILL) })
	if _, err := os.Stat(inside); err == nil {
		t.Fatalf("%s exists outside the container; the test needs a path that does not", inside)
	}
	if armed(t, holder.PID) || armed(t, cpid) {
		t.Fatal("a library is armed before any attach")
	}

	duration := 25 * time.Second
	if s := os.Getenv("UPROBECTL_RACE_SECONDS"); s != "" {
		n, _ := strconv.Atoi(s)
		duration = time.Duration(n) * time.Second
	}
	var runs, refused, armedContainer, armedHost int
	for start := time.Now(); time.Since(start) < duration; {
		runs++
		a := startAttach(t, "--container-pid", strconv.Itoa(cpid), "--quiet", inside+":lib_fn")
		ready := false
		for m := range a.lines {
			a.all = append(a.all, m)
			if m["type"] == "ready" {
				ready = true
				break
			}
		}
		if !ready {
			code := a.wait(t)
			msg := strings.TrimSpace(a.stderr.String())
			if code != 2 || msg == "" {
				t.Fatalf("attach %d ended before ready with exit %d (want a refusal: 2 and a message): %s", runs, code, msg)
			}
			if refused++; refused == 1 {
				t.Logf("a refusal: %s", msg)
			}
			continue
		}
		onHost, inContainer := armed(t, holder.PID), armed(t, cpid)
		a.cmd.Process.Signal(syscall.SIGTERM)
		if code := a.wait(t); code != 0 {
			t.Fatalf("attach %d: SIGTERM: exit %d: %s", runs, code, a.stderr.String())
		}
		if onHost {
			if armedHost++; armedHost <= 5 {
				t.Errorf("attach %d armed the HOST's %s (the container's symlink was followed from the host's root)", runs, hostLib)
			}
		}
		if inContainer {
			armedContainer++
		} else if !onHost {
			t.Errorf("attach %d was ready but armed neither file", runs)
		}
	}
	t.Logf("%d attaches in %s while the container swapped: %d armed the container's file, %d refused, %d armed the host's file",
		runs, duration, armedContainer, refused, armedHost)
	if armedContainer == 0 {
		t.Errorf("no attach armed the container's file: the test proves nothing")
	}
	if armed(t, holder.PID) || armed(t, cpid) {
		t.Error("a library is still armed after every attach ended")
	}
}

// armed tells whether a uprobe is armed in the executable mappings of a
// libh.so in process pid: the text the process sees (/proc/PID/mem) differs
// from the file it maps (/proc/PID/map_files), where the kernel wrote its
// breakpoint.
func armed(t *testing.T, pid int) bool {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	found := false
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[5], "/libh.so") || !strings.Contains(f[1], "x") {
			continue
		}
		found = true
		lo, hi, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		off, _ := strconv.ParseUint(f[2], 16, 64)
		file, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%s", pid, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, end-start)
		n, err := file.ReadAt(want, int64(off))
		file.Close()
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		got := make([]byte, n)
		if _, err := mem.ReadAt(got, int64(start)); err != nil {
			t.Fatalf("read the text of pid %d: %v", pid, err)
		}
		if !bytes.Equal(got, want[:n]) {
			return true
		}
	}
	if !found {
		t.Fatalf("pid %d maps no libh.so:\n%s", pid, maps)
	}
	return false
}

// groupOfChild returns the uprobectl group in uprobe_events whose owner is
// a child of parent, "" if there is none yet: how a test finds the events of
// an attach it started through a shell, now that they name their file
// /proc/self/fd/N rather than its path.
func groupOfChild(t testing.TB, parent int) string {
	t.Helper()
	for _, line := range strings.Split(readUprobeEvents(t), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		group, _, _ := strings.Cut(strings.TrimLeft(f[0], "pr:"), "/")
		if owner, ok := tracefs.ParseGroup(group); ok && isChildOf(owner.PID, parent) {
			return group
		}
	}
	return ""
}
