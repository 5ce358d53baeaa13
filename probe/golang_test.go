package probe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The Go target (testdata/targets/gotarget) built twice, as an executable
// and as a PIE, once per test run. The expected offsets come from the Go
// toolchain's own disassembler (go tool objdump), not from the code under
// test.

var (
	goTargetOnce sync.Once
	goTargets    map[string]string // "exe", "pie" -> path
	goTargetErr  error
)

func goTarget(t *testing.T, mode string) string {
	t.Helper()
	goTargetOnce.Do(func() {
		dir, err := os.MkdirTemp("", "probe-gotarget-")
		if err != nil {
			goTargetErr = err
			return
		}
		src, _ := filepath.Abs(filepath.Join("..", "testdata", "targets", "gotarget", "main.go"))
		goTargets = map[string]string{}
		for _, m := range []string{"exe", "pie"} {
			out := filepath.Join(dir, "gotarget-"+m)
			if b, err := exec.Command("go", "build", "-buildmode="+m, "-o", out, src).CombinedOutput(); err != nil {
				goTargetErr = fmt.Errorf("go build -buildmode=%s: %v\n%s", m, err, b)
				return
			}
			goTargets[m] = out
		}
	})
	if goTargetErr != nil {
		t.Fatal(goTargetErr)
	}
	return goTargets[mode]
}

// objdumpLine is one instruction as go tool objdump prints it.
type objdumpLine struct {
	rel  uint64 // from the function's entry
	text string // "JBE 0x4a1654"
}

var objdumpRe = regexp.MustCompile(`^\s+\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(.*?)\s*$`)

var (
	objdumpMu    sync.Mutex
	objdumpCache = map[string]map[string][]objdumpLine{} // binary -> function -> lines
)

// objdump disassembles one function of bin with go tool objdump (every
// main.* function at once, on first use).
func objdump(t *testing.T, bin, fn string) []objdumpLine {
	t.Helper()
	objdumpMu.Lock()
	defer objdumpMu.Unlock()
	funcs := objdumpCache[bin]
	if funcs == nil {
		out, err := exec.Command("go", "tool", "objdump", "-s", `^main\.`, bin).Output()
		if err != nil {
			t.Fatalf("go tool objdump %s: %v", bin, err)
		}
		funcs = map[string][]objdumpLine{}
		var name string
		var entry uint64
		for _, l := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(l, "TEXT "); ok {
				name, _, _ = strings.Cut(rest, "(SB)")
				continue
			}
			m := objdumpRe.FindStringSubmatch(l)
			if m == nil || name == "" {
				continue
			}
			addr, _ := strconv.ParseUint(m[1], 16, 64)
			if funcs[name] == nil {
				entry = addr
			}
			funcs[name] = append(funcs[name], objdumpLine{rel: addr - entry, text: m[2]})
		}
		objdumpCache[bin] = funcs
	}
	if len(funcs[fn]) == 0 {
		t.Fatalf("go tool objdump found no %s in %s", fn, bin)
	}
	return funcs[fn]
}

// afterStackCheck is where objdump says the entry probe belongs: after
// the first JBE when the function starts with the stack check, else 0.
func afterStackCheck(lines []objdumpLine) uint64 {
	if !strings.Contains(lines[0].text, "(R14)") && !strings.HasPrefix(lines[0].text, "LEAQ") && !strings.HasPrefix(lines[0].text, "MOVQ SP, R12") {
		return 0
	}
	for i, l := range lines[:min(len(lines)-1, 6)] {
		if strings.HasPrefix(l.text, "JBE ") {
			return lines[i+1].rel
		}
	}
	return 0
}

func retsOf(lines []objdumpLine) []uint64 {
	var rets []uint64
	for _, l := range lines {
		if l.text == "RET" {
			rets = append(rets, l.rel)
		}
	}
	return rets
}

