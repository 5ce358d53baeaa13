package main

// USDT markers: symbols --usdt lists them; on the real kernel a marker
// without semaphore counts exactly what the target fired, with the
// arguments the note describes (register, memory and constant).

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

func needSDT(t *testing.T) {
	t.Helper()
	for _, h := range []string{"/usr/include/x86_64-linux-gnu/sys/sdt.h", "/usr/include/sys/sdt.h"} {
		if _, err := os.Stat(h); err == nil {
			return
		}
	}
	targets.Missing(t, "<sys/sdt.h> (systemtap-sdt-dev)")
}

func TestSymbolsUSDT(t *testing.T) {
	needSDT(t)
	bin := targets.Build(t, t.TempDir(), "usdt")
	out, err := exec.Command(binary, "symbols", "--usdt", bin).Output()
	if err != nil {
		t.Fatalf("symbols --usdt: %v", err)
	}
	for _, want := range []string{"uprobectl  tick   -8@-32(%rbp) -4@-4(%rbp) -4@$42", "uprobectl  mem    -8@%rdx -4@%eax", "uprobectl  gated  -8@-16(%rbp)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "symbols", "--usdt", "--json", bin, "uprobectl:g*").Output()
	if err != nil {
		t.Fatalf("symbols --usdt --json: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(out, &rec); err != nil || rec["name"] != "gated" || rec["provider"] != "uprobectl" || num(rec["semaphore"]) == 0 || num(rec["offset"]) == 0 {
		t.Errorf("json %s: %v", out, err)
	}
	cmd := exec.Command(binary, "symbols", "--usdt", bin, "nothere")
	if out, err := cmd.CombinedOutput(); usdtExit(err) != 2 {
		t.Errorf("no match: exit %v: %s", err, out)
	}
}

func usdtExit(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestUSDTSemaphoreRefused: a marker with a semaphore is refused with one
// line and exit 2, before anything is armed.
func TestUSDTSemaphoreRefused(t *testing.T) {
	needSDT(t)
	bin := targets.Build(t, t.TempDir(), "usdt")
	out, err := exec.Command(binary, "attach", "--duration", "1s", bin+":usdt:uprobectl:gated").CombinedOutput()
	msg := strings.TrimSpace(string(out))
	if usdtExit(err) != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "marker uprobectl:gated has a semaphore; not yet supported") {
		t.Errorf("exit %v: %q", err, msg)
	}
}

func TestAttachUSDT(t *testing.T) {
	needSDT(t)
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "usdt")
	target := targets.Start(t, bin, "500")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), bin+":usdt:uprobectl:tick", bin+":usdt:mem")
	a.waitReady(t)
	calls := target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	seen := map[string]map[int64]bool{"uprobectl:tick": {}, "uprobectl:mem": {}}
	for _, h := range a.ofType("hit") {
		sym, _ := h["symbol"].(string)
		args, _ := h["args"].(map[string]any)
		i := num(args["arg1"])
		switch sym {
		case "uprobectl:tick":
			if num(args["arg2"]) != -i || num(args["arg3"]) != 42 {
				t.Fatalf("tick hit %v: want arg2=-arg1, arg3=42", args)
			}
		case "uprobectl:mem":
			if i%2 != 0 || num(args["arg2"]) != -i/2 {
				t.Fatalf("mem hit %v: want arg1=2i, arg2=-i", args)
			}
			i /= 2
		default:
			t.Fatalf("hit on %q", sym)
		}
		if i < 0 || i >= int64(calls) || seen[sym][i] {
			t.Fatalf("%s: arg1 %d out of range or seen twice", sym, i)
		}
		seen[sym][i] = true
	}
	for sym, s := range seen {
		if len(s) != calls {
			t.Errorf("%s: %d hits, the target fired it %d times (stderr: %s)", sym, len(s), calls, a.stderr.String())
		}
	}
	if s := a.summary(t); num(s["hits"]) != int64(2*calls) || num(s["lost"]) != 0 {
		t.Errorf("summary %v, want hits=%d lost=0", s, 2*calls)
	}
}
