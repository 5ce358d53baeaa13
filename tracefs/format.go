package tracefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Format is the layout of a trace event's raw record, from
// events/GROUP/EVENT/format. Decode samples by it, never by guess.
type Format struct {
	// Name is the event name ("name:" line).
	Name string
	// ID is the trace event id ("ID:" line): perf_event_attr.config for a
	// PERF_TYPE_TRACEPOINT event. Ids are reused after an event is removed.
	ID uint64
	// Fields in file order: common_type, common_flags,
	// common_preempt_count, common_pid; then __probe_ip for an entry probe
	// or __probe_func and __probe_ret_ip for a return probe; then one field
	// per fetch argument.
	Fields []Field
	// PrintFmt is the "print fmt:" text, for diagnostics.
	PrintFmt string
}

// Field is one field of a raw record.
//
// How the kernel prints the fetch types of 6.18: u8..u64 and x8..x64 both
// as "u8".."u64" (the hex display is only in the definition), s8..s64 as
// "s8".."s64", char as "u8", a bitfield as its container type ("u32"),
// string/ustring/$comm as "__data_loc char[]", TYPE[N] as "TYPE NAME[]"
// with Size = N * element size, string[N] as "__data_loc char[][N]".
type Field struct {
	// Name without any "[N]" or "[]" suffix.
	Name string
	// Type as the kernel prints it; for a fixed array, the element type
	// ("u8" for "u8 arr[]"); for a __data_loc field the whole type
	// ("__data_loc char[]").
	Type string
	// Offset and Size in bytes from the start of the raw record.
	Offset, Size int
	// Signed is the kernel's "signed:" flag.
	Signed bool
	// DataLoc marks a __data_loc field (strings): each element is a u32,
	// length<<16 | offset of the data from the start of the raw record.
	// A failed read gives length 0.
	DataLoc bool
	// ArrayLen is the number of elements of an array field: from "[N]",
	// or Size / element size for "[]"; for "__data_loc char[][N]" it is N.
	// 0 if the field is not an array.
	ArrayLen int
}

// Field returns the field called name.
func (f *Format) Field(name string) (Field, bool) {
	for _, fl := range f.Fields {
		if fl.Name == name {
			return fl, true
		}
	}
	return Field{}, false
}

// maxRecordLen bounds the end of every field: a raw record travels in a
// perf record, whose size (perf_event_header.size) is a u16.
const maxRecordLen = 1<<16 - 1

// ParseFormat parses the text of an events/GROUP/EVENT/format file. It
// returns an error wrapping ErrInvalid if the text has no ID, no format
// section, or a field line it cannot read.
func ParseFormat(r io.Reader) (*Format, error) {
	f := &Format{}
	var haveID, inFormat bool
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case strings.HasPrefix(line, "name:"):
			f.Name = strings.TrimSpace(line[len("name:"):])
		case strings.HasPrefix(line, "ID:"):
			id, err := strconv.ParseUint(strings.TrimSpace(line[len("ID:"):]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("format line %d %q: bad ID: %w", n, line, ErrInvalid)
			}
			f.ID, haveID = id, true
		case trimmed == "format:":
			inFormat = true
		case strings.HasPrefix(line, "print fmt:"):
			f.PrintFmt = strings.TrimSpace(line[len("print fmt:"):])
			inFormat = false
		case inFormat && strings.HasPrefix(trimmed, "field:"):
			fl, err := parseField(trimmed)
			if err != nil {
				return nil, fmt.Errorf("format line %d %q: %w", n, line, err)
			}
			f.Fields = append(f.Fields, fl)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read format: %w", err)
	}
	if !haveID {
		return nil, fmt.Errorf("format: no ID line: %w", ErrInvalid)
	}
	if len(f.Fields) == 0 {
		return nil, fmt.Errorf("format of event %d: no fields: %w", f.ID, ErrInvalid)
	}
	return f, nil
}

