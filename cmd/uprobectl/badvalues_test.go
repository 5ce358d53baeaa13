package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/internal/targets"
)

const errorLog = "/sys/kernel/tracing/error_log"

// TestBadValues (issue 8): a bad flag value, probes file or fetch argument
// exits 2 with exactly one line on stderr, and nothing reaches the kernel:
// uprobe_events and the kernel's error_log (where every refused write
// leaves its reason) are the same after the run as before it.
func TestBadValues(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	probe := bin + ":fn"

	fifo := filepath.Join(dir, "probes.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A BOM used to turn the first (comment) line into a probe word.
	bom := filepath.Join(dir, "bom.txt")
	os.WriteFile(bom, []byte("\ufeff# first line: a comment\r\n"+bin+":no_such_fn\r\n"), 0o644)

	big := probe + strings.Repeat(" +0(%di):u64[64]", 7) // 3584 bytes per hit

	cases := []struct {
		name    string
		env     []string
		args    []string
		mention string
	}{
		{"negative duration", nil, []string{"attach", "--duration", "-5s", probe}, "--duration -5s: must be positive"},
		{"negative duration from the environment", []string{"UPROBECTL_DURATION=-5s"}, []string{"attach", probe}, "--duration -5s: must be positive"},
		{"negative interval", nil, []string{"attach", "--count", "--interval", "-1s", probe}, "--interval -1s: must be positive"},
		{"negative stats interval", nil, []string{"attach", "--stats-interval", "-1s", probe}, "--stats-interval -1s: must be positive"},
		{"negative wait", nil, []string{"attach", "--container-comm", "no-such-comm", "--wait", "-1s", probe}, "--wait -1s: must be positive"},
		{"--by not a fetch arg name", nil, []string{"attach", "--count", "--by", "9x", probe}, `--by "9x": argument name "9x" must be a C identifier`},
		{"--by without counting", nil, []string{"attach", "--by", "m", probe}, "--by goes with --count"},
		{"--stack-depth 0", nil, []string{"attach", "--stacks", "--stack-depth", "0", probe}, "--stack-depth 0: must be 1 to 127"},
		{"--latency with --count", nil, []string{"attach", "--latency", "--count", probe}, "--latency prints histograms"},
		{"--latency on a return", nil, []string{"attach", "--latency", probe + "%return"}, "does not name a function's entry"},
		{"run: negative duration", nil, []string{"run", "--duration", "-5s", probe, "--", "true"}, "--duration -5s: must be positive"},
		{"run: negative stats interval", []string{"UPROBECTL_STATS_INTERVAL=-1ms"}, []string{"run", probe, "--", "true"}, "--stats-interval -1ms: must be positive"},

		{"buffer pages not a power of two", nil, []string{"attach", "--buffer-pages", "3", probe}, "--buffer-pages 3: must be a power of two from 1 to 262144"},
		{"buffer pages negative", nil, []string{"attach", "--buffer-pages", "-1", probe}, "--buffer-pages -1: must be a power of two from 1 to 262144"},
		{"buffer pages zero", nil, []string{"attach", "--buffer-pages", "0", probe}, "--buffer-pages 0: must be a power of two"},
		{"buffer pages 1 TiB", nil, []string{"attach", "--buffer-pages", "1099511627776", probe}, "--buffer-pages 1099511627776: must be a power of two from 1 to 262144"},
		{"buffer pages beyond the kernel's ring", nil, []string{"attach", "--buffer-pages", "524288", probe}, "--buffer-pages 524288"},
		{"run: buffer pages", nil, []string{"run", "--buffer-pages", "3", probe, "--", "true"}, "--buffer-pages 3"},
		{"metrics max comms negative", nil, []string{"attach", "--metrics-max-comms", "-1", probe}, "--metrics-max-comms -1: must be 0 or more"},

		{"probes file is a FIFO", nil, []string{"attach", "--probes-file", fifo}, "not a regular file (a FIFO)"},
		{"probes file is a directory", nil, []string{"attach", "--probes-file", dir}, "not a regular file (a directory)"},
		{"probes file is a device", nil, []string{"attach", "--probes-file", "/dev/zero"}, "not a regular file (a character device)"},
		{"run: probes file is a FIFO", nil, []string{"run", "--probes-file", fifo, "--", "true"}, "not a regular file (a FIFO)"},
		{"probes file with a BOM", nil, []string{"attach", "--probes-file", bom}, `symbol "no_such_fn" not found`},

		{"derived argument name of 33 characters", nil, []string{"attach", probe + " arg000000000000000000000000000001"}, `"Argument name is too long"`},
		{"the issue's word", nil, []string{"attach", "libc.so.6:malloc arg000000000000000000000000000001"}, `"Argument name is too long"`},
		{"event too big", nil, []string{"attach", big}, `"Event too big (too many fields?)"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeEvents, beforeLog := readUprobeEvents(t), readErrorLog(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, tc.args...)
			cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
			cmd.Env = append(os.Environ(), tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 20s (it hangs); stderr: %s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit %v, want code 2; stderr: %s", err, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("want exactly one line on stderr, got:\n%s", msg)
			}
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("error %q does not say %q", msg, tc.mention)
			}
			if strings.Contains(msg, "comment") {
				t.Errorf("a comment line was taken for a probe: %s", msg)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			pid := cmd.Process.Pid
			checkUnchanged(t, "uprobe_events", beforeEvents, readUprobeEvents(t), pid, dir)
			checkUnchanged(t, "error_log", beforeLog, readErrorLog(t), pid, dir)
		})
	}

	// The same BOM file with a probe that exists arms it: the BOM is gone,
	// the comment skipped, the CRLF trimmed.
	t.Run("probes file with a BOM arms", func(t *testing.T) {
		good := filepath.Join(dir, "bom-good.txt")
		os.WriteFile(good, []byte("\ufeff# first line: a comment\r\n"+probe+"\r\n"), 0o644)
		out, err := exec.Command(binary, "attach", "--json", "--quiet", "--duration", "200ms", "--probes-file", good).Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !bytes.Contains(out, []byte(`"type":"ready","probes":1,`)) {
			t.Errorf("no ready line with one probe:\n%s", out)
		}
	})
}

// TestBadValuesProbesFile checks the probes-file reader without a kernel.
func TestBadValuesProbesFile(t *testing.T) {
	got := probeLines("\ufeff# comment\r\nlibc.so.6:malloc size=arg1:u64\r\n\r\n  # indented comment\r\nlibc.so.6:free\n")
	want := []string{"libc.so.6:malloc size=arg1:u64", "libc.so.6:free"}
	if !slices.Equal(got, want) {
		t.Errorf("probeLines: %q, want %q", got, want)
	}
	if got := probeLines("\ufefflibc.so.6:free"); !slices.Equal(got, []string{"libc.so.6:free"}) {
		t.Errorf("BOM before a probe: %q", got)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "probes.txt")
	os.WriteFile(file, []byte("libc.so.6:free\n"), 0o644)
	link := filepath.Join(dir, "link") // a mounted ConfigMap's file is a symlink
	os.Symlink(file, link)
	for _, p := range []string{file, link} {
		if text, err := readProbesFile(p); err != nil || text != "libc.so.6:free\n" {
			t.Errorf("readProbesFile(%s): %q, %v", p, text, err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	unix.Mkfifo(fifo, 0o600)
	done := make(chan error, 1)
	go func() { _, err := readProbesFile(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readProbesFile blocks on a FIFO nobody writes to")
	}
	huge := filepath.Join(dir, "huge")
	f, _ := os.Create(huge)
	f.Truncate(maxProbesFileSize + 1)
	f.Close()
	if _, err := readProbesFile(huge); err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("huge file: %v", err)
	}
}

func readErrorLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(errorLog)
	if err != nil {
		t.Fatalf("read error_log: %v", err)
	}
	return string(b)
}

// checkUnchanged compares a tracefs file after a run with before it. With
// UPROBECTL_EXACT_EVENTS=1 (CI: nothing else uses tracefs there) it must
// be the same. Otherwise other tests and tools may write to it meanwhile,
// so only what this run could have caused is looked for: a new line that
// names the run's group (uprobectl_NS_PID_START) or the test's directory.
func checkUnchanged(t *testing.T, what, before, after string, pid int, dir string) {
	t.Helper()
	if before == after {
		return
	}
	if os.Getenv("UPROBECTL_EXACT_EVENTS") == "1" {
		t.Errorf("%s changed:\nbefore:\n%safter:\n%s", what, before, after)
		return
	}
	ours := regexp.MustCompile(fmt.Sprintf(`uprobectl_\d+_%d_\d+`, pid))
	old := map[string]bool{}
	for _, line := range strings.Split(before, "\n") {
		old[line] = true
	}
	for _, line := range strings.Split(after, "\n") {
		if !old[line] && (ours.MatchString(line) || strings.Contains(line, dir)) {
			t.Errorf("%s has a new line from this run: %s", what, line)
		}
	}
}