func symbolNamed(t *testing.T, bin, name string) Symbol {
	t.Helper()
	syms, err := Symbols(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no symbol %s in %s", name, bin)
	return Symbol{}
}

func resolveGo(t *testing.T, word string, force bool) ([]Target, error) {
	t.Helper()
	spec, err := ParseSpec(word)
	if err != nil {
		t.Fatalf("ParseSpec(%q): %v", word, err)
	}
	return Resolve(spec, ResolveOptions{Force: force})
}

func TestIsGoBinary(t *testing.T) {
	for _, mode := range []string{"exe", "pie"} {
		if ok, err := IsGoBinary(goTarget(t, mode)); !ok || err != nil {
			t.Errorf("IsGoBinary(gotarget-%s) = %v, %v; want true", mode, ok, err)
		}
	}
	f := testFixtures(t)
	if ok, err := IsGoBinary(f.pie); ok || err != nil {
		t.Errorf("IsGoBinary(C program) = %v, %v; want false", ok, err)
	}
	targets, err := resolveGo(t, goTarget(t, "exe")+":main.work", false)
	if err != nil || len(targets) != 1 || !targets[0].Go {
		t.Fatalf("targets %+v, %v: want one with Go set", targets, err)
	}
	targets, err = resolveGo(t, f.pie+":tgt_mix", false)
	if err != nil || len(targets) != 1 || targets[0].Go {
		t.Fatalf("targets %+v, %v: want one without Go", targets, err)
	}
}

// TestGoEntryAfterStackCheck: a Go function's entry probe is the
// instruction after the stack check's JBE (every form of the check), or
// its entry when it has none; an explicit offset stays where it is.
func TestGoEntryAfterStackCheck(t *testing.T) {
	for _, mode := range []string{"exe", "pie"} {
		bin := goTarget(t, mode)
		for _, tc := range []struct {
			fn      string
			checked bool // has a stack check
		}{
			{"main.deep", true},  // LEA R12, [RSP-N]; CMP R12, [R14+16]
			{"main.spin", true},  // CMP RSP, [R14+16]
			{"main.huge", true},  // MOV R12, RSP; SUB R12, N; JB; CMP R12, [R14+16]
			{"main.main", true},  // a big function
			{"main.work", false}, // a leaf
			{"main.(*Counter).Add", false},
		} {
			t.Run(mode+"/"+tc.fn, func(t *testing.T) {
				lines := objdump(t, bin, tc.fn)
				want := afterStackCheck(lines)
				if (want != 0) != tc.checked {
					t.Fatalf("objdump of %s: stack check after +0x%x, want checked=%v: %v", tc.fn, want, tc.checked, lines[:3])
				}
				sym := symbolNamed(t, bin, tc.fn)
				targets, err := resolveGo(t, bin+":"+tc.fn, false)
				if err != nil {
					t.Fatal(err)
				}
				if len(targets) != 1 || targets[0].Offset != sym.Offset+want || targets[0].Symbol != tc.fn {
					t.Fatalf("targets %+v, want %s at +0x%x (0x%x)", targets, tc.fn, want, sym.Offset+want)
				}
			})
		}
	}
	bin := goTarget(t, "exe")
	sym := symbolNamed(t, bin, "main.deep")
	lines := objdump(t, bin, "main.deep")
	for _, word := range []string{
		fmt.Sprintf("main.deep+0x%x", lines[1].rel), // the CMP: where the user said
		fmt.Sprintf("0x%x", sym.Offset),             // a raw offset is the byte it names
	} {
		want := sym.Offset
		if strings.HasPrefix(word, "main.") {
			want += lines[1].rel
		}
		targets, err := resolveGo(t, bin+":"+word, false)
		if err != nil || len(targets) != 1 || targets[0].Offset != want {
			t.Errorf("%s: targets %+v, %v; want one at 0x%x", word, targets, err, want)
		}
	}
}

// TestGoReturnSites: %return on a Go function is its RET instructions,
// as objdump lists them, jump tables included; never a uretprobe.
func TestGoReturnSites(t *testing.T) {
	for _, mode := range []string{"exe", "pie"} {
		bin := goTarget(t, mode)
		for _, fn := range []string{"main.work", "main.deep", "main.classify", "main.Sum[go.shape.int]", "main.(*Counter).Add", "main.main"} {
			t.Run(mode+"/"+fn, func(t *testing.T) {
				rets := retsOf(objdump(t, bin, fn))
				if len(rets) == 0 {
					t.Fatalf("objdump shows no RET in %s", fn)
				}
				sym := symbolNamed(t, bin, fn)
				var want []uint64
				for _, r := range rets {
					want = append(want, sym.Offset+r)
				}
				for _, word := range []string{fn + "%return", fmt.Sprintf("0x%x%%return", sym.Offset)} {
					targets, err := resolveGo(t, bin+":"+word+" rv=$retval:s64", false)
					if err != nil {
						t.Fatalf("%s: %v", word, err)
					}
					if len(targets) != 1 {
						t.Fatalf("%s: %d targets", word, len(targets))
					}
					tg := targets[0]
					if !tg.Return || tg.Offset != sym.Offset || !slices.Equal(tg.ReturnSites, want) || !slices.Equal(tg.KernelOffsets(), want) {
						t.Fatalf("%s: Return %v Offset 0x%x ReturnSites %#x; want the entry 0x%x and RETs %#x", word, tg.Return, tg.Offset, tg.ReturnSites, sym.Offset, want)
					}
					if got := RetvalInRegister(tg.Args); len(got) != 1 || got[0].Fetch() != "rv=%ax:s64" || tg.Args[0].Fetch() != "rv=$retval:s64" {
						t.Fatalf("args %+v, in register %+v", tg.Args, got)
					}
				}
			})
		}
	}
	if n := len(retsOf(objdump(t, goTarget(t, "exe"), "main.classify"))); n < 10 {
		t.Errorf("main.classify has %d RETs: its switch is no jump table any more, the test lost a case", n)
	}
}

// TestGoReturnRefused: a %return that cannot be done on RETs is refused
// with one line saying why, --force or not; a glob skips the function.
func TestGoReturnRefused(t *testing.T) {
	bin := goTarget(t, "exe")
	for _, tc := range []struct {
		fn, msg string
	}{
		{"main.(*Outer).Add", "jumps out of the function, to main.(*Counter).Add (a tail call"},
		{"main.spin", "main.spin has no RET instruction"},
	} {
		for _, force := range []bool{false, true} {
			_, err := resolveGo(t, bin+":"+tc.fn+"%return", force)
			if !errors.Is(err, ErrUnsafeOffset) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s%%return (force %v): %v; want ErrUnsafeOffset, one line, %q", tc.fn, force, err, tc.msg)
			}
		}
	}
	sym := symbolNamed(t, bin, "main.deep")
	_, err := resolveGo(t, fmt.Sprintf("%s:0x%x%%return", bin, sym.Offset+4), true)
	if !errors.Is(err, ErrUnsafeOffset) || !strings.Contains(err.Error(), "not the entry of a function") {
		t.Errorf("forced %%return inside main.deep: %v", err)
	}

	targets, err := resolveGo(t, bin+":main.*%return", false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range targets {
		names = append(names, tg.Symbol)
		if len(tg.ReturnSites) == 0 {
			t.Errorf("%s: no ReturnSites", tg.Symbol)
		}
	}
	if !slices.Contains(names, "main.work") || slices.Contains(names, "main.spin") || slices.Contains(names, "main.(*Outer).Add") {
		t.Errorf("glob matched %q", names)
	}
	skipped := strings.Join(targets[0].Spec.Skipped, "\n")
	if !strings.Contains(skipped, "main.spin: %return: ") || !strings.Contains(skipped, "main.(*Outer).Add: %return: ") {
		t.Errorf("Skipped = %q", targets[0].Spec.Skipped)
	}
}

// TestGoArgs: argN names Go's argument registers in a Go binary, the C
// ABI's elsewhere; arg7..arg9 exist only in Go's.
func TestGoArgs(t *testing.T) {
	bin := goTarget(t, "exe")
	targets, err := resolveGo(t, bin+":main.work i=arg1:s64 arg2 p=+8(arg3) arg4 arg5 arg6 arg7 arg8 arg9", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range targets[0].Args {
		got = append(got, a.Fetch())
	}
	want := []string{"i=%ax:s64", "arg2=%bx", "p=+8(%cx)", "arg4=%di", "arg5=%si", "arg6=%r8", "arg7=%r9", "arg8=%r10", "arg9=%r11"}
	if !slices.Equal(got, want) {
		t.Errorf("Go args %q, want %q", got, want)
	}
	if _, err := ParseSpec(bin + ":main.work arg10"); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "Go functions 9") {
		t.Errorf("arg10: %v", err)
	}
	if _, err := argsFor(&Spec{Raw: "w", Args: []Arg{{Name: "x", Expr: "arg10", Given: "x=arg10"}}}, goABI); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "at most 9 integer words") {
		t.Errorf("arg10 on Go: %v", err)
	}

	f := testFixtures(t)
	targets, err = resolveGo(t, f.pie+":tgt_mix arg1 arg6", false)
	if err != nil || targets[0].Args[0].Expr != "%di" || targets[0].Args[1].Expr != "%r9" {
		t.Fatalf("C args: %+v, %v", targets, err)
	}
	if _, err := resolveGo(t, f.pie+":tgt_mix arg7", false); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "arg7 is passed on the stack, not in a register: at the function entry write $stack1") {
		t.Errorf("arg7 on C: %v", err)
	}
}

