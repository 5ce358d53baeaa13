package tracefs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

// Fuzz targets for the parsers of tracefs and /proc text in this package.
// They need neither root nor tracefs. Run one with, e.g.,
//
//	go test -run='^$' -fuzz=FuzzParseFormat -fuzztime=30s ./tracefs/
//
// A failing input is saved under testdata/fuzz/FuzzXxx/ and replayed by
// every plain "go test" from then on.

// addFiles adds the contents of testdata files as seeds.
func addFiles(f *testing.F, names ...string) {
	f.Helper()
	for _, name := range names {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// FuzzParseFormat: a format ParseFormat accepts describes a record a
// decoder can read without going out of bounds: every field lies within a
// perf record (whose size is a u16), and the __data_loc words its type
// announces fit in its size. A format rendered back as the kernel prints
// it parses to the same Format.
//
// The input is a whole format file (text) followed by one more field line
// built from decl, offset and size, so that numbers of any size get tried.
func FuzzParseFormat(f *testing.F) {
	const head = "name: x\nID: 7\nformat:\n"
	seeds := []string{head}
	for _, name := range []string{"format_entry_6.18.txt", "format_return_6.18.txt", "format_noargs_6.18.txt", "format_misc_6.18.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	for _, s := range append(seeds,
		head+"\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n",
		head+"\tfield:struct foo f[];\toffset:8;\tsize:16;\tsigned:0;\n",
		"name: x\nID: 7\n\tfield:int bogus;\toffset:0;\tsize:4;\tsigned:1;\nformat:\n\tfield:int ok;\toffset:0;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n",
		"name: x\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n",
		"name: x\nID: x7\nformat:\n",
		head+"\nprint fmt: \"\"\n",
		head+"\tfield:a;\toffset:0;\tsize:4;\tsigned:1;\n",
		head+"\tfield:int a;\toffset:0;\tsigned:1;\n",
		head+"\tfield:int a;\toffset:z;\tsize:4;\tsigned:1;\n",
		head+"\tfield:int a[x];\toffset:0;\tsize:4;\tsigned:1;\n",
		"",
	) {
		f.Add(s, "", int64(0), int64(0))
	}
	for _, decl := range []string{"u64 x", "u8 a[]", "u16 a[3]", "__data_loc char[] s", "__data_loc char[][3] s", "char comm[16]"} {
		f.Add(head, decl, int64(16), int64(8))
	}
	f.Add(head, "u64 last", int64(math.MaxUint16-8), int64(8)) // the last 8 bytes a record can have
	f.Fuzz(func(t *testing.T, text, decl string, offset, size int64) {
		if decl != "" {
			if !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			text += fmt.Sprintf("\tfield:%s;\toffset:%d;\tsize:%d;\tsigned:0;\n", decl, offset, size)
		}
		fm, err := ParseFormat(strings.NewReader(text))
		if err != nil {
			return
		}
		if len(fm.Fields) == 0 {
			t.Fatal("no fields accepted")
		}
		for _, fl := range fm.Fields {
			checkField(t, fl)
		}

		again := renderFormat(fm)
		fm2, err := ParseFormat(strings.NewReader(again))
		if err != nil {
			t.Fatalf("accepted %q, but not its rendering %q: %v", text, again, err)
		}
		if fmt.Sprintf("%+v", *fm2) != fmt.Sprintf("%+v", *fm) {
			t.Fatalf("%+v\nrendered %q\nparses to %+v", *fm, again, *fm2)
		}
	})
}

// checkField checks that a decoder reading fl stays inside the record and
// inside the field.
func checkField(t *testing.T, fl Field) {
	t.Helper()
	if fl.Name == "" || fl.Offset < 0 || fl.Size < 0 || fl.ArrayLen < 0 {
		t.Fatalf("field %+v: empty name or negative offset, size or length", fl)
	}
	// perf_event_header.size is a u16: no raw record is longer.
	if fl.Offset > math.MaxUint16 || fl.Size > math.MaxUint16-fl.Offset {
		t.Fatalf("field %+v ends at byte %d, beyond any perf record", fl, fl.Offset+fl.Size)
	}
	// A decoder reads one u32 (length<<16 | offset) per string of a
	// __data_loc field: they must all be inside the field.
	if fl.DataLoc && max(1, fl.ArrayLen) > fl.Size/4 {
		t.Fatalf("__data_loc field %+v: %d strings take more than its size", fl, max(1, fl.ArrayLen))
	}
}

// renderFormat prints f as the kernel prints a format file.
func renderFormat(f *Format) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nID: %d\nformat:\n", f.Name, f.ID)
	for _, fl := range f.Fields {
		decl := fl.Type + " " + fl.Name
		if !fl.DataLoc && fl.ArrayLen > 0 {
			decl += fmt.Sprintf("[%d]", fl.ArrayLen)
		}
		signed := 0
		if fl.Signed {
			signed = 1
		}
		fmt.Fprintf(&b, "\tfield:%s;\toffset:%d;\tsize:%d;\tsigned:%d;\n", decl, fl.Offset, fl.Size, signed)
	}
	fmt.Fprintf(&b, "\nprint fmt: %s\n", f.PrintFmt)
	return b.String()
}

// FuzzParseErrorLog: parseErrorLog never fails on text it can scan, every
// entry has a caret position that is -1 or an index into the command, and
// culprit() of any entry is "" or names a word of the command. Entries
// printed as tracing_err_log_seq_show prints them parse back the same.
func FuzzParseErrorLog(f *testing.F) {
	addFiles(f, "error_log_6.18.txt", "error_log_mixed.txt")
	f.Add("[    1.000000] trace_uprobe: error: Bad\n  Command: p:g/e /x:0x1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := parseErrorLog(strings.NewReader(text))
		if err != nil {
			if len(text) < 1024*1024 {
				t.Fatalf("error on %d bytes: %v", len(text), err)
			}
			return
		}
		for _, e := range entries {
			if e.Pos < -1 {
				t.Fatalf("entry %+v: caret position %d", e, e.Pos)
			}
			if strings.ContainsAny(e.Command, "\n") || strings.ContainsAny(e.Reason, "\n") {
				t.Fatalf("entry %+v spans lines", e)
			}
			c := e.culprit()
			if c == "" {
				continue
			}
			_, word, _ := strings.Cut(c, " ")
			var w string
			if _, err := fmt.Sscanf(word, "%q", &w); err != nil || w == "" || !strings.Contains(e.Command, w) {
				t.Fatalf("entry %+v: culprit %s is not a word of the command", e, c)
			}
		}

		// Render the entries as the kernel does and read them back.
		var b strings.Builder
		for _, e := range entries {
			fmt.Fprintf(&b, "[%12s] %s: error: %s\n%s%s\n", e.Time, e.Source, e.Reason, errorLogCmdPrefix, e.Command)
			if e.Pos >= 0 {
				fmt.Fprintf(&b, "%s^\n", strings.Repeat(" ", len(errorLogCmdPrefix)+e.Pos))
			}
		}
		again, err := parseErrorLog(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !renderable(entries) {
			return
		}
		if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", entries) {
			t.Fatalf("%+v\nrendered %q\nparses to %+v", entries, b.String(), again)
		}
	})
}

