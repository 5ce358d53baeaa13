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
	// Columns are aligned: compare with single spaces.
	squeezed := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"uprobectl tick -8@-32(%rbp) -4@-4(%rbp) -4@$42", "uprobectl mem -8@%rdx -4@%eax", "uprobectl gated -8@-24(%rbp)", "uprobectl global -8@usdt_last(%rip) -4@8+usdt_rec(%rip)"} {
		if !strings.Contains(squeezed, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "symbols", "--usdt", "--json", bin, "uprobectl:ga*").Output()
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

// TestUSDTSemaphore: a marker guarded by a semaphore fires in a process
// armed at attach and in one started after it (the kernel raises the
// semaphore at its mmap), exactly as often as each saw it raised, with its
// argument; after detach the semaphore is back to 0 and the marker is
// silent again.
func TestUSDTSemaphore(t *testing.T) {
	needSDT(t)
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "usdt")
	const calls = 400
	before := targets.Start(t, bin, fmt.Sprint(calls), "2")
	a := startAttach(t, bin+":usdt:uprobectl:gated")
	a.waitReady(t)
	after := targets.Start(t, bin, fmt.Sprint(calls), "2")
	for _, p := range []*targets.Process{before, after} {
		p.Release(t)
		if line := p.Line(t); line != fmt.Sprintf("gated %d", calls) {
			t.Errorf("target %d while attached: %q, want gated %d (semaphore raised on every call)", p.PID, line, calls)
		}
	}
	a.stop(t)
	a.checkSummary(t)
	seen := map[int64]map[int64]bool{}
	for _, h := range a.ofType("hit") {
		pid, i := num(h["pid"]), num(h["args"].(map[string]any)["arg1"])
		if seen[pid] == nil {
			seen[pid] = map[int64]bool{}
		}
		if h["symbol"] != "uprobectl:gated" || i < 0 || i >= calls || seen[pid][i] {
			for _, l := range a.all {
				t.Log(l)
			}
			t.Fatalf("hit %v: wrong marker, arg1 out of range or seen twice", h)
		}
		seen[pid][i] = true
	}
	for _, p := range []*targets.Process{before, after} {
		if n := len(seen[int64(p.PID)]); n != calls {
			t.Errorf("target %d: %d hits, it fired the marker %d times", p.PID, n, calls)
		}
		p.Release(t)
		if line := p.Line(t); line != "gated 0" {
			t.Errorf("target %d after detach: %q, want gated 0 (semaphore back to 0)", p.PID, line)
		}
	}
}

// TestUSDTSemaphorePid: with --pid only that process's semaphore is
// raised; another process running the same file keeps its marker off.
func TestUSDTSemaphorePid(t *testing.T) {
	needSDT(t)
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "usdt")
	const calls = 300
	chosen := targets.Start(t, bin, fmt.Sprint(calls))
	other := targets.Start(t, bin, fmt.Sprint(calls))
	a := startAttach(t, "--pid", fmt.Sprint(chosen.PID), bin+":usdt:uprobectl:gated")
	a.waitReady(t)
	for p, want := range map[*targets.Process]int{chosen: calls, other: 0} {
		p.Release(t)
		if line := p.Line(t); line != fmt.Sprintf("gated %d", want) {
			t.Errorf("target %d: %q, want gated %d", p.PID, line, want)
		}
	}
	a.stop(t)
	a.checkSummary(t)
	if byPID, total := a.hitsBy(nil); byPID[int64(chosen.PID)] != calls || total != calls {
		t.Errorf("hits %v, want %d from %d only", byPID, calls, chosen.PID)
	}
}

// TestUSDTUserArgs: the user renames and retypes a marker's arguments in
// the word; the others keep their names and types.
func TestUSDTUserArgs(t *testing.T) {
	needSDT(t)
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "usdt")
	target := targets.Start(t, bin, "50")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), bin+":usdt:uprobectl:tick i=arg1 neg=arg2:x32 x=arg3:u8")
	a.waitReady(t)
	calls := target.Go(t)
	a.stop(t)
	hits := a.ofType("hit")
	if len(hits) != calls {
		t.Fatalf("%d hits for %d calls", len(hits), calls)
	}
	for _, h := range hits {
		args := h["args"].(map[string]any)
		i := num(args["i"])
		if len(args) != 3 || num(args["x"]) != 42 || args["neg"] != fmt.Sprintf("0x%x", uint32(-int32(i))) {
			t.Fatalf("hit args %v: want i, neg=0x%x, x=42", args, uint32(-int32(i)))
		}
	}
	out, err := exec.Command(binary, "attach", "--duration", "1s", bin+":usdt:uprobectl:tick y=arg4").CombinedOutput()
	if msg := strings.TrimSpace(string(out)); usdtExit(err) != 2 || !strings.Contains(msg, "arg4: marker uprobectl:tick has 3 arguments") {
		t.Errorf("arg4 of a 3-argument marker: exit %v: %q", err, msg)
	}
}

func TestAttachUSDT(t *testing.T) {
	needSDT(t)
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "usdt")
	target := targets.Start(t, bin, "500")
	a := startAttach(t, "--pid", fmt.Sprint(target.PID), bin+":usdt:uprobectl:tick", bin+":usdt:mem", bin+":usdt:global")
	a.waitReady(t)
	calls := target.Go(t)
	if code := a.wait(t); code != 0 {
		t.Fatalf("attach exit %d: %s", code, a.stderr.String())
	}
	seen := map[string]map[int64]bool{"uprobectl:tick": {}, "uprobectl:mem": {}, "uprobectl:global": {}}
	for _, h := range a.ofType("hit") {
		sym, _ := h["symbol"].(string)
		args, _ := h["args"].(map[string]any)
		i := num(args["arg1"])
		switch sym {
		case "uprobectl:tick":
			if num(args["arg2"]) != -i || num(args["arg3"]) != 42 {
				t.Fatalf("tick hit %v: want arg2=-arg1, arg3=42", args)
			}
		case "uprobectl:global":
			if num(args["arg2"]) != -i {
				t.Fatalf("global hit %v: want arg2=-arg1", args)
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
	if s := a.summary(t); num(s["hits"]) != int64(3*calls) || num(s["lost"]) != 0 {
		t.Errorf("summary %v, want hits=%d lost=0", s, 3*calls)
	}
}
