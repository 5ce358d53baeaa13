package tracefs

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseErrorLog(t *testing.T) {
	tests := []struct {
		name string
		file string
		text string
		want []errorLogEntry
	}{
		{
			name: "other subsystems, caret past the end, junk line",
			file: "testdata/error_log_mixed.txt",
			want: []errorLogEntry{
				{Time: "101.000001", Source: "trace_kprobe", Reason: "Invalid register name", Command: "p:kprobes/ev do_sys_open x=%zz", Pos: 27},
				{Time: "102.000002", Source: "hist:sched:sched_switch", Reason: "Couldn't find field", Command: "hist:keys=nope", Pos: 10},
				{Time: "103.500000", Source: "trace_uprobe", Reason: "Too few arguments", Command: "p:uprobectl_1_2_3/ev", Pos: 21},
				{Time: "12345.000004", Source: "trace_uprobe", Reason: "Invalid register name", Command: "p:uprobectl_1_2_3/ev /bin/true:0x10 x=%zz", Pos: 38},
				{Time: "12346.000005", Source: "trace_uprobe", Reason: "Failed to find the given file", Command: "p:uprobectl_1_2_3/ev /bin/true:0x10 x=%zz", Pos: 21},
			},
		},
		{
			name: "entry without caret line",
			text: "[    1.000000] trace_uprobe: error: Bad\n  Command: p:g/e /x:0x1\n",
			want: []errorLogEntry{{Time: "1.000000", Source: "trace_uprobe", Reason: "Bad", Command: "p:g/e /x:0x1", Pos: -1}},
		},
		{name: "empty", text: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if tt.file != "" {
				b, err := os.ReadFile(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			got, err := parseErrorLog(strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// The 6.18 capture: eight entries (the kernel keeps the last eight).
func TestParseErrorLogKernelCapture(t *testing.T) {
	f, err := os.Open("testdata/error_log_6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseErrorLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("%d entries, want 8", len(got))
	}
	tests := []struct {
		name    string
		i       int
		reason  string
		culprit string
	}{
		{"caret under the event", 0, "Probe type is different from existing probe", `event "r:uprobectl_scratch_1796/e1"`},
		{"caret under an arg's type", 4, "String accepts only memory argument", `arg "xa=%di:x16[3]"`},
		{"caret in a long command", 5, "Unknown type is specified", `arg "sy=%di:symbol"`},
		{"caret under the event name", 6, "Event name must follow the same rules as C identifiers", `event "p:uprobectl_scratch-x/m-x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := got[tt.i]
			if e.Source != "trace_uprobe" || e.Reason != tt.reason {
				t.Errorf("entry %d: %q %q", tt.i, e.Source, e.Reason)
			}
			if c := e.culprit(); c != tt.culprit {
				t.Errorf("culprit = %s, want %s", c, tt.culprit)
			}
		})
	}
}

func TestLastErrorFor(t *testing.T) {
	f, err := os.Open("testdata/error_log_mixed.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := parseErrorLog(f)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, source, cmd string
		wantOK            bool
		wantTime          string
	}{
		{"newest of two identical commands", "trace_uprobe", "p:uprobectl_1_2_3/ev /bin/true:0x10 x=%zz", true, "12346.000005"},
		{"same command from another source", "trace_kprobe", "p:uprobectl_1_2_3/ev /bin/true:0x10 x=%zz", false, ""},
		{"prefix of a logged command does not match", "trace_uprobe", "p:uprobectl_1_2_3/ev /bin/true:0x10", false, ""},
		{"no such command", "trace_uprobe", "p:x/y /z:0x1", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := lastErrorFor(entries, tt.source, tt.cmd)
			if ok != tt.wantOK || e.Time != tt.wantTime {
				t.Errorf("got %+v %v", e, ok)
			}
		})
	}
}

func TestCulprit(t *testing.T) {
	const cmd = "p:g/e /bin/x:0x10 a=%di b=%zz"
	tests := []struct {
		name string
		pos  int
		want string
	}{
		{"event", 0, `event "p:g/e"`},
		{"inside the event", 4, `event "p:g/e"`},
		{"path, without the offset", 6, `path "/bin/x"`},
		{"first arg", 18, `arg "a=%di"`},
		{"last arg, mid-word", 27, `arg "b=%zz"`},
		{"on a space", 17, ""},
		{"past the end", len(cmd) + 1, ""},
		{"no caret", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (errorLogEntry{Command: cmd, Pos: tt.pos}).culprit(); got != tt.want {
				t.Errorf("culprit at %d = %s, want %s", tt.pos, got, tt.want)
			}
		})
	}
}

func TestLineError(t *testing.T) {
	const group = "uprobectl_1_2_3"
	spec := UprobeSpec{Event: "ev", Path: "/bin/true", Offset: 0x10}
	line := "p:uprobectl_1_2_3/ev /bin/true:0x10 x=%zz"
	f, err := os.Open("testdata/error_log_mixed.txt")
	if err != nil {
		t.Fatal(err)
	}
	log, err := parseErrorLog(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	const op = "define uprobe uprobectl_1_2_3/ev at /bin/true:0x10: "
	tests := []struct {
		name     string
		werr     error
		log      []errorLogEntry
		line     string
		want     string
		sentinel error
	}{
		{"newest matching entry", &os.PathError{Op: "write", Path: "uprobe_events", Err: unix.ENOENT}, log, line,
			op + `Failed to find the given file (path "/bin/true") — kernel error_log`, ErrNotExist},
		{"EINVAL without entry", unix.EINVAL, log, "p:uprobectl_1_2_3/ev /bin/true:0x10", op + "invalid argument; the kernel left no error_log entry", ErrInvalid},
		{"EEXIST without entry", unix.EEXIST, nil, line, op + "file exists", ErrExist},
		{"EPERM", unix.EPERM, log, line, op + "needs root, or CAP_SYS_ADMIN/CAP_PERFMON and write access to tracefs (/sys/kernel/tracing)", ErrPermission},
		{"not an errno", errors.New("boom"), log, line, op + "boom", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lineError(spec, group, tt.line, tt.werr, tt.log, "/sys/kernel/tracing")
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n%q\ndoes not start with\n%q", err, tt.want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error does not wrap %v", tt.sentinel)
			}
			var errno unix.Errno
			if tt.sentinel != nil && !errors.As(err, &errno) {
				t.Error("error does not wrap the errno")
			}
		})
	}
}
