package probe

import (
	"github.com/uprobectl/uprobectl/internal/targets"

	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// buildUSDTTarget compiles testdata/targets/usdt.c, or skips without
// <sys/sdt.h> (scripts/setup installs systemtap-sdt-dev).
func buildUSDTTarget(t *testing.T) string {
	t.Helper()
	targets.NeedTool(t, "gcc", "gcc")
	found := false
	for _, h := range []string{"/usr/include/x86_64-linux-gnu/sys/sdt.h", "/usr/include/sys/sdt.h"} {
		if _, err := os.Stat(h); err == nil {
			found = true
		}
	}
	if !found {
		targets.Missing(t, "<sys/sdt.h> (systemtap-sdt-dev)")
	}
	out := filepath.Join(t.TempDir(), "usdt")
	run(t, "gcc", "-O0", "-o", out, filepath.Join("..", "testdata", "targets", "usdt.c"))
	return out
}

type readelfNote struct {
	provider, name, args string
	location, semaphore  uint64
}

var (
	noteProvider = regexp.MustCompile(`\sProvider: (\S+)$`)
	noteName     = regexp.MustCompile(`^\s+Name: (\S+)$`)
	noteLoc      = regexp.MustCompile(`Location: 0x([0-9a-f]+), Base: 0x([0-9a-f]+), Semaphore: 0x([0-9a-f]+)`)
	noteArgs     = regexp.MustCompile(`^\s+Arguments: ?(.*)$`)
)

// readelfNotes reads the SDT notes with readelf -n, an oracle independent of
// this package (the files here are not prelinked: base needs no adjustment).
func readelfNotes(t *testing.T, path string) []readelfNote {
	t.Helper()
	var notes []readelfNote
	for _, line := range strings.Split(run(t, "readelf", "-nW", path), "\n") {
		if m := noteProvider.FindStringSubmatch(line); m != nil {
			notes = append(notes, readelfNote{provider: m[1]})
			continue
		}
		if len(notes) == 0 {
			continue
		}
		n := &notes[len(notes)-1]
		if m := noteName.FindStringSubmatch(line); m != nil {
			n.name = m[1]
		} else if m := noteLoc.FindStringSubmatch(line); m != nil {
			n.location, _ = strconv.ParseUint(m[1], 16, 64)
			n.semaphore, _ = strconv.ParseUint(m[3], 16, 64)
		} else if m := noteArgs.FindStringSubmatch(line); m != nil {
			n.args = strings.TrimSpace(m[1])
		}
	}
	return notes
}

// checkMarkers compares USDTMarkers with readelf's notes and the file
// bytes: each marker's offset holds a NOP.
func checkMarkers(t *testing.T, path string) []USDTMarker {
	t.Helper()
	markers, err := USDTMarkers(path)
	if err != nil {
		t.Fatal(err)
	}
	notes := readelfNotes(t, path)
	if len(markers) != len(notes) || len(notes) == 0 {
		t.Fatalf("%d markers, readelf shows %d notes", len(markers), len(notes))
	}
	loads := readelfLoads(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range markers {
		n := notes[i]
		wantOff, _ := segmentMath(loads, n.location)
		wantSema := uint64(0)
		if n.semaphore != 0 {
			wantSema, _ = segmentMath(loads, n.semaphore)
		}
		if m.Provider != n.provider || m.Name != n.name || m.Args != n.args || m.Offset != wantOff || m.SemaphoreOffset != wantSema {
			t.Errorf("marker %+v, readelf: %+v (offset 0x%x, semaphore 0x%x)", m, n, wantOff, wantSema)
		}
		if data[m.Offset] != 0x90 {
			t.Errorf("%s: byte at 0x%x is 0x%02x, not a NOP", m.FullName(), m.Offset, data[m.Offset])
		}
	}
	return markers
}

func TestUSDTMarkersOfCTarget(t *testing.T) {
	bin := buildUSDTTarget(t)
	markers := checkMarkers(t, bin)
	byName := map[string]USDTMarker{}
	for _, m := range markers {
		byName[m.FullName()] = m
	}
	if m := byName["uprobectl:tick"]; m.Semaphore != 0 || !strings.HasSuffix(m.Args, "-4@$42") {
		t.Errorf("tick: %+v", m)
	}
	if m := byName["uprobectl:gated"]; m.Semaphore == 0 || m.SemaphoreOffset == 0 {
		t.Errorf("gated has no semaphore: %+v", m)
	}
	if !byName["uprobectl:mem"].MatchesGlob("mem") || !byName["uprobectl:mem"].MatchesGlob("uprobectl:m*") || byName["uprobectl:mem"].MatchesGlob("tick") {
		t.Error("MatchesGlob")
	}
}

func TestUSDTMarkersOfPython(t *testing.T) {
	const py = "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		targets.Missing(t, py+" (python3.11-minimal)")
	}
	markers := checkMarkers(t, py)
	found := false
	for _, m := range markers {
		if m.FullName() == "python:function__entry" {
			found = m.Semaphore != 0
		}
	}
	if !found {
		t.Errorf("no python:function__entry with a semaphore in %v", markers)
	}
	// A file without markers: none, no error.
	if m, err := USDTMarkers("/bin/true"); err != nil || len(m) != 0 {
		t.Errorf("/bin/true: %v, %v", m, err)
	}
}

func TestUSDTArgExpr(t *testing.T) {
	for _, c := range []struct{ spec, expr, typ string }{
		{"8@%rdi", "%di", "u64"},
		{"-4@%eax", "%ax", "s32"},
		{"-4@%r12d", "%r12", "s32"},
		{"1@%sil", "%si", "u8"},
		{"-2@%r9w", "%r9", "s16"},
		{"-8@-32(%rbp)", "-32(%bp)", "s64"},
		{"-4@112(%rsp)", "+112(%sp)", "s32"},
		{"8@(%rax)", "+0(%ax)", "u64"},
		{"-4@$42", `\42`, "s32"},
		{"-8@$-7", `\-7`, "s64"},
		{"8@$0x10", `\16`, "u64"},
		{"%rdi", "%di", "u64"},
	} {
		expr, typ, err := USDTArgExpr(c.spec)
		if err != nil || expr != c.expr || typ != c.typ {
			t.Errorf("%s: %q %q %v, want %q %q", c.spec, expr, typ, err, c.expr, c.typ)
		}
	}
	for _, spec := range []string{"8@sym(%rip)", "4@counter+8(%rip)", "8@(%rax,%rbx,8)", "1@%ah", "3@%rax", "8@%fs:0", "8@$sym", "x@%rax", "8@%xmm0", "8@"} {
		if expr, typ, err := USDTArgExpr(spec); err == nil {
			t.Errorf("%s: accepted as %q %q", spec, expr, typ)
		}
	}
}

func TestParseUSDTSpec(t *testing.T) {
	s, err := ParseSpec("./bin:usdt:prov:na*e")
	if err != nil || !s.USDT || s.Path != "./bin" || s.USDTProvider != "prov" || s.USDTName != "na*e" {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = ParseSpec("python3.11:usdt:gc__start")
	if err != nil || !s.USDT || s.USDTProvider != "" || s.USDTName != "gc__start" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"b:usdt:", "b:usdt::x", "b:usdt:p:", "b:usdt:a:b:c", "b:usdt:p:n%return", "b:usdt:p:[", "b:usdt:p:n x=%rdi"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestResolveUSDT(t *testing.T) {
	bin := buildUSDTTarget(t)
	resolve := func(word string) ([]Target, *Spec, error) {
		s, err := ParseSpec(word)
		if err != nil {
			t.Fatalf("%s: %v", word, err)
		}
		ts, err := Resolve(s, ResolveOptions{})
		if len(ts) > 0 {
			return ts, ts[0].Spec, err
		}
		return ts, nil, err
	}
	markers, _ := USDTMarkers(bin)
	offsets := map[string]uint64{}
	for _, m := range markers {
		offsets[m.Name] = m.Offset
	}
	for _, word := range []string{bin + ":usdt:uprobectl:tick", bin + ":usdt:tick", bin + ":usdt:*:t?ck"} {
		ts, _, err := resolve(word)
		if err != nil || len(ts) != 1 {
			t.Fatalf("%s: %v %v", word, ts, err)
		}
		tg := ts[0]
		var fetch []string
		for _, a := range tg.Args {
			fetch = append(fetch, a.Fetch())
		}
		if tg.Offset != offsets["tick"] || tg.Symbol != "uprobectl:tick" || tg.Path != bin || tg.Return ||
			strings.Join(fetch, " ") != `arg1=-32(%bp):s64 arg2=-4(%bp):s32 arg3=\42:s32` {
			t.Errorf("%s: %+v, args %q", word, tg, fetch)
		}
	}
	ts, spec, err := resolve(bin + ":usdt:uprobectl:*")
	if err != nil || len(ts) != 4 || len(spec.Skipped) != 0 {
		t.Fatalf("glob: %v %v %v", ts, spec, err)
	}
	AssignEventNames(ts)
	if ts[0].Event != "uprobectl_tick" || ts[1].Event != "uprobectl_mem" || ts[2].Event != "uprobectl_global" {
		t.Errorf("events %q %q %q", ts[0].Event, ts[1].Event, ts[2].Event)
	}
	// A semaphore is the kernel's reference counter; a global, @+X
	// relative to the probe's segment (its vaddr minus file offset).
	var gated, global USDTMarker
	for _, m := range markers {
		switch m.Name {
		case "gated":
			gated = m
		case "global":
			global = m
		}
	}
	ts, _, err = resolve(bin + ":usdt:uprobectl:gated")
	if err != nil || len(ts) != 1 || ts[0].RefCtr == 0 || ts[0].RefCtr != gated.SemaphoreOffset {
		t.Errorf("gated: %+v %v, want RefCtr 0x%x", ts, err, gated.SemaphoreOffset)
	}
	ts, _, err = resolve(bin + ":usdt:global")
	if err != nil || len(ts) != 1 || len(ts[0].Args) != 2 || !strings.HasPrefix(ts[0].Args[0].Expr, "@+0x") || global.Offset == 0 {
		t.Errorf("global: %+v %v", ts, err)
	}
	_, _, err = resolve(bin + ":usdt:nothere")
	if !errors.Is(err, ErrSymbolNotFound) || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing marker: %v", err)
	}
}

// TestUSDTRipRelativeUnknown: a global the symbol table does not name is
// refused with one line naming the argument.
func TestUSDTRipRelativeUnknown(t *testing.T) {
	bin := buildUSDTTarget(t)
	img, err := openELF(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	markers, _ := img.usdtMarkers()
	m := markers[0]
	m.Args = "8@%rdi -4@nothere(%rip)"
	_, err = img.usdtFetchArgs(m, &Spec{Raw: "x"})
	if err == nil || !strings.Contains(err.Error(), `argument 2 "-4@nothere(%rip)"`) || !strings.Contains(err.Error(), "nothere") || strings.Contains(err.Error(), "\n") {
		t.Errorf("%v", err)
	}
	for _, c := range []struct {
		d    string
		sym  string
		disp int64
	}{{"x", "x", 0}, {"40+CheckpointStats", "CheckpointStats", 40}, {"s+8", "s", 8}, {"s-8", "s", -8}} {
		sym, disp, err := symbolDisplacement(c.d)
		if err != nil || sym != c.sym || disp != c.disp {
			t.Errorf("%q: %q %d %v", c.d, sym, disp, err)
		}
	}
	for _, bad := range []string{"8", "-x", "a+b"} {
		if _, _, err := symbolDisplacement(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestUSDTUserArgsParse: argK in a usdt word renames or retypes the
// marker's argument; a string reads what it points to.
func TestUSDTUserArgsParse(t *testing.T) {
	typeOf := func(k int) string { return []string{"", "u64", "s32"}[k] }
	for _, c := range []struct {
		tok  string
		k    int
		want string
	}{
		{"fn=arg1:string", 1, "fn=+0(arg1):string"},
		{"arg2", 2, "arg2=arg2:s32"},
		{"n=arg2:x32", 2, "n=arg2:x32"},
		{"+8(arg1):u32", 0, "+8(arg1):u32"},
		{"c=$comm", 0, "c=$comm"},
	} {
		k, got := usdtUserArg(c.tok, typeOf)
		if k != c.k || got != c.want {
			t.Errorf("%q: %d %q, want %d %q", c.tok, k, got, c.k, c.want)
		}
	}
	if _, err := ParseSpec("b:usdt:p:n fn=arg2:string x=+8(arg1):u32"); err != nil {
		t.Errorf("user args refused: %v", err)
	}
	if _, err := ParseSpec("b:usdt:p:n fn=arg2:strin"); err == nil {
		t.Errorf("bad type accepted")
	}
}