// renderable reports whether entries can be printed and read back: a
// source or reason that itself looks like the head of an entry, or an
// empty command, cannot be told apart.
func renderable(entries []errorLogEntry) bool {
	for _, e := range entries {
		if e.Command == "" || strings.Contains(e.Source, ": error: ") || strings.ContainsAny(e.Reason+e.Command+e.Source, "\r") {
			return false
		}
	}
	return true
}

// FuzzParseUprobeEvents: every line parseUprobeEvents accepts gives a
// definition whose group, event and path are words of the line, and a
// definition printed back as trace_uprobe_show prints it parses the same.
func FuzzParseUprobeEvents(f *testing.F) {
	addFiles(f, "uprobe_events_6.18.txt")
	for _, s := range []string{
		"p:g/e", "x:g/e /a:0x1", "p:ge /a:0x1", "p:g/ /a:0x1", "p:g/e /a", "p:g/e /a:zz",
		"p:g/e /a:0x1(0x2", "p:g/e /a:0x1(x)", "p:g/e /a:0x1()", "r:g/e /a:b:0x1(0x2) x=%di",
	} {
		f.Add(s + "\n")
	}
	f.Fuzz(func(t *testing.T, text string) {
		defs, err := parseUprobeEvents(strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrInvalid) && len(text) < 1024*1024 {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		for _, d := range defs {
			if d.Group == "" || d.Event == "" || d.Path == "" || strings.Contains(d.Line, "\n") {
				t.Fatalf("definition %+v", d)
			}
			again := kernelLine(d)
			d2, err := parseDefinition(again)
			if err != nil {
				t.Fatalf("%q accepted, not its kernel form %q: %v", d.Line, again, err)
			}
			d.Line, d2.Line = "", ""
			if fmt.Sprintf("%+v", d) != fmt.Sprintf("%+v", d2) {
				t.Fatalf("%+v\nprinted %q\nparses to %+v", d, again, d2)
			}
		}
	})
}

// kernelLine prints d as trace_uprobe_show does.
func kernelLine(d Definition) string {
	kind := 'p'
	if d.Return {
		kind = 'r'
	}
	s := fmt.Sprintf("%c:%s/%s %s:0x%016x", kind, d.Group, d.Event, d.Path, d.Offset)
	if d.RefCtr != 0 {
		s += fmt.Sprintf("(0x%x)", d.RefCtr)
	}
	for _, a := range d.Args {
		s += " " + a
	}
	return s
}

// FuzzUprobeSpecLine: a command UprobeSpec.line builds is one line of
// words the kernel cannot split otherwise, and the line the kernel then
// lists in uprobe_events parses back to the same definition.
func FuzzUprobeSpecLine(f *testing.F) {
	f.Add("ev", "/bin/x", uint64(0x1139), uint64(0), false, "a=%di:s32\x00s=+0(%si):string")
	f.Add("ev", "/bin/x", uint64(0x10), uint64(0x3010), true, "rv=$retval")
	f.Add("ev", "/a:b", uint64(1), uint64(0), false, "")
	f.Add("ev", "/tmp/é/x", uint64(1), uint64(0), false, "")
	f.Add("ev", "/opt/データ/bin", uint64(1), uint64(0), false, "")
	f.Add("ev", "/bin/x:0x1\n-:probe_libc/", uint64(1), uint64(0), false, "")
	f.Add("ev", "/bin/x", uint64(0), uint64(0), false, "a=%di\np:uprobectl_injected/x")
	f.Fuzz(func(t *testing.T, event, path string, offset, refctr uint64, ret bool, args string) {
		const group = "uprobectl_1_2_3"
		s := UprobeSpec{Event: event, Path: path, Offset: offset, RefCtr: refctr, Return: ret}
		if args != "" {
			s.Args = strings.Split(args, "\x00")
		}
		line, err := s.line(group)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if len(line) > maxLineLen {
			t.Fatalf("line of %d bytes", len(line))
		}
		words := strings.Split(line, " ")
		if len(words) != 2+len(s.Args) {
			t.Fatalf("%q: %d words, want %d", line, len(words), 2+len(s.Args))
		}
		for _, w := range words {
			if bad := checkToken(w); bad != "" || w == "" {
				t.Fatalf("%q: word %q: %s", line, w, bad)
			}
		}
		want := Definition{Return: ret, Group: group, Event: event, Path: path, Offset: offset, RefCtr: refctr, Args: s.Args}
		for _, l := range []string{line, kernelLine(want)} {
			d, err := parseDefinition(l)
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			d.Line = ""
			if fmt.Sprintf("%+v", d) != fmt.Sprintf("%+v", want) {
				t.Fatalf("%q parses to\n%+v\nwant\n%+v", l, d, want)
			}
		}
	})
}

// FuzzParseGroup: ParseGroup(g) ok means Owner.Group() gives g back and g
// is a group this package may write; and every owner with a valid pid
// makes a group ParseGroup reads back as that owner.
func FuzzParseGroup(f *testing.F) {
	for _, g := range []string{
		"uprobectl_4026531836_12345_987654", "uprobectl_18446744073709551615_2147483647_18446744073709551615",
		"uprobectl_1_1_0", "probe_libc", "uprobes", "uprobectl_", "uprobectl_1_2", "uprobectl_1_2_3_4",
		"uprobectl_1_02_3", "uprobectl_1_+2_3", "uprobectl_1_0_3", "uprobectl_1_-2_3",
		"uprobectl_1_4294967296_3", "uprobectl_1_2_x", "uprobectl_1_2_3-4", "UPROBECTL_1_2_3",
	} {
		f.Add(g, uint64(4026531836), int64(12345), uint64(987654))
	}
	f.Add("", uint64(math.MaxUint64), int64(math.MaxInt32), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, g string, ns uint64, pid int64, start uint64) {
		if o, ok := ParseGroup(g); ok {
			if o.Group() != g {
				t.Fatalf("ParseGroup(%q) = %+v, whose Group() is %q", g, o, o.Group())
			}
			if o.PID <= 0 {
				t.Fatalf("ParseGroup(%q): pid %d", g, o.PID)
			}
			if err := checkOurGroup(g); err != nil {
				t.Fatalf("ParseGroup(%q) ok, but: %v", g, err)
			}
		}

		if pid <= 0 || pid > math.MaxInt32 {
			return
		}
		o := Owner{PIDNS: ns, PID: int(pid), StartTime: start}
		g = o.Group()
		if len(g) > maxNameLen || !validGroupName(g) {
			t.Fatalf("%+v: group %q is not a valid kernel group name", o, g)
		}
		if o2, ok := ParseGroup(g); !ok || o2 != o {
			t.Fatalf("%+v: ParseGroup(%q) = %+v, %v", o, g, o2, ok)
		}
	})
}

