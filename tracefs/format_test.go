package tracefs

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

var commonFields = []Field{
	{Name: "common_type", Type: "unsigned short", Offset: 0, Size: 2},
	{Name: "common_flags", Type: "unsigned char", Offset: 2, Size: 1},
	{Name: "common_preempt_count", Type: "unsigned char", Offset: 3, Size: 1},
	{Name: "common_pid", Type: "int", Offset: 4, Size: 4, Signed: true},
}

func withCommon(f ...Field) []Field {
	return append(append([]Field{}, commonFields...), f...)
}

// The fixtures were captured from Linux 6.18 (see the definitions in
// TestReadFormatKernel, which rebuilds the first two).
func TestParseFormatFixtures(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		want   Format
		nPrint string // a piece of the print fmt
	}{
		{
			name: "entry probe: s32 x64 u64 string char array bitfield stack comm",
			file: "testdata/format_entry_6.18.txt",
			want: Format{Name: "e1", ID: 2326, Fields: withCommon(
				Field{Name: "__probe_ip", Type: "unsigned long", Offset: 8, Size: 8},
				Field{Name: "a", Type: "s32", Offset: 16, Size: 4, Signed: true},
				Field{Name: "b", Type: "u64", Offset: 20, Size: 8},
				Field{Name: "c", Type: "u64", Offset: 28, Size: 8},
				Field{Name: "s", Type: "__data_loc char[]", Offset: 36, Size: 4, Signed: true, DataLoc: true},
				Field{Name: "ch", Type: "u8", Offset: 40, Size: 1},
				Field{Name: "arr", Type: "u8", Offset: 41, Size: 4, ArrayLen: 4},
				Field{Name: "bf", Type: "u32", Offset: 45, Size: 4},
				Field{Name: "st", Type: "u64", Offset: 49, Size: 8},
				Field{Name: "cm", Type: "__data_loc char[]", Offset: 57, Size: 4, Signed: true, DataLoc: true},
			)},
			nPrint: `"(%lx) a=%d`,
		},
		{
			name: "return probe: __probe_func, __probe_ret_ip, $retval",
			file: "testdata/format_return_6.18.txt",
			want: Format{Name: "e2", ID: 2327, Fields: withCommon(
				Field{Name: "__probe_func", Type: "unsigned long", Offset: 8, Size: 8},
				Field{Name: "__probe_ret_ip", Type: "unsigned long", Offset: 16, Size: 8},
				Field{Name: "rv", Type: "s32", Offset: 24, Size: 4, Signed: true},
			)},
			nPrint: "<-",
		},
		{
			name: "no args",
			file: "testdata/format_noargs_6.18.txt",
			want: Format{Name: "e3", ID: 2328, Fields: withCommon(
				Field{Name: "__probe_ip", Type: "unsigned long", Offset: 8, Size: 8},
			)},
			nPrint: `"(%lx)"`,
		},
		{
			name: "string array, ustring, x16 array, s16, immediate, s8, x8, @+fileoff, u64 array",
			file: "testdata/format_misc_6.18.txt",
			want: Format{Name: "m", ID: 2326, Fields: withCommon(
				Field{Name: "__probe_ip", Type: "unsigned long", Offset: 8, Size: 8},
				Field{Name: "sa", Type: "__data_loc char[][2]", Offset: 16, Size: 8, Signed: true, DataLoc: true, ArrayLen: 2},
				Field{Name: "us", Type: "__data_loc char[]", Offset: 24, Size: 4, Signed: true, DataLoc: true},
				Field{Name: "xa", Type: "u16", Offset: 28, Size: 6, ArrayLen: 3},
				Field{Name: "s16", Type: "s16", Offset: 34, Size: 2, Signed: true},
				Field{Name: "im", Type: "u64", Offset: 36, Size: 8},
				Field{Name: "s8", Type: "s8", Offset: 44, Size: 1, Signed: true},
				Field{Name: "x8", Type: "u8", Offset: 45, Size: 1},
				Field{Name: "fo", Type: "u32", Offset: 46, Size: 4},
				Field{Name: "u64a", Type: "u64", Offset: 50, Size: 16, ArrayLen: 2},
			)},
			nPrint: "u64a={%Lu,%Lu}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := os.Open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := ParseFormat(r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got.PrintFmt, tt.nPrint) {
				t.Errorf("PrintFmt = %q, want it to contain %q", got.PrintFmt, tt.nPrint)
			}
			got.PrintFmt = ""
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseFormatInline(t *testing.T) {
	const head = "name: x\nID: 7\nformat:\n"
	tests := []struct {
		name    string
		text    string
		want    []Field // nil when an error is expected
		wantErr bool
	}{
		{
			name: "fixed array in the name",
			text: head + "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n",
			want: []Field{{Name: "comm", Type: "char", Offset: 8, Size: 16, ArrayLen: 16}},
		},
		{
			name: "[] of an unknown element type keeps the brackets in Type",
			text: head + "\tfield:struct foo f[];\toffset:8;\tsize:16;\tsigned:0;\n",
			want: []Field{{Name: "f", Type: "struct foo[]", Offset: 8, Size: 16}},
		},
		{
			name: "fields outside the format section are ignored",
			text: "name: x\nID: 7\n\tfield:int bogus;\toffset:0;\tsize:4;\tsigned:1;\nformat:\n\tfield:int ok;\toffset:0;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n",
			want: []Field{{Name: "ok", Type: "int", Size: 4, Signed: true}},
		},
		{name: "no ID", text: "name: x\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n", wantErr: true},
		{name: "bad ID", text: "name: x\nID: x7\nformat:\n", wantErr: true},
		{name: "no fields", text: head + "\nprint fmt: \"\"\n", wantErr: true},
		{name: "field without type", text: head + "\tfield:a;\toffset:0;\tsize:4;\tsigned:1;\n", wantErr: true},
		{name: "field without size", text: head + "\tfield:int a;\toffset:0;\tsigned:1;\n", wantErr: true},
		{name: "bad offset", text: head + "\tfield:int a;\toffset:z;\tsize:4;\tsigned:1;\n", wantErr: true},
		{name: "bad array length", text: head + "\tfield:int a[x];\toffset:0;\tsize:4;\tsigned:1;\n", wantErr: true},
		{name: "empty", text: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(strings.NewReader(tt.text))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != 7 || got.Name != "x" {
				t.Errorf("ID, Name = %d, %q", got.ID, got.Name)
			}
			if !reflect.DeepEqual(got.Fields, tt.want) {
				t.Errorf("got %+v, want %+v", got.Fields, tt.want)
			}
		})
	}
}

