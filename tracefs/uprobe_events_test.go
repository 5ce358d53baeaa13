package tracefs

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestParseUprobeEvents(t *testing.T) {
	f, err := os.Open("testdata/uprobe_events_6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseUprobeEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	const g = "uprobectl_4026531836_1234_5678"
	want := []Definition{
		{Group: g, Event: "work", Path: "/tmp/exp/t", Offset: 0x1139, Args: []string{"a=%di:s32", "b=%si:x64", "s=+0(%dx):string"}},
		{Return: true, Group: g, Event: "work_ret", Path: "/tmp/exp/t", Offset: 0x1139, Args: []string{"rv=$retval:s32"}},
		{Group: "probe_t", Event: "work", Path: "/tmp/exp/t", Offset: 0x1139},
		{Group: g, Event: "sdt", Path: "/tmp/exp/t", Offset: 0x1161, RefCtr: 0x3010, Args: []string{"x=@+0x3010:u16"}},
		{Group: "uprobectl_dup", Event: "e", Path: "/tmp/exp/t", Offset: 0x1139},
		{Group: "uprobectl_dup", Event: "e", Path: "/tmp/exp/t", Offset: 0x1140},
		{Group: "uprobectl_odd", Event: "colon", Path: "/tmp/exp/odd:name", Offset: 0x1139},
	}
	if len(got) != len(want) {
		t.Fatalf("%d definitions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Line == "" {
			t.Errorf("%d: no Line", i)
		}
		got[i].Line = ""
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestParseDefinitionRejects(t *testing.T) {
	for _, tt := range []struct{ name, line string }{
		{"one word", "p:g/e"},
		{"kind", "x:g/e /a:0x1"},
		{"no slash", "p:ge /a:0x1"},
		{"empty event", "p:g/ /a:0x1"},
		{"no colon in location", "p:g/e /a"},
		{"bad offset", "p:g/e /a:zz"},
		{"open refctr", "p:g/e /a:0x1(0x2"},
		{"bad refctr", "p:g/e /a:0x1(x)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseUprobeEvents(strings.NewReader(tt.line + "\n")); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestSpecLine(t *testing.T) {
	const g = "uprobectl_1_2_3"
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	tests := []struct {
		name    string
		group   string
		spec    UprobeSpec
		want    string
		wantBad string // a piece of the error, "" if none expected
	}{
		{name: "entry", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Offset: 0x1139, Args: []string{"a=%di:s32", "s=+0(%si):string"}},
			want: "p:" + g + "/ev /bin/x:0x1139 a=%di:s32 s=+0(%si):string"},
		{name: "return", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Offset: 0x10, Return: true, Args: []string{"rv=$retval"}},
			want: "r:" + g + "/ev /bin/x:0x10 rv=$retval"},
		{name: "offset zero", spec: UprobeSpec{Event: "ev", Path: "/bin/x"}, want: "p:" + g + "/ev /bin/x:0x0"},
		{name: "refctr", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Offset: 0x10, RefCtr: 0x3010}, want: "p:" + g + "/ev /bin/x:0x10(0x3010)"},
		{name: "path with colon", spec: UprobeSpec{Event: "ev", Path: "/a:b", Offset: 1}, want: "p:" + g + "/ev /a:b:0x1"},
		{name: "63-byte event", spec: UprobeSpec{Event: long(63, "e"), Path: "/x"}, want: "p:" + g + "/" + long(63, "e") + " /x:0x0"},
		{name: "32-byte arg name, 63-byte body", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{long(32, "n") + "=" + long(63, "1")}},
			want: "p:" + g + "/e /x:0x0 " + long(32, "n") + "=" + long(63, "1")},

		{name: "newline in path injects a command", spec: UprobeSpec{Event: "ev", Path: "/bin/x:0x1\n-:probe_libc/", Offset: 1}, wantBad: "newline"},
		{name: "newline in arg", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Args: []string{"a=%di\np:uprobectl_injected/x"}}, wantBad: "newline"},
		{name: "carriage return in arg", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Args: []string{"a=%di\r"}}, wantBad: "control"},
		{name: "space in path", spec: UprobeSpec{Event: "ev", Path: "/bin/my x"}, wantBad: "space"},
		{name: "tab in arg", spec: UprobeSpec{Event: "ev", Path: "/bin/x", Args: []string{"a=\t%di"}}, wantBad: "control"},
		{name: "hash in path", spec: UprobeSpec{Event: "ev", Path: "/bin/x#y"}, wantBad: "'#'"},
		{name: "0xa0 in path", spec: UprobeSpec{Event: "ev", Path: "/bin/\u00e0"}, wantBad: "0xa0"},
		{name: "DEL in path", spec: UprobeSpec{Event: "ev", Path: "/bin/\x7f"}, wantBad: "control"},
		{name: "relative path", spec: UprobeSpec{Event: "ev", Path: "bin/x"}, wantBad: "not absolute"},
		{name: "empty path", spec: UprobeSpec{Event: "ev"}, wantBad: "not absolute"},
		{name: "event with slash", spec: UprobeSpec{Event: "a/b", Path: "/x"}, wantBad: "event name"},
		{name: "event with dash", spec: UprobeSpec{Event: "a-b", Path: "/x"}, wantBad: "event name"},
		{name: "event starting with digit", spec: UprobeSpec{Event: "1a", Path: "/x"}, wantBad: "event name"},
		{name: "64-byte event", spec: UprobeSpec{Event: long(64, "e"), Path: "/x"}, wantBad: "event name"},
		{name: "empty event", spec: UprobeSpec{Path: "/x"}, wantBad: "event name"},
		{name: "arg without name", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"%di"}}, wantBad: "name=expr"},
		{name: "arg name 33 bytes", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{long(33, "n") + "=%di"}}, wantBad: "C identifier"},
		{name: "arg name not an identifier", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"a.b=%di"}}, wantBad: "C identifier"},
		{name: "arg body 64 bytes", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"a=" + long(64, "1")}}, wantBad: "1 to 63"},
		{name: "empty arg body", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"a="}}, wantBad: "1 to 63"},
		{name: "reserved arg name", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"common_pid=%di"}}, wantBad: "reserved"},
		{name: "arg name twice", spec: UprobeSpec{Event: "e", Path: "/x", Args: []string{"a=%di", "a=%si"}}, wantBad: "twice"},
		{name: "129 args", spec: UprobeSpec{Event: "e", Path: "/x", Args: make([]string, 129)}, wantBad: "at most 128"},
		{name: "line over 4094 bytes", spec: UprobeSpec{Event: "e", Path: "/" + long(4080, "p")}, wantBad: "4094"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.line(g)
			if tt.wantBad != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantBad) {
					t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.wantBad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("line\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheckOurGroup(t *testing.T) {
	for _, tt := range []struct {
		group string
		ok    bool
	}{
		{"uprobectl_1_2_3", true},
		{"uprobectl_anything-with-dash", true},
		{"uprobectl_", false},
		{"probe_test", false},
		{"uprobes", false},
		{"", false},
		{"uprobectl_a/b", false},
		{"uprobectl_a\n-:probe_test/", false},
		{"uprobectl_" + strings.Repeat("x", 54), false},
	} {
		t.Run(fmt.Sprintf("%q", tt.group), func(t *testing.T) {
			err := checkOurGroup(tt.group)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("checkOurGroup(%q) = %v", tt.group, err)
			}
		})
	}
}

