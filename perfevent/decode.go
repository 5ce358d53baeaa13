package perfevent

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/uprobectl/uprobectl/tracefs"
)

// ErrShortPayload is returned when a payload is smaller than its format says.
var ErrShortPayload = errors.New("trace event payload shorter than its format")

// ValueKind says how a fetched argument is shown.
type ValueKind uint8

const (
	Unsigned ValueKind = iota // u8..u64
	Signed                    // s8..s64
	Hex                       // x8..x64: the format file says u64; only our definition knows
	Char                      // char: the format file says u8
	String                    // string, ustring, $comm
	Array                     // TYPE[N]
)

// Value is one fetched argument of a hit.
type Value struct {
	Name  string
	Kind  ValueKind
	Uint  uint64  // Unsigned, Hex, Char
	Int   int64   // Signed
	Str   string  // String
	Elems []Value // Array
}

// Display tells the decoder what the format file cannot: that a field was
// defined as x8..x64 (hex) or char. Keyed by argument name.
type Display map[string]ValueKind

// Payload is a decoded trace event payload.
type Payload struct {
	IP    uint64 // entry probe: the probed address (__probe_ip)
	Func  uint64 // return probe: the function's address (__probe_func)
	RetIP uint64 // return probe: where it returned to (__probe_ret_ip)
	Args  []Value
}

// Decoder decodes the payloads of one trace event by its format file, never
// by guessing the layout.
type Decoder struct {
	ID     uint64
	Return bool
	ip     int // offset of __probe_ip / __probe_func, -1 if absent
	retIP  int // offset of __probe_ret_ip, -1 if absent
	size   int // end of the last fixed field: no payload is shorter
	fields []argField
}

type argField struct {
	name    string
	kind    ValueKind
	offset  int
	size    int // element size for arrays
	count   int // number of elements; 0 if not an array
	dataLoc bool
	signed  bool
}

// NewDecoder builds a decoder from a trace event's format.
func NewDecoder(f *tracefs.Format, display Display) (*Decoder, error) {
	d := &Decoder{ID: f.ID, ip: -1, retIP: -1}
	for _, fld := range f.Fields {
		d.size = max(d.size, fld.Offset+fld.Size)
		switch {
		case strings.HasPrefix(fld.Name, "common_"):
			continue
		case fld.Name == "__probe_ip":
			d.ip = fld.Offset
			continue
		case fld.Name == "__probe_func":
			d.ip, d.Return = fld.Offset, true
			continue
		case fld.Name == "__probe_ret_ip":
			d.retIP = fld.Offset
			continue
		}
		af := argField{name: fld.Name, offset: fld.Offset, size: fld.Size, signed: fld.Signed, dataLoc: fld.DataLoc}
		switch {
		case fld.DataLoc:
			// string[N] is N __data_loc words.
			af.kind, af.size, af.count = String, 4, fld.ArrayLen
		case fld.Signed:
			af.kind = Signed
		default:
			af.kind = Unsigned
		}
		if k, ok := display[fld.Name]; ok && !fld.DataLoc && (k == Hex || k == Char) {
			af.kind = k
		}
		if n := arrayLength(fld); n > 0 {
			af.count, af.size = n, fld.Size/n
		}
		if af.size != 1 && af.size != 2 && af.size != 4 && af.size != 8 {
			return nil, fmt.Errorf("trace event %d field %s: unsupported size %d in format", f.ID, fld.Name, fld.Size)
		}
		d.fields = append(d.fields, af)
	}
	return d, nil
}

// arrayLength is the element count of an array field ("u8 arr[]" with size
// 4 and a u8 element type means 4), or 0.
func arrayLength(f tracefs.Field) int {
	if f.DataLoc {
		return 0
	}
	if f.ArrayLen > 0 {
		return f.ArrayLen
	}
	if !strings.HasSuffix(f.Type, "[]") && !strings.HasSuffix(f.Name, "[]") {
		return 0
	}
	elem := scalarSize(strings.TrimSuffix(f.Type, "[]"))
	if elem == 0 || f.Size%elem != 0 {
		return 0
	}
	return f.Size / elem
}