func TestFormatField(t *testing.T) {
	f := &Format{Fields: withCommon(Field{Name: "x", Type: "u64", Offset: 16, Size: 8})}
	if fl, ok := f.Field("x"); !ok || fl.Offset != 16 {
		t.Errorf("Field(x) = %+v, %v", fl, ok)
	}
	if _, ok := f.Field("y"); ok {
		t.Error("Field(y) found")
	}
}

// TestReadFormatKernel defines the fixtures' probes on the real kernel and
// checks that the formats still read as the fixtures say (ids aside).
func TestReadFormatKernel(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	group := selfGroup(t)
	guard(t, fs, group)

	evs, err := fs.Define(group, []UprobeSpec{
		{Event: "e1", Path: tg.Path, Offset: tg.Off["work"], Args: []string{
			"a=%di:s32", "b=%si:x64", "c=%di:u64", "s=+0(%dx):string", "ch=+0(%dx):char",
			"arr=+0(%dx):u8[4]", "bf=%di:b3@2/32", "st=$stack1", "cm=$comm",
		}},
		{Event: "e2", Path: tg.Path, Offset: tg.Off["work"], Return: true, Args: []string{"rv=$retval:s32"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := fs.RemoveGroup(group); err != nil {
			t.Error(err)
		}
	}()

	for i, fixture := range []string{"testdata/format_entry_6.18.txt", "testdata/format_return_6.18.txt"} {
		r, err := os.Open(fixture)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ParseFormat(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFormat(group, evs[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Fields, want.Fields) {
			t.Errorf("%s: fields\n%+v\nwant (from %s)\n%+v", evs[i].Name, got.Fields, fixture, want.Fields)
		}
		if !reflect.DeepEqual(evs[i].Format, got) {
			t.Errorf("%s: Define's format differs from ReadFormat's", evs[i].Name)
		}
		id, err := fs.EventID(group, evs[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		if id != got.ID || id != evs[i].ID {
			t.Errorf("%s: EventID %d, format ID %d, Event.ID %d", evs[i].Name, id, got.ID, evs[i].ID)
		}
	}

	if _, err := fs.ReadFormat(group, "nosuch"); !errors.Is(err, ErrNotExist) {
		t.Errorf("ReadFormat(nosuch) = %v, want ErrNotExist", err)
	}
	if _, err := fs.EventID("../..", "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("EventID(../..) = %v, want ErrInvalid", err)
	}
}