// FuzzParseMountInfo: nothing panics, every accepted entry has a file
// system type, and a mount point escaped as the kernel escapes it
// (show_mountinfo: space, tab, newline and backslash as \ooo) reads back.
func FuzzParseMountInfo(f *testing.F) {
	addFiles(f, "mountinfo_sysfs.txt", "mountinfo_debugfs.txt", "mountinfo_container.txt", "mountinfo_none.txt")
	f.Add("22 27 0:21 / /proc rw,relatime proc proc rw\n")
	f.Add("22 27 0:21 /\n")
	f.Add("22 27 0:21 / /proc rw -\n")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := parseMountInfo(strings.NewReader(text))
		if err == nil {
			for _, e := range entries {
				if e.FSType == "" {
					t.Fatalf("entry %+v without a type", e)
				}
			}
		}

		mp := strings.ReplaceAll(text, "\x00", "")
		var esc strings.Builder
		for i := 0; i < len(mp); i++ {
			switch c := mp[i]; c {
			case ' ', '\t', '\n', '\\':
				fmt.Fprintf(&esc, `\%03o`, c)
			default:
				esc.WriteByte(c)
			}
		}
		if esc.Len() == 0 {
			return
		}
		line := "700 612 0:12 / " + esc.String() + " rw,relatime - tracefs nodev rw\n"
		got, err := parseMountInfo(strings.NewReader(line))
		if err != nil || len(got) != 1 || got[0].MountPoint != mp || got[0].FSType != "tracefs" {
			t.Fatalf("%q: %+v, %v", line, got, err)
		}
	})
}