func scalarSize(typ string) int {
	switch strings.TrimSpace(typ) {
	case "u8", "s8", "char", "unsigned char":
		return 1
	case "u16", "s16", "short", "unsigned short":
		return 2
	case "u32", "s32", "int", "unsigned int":
		return 4
	case "u64", "s64", "long", "unsigned long":
		return 8
	}
	return 0
}

// EventType returns the trace event id a payload belongs to (common_type).
func EventType(raw []byte) uint64 {
	if len(raw) < 2 {
		return 0
	}
	return uint64(le.Uint16(raw))
}

// Decode decodes one payload into a new Payload whose strings are copies:
// raw is not retained. A payload shorter than the format's fixed fields
// gives ErrShortPayload.
func (d *Decoder) Decode(raw []byte) (Payload, error) {
	var p Payload
	if err := d.DecodeInto(raw, &p); err != nil {
		return Payload{}, err
	}
	for i := range p.Args {
		cloneStrings(&p.Args[i])
	}
	return p, nil
}

func cloneStrings(v *Value) {
	v.Str = strings.Clone(v.Str)
	for i := range v.Elems {
		cloneStrings(&v.Elems[i])
	}
}

// DecodeInto decodes one payload into p, reusing p's memory: the hit path
// decodes every hit into one Payload and allocates nothing. Strings point
// into raw: they are valid only as long as raw is (for a ring record, the
// handler call).
func (d *Decoder) DecodeInto(raw []byte, p *Payload) error {
	if len(raw) < d.size {
		return fmt.Errorf("%w: trace event %d needs %d bytes, have %d", ErrShortPayload, d.ID, d.size, len(raw))
	}
	p.IP, p.Func, p.RetIP = 0, 0, 0
	if d.ip >= 0 && d.ip+8 <= len(raw) {
		if d.Return {
			p.Func = le.Uint64(raw[d.ip:])
		} else {
			p.IP = le.Uint64(raw[d.ip:])
		}
	}
	if d.retIP >= 0 && d.retIP+8 <= len(raw) {
		p.RetIP = le.Uint64(raw[d.retIP:])
	}
	if p.Args == nil || cap(p.Args) < len(d.fields) {
		p.Args = make([]Value, len(d.fields))
	}
	p.Args = p.Args[:len(d.fields)]
	for i, f := range d.fields {
		if f.count > 0 {
			elems := p.Args[i].Elems
			if cap(elems) < f.count {
				elems = make([]Value, f.count)
			}
			elems = elems[:f.count]
			for j := range elems {
				elems[j] = element(raw, f.offset+j*f.size, f)
			}
			p.Args[i] = Value{Name: f.name, Kind: Array, Elems: elems}
			continue
		}
		v := element(raw, f.offset, f)
		v.Name = f.name
		p.Args[i] = v
	}
	return nil
}

// element decodes the value (or one element of the array) at offset.
func element(raw []byte, offset int, f argField) Value {
	if f.dataLoc {
		return Value{Kind: String, Str: dataLocString(raw, offset)}
	}
	return scalar(raw[offset:], f)
}

func scalar(b []byte, f argField) Value {
	var u uint64
	switch f.size {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(le.Uint16(b))
	case 4:
		u = uint64(le.Uint32(b))
	case 8:
		u = le.Uint64(b)
	}
	if f.kind == Signed {
		shift := 64 - 8*f.size
		return Value{Kind: Signed, Int: int64(u<<shift) >> shift}
	}
	return Value{Kind: f.kind, Uint: u}
}

// dataLocString reads a __data_loc string: a u32 whose high half is the
// length (with the NUL) and low half the offset from the start of the
// payload. A failed fetch gives an empty string ("(fault)" in tracefs).
func dataLocString(raw []byte, offset int) string {
	loc := le.Uint32(raw[offset:])
	length, start := int(loc>>16), int(loc&0xffff)
	if length == 0 || start+length > len(raw) {
		return ""
	}
	s := raw[start : start+length]
	if s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s)) // points into raw: see DecodeInto
}
