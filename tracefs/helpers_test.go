package tracefs

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kernelFS opens the real tracefs. It skips the test only on
// ErrNotSupported, and fails instead when UPROBECTL_REQUIRE_KERNEL=1 (CI).
func kernelFS(tb testing.TB) *FS {
	tb.Helper()
	fs, err := Open()
	if errors.Is(err, ErrNotSupported) {
		if os.Getenv("UPROBECTL_REQUIRE_KERNEL") == "1" {
			tb.Fatalf("UPROBECTL_REQUIRE_KERNEL=1, but: %v", err)
		}
		tb.Skipf("no uprobe events here: %v", err)
	}
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return fs
}

// selfGroup is the group of this test process.
func selfGroup(tb testing.TB) string {
	tb.Helper()
	o, err := Self()
	if err != nil {
		tb.Fatal(err)
	}
	return o.Group()
}

// target is testdata/target.c built into a temporary directory.
type target struct {
	Path string
	Off  map[string]uint64 // function name -> file offset
}

func buildTarget(tb testing.TB) target {
	tb.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		tb.Fatalf("gcc is needed to build the probe target: %v", err)
	}
	out := filepath.Join(tb.TempDir(), "target")
	if b, err := exec.Command(gcc, "-O0", "-g", "-o", out, "testdata/target.c").CombinedOutput(); err != nil {
		tb.Fatalf("gcc: %v\n%s", err, b)
	}
	off, err := funcOffsets(out)
	if err != nil {
		tb.Fatal(err)
	}
	for _, fn := range []string{"main", "work", "fetch"} {
		if _, ok := off[fn]; !ok {
			tb.Fatalf("%s: no symbol %s", out, fn)
		}
	}
	return target{Path: out, Off: off}
}

// funcOffsets maps the defined functions of an ELF file (.symtab and
// .dynsym) to file offsets: value - vaddr + offset of the executable
// PT_LOAD that holds them.
func funcOffsets(path string) (map[string]uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var syms []elf.Symbol
	if s, err := f.Symbols(); err == nil {
		syms = append(syms, s...)
	}
	if s, err := f.DynamicSymbols(); err == nil {
		syms = append(syms, s...)
	}
	out := map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Section == elf.SHN_UNDEF {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Memsz {
				name, _, _ := strings.Cut(s.Name, "@")
				out[name] = s.Value - p.Vaddr + p.Off
				break
			}
		}
	}
	return out, nil
}

// readLines returns the lines of uprobe_events.
func readLines(tb testing.TB, fs *FS) []string {
	tb.Helper()
	b, err := fs.readUprobeEvents() // one consistent snapshot
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func groupLines(tb testing.TB, fs *FS, group string) []string {
	tb.Helper()
	var out []string
	for _, l := range readLines(tb, fs) {
		if d, err := parseDefinition(l); err == nil && d.Group == group {
			out = append(out, l)
		}
	}
	return out
}

// guard checks, when the test ends, that the lines uprobe_events held when
// guard was called are still there (see checkKept), that a canary line of
// another tool's group survived the test, and that no line of groups
// remains (leftovers are then removed so later tests start clean).
func guard(tb testing.TB, fs *FS, groups ...string) {
	tb.Helper()
	canary := canaryLine(tb)
	rawAppend(tb, fs, canary+"\n")
	before := readLines(tb, fs)
	tb.Cleanup(func() {
		checkKept(tb, fs, before)
		d, _ := parseDefinition(canary)
		if len(groupLines(tb, fs, d.Group)) == 0 {
			tb.Errorf("another tool's event was removed: %s", canary)
		} else {
			rawAppend(tb, fs, "-:"+d.Group+"/"+d.Event+"\n")
		}
		for _, g := range groups {
			if left := groupLines(tb, fs, g); len(left) > 0 {
				tb.Errorf("group %s left behind:\n%s", g, strings.Join(left, "\n"))
				if err := fs.RemoveGroup(g); err != nil {
					tb.Errorf("clean up %s: %v", g, err)
				}
			}
		}
	})
}

// canaryLine is a definition in a group of "another tool", unique to this
// process, on this test binary's entry point: defined, never armed.
func canaryLine(tb testing.TB) string {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz {
			return fmt.Sprintf("p:probe_tracefscanary/c_%d %s:%#x", os.Getpid(), exe, f.Entry-p.Vaddr+p.Off)
		}
	}
	tb.Fatalf("%s: entry point %#x in no executable segment", exe, f.Entry)
	return ""
}

// checkKept checks that every line of before is still in uprobe_events.
//
// Other engineers' tests may run at the same time, adding and removing
// their own events, so by default only what this package could have
// removed fails the test: lines of our own owner group. Lines of another
// uprobectl owner's group (its owner or a Reap removed them) and lines of
// other tools' groups that went away are logged; that this package never
// touches another tool's events is checked by guard's canary instead.
// With UPROBECTL_EXCLUSIVE_TRACEFS=1 (nothing else uses tracefs) every
// line that went away fails the test.
func checkKept(tb testing.TB, fs *FS, before []string) {
	tb.Helper()
	self, err := Self()
	if err != nil {
		tb.Fatal(err)
	}
	exclusive := os.Getenv("UPROBECTL_EXCLUSIVE_TRACEFS") == "1"
	now := map[string]bool{}
	for _, l := range readLines(tb, fs) {
		now[l] = true
	}
	for _, l := range before {
		if now[l] {
			continue
		}
		d, err := parseDefinition(l)
		if o, ok := ParseGroup(d.Group); !exclusive && err == nil && (!ok || o != self) {
			tb.Logf("line of another process went away meanwhile: %s", l)
			continue
		}
		tb.Errorf("line present at the start is gone: %s", l)
	}
}

// rawAppend writes cmd to uprobe_events the way another tool (perf probe)
// would: O_WRONLY|O_APPEND, never truncating.
func rawAppend(tb testing.TB, fs *FS, cmd string) {
	tb.Helper()
	f, err := os.OpenFile(fs.path("uprobe_events"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cmd); err != nil {
		tb.Fatalf("write %q: %v", cmd, err)
	}
}

// reap runs fs.Reap. A dead owner's group that is busy is reported by
// Reap, not fatal, and may belong to another test running at the same
// time (TestBusy holds one on purpose): only other errors fail the test.
func reap(tb testing.TB, fs *FS) []OwnedGroup {
	tb.Helper()
	removed, err := fs.Reap()
	if err == nil {
		return removed
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if errors.Is(e, ErrBusy) {
			tb.Logf("Reap: %v", e)
		} else {
			tb.Errorf("Reap: %v", e)
		}
	}
	return removed
}
