package perfevent

import (
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/tracefs"
)

func loadFormat(t *testing.T, file string) *tracefs.Format {
	t.Helper()
	r, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := tracefs.ParseFormat(r)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newDecoder(t *testing.T, file string, display Display) *Decoder {
	t.Helper()
	d, err := NewDecoder(loadFormat(t, file), display)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// raw builds a trace event payload byte by byte, as the kernel writes it:
// the fixed fields at their format offsets (little endian), then the data
// of __data_loc fields appended after them.
type raw struct{ b []byte }

// newRaw is a payload of the given fixed size with common_type and
// common_pid set.
func newRaw(size int, eventType uint16, pid uint32) *raw {
	r := &raw{b: make([]byte, size)}
	return r.u16(0, uint64(eventType)).u32(4, uint64(pid))
}

func (r *raw) u8(off int, v uint64) *raw  { r.b[off] = byte(v); return r }
func (r *raw) u16(off int, v uint64) *raw { le.PutUint16(r.b[off:], uint16(v)); return r }
func (r *raw) u32(off int, v uint64) *raw { le.PutUint32(r.b[off:], uint32(v)); return r }
func (r *raw) u64(off int, v uint64) *raw { le.PutUint64(r.b[off:], v); return r }

// loc writes a __data_loc word: length<<16 | offset from the payload start.
func (r *raw) loc(off, length, start int) *raw { return r.u32(off, uint64(length<<16|start)) }

// str appends s and its NUL, and points the __data_loc word at off to it.
func (r *raw) str(off int, s string) *raw {
	r.loc(off, len(s)+1, len(r.b))
	r.b = append(append(r.b, s...), 0)
	return r
}

// data appends bytes without touching any __data_loc word.
func (r *raw) data(b ...byte) *raw { r.b = append(r.b, b...); return r }

func u(v uint64) Value { return Value{Kind: Unsigned, Uint: v} }

// entryRaw fills the fixed fields of format_entry_6.18.txt (45 bytes) but
// the strings s @28 and cm @41.
func entryRaw() *raw {
	return newRaw(45, 2329, 4242).
		u64(8, 0x401136).
		u32(16, uint64(0xfffffff9)). // a = -7
		u64(20, 0xffffffff00000001). // h
		u8(32, 'A').                 // c
		u8(33, 1).u8(34, 2).u8(35, 3).u8(36, 0xff).
		u32(37, 5) // bf
}

func entryArgs(s, cm string) []Value {
	return []Value{
		{Name: "a", Kind: Signed, Int: -7},
		{Name: "h", Kind: Hex, Uint: 0xffffffff00000001},
		{Name: "s", Kind: String, Str: s},
		{Name: "c", Kind: Char, Uint: 'A'},
		{Name: "arr", Kind: Array, Elems: []Value{u(1), u(2), u(3), u(255)}},
		{Name: "bf", Kind: Unsigned, Uint: 5},
		{Name: "cm", Kind: String, Str: cm},
	}
}

func TestDecodeEntry(t *testing.T) {
	display := Display{"h": Hex, "c": Char}
	tests := []struct {
		name    string
		display Display
		raw     []byte
		want    Payload
	}{
		{
			name:    "every kind",
			display: display,
			raw:     entryRaw().str(28, "hello").str(41, "target").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("hello", "target")},
		},
		{
			name:    "strings in reverse order",
			display: display,
			raw:     entryRaw().str(41, "target").str(28, "hello").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("hello", "target")},
		},
		{
			name:    "empty string: length 1, the NUL",
			display: display,
			raw:     entryRaw().str(28, "").str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("", "t")},
		},
		{
			name:    "faulted string: length 0",
			display: display,
			raw:     entryRaw().loc(28, 0, 45).str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("", "t")},
		},
		{
			name:    "string cut at the maximum length keeps every byte before the NUL",
			display: display,
			raw:     entryRaw().loc(28, 4, 45).data('a', 'b', 'c', 0).str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("abc", "t")},
		},
		{
			name:    "string without a NUL",
			display: display,
			raw:     entryRaw().loc(28, 3, 45).data('a', 'b', 'c').str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("abc", "t")},
		},
		{
			name:    "string past the end of the payload",
			display: display,
			raw:     entryRaw().loc(28, 10, 45).str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("", "t")},
		},
		{
			name:    "bytes that are not UTF-8 are kept",
			display: display,
			raw:     entryRaw().str(28, "\xff\xfe").str(41, "t").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("\xff\xfe", "t")},
		},
		{
			name:    "padding after the data (perf pads raw samples to 8 bytes)",
			display: display,
			raw:     entryRaw().str(28, "hello").str(41, "target").data(0, 0, 0, 0, 0).b,
			want:    Payload{IP: 0x401136, Args: entryArgs("hello", "target")},
		},
		{
			name:    "no display: x64 and char read as the format says, u64 and u8",
			display: nil,
			raw:     entryRaw().str(28, "hello").str(41, "target").b,
			want: Payload{IP: 0x401136, Args: func() []Value {
				a := entryArgs("hello", "target")
				a[1].Kind, a[3].Kind = Unsigned, Unsigned
				return a
			}()},
		},
		{
			name:    "display of a string field, or as Unsigned, changes nothing",
			display: Display{"s": Hex, "cm": Char, "a": Unsigned, "h": Hex, "c": Char},
			raw:     entryRaw().str(28, "hello").str(41, "target").b,
			want:    Payload{IP: 0x401136, Args: entryArgs("hello", "target")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(t, "testdata/format_entry_6.18.txt", tt.display)
			if d.ID != 2329 || d.Return {
				t.Errorf("ID, Return = %d, %v, want 2329, false", d.ID, d.Return)
			}
			got, err := d.Decode(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeCopiesStrings(t *testing.T) {
	d := newDecoder(t, "testdata/format_entry_6.18.txt", nil)
	b := entryRaw().str(28, "hello").str(41, "target").b
	p, err := d.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if p.Args[2].Str != "hello" || p.Args[6].Str != "target" {
		t.Errorf("strings changed with the payload: %q, %q", p.Args[2].Str, p.Args[6].Str)
	}
}

func TestDecodeReturn(t *testing.T) {
	d := newDecoder(t, "testdata/format_return_6.18.txt", nil)
	if d.ID != 2327 || !d.Return {
		t.Fatalf("ID, Return = %d, %v, want 2327, true", d.ID, d.Return)
	}
	tests := []struct {
		name string
		rv   uint64
		want int64
	}{
		{name: "zero", rv: 0, want: 0},
		{name: "positive", rv: 42, want: 42},
		{name: "minus one", rv: 0xffffffff, want: -1},
		{name: "only the low 32 bits are in the record", rv: 0x80000000, want: math.MinInt32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newRaw(28, 2327, 4242).u64(8, 0x401126).u64(16, 0x4011a7).u32(24, tt.rv).b
			got, err := d.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := Payload{Func: 0x401126, RetIP: 0x4011a7, Args: []Value{{Name: "rv", Kind: Signed, Int: tt.want}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestDecodeNoArgs(t *testing.T) {
	d := newDecoder(t, "testdata/format_noargs_6.18.txt", nil)
	got, err := d.Decode(newRaw(16, 2328, 1).u64(8, 0x401136).b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Payload{IP: 0x401136, Args: []Value{}}); !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %+v, want %+v", got, want)
	}
}

// TestDecodeSigned: s8..s64 are sign-extended, u8..u64 with the same bits
// are not.
func TestDecodeSigned(t *testing.T) {
	d := newDecoder(t, "testdata/format_signed_6.18.txt", nil)
	tests := []struct {
		name    string
		bits    [4]uint64 // 8, 16, 32, 64-bit fields
		want    [4]int64
		wantU64 [4]uint64
	}{
		{name: "zero"},
		{
			name:    "minus one",
			bits:    [4]uint64{0xff, 0xffff, 0xffffffff, math.MaxUint64},
			want:    [4]int64{-1, -1, -1, -1},
			wantU64: [4]uint64{math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64},
		},
		{
			name:    "minimum",
			bits:    [4]uint64{0x80, 0x8000, 0x80000000, 1 << 63},
			want:    [4]int64{math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64},
			wantU64: [4]uint64{0x80, 0x8000, 0x80000000, 1 << 63},
		},
		{
			name:    "maximum",
			bits:    [4]uint64{0x7f, 0x7fff, 0x7fffffff, math.MaxInt64},
			want:    [4]int64{math.MaxInt8, math.MaxInt16, math.MaxInt32, math.MaxInt64},
			wantU64: [4]uint64{0x7f, 0x7fff, 0x7fffffff, math.MaxInt64},
		},
		{
			name:    "minus two",
			bits:    [4]uint64{0xfe, 0xfffe, 0xfffffffe, math.MaxUint64 - 1},
			want:    [4]int64{-2, -2, -2, -2},
			wantU64: [4]uint64{0xfe, 0xfffe, 0xfffffffe, math.MaxUint64 - 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newRaw(46, 2330, 1).u64(8, 0x401136).
				u8(16, tt.bits[0]).u16(17, tt.bits[1]).u32(19, tt.bits[2]).u64(23, tt.bits[3]).
				u8(31, tt.bits[0]).u16(32, tt.bits[1]).u32(34, tt.bits[2]).u64(38, tt.bits[3]).b
			got, err := d.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := Payload{IP: 0x401136, Args: []Value{
				{Name: "a8", Kind: Signed, Int: tt.want[0]},
				{Name: "a16", Kind: Signed, Int: tt.want[1]},
				{Name: "a32", Kind: Signed, Int: tt.want[2]},
				{Name: "a64", Kind: Signed, Int: tt.want[3]},
				{Name: "b8", Kind: Unsigned, Uint: tt.wantU64[0]},
				{Name: "b16", Kind: Unsigned, Uint: tt.wantU64[1]},
				{Name: "b32", Kind: Unsigned, Uint: tt.wantU64[2]},
				{Name: "b64", Kind: Unsigned, Uint: tt.wantU64[3]},
			}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestDecodeMisc: string[2] (an array of __data_loc words), ustring, x16[3],
// s16, s8, x8, u64[2].
func TestDecodeMisc(t *testing.T) {
	d := newDecoder(t, "testdata/format_misc_6.18.txt", Display{"xa": Hex, "x8": Hex})
	b := newRaw(66, 2326, 1).u64(8, 0x401136).
		u16(28, 0x1).u16(30, 0xbeef).u16(32, 0xffff). // xa
		u16(34, 0xfffe).                              // s16 = -2
		u64(36, 0x1234).                              // im
		u8(44, 0x9c).                                 // s8 = -100
		u8(45, 0xab).                                 // x8
		u32(46, 0x1136).                              // fo
		u64(50, 7).u64(58, math.MaxUint64).           // u64a
		str(16, "a").str(20, "bc").str(24, "user").b
	want := Payload{IP: 0x401136, Args: []Value{
		{Name: "sa", Kind: Array, Elems: []Value{{Kind: String, Str: "a"}, {Kind: String, Str: "bc"}}},
		{Name: "us", Kind: String, Str: "user"},
		{Name: "xa", Kind: Array, Elems: []Value{{Kind: Hex, Uint: 1}, {Kind: Hex, Uint: 0xbeef}, {Kind: Hex, Uint: 0xffff}}},
		{Name: "s16", Kind: Signed, Int: -2},
		{Name: "im", Kind: Unsigned, Uint: 0x1234},
		{Name: "s8", Kind: Signed, Int: -100},
		{Name: "x8", Kind: Hex, Uint: 0xab},
		{Name: "fo", Kind: Unsigned, Uint: 0x1136},
		{Name: "u64a", Kind: Array, Elems: []Value{u(7), u(math.MaxUint64)}},
	}}
	got, err := d.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode =\n%+v\nwant\n%+v", got, want)
	}
}

// TestDecodeShortPayload cuts a valid payload of each fixture at every
// length shorter than the format's fixed fields.
func TestDecodeShortPayload(t *testing.T) {
	tests := []struct {
		name, file string
		raw        []byte
	}{
		{name: "entry", file: "testdata/format_entry_6.18.txt", raw: entryRaw().str(28, "").str(41, "").b},
		{name: "return", file: "testdata/format_return_6.18.txt", raw: newRaw(28, 2327, 1).b},
		{name: "no args", file: "testdata/format_noargs_6.18.txt", raw: newRaw(16, 2328, 1).b},
		{name: "signed", file: "testdata/format_signed_6.18.txt", raw: newRaw(46, 2330, 1).b},
		{name: "misc", file: "testdata/format_misc_6.18.txt", raw: newRaw(66, 2326, 1).b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loadFormat(t, tt.file)
			end := 0
			for _, fl := range f.Fields {
				end = max(end, fl.Offset+fl.Size)
			}
			d, err := NewDecoder(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Decode(tt.raw[:end]); err != nil {
				t.Fatalf("Decode(%d bytes, the format's size): %v", end, err)
			}
			for n := range end {
				if _, err := d.Decode(tt.raw[:n]); !errors.Is(err, ErrShortPayload) {
					t.Errorf("Decode(%d of %d bytes): err = %v, want ErrShortPayload", n, end, err)
				}
			}
		})
	}
}

func TestNewDecoderUnsupported(t *testing.T) {
	const head = "name: x\nID: 9\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n" +
		"\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n"
	tests := []struct {
		name, field string
		wantErr     bool
	}{
		{name: "u32", field: "u32 ok;\toffset:16;\tsize:4;\tsigned:0;"},
		{name: "string", field: "__data_loc char[] s;\toffset:16;\tsize:4;\tsigned:1;"},
		{name: "3-byte scalar", field: "u32 odd;\toffset:16;\tsize:3;\tsigned:0;", wantErr: true},
		{name: "struct", field: "struct foo f;\toffset:16;\tsize:16;\tsigned:0;", wantErr: true},
		{name: "array of an unknown type", field: "struct foo f[];\toffset:16;\tsize:16;\tsigned:0;", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tracefs.ParseFormat(strings.NewReader(head + "\tfield:" + tt.field + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewDecoder(f, nil)
			if tt.wantErr && (err == nil || !strings.Contains(err.Error(), "trace event 9")) {
				t.Errorf("err = %v, want an error naming trace event 9", err)
			}
			if !tt.wantErr && err != nil {
				t.Error(err)
			}
		})
	}
}

func TestEventType(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want uint64
	}{
		{name: "payload", raw: entryRaw().b, want: 2329},
		{name: "two bytes", raw: []byte{0x09, 0x0a}, want: 0x0a09},
		{name: "largest id", raw: []byte{0xff, 0xff, 0, 0}, want: 0xffff},
		{name: "one byte", raw: []byte{1}, want: 0},
		{name: "empty", raw: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EventType(tt.raw); got != tt.want {
				t.Errorf("EventType = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    []int
		wantErr bool
	}{
		{name: "one CPU", list: "0", want: []int{0}},
		{name: "range", list: "0-3", want: []int{0, 1, 2, 3}},
		{name: "ranges and singles", list: "0-1,4,6-7", want: []int{0, 1, 4, 6, 7}},
		{name: "range of one", list: "5-5", want: []int{5}},
		{name: "CPU 0 offline", list: "1-2", want: []int{1, 2}},
		{name: "empty", list: "", wantErr: true},
		{name: "not a number", list: "a", wantErr: true},
		{name: "open range", list: "0-", wantErr: true},
		{name: "negative", list: "-1", wantErr: true},
		{name: "empty element", list: "0,,2", wantErr: true},
		{name: "trailing comma", list: "0,", wantErr: true},
		{name: "two dashes", list: "0-1-2", wantErr: true},
		{name: "spaces", list: "0, 1", wantErr: true},
		{name: "newline not trimmed", list: "0-3\n", wantErr: true},
		{name: "reversed range", list: "3-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUList(tt.list)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseCPUList(%q) = %v, want an error", tt.list, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseCPUList(%q) = %v, want %v", tt.list, got, tt.want)
			}
		})
	}
}

func TestOnlineCPUs(t *testing.T) {
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 {
		t.Fatal("no online CPU")
	}
	for i := 1; i < len(cpus); i++ {
		if cpus[i] <= cpus[i-1] {
			t.Fatalf("online CPUs not increasing: %v", cpus)
		}
	}
}