// TestGoNames: Go names with dots, receivers and type arguments, exactly
// or by glob; "[...]" is every instance of a generic function.
func TestGoNames(t *testing.T) {
	bin := goTarget(t, "exe")
	for _, tc := range []struct {
		word string
		want []string
	}{
		{"main.(*Counter).Add", []string{"main.(*Counter).Add"}},
		{"main.(*Counter).*", []string{"main.(*Counter).Add"}},
		{"main.Sum[go.shape.int]", []string{"main.Sum[go.shape.int]"}},
		{"main.Sum[...]", []string{"main.Sum[go.shape.float64]", "main.Sum[go.shape.int]"}},
		{"main.Sum*", []string{"main.Sum[go.shape.float64]", "main.Sum[go.shape.int]"}},
		{`main.Sum\[go.shape.float64\]`, []string{"main.Sum[go.shape.float64]"}},
		{"main.Value.Get", []string{"main.Value.Get"}},
		{"main.*Get", []string{"main.(*Value).Get", "main.Value.Get"}},
		{"internal/poll.(*FD).Read", []string{"internal/poll.(*FD).Read"}},
		{"internal*FD).Read", []string{"internal/poll.(*FD).Read"}}, // '*' matches the '/' of a package path
	} {
		targets, err := resolveGo(t, bin+":"+tc.word, false)
		if err != nil {
			t.Errorf("%s: %v", tc.word, err)
			continue
		}
		var got []string
		for _, tg := range targets {
			got = append(got, tg.Symbol)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s matched %q, want %q", tc.word, got, tc.want)
		}
	}
	targets, err := resolveGo(t, bin+":main.(*Counter).Add%return", false)
	if err != nil {
		t.Fatal(err)
	}
	AssignEventNames(targets)
	if targets[0].Event != "main___Counter__Add__return" {
		t.Errorf("event name %q", targets[0].Event)
	}
}