func TestNextBatch(t *testing.T) {
	mk := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	tests := []struct {
		name    string
		lines   []string
		batches int
	}{
		{"one line", mk(1, 10), 1},
		{"500 lines of 80 bytes", mk(500, 80), 11},
		{"oversize lines go alone", mk(3, 4094), 3},
		{"exactly full", mk(40, 99), 1},
		{"one over", mk(41, 99), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			n := 0
			for first := 0; first < len(tt.lines); n++ {
				end, b := nextBatch(tt.lines, first)
				if end <= first {
					t.Fatalf("no progress at %d", first)
				}
				if len(b) > batchLen && end-first > 1 {
					t.Errorf("batch of %d lines has %d bytes", end-first, len(b))
				}
				if b[len(b)-1] != '\n' {
					t.Error("batch does not end with a newline")
				}
				got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
				first = end
			}
			if !reflect.DeepEqual(got, tt.lines) {
				t.Error("batches do not hold the lines in order")
			}
			if n != tt.batches {
				t.Errorf("%d batches, want %d", n, tt.batches)
			}
		})
	}
}

// TestNoTruncatingOpen keeps the package from ever gaining a way to
// truncate uprobe_events (which deletes every tool's uprobes): no O_TRUNC,
// os.WriteFile or os.Create in its code (comments aside), and O_RDWR or
// O_WRONLY only in openUprobeEvents.
func TestNoTruncatingOpen(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, _ := d.(*ast.FuncDecl)
			ast.Inspect(d, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch sel.Sel.Name {
				case "O_TRUNC", "WriteFile", "Create", "O_CREAT":
					t.Errorf("%s uses %s", name, sel.Sel.Name)
				case "O_WRONLY", "O_RDWR":
					if fn == nil || fn.Name.Name != "openUprobeEvents" {
						t.Errorf("%s opens a file for writing outside openUprobeEvents", name)
					}
				}
				return true
			})
		}
	}
}