// parseField parses
//
//	field:unsigned long __probe_ip;	offset:8;	size:8;	signed:0;
func parseField(line string) (Field, error) {
	var fl Field
	var haveOffset, haveSize bool
	for _, part := range strings.Split(line, ";") {
		part = strings.TrimSpace(part)
		key, val, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "field":
			err = parseFieldDecl(val, &fl)
		case "offset":
			fl.Offset, err = strconv.Atoi(val)
			haveOffset = true
		case "size":
			fl.Size, err = strconv.Atoi(val)
			haveSize = true
		case "signed":
			fl.Signed = val == "1"
		}
		if err != nil {
			return Field{}, fmt.Errorf("field %s: %v: %w", key, err, ErrInvalid)
		}
	}
	if fl.Name == "" || !haveOffset || !haveSize || fl.Offset < 0 || fl.Size < 0 {
		return Field{}, fmt.Errorf("field without name, offset or size: %w", ErrInvalid)
	}
	// No raw record is longer than a perf record, whose size is a u16. The
	// check also keeps Offset+Size from overflowing in a decoder.
	if fl.Offset > maxRecordLen || fl.Size > maxRecordLen-fl.Offset {
		return Field{}, fmt.Errorf("field at offset %d of size %d ends beyond the %d bytes a record can have: %w", fl.Offset, fl.Size, maxRecordLen, ErrInvalid)
	}
	// A decoder reads one u32 per string of a __data_loc field: a field
	// too small for them would send it past the field and the record.
	if n := max(1, fl.ArrayLen); fl.DataLoc && n > fl.Size/4 {
		return Field{}, fmt.Errorf("__data_loc field of %d bytes cannot hold %d string locations: %w", fl.Size, n, ErrInvalid)
	}
	if !fl.DataLoc && fl.ArrayLen < 0 {
		// "[]": the element count is the size over the element size.
		fl.ArrayLen = 0
		if es := elemSize(fl.Type); es > 0 && fl.Size%es == 0 {
			fl.ArrayLen = fl.Size / es
		} else {
			fl.Type += "[]" // unknown element type: keep what the kernel said
		}
	}
	return fl, nil
}

// parseFieldDecl splits a C declaration "TYPE NAME[N]" into fl.
func parseFieldDecl(decl string, fl *Field) error {
	decl = strings.TrimSpace(decl)
	i := strings.LastIndexByte(decl, ' ')
	if i < 0 {
		return errors.New("no type")
	}
	typ, name := strings.TrimSpace(decl[:i]), decl[i+1:]
	if strings.HasPrefix(typ, "__data_loc") {
		fl.DataLoc = true
		// "__data_loc char[][N]": N strings.
		if j := strings.LastIndex(typ, "[]["); j >= 0 && strings.HasSuffix(typ, "]") {
			n, err := strconv.Atoi(typ[j+3 : len(typ)-1])
			if err != nil || n <= 0 {
				return fmt.Errorf("bad array length in %q", typ)
			}
			fl.ArrayLen = n
		}
	}
	if j := strings.IndexByte(name, '['); j >= 0 {
		if !strings.HasSuffix(name, "]") {
			return fmt.Errorf("bad array in %q", name)
		}
		if fl.DataLoc {
			// The kernel puts the count in the type ("char[][N]"): a
			// count on the name would contradict it or be left unresolved.
			return fmt.Errorf("array in the name of __data_loc field %q", name)
		}
		count := name[j+1 : len(name)-1]
		name = name[:j]
		if count == "" {
			fl.ArrayLen = -1 // resolved from the size once it is known
		} else {
			n, err := strconv.Atoi(count)
			if err != nil || n <= 0 {
				return fmt.Errorf("bad array length in %q", decl)
			}
			fl.ArrayLen = n
		}
	}
	if name == "" {
		return errors.New("no name")
	}
	fl.Type, fl.Name = typ, name
	return nil
}

// elemSize is the size of the scalar types that appear in uprobe formats.
func elemSize(typ string) int {
	switch typ {
	case "u8", "s8", "char", "unsigned char", "signed char":
		return 1
	case "u16", "s16", "short", "unsigned short":
		return 2
	case "u32", "s32", "int", "unsigned int":
		return 4
	case "u64", "s64", "long", "unsigned long", "long long", "unsigned long long":
		return 8
	}
	return 0
}

// ReadFormat reads and parses events/GROUP/EVENT/format.
//
// Errors: ErrInvalid for a bad group or event name; ErrNotExist if there is
// no such event.
func (fs *FS) ReadFormat(group, event string) (*Format, error) {
	b, err := fs.readEventFile(group, event, "format")
	if err != nil {
		return nil, err
	}
	f, err := ParseFormat(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("trace event %s/%s: %w", group, event, err)
	}
	return f, nil
}

// EventID reads events/GROUP/EVENT/id.
//
// Errors: ErrInvalid for a bad group or event name; ErrNotExist if there is
// no such event.
func (fs *FS) EventID(group, event string) (uint64, error) {
	b, err := fs.readEventFile(group, event, "id")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("trace event %s/%s: id %q: %w", group, event, b, ErrInvalid)
	}
	return id, nil
}

func (fs *FS) readEventFile(group, event, file string) ([]byte, error) {
	// Validated so that neither can climb out of events/.
	if !validGroupName(group) || !validName(event, maxNameLen) {
		return nil, fmt.Errorf("trace event %q/%q: bad name: %w", group, event, ErrInvalid)
	}
	b, err := os.ReadFile(fs.path("events", group, event, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trace event %s/%s: %w", group, event, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("trace event %s/%s: %w", group, event, err)
	}
	return b, nil
}
