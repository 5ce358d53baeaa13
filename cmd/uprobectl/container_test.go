package main

// The sidecar case, without a container engine: a target in its own mount
// and PID namespaces (unshare) loads a library from a path that exists only
// inside; uprobectl attaches from outside by --container-pid, counts exact
// hits, serves the same count as a Prometheus metric, and leaves nothing on
// SIGTERM.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/targets"
)

func TestContainerPIDAndMetrics(t *testing.T) {
	dir := kernelTest(t)
	targets.NeedTool(t, "unshare", "util-linux")
	bin := targets.Build(t, dir, "dlopener")
	lib := targets.LibPath(dir, "libcounter.so")
	inside := fmt.Sprintf("/mnt/uprobectl-test-%d", os.Getpid())
	if _, err := os.Stat(inside); err == nil {
		t.Fatalf("%s exists outside the container; the test needs a path that does not", inside)
	}
	script := fmt.Sprintf("mount -t tmpfs none /mnt && mkdir %[1]s && cp %[2]s %[1]s/ && exec %[3]s %[1]s/libcounter.so 4000", inside, lib, bin)
	container := exec.Command("unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script)
	stdin, _ := container.StdinPipe()
	stdout, _ := container.StdoutPipe()
	container.Stderr = os.Stderr
	if err := container.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { container.Process.Kill(); container.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready 1" {
		t.Fatalf("the target should be pid 1 of its namespace: %q", lines.Text())
	}
	target := childOf(t, container.Process.Pid)

	port := freePort(t)
	a := startAttach(t, "--container-pid", fmt.Sprint(target), "--metrics-addr", "127.0.0.1:"+port,
		inside+"/libcounter.so:lib_fn x=arg1:s64")
	ready := a.waitReady(t)
	if ev := ready["events"].([]any)[0].(map[string]any); ev["binary"] != inside+"/libcounter.so" {
		t.Errorf("ready names %v, want the path as the container sees it", ev["binary"])
	}
	if code := httpGet(t, "http://127.0.0.1:"+port+"/readyz"); code != 200 {
		t.Errorf("/readyz %d after ready", code)
	}
	fmt.Fprintln(stdin, "go")
	stdin.Close()
	calls := -1
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "calls "); ok {
			calls, _ = strconv.Atoi(rest)
		}
	}
	if calls != 4000 {
		t.Fatalf("target printed calls %d", calls)
	}
	// The metric reaches the count once the reader has delivered the hits.
	var metric float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if metric = scrapeHits(t, "http://127.0.0.1:"+port+"/metrics", "lib_fn"); int(metric) == calls {
			break
		}
	}
	start := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 {
		t.Fatalf("SIGTERM: exit %d: %s", code, a.stderr.String())
	}
	t.Logf("SIGTERM to exit: %s", time.Since(start))
	if _, total := a.hitsBy(nil); total != calls {
		t.Errorf("JSON hits %d, calls %d", total, calls)
	}
	if int(metric) != calls {
		t.Errorf("uprobectl_hits_total %v, calls %d", metric, calls)
	}
	a.checkSummary(t)
}

// childOf returns the pid of the only child of parent.
func childOf(t *testing.T, parent int) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isChildOf(pid, parent) {
			return pid
		}
	}
	t.Fatalf("no child of %d", parent)
	return 0
}

// isChildOf tells whether process pid exists and its parent is parent.
func isChildOf(pid, parent int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 1 && f[1] == strconv.Itoa(parent)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func httpGet(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scrapeHits sums uprobectl_hits_total for a probe.
func scrapeHits(t *testing.T, url, probe string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "uprobectl_hits_total{") && strings.Contains(line, `probe="`+probe+`"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

// TestConfigFromFileAndEnvironment: probes from a file (with comments) and
// from $UPROBECTL_PROBES, flags from the environment, and --quiet leaves
// stderr empty on a clean run.
func TestConfigFromFileAndEnvironment(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "uselib")
	lib := targets.LibPath(dir, "libcounter.so")
	file := dir + "/probes.txt"
	os.WriteFile(file, []byte("# probes for the test\n\n"+lib+":lib_fn x=arg1:s64\n"), 0o644)
	target := targets.Start(t, bin, "500")
	cmd := exec.Command(binary, "attach")
	cmd.Env = append(os.Environ(),
		"UPROBECTL_PROBES_FILE="+file,
		"UPROBECTL_PROBES="+lib+":lib_calls_made\n",
		"UPROBECTL_PID="+strconv.Itoa(target.PID),
		"UPROBECTL_JSON=true",
		"UPROBECTL_QUIET=true",
	)
	var stdout, stderr strings.Builder
	pipe, _ := cmd.StdoutPipe()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pipe)
	for lines.Scan() {
		stdout.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), `"type":"ready"`) {
			break
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for lines.Scan() {
			stdout.WriteString(lines.Text() + "\n")
		}
	}()
	calls := target.Go(t)
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("attach: %v\n%s", err, stderr.String())
	}
	if n := strings.Count(stdout.String(), `"type":"hit","probe":"lib_fn"`); n != calls {
		t.Errorf("lib_fn hits %d, calls %d", n, calls)
	}
	if n := strings.Count(stdout.String(), `"type":"hit","probe":"lib_calls_made"`); n != 1 {
		t.Errorf("lib_calls_made hits %d, want 1 (the probe from $UPROBECTL_PROBES)", n)
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet, yet stderr has:\n%s", stderr.String())
	}
}

// TestHitsFromOutsideOurPIDNamespace: uprobectl in its own PID namespace (a
// sidecar sees its pod only) gets hits from processes it cannot see as pid
// 0 when they share the file's inode; they are counted as filtered, never
// attributed to a made-up process.
func TestHitsFromOutsideOurPIDNamespace(t *testing.T) {
	dir := kernelTest(t)
	targets.NeedTool(t, "unshare", "util-linux")
	bin := targets.Build(t, dir, "counter-pie")
	outside := targets.Start(t, bin, "300")
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", binary, "attach", "--json", "--quiet", bin+":fn")
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pipe)
	for lines.Scan() && !strings.Contains(lines.Text(), `"type":"ready"`) {
	}
	outside.Go(t)
	time.Sleep(200 * time.Millisecond)
	// unshare does not pass signals on: signal uprobectl, pid 1 inside.
	syscall.Kill(childOf(t, cmd.Process.Pid), syscall.SIGINT)
	var out strings.Builder
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("attach in a PID namespace: %v", err)
	}
	if n := strings.Count(out.String(), `"type":"hit"`); n != 0 {
		t.Errorf("%d hits delivered from a process uprobectl cannot see", n)
	}
	if !strings.Contains(out.String(), `"filtered":300`) {
		t.Errorf("want the 300 outside hits counted as filtered; summary: %s", out.String())
	}
}