func TestRemoveRefusesForeignGroups(t *testing.T) {
	fs := &FS{Root: "/nonexistent"} // nothing may be opened, let alone written
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"Remove probe_test/x", func() error { return fs.Remove("probe_test", "x") }},
		{"Remove bare event", func() error { return fs.Remove("", "x") }},
		{"Remove group/ with empty event", func() error { return fs.Remove("uprobectl_1_2_3", "") }},
		{"Remove event with newline", func() error { return fs.Remove("uprobectl_1_2_3", "x\n-:probe_test/") }},
		{"RemoveGroup probe_test", func() error { return fs.RemoveGroup("probe_test") }},
		{"RemoveGroup empty", func() error { return fs.RemoveGroup("") }},
		{"RemoveGroup uprobes", func() error { return fs.RemoveGroup("uprobes") }},
		{"Define in probe_test", func() error {
			_, err := fs.Define("probe_test", []UprobeSpec{{Event: "x", Path: "/bin/true"}})
			return err
		}},
		{"Define nothing", func() error { _, err := fs.Define("uprobectl_1_2_3", nil); return err }},
		{"Define one event with different args", func() error {
			_, err := fs.Define("uprobectl_1_2_3", []UprobeSpec{{Event: "x", Path: "/bin/true"}, {Event: "x", Path: "/bin/true", Offset: 8, Args: []string{"a=%di"}}})
			return err
		}},
		{"Define one event as entry and return", func() error {
			_, err := fs.Define("uprobectl_1_2_3", []UprobeSpec{{Event: "x", Path: "/bin/true"}, {Event: "x", Path: "/bin/true", Offset: 8, Return: true}})
			return err
		}},
		{"Define one location twice in an event", func() error {
			_, err := fs.Define("uprobectl_1_2_3", []UprobeSpec{{Event: "x", Path: "/bin/true"}, {Event: "x", Path: "/bin/true"}})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// ----- kernel tests -----

// TestDefineMultiProbeEvent: specs sharing a name become one trace event
// with one line per probe in uprobe_events, and one Event in the result.
func TestDefineMultiProbeEvent(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	evs, err := fs.Define(group, []UprobeSpec{
		{Event: "both", Path: tg.Path, Offset: tg.Off["work"]},
		{Event: "single", Path: tg.Path, Offset: tg.Off["work"]},
		{Event: "both", Path: tg.Path, Offset: tg.Off["main"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Name != "both" || evs[1].Name != "single" || evs[0].ID == evs[1].ID {
		t.Fatalf("events %+v %+v, want both then single", evs[0], evs[1])
	}
	if n := len(groupLines(t, fs, group)); n != 3 {
		t.Errorf("%d lines in uprobe_events, want 3 (one per probe)", n)
	}
	if err := fs.RemoveGroup(group); err != nil {
		t.Fatal(err)
	}
	if n := len(groupLines(t, fs, group)); n != 0 {
		t.Errorf("%d lines left after RemoveGroup", n)
	}
}

func TestDefineRemoveOne(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	spec := UprobeSpec{Event: "work", Path: tg.Path, Offset: tg.Off["work"], Args: []string{"a=%di:s32", "s=+0(%dx):string"}}
	evs, err := fs.Define(group, []UprobeSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0]
	if ev.Group != group || ev.Name != "work" || ev.ID == 0 || ev.Format == nil || ev.Format.ID != ev.ID {
		t.Errorf("event %+v", ev)
	}
	if f, ok := ev.Format.Field("s"); !ok || !f.DataLoc {
		t.Errorf("field s: %+v %v", f, ok)
	}

	defs, err := fs.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	var found []Definition
	for _, d := range defs {
		if d.Group == group {
			found = append(found, d)
		}
	}
	want := Definition{Group: group, Event: "work", Path: tg.Path, Offset: tg.Off["work"], Args: spec.Args}
	if len(found) != 1 {
		t.Fatalf("group has %d definitions, want 1", len(found))
	}
	found[0].Line = ""
	if !reflect.DeepEqual(found[0], want) {
		t.Errorf("definition\n got %+v\nwant %+v", found[0], want)
	}

	// Defining it again must not add a second probe to the event.
	spec2 := spec
	spec2.Offset = tg.Off["main"]
	if _, err := fs.Define(group, []UprobeSpec{spec2}); !errors.Is(err, ErrExist) {
		t.Errorf("second Define = %v, want ErrExist", err)
	}
	if n := len(groupLines(t, fs, group)); n != 1 {
		t.Errorf("%d lines after a refused Define, want 1", n)
	}

	if err := fs.Remove(group, "work"); err != nil {
		t.Fatal(err)
	}
	if n := len(groupLines(t, fs, group)); n != 0 {
		t.Errorf("%d lines after Remove", n)
	}
	if err := fs.Remove(group, "work"); !errors.Is(err, ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("second Remove = %v, want ErrNotExist", err)
	}
	if err := fs.RemoveGroup(group); err != nil {
		t.Errorf("RemoveGroup of an empty group = %v, want nil", err)
	}
}

func batchSpecs(tg target, n int) []UprobeSpec {
	specs := make([]UprobeSpec, n)
	fns := []string{"main", "work", "fetch"}
	for i := range specs {
		fn := fns[i%len(fns)]
		specs[i] = UprobeSpec{
			Event:  fmt.Sprintf("%s_%03d", fn, i),
			Path:   tg.Path,
			Offset: tg.Off[fn],
			Return: i%5 == 4,
			Args:   []string{"x=%di:x64", "y=%si:s32"},
		}
	}
	return specs
}

func TestDefineBatch(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	specs := batchSpecs(tg, 150) // several writes of ~4 KiB
	evs, err := fs.Define(group, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(specs) {
		t.Fatalf("%d events, want %d", len(evs), len(specs))
	}
	ids := map[uint64]bool{}
	for i, ev := range evs {
		if ev.Name != specs[i].Event || ids[ev.ID] {
			t.Errorf("event %d: %+v", i, ev)
		}
		ids[ev.ID] = true
		_, isRet := ev.Format.Field("__probe_ret_ip")
		if isRet != specs[i].Return {
			t.Errorf("%s: return field %v, want %v", ev.Name, isRet, specs[i].Return)
		}
	}
	if n := len(groupLines(t, fs, group)); n != len(specs) {
		t.Errorf("%d lines, want %d", n, len(specs))
	}
	if err := fs.RemoveGroup(group); err != nil {
		t.Fatal(err)
	}
	if n := len(groupLines(t, fs, group)); n != 0 {
		t.Errorf("%d lines after RemoveGroup", n)
	}
	if err := fs.RemoveGroup(group); err != nil {
		t.Errorf("second RemoveGroup = %v, want nil", err)
	}
}

// TestDefineRollback makes the Nth line of a batch invalid for the kernel
// only (our validation passes it): nothing of the call may remain, and
// events defined before the call must stay.
func TestDefineRollback(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	// An event of an earlier call in the same group must survive.
	if _, err := fs.Define(group, []UprobeSpec{{Event: "earlier", Path: tg.Path, Offset: tg.Off["main"]}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := fs.Remove(group, "earlier"); err != nil {
			t.Error(err)
		}
	}()

	for _, bad := range []int{0, 3, 120, 149} {
		t.Run(fmt.Sprintf("line %d", bad), func(t *testing.T) {
			before := readLines(t, fs)
			specs := batchSpecs(tg, 150)
			specs[bad].Args = []string{"x=%zz"}
			_, err := fs.Define(group, specs)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, unix.EINVAL) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, want := range []string{
				fmt.Sprintf("define uprobe %s/%s at %s:%#x: ", group, specs[bad].Event, tg.Path, specs[bad].Offset),
				"Invalid register name",
				`(arg "x=%zz")`,
				"kernel error_log",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			left := groupLines(t, fs, group)
			if len(left) != 1 || !strings.HasPrefix(left[0], "p:"+group+"/earlier ") {
				t.Errorf("after rollback the group holds:\n%s", strings.Join(left, "\n"))
			}
			checkKept(t, fs, before)
		})
	}
}

func TestDefineKernelErrors(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	work := tg.Off["work"]
	tests := []struct {
		name     string
		setup    []UprobeSpec // defined first, removed after
		spec     UprobeSpec
		sentinel error
		want     []string
	}{
		{
			name:     "bad fetch arg names the kernel's reason and the arg",
			spec:     UprobeSpec{Event: "bad_reg", Path: tg.Path, Offset: work, Args: []string{"ok=%di", "x=%zz"}},
			sentinel: ErrInvalid,
			want:     []string{"Invalid register name", `(arg "x=%zz")`, "— kernel error_log"},
		},
		{
			name:     "unknown type",
			spec:     UprobeSpec{Event: "bad_type", Path: tg.Path, Offset: work, Args: []string{"x=%di:u99"}},
			sentinel: ErrInvalid,
			want:     []string{"Unknown type is specified", `(arg "x=%di:u99")`},
		},
		{
			name:     "$retval on an entry probe",
			spec:     UprobeSpec{Event: "bad_retval", Path: tg.Path, Offset: work, Args: []string{"r=$retval"}},
			sentinel: ErrInvalid,
			want:     []string{`(arg "r=$retval")`, "kernel error_log"},
		},
		{
			name:     "file gone",
			spec:     UprobeSpec{Event: "gone", Path: tg.Path + ".gone", Offset: work},
			sentinel: ErrNotExist,
			want:     []string{"Failed to find the given file", "(path ", "kernel error_log"},
		},
		{
			name:     "different semaphore on the same address: EINVAL without an error_log entry",
			setup:    []UprobeSpec{{Event: "sdt", Path: tg.Path, Offset: work, RefCtr: 0x10}},
			spec:     UprobeSpec{Event: "nosdt", Path: tg.Path, Offset: work},
			sentinel: ErrInvalid,
			want:     []string{"invalid argument", "no error_log entry"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				if _, err := fs.Define(group, tt.setup); err != nil {
					t.Fatal(err)
				}
				defer fs.RemoveGroup(group)
			}
			_, err := fs.Define(group, []UprobeSpec{tt.spec})
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			prefix := fmt.Sprintf("define uprobe %s/%s at %s:%#x: ", group, tt.spec.Event, tt.spec.Path, tt.spec.Offset)
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			t.Log(err)
			if n := len(groupLines(t, fs, group)); n != len(tt.setup) {
				t.Errorf("%d lines in the group, want %d", n, len(tt.setup))
			}
		})
	}
}

// TestDefineInjection: a newline, space or '#' in a path or an argument is
// refused before anything is written.
func TestDefineInjection(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	const victim = "uprobectl_injected"
	guard(t, fs, group, victim)

	off := fmt.Sprintf("%#x", tg.Off["work"])
	tests := []struct {
		name string
		spec UprobeSpec
	}{
		{"newline in path defines another event", UprobeSpec{Event: "a", Path: tg.Path + ":" + off + "\np:" + victim + "/x " + tg.Path, Offset: tg.Off["work"]}},
		{"newline in arg defines another event", UprobeSpec{Event: "a", Path: tg.Path, Offset: tg.Off["work"], Args: []string{"x=%di\np:" + victim + "/y", "z=%si"}}},
		{"newline in arg removes a foreign group", UprobeSpec{Event: "a", Path: tg.Path, Offset: tg.Off["work"], Args: []string{"x=%di\n-:probe_test/"}}},
		{"space in arg adds an argument", UprobeSpec{Event: "a", Path: tg.Path, Offset: tg.Off["work"], Args: []string{"x=%di y=%si"}}},
		{"hash in arg comments out the rest", UprobeSpec{Event: "a", Path: tg.Path, Offset: tg.Off["work"], Args: []string{"x=%di#", "y=%si"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := readLines(t, fs)
			_, err := fs.Define(group, []UprobeSpec{{Event: "ok", Path: tg.Path, Offset: tg.Off["main"]}, tt.spec})
			if !errors.Is(err, ErrInvalid) || errors.Is(err, unix.EINVAL) {
				t.Fatalf("err = %v, want our own ErrInvalid (no kernel write)", err)
			}
			if n := len(groupLines(t, fs, group)) + len(groupLines(t, fs, victim)); n != 0 {
				t.Errorf("%d lines written", n)
			}
			checkKept(t, fs, before)
		})
	}
}

// TestForeignGroupUntouched: a perf-probe-style group survives our removals
// and reaping, and cannot be removed through this package.
func TestForeignGroupUntouched(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	const foreign = "probe_test"
	ev := fmt.Sprintf("x_%d", os.Getpid())
	rawAppend(t, fs, fmt.Sprintf("p:%s/%s %s:%#x\n", foreign, ev, tg.Path, tg.Off["work"]))
	defer rawAppend(t, fs, "-:"+foreign+"/"+ev+"\n")

	// Same event name in our group, same file and offset.
	if _, err := fs.Define(group, []UprobeSpec{{Event: ev, Path: tg.Path, Offset: tg.Off["work"]}}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(group, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Define(group, []UprobeSpec{{Event: ev, Path: tg.Path, Offset: tg.Off["work"]}}); err != nil {
		t.Fatal(err)
	}
	if err := fs.RemoveGroup(group); err != nil {
		t.Fatal(err)
	}
	reap(t, fs)
	if err := fs.Remove(foreign, ev); !errors.Is(err, ErrInvalid) {
		t.Errorf("Remove(%s) = %v, want ErrInvalid", foreign, err)
	}
	if err := fs.RemoveGroup(foreign); !errors.Is(err, ErrInvalid) {
		t.Errorf("RemoveGroup(%s) = %v, want ErrInvalid", foreign, err)
	}
	if n := len(groupLines(t, fs, foreign)); n != 1 {
		t.Errorf("foreign group has %d lines, want 1", n)
	}
}

// openPerf opens a perf event on a trace event for this thread, which makes
// the kernel refuse to remove the trace event (EBUSY).
func openPerf(t *testing.T, id uint64) int {
	t.Helper()
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_TRACEPOINT,
		Config:      id,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample_type: unix.PERF_SAMPLE_RAW,
		Sample:      1,
	}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		t.Fatalf("perf_event_open on trace event %d: %v", id, err)
	}
	return fd
}

// TestBusy: removal while a perf event is open is ErrBusy, and Reap goes on
// with the other dead groups and reports it.
func TestBusy(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	group := self.Group()
	deadBusy := Owner{PIDNS: self.PIDNS, PID: self.PID, StartTime: self.StartTime + 2}.Group()
	deadFree := Owner{PIDNS: self.PIDNS, PID: self.PID, StartTime: self.StartTime + 3}.Group()
	guard(t, fs, group, deadBusy, deadFree)

	spec := []UprobeSpec{{Event: "work", Path: tg.Path, Offset: tg.Off["work"]}}
	var fds []int
	for _, g := range []string{group, deadBusy, deadFree} {
		evs, err := fs.Define(g, spec)
		if err != nil {
			t.Fatal(err)
		}
		if g != deadFree {
			fds = append(fds, openPerf(t, evs[0].ID))
		}
	}
	closed := false
	closeAll := func() {
		if !closed {
			for _, fd := range fds {
				unix.Close(fd)
			}
			closed = true
		}
	}
	defer func() {
		closeAll()
		for _, g := range []string{group, deadBusy} {
			if err := fs.RemoveGroup(g); err != nil {
				t.Error(err)
			}
		}
	}()

	if err := fs.Remove(group, "work"); !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EBUSY) {
		t.Errorf("Remove with an open perf event = %v, want ErrBusy", err)
	} else {
		t.Log(err)
	}
	if err := fs.RemoveGroup(group); !errors.Is(err, ErrBusy) {
		t.Errorf("RemoveGroup with an open perf event = %v, want ErrBusy", err)
	}

	removed, err := fs.Reap()
	if !errors.Is(err, ErrBusy) {
		// Another process's Reap may have met the busy group first; ours
		// must still not have removed it.
		t.Logf("Reap error = %v (want ErrBusy unless raced)", err)
	}
	for _, r := range removed {
		if r.Group == deadBusy || r.Group == group {
			t.Errorf("Reap removed %s", r.Group)
		}
	}
	if len(groupLines(t, fs, deadFree)) != 0 {
		t.Errorf("Reap left the free dead group %s", deadFree)
	}
	if len(groupLines(t, fs, deadBusy)) != 1 || len(groupLines(t, fs, group)) != 1 {
		t.Error("a busy group lost its event")
	}

	closeAll()
	if err := fs.Remove(group, "work"); err != nil {
		t.Errorf("Remove after closing the perf event: %v", err)
	}
}
