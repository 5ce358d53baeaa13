package main

// run exits with its command's exit status, and its summary says how the
// command ended.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runExit runs `uprobectl run` with a probe on libc's getpid (the shell
// may never call it: the probe only has to exist) and returns uprobectl's
// exit code, its JSON summary (--json) and its stderr.
func runExit(t *testing.T, dir string, jsonOut bool, command ...string) (int, map[string]any, string) {
	t.Helper()
	out := filepath.Join(dir, "run.out")
	args := []string{"run", "--output", out}
	if jsonOut {
		args = append(args, "--json")
	}
	args = append(append(args, "libc.so.6:getpid", "--"), command...)
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var summary map[string]any
	if jsonOut {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil || summary["type"] != "summary" {
			t.Fatalf("last line %q: %v\n%s", lines[len(lines)-1], err, stderr.String())
		}
	}
	return code, summary, stderr.String()
}

func TestRunExitCode(t *testing.T) {
	dir := kernelTest(t)
	for _, tc := range []struct {
		name    string
		command []string
		code    int
		signal  int
		text    string
	}{
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7, 0, "; the command exited with code 7\n"},
		{"exit 0", []string{"true"}, 0, 0, "; the command exited with code 0\n"},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 143, 15, "; the command was killed by signal 15 (SIGTERM): exit code 143\n"},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 137, 9, "killed by signal 9 (SIGKILL): exit code 137\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, summary, stderr := runExit(t, dir, true, tc.command...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\n%s", code, tc.code, stderr)
			}
			if num(summary["exit_code"]) != int64(tc.code) || summary["exit_code"] == nil {
				t.Errorf("summary exit_code %v, want %d: %v", summary["exit_code"], tc.code, summary)
			}
			sig, has := summary["signal"]
			if tc.signal == 0 && has || tc.signal != 0 && num(sig) != int64(tc.signal) {
				t.Errorf("summary signal %v, want %d: %v", sig, tc.signal, summary)
			}
			code, _, stderr = runExit(t, dir, false, tc.command...)
			if code != tc.code || !strings.Contains(stderr, tc.text) {
				t.Errorf("text: exit code %d (want %d), stderr does not end its summary with %q:\n%s", code, tc.code, tc.text, stderr)
			}
		})
	}
}

// TestRunExitBadInput: uprobectl's own errors keep their codes.
func TestRunExitBadInput(t *testing.T) {
	dir := kernelTest(t)
	cmd := exec.Command(binary, "run", "libc.so.6:no_such_function_here", "--", "sh", "-c", "exit 7")
	cmd.Dir = dir
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitBadInput {
		t.Fatalf("got %v, want exit code %d", err, exitBadInput)
	}
}