// Regular tests for the bugs the fuzz targets found; the inputs they saved
// are under testdata/fuzz/.

func TestParseErrorLogCaretLeftOfCommand(t *testing.T) {
	// A caret line that does not reach the command ("^" alone) gave Pos -11.
	got, err := parseErrorLog(strings.NewReader("[    1.000000] trace_uprobe: error: Bad\n  Command: p:g/e /x:0x1\n^\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pos != -1 || got[0].culprit() != "" {
		t.Errorf("got %+v, want one entry with Pos -1", got)
	}
	// The first byte of the command is still position 0.
	got, _ = parseErrorLog(strings.NewReader("[    1.000000] trace_uprobe: error: Bad\n  Command: p:g/e /x:0x1\n           ^\n"))
	if len(got) != 1 || got[0].Pos != 0 {
		t.Errorf("got %+v, want Pos 0", got)
	}
}

func TestParseFormatRefusesOutOfRecordFields(t *testing.T) {
	const head = "name: x\nID: 7\nformat:\n"
	for _, tt := range []struct{ name, field string }{
		// A decoder would read 4 bytes of a 0-byte field, past the record.
		{"__data_loc of size 0", "field:__data_loc char[] s;\toffset:8;\tsize:0;\tsigned:1;"},
		{"__data_loc array larger than its size", "field:__data_loc char[][3] s;\toffset:8;\tsize:8;\tsigned:1;"},
		// 4*N wraps around to 0 in an int.
		{"__data_loc array count that overflows", "field:__data_loc char[][4611686018427387904] s;\toffset:8;\tsize:4;\tsigned:1;"},
		// ArrayLen was left at -1.
		{"__data_loc with [] on the name", "field:__data_loc char[] s[];\toffset:8;\tsize:4;\tsigned:1;"},
		{"__data_loc with [N] on the name", "field:__data_loc char[] s[3];\toffset:8;\tsize:12;\tsigned:1;"},
		{"field beyond any perf record", "field:u64 x;\toffset:65528;\tsize:8;\tsigned:0;"},
		// Offset+Size overflowed to a negative end.
		{"offset+size overflows", "field:u64 x;\toffset:9223372036854775807;\tsize:8;\tsigned:0;"},
		{"size overflows", "field:u8 x[];\toffset:8;\tsize:9223372036854775807;\tsigned:0;"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFormat(strings.NewReader(head + "\t" + tt.field + "\n"))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %+v, %v; want ErrInvalid", f, err)
			}
		})
	}
	f, err := ParseFormat(strings.NewReader(head + "\tfield:u64 x;\toffset:65527;\tsize:8;\tsigned:0;\n"))
	if err != nil || f.Fields[0].Offset != 65527 {
		t.Errorf("a field ending at byte 65535: %+v, %v", f, err)
	}
}

func TestParseDefinitionUnicodeSpaces(t *testing.T) {
	// The kernel splits at ASCII blanks only: a path (or argument) with a
	// Unicode space is one word to it, and is listed as it was written.
	for _, path := range []string{"/tmp/a\u2007b", "/opt/x\u3000y/bin", "/a\u0085b", "/a\u2028b"} {
		line := "p:uprobectl_1_2_3/e " + path + ":0x0000000000001139 s=+0(%si):string"
		d, err := parseDefinition(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if d.Path != path || d.Offset != 0x1139 || len(d.Args) != 1 {
			t.Errorf("%q: %+v", line, d)
		}
	}
}
