package tracefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// UprobeSpec is one uprobe to define.
type UprobeSpec struct {
	// Event is the event name: a C identifier of at most 63 bytes, unique
	// in its group.
	Event string
	// Path is the absolute path of the probed file, as the kernel will
	// resolve it (in the mount namespace of the writer). It may not contain
	// spaces, control characters, byte 0xA0 or '#'.
	Path string
	// Offset is the file offset of the probed instruction. It is not
	// checked here (nor by the kernel): an offset inside an instruction
	// corrupts the target. Callers derive it from a symbol.
	Offset uint64
	// RefCtr is the file offset of a USDT semaphore, 0 if none.
	RefCtr uint64
	// Return makes a return probe (r:, uretprobe).
	Return bool
	// Args are fetch arguments, each "name=expr[:type]" in the kernel's
	// syntax ("x=%di:s32", "s=+0(%si):string"). The name is required: it
	// becomes the format field's name.
	Args []string
}

// Event is a defined trace event.
type Event struct {
	Group, Name string
	ID          uint64
	Format      *Format
}

// Definition is one line of uprobe_events, as the kernel prints it
// (trace_uprobe_show):
//
//	p:GROUP/EVENT /path:0x0000000000001139(0x2010) a=%di:s32 s=+0(%si):string
//
// An event with several probes (the kernel appends a probe to an existing
// event of the same name and argument types) has one line per probe.
type Definition struct {
	Return bool
	Group  string
	Event  string
	Path   string
	Offset uint64
	RefCtr uint64   // USDT semaphore offset, 0 if none
	Args   []string // "name=expr[:type]" as written
	Line   string   // the whole line
}

// Definitions returns every uprobe event defined on the machine, of every
// tool, in the kernel's order, as one consistent snapshot even while other
// tools add and remove events.
func (fs *FS) Definitions() ([]Definition, error) {
	b, err := fs.readUprobeEvents()
	if err != nil {
		return nil, err
	}
	return parseUprobeEvents(bytes.NewReader(b))
}

// readUprobeEvents returns a consistent copy of uprobe_events.
//
// The kernel fills each read() under its event lock but only up to about a
// page (seq_file), and the next read() resumes at a line index: if another
// tool adds or removes an event between two reads, lines are skipped or
// repeated. Even a file that came in one read() may have been cut short
// that way, so the file is read until two whole reads agree.
func (fs *FS) readUprobeEvents() ([]byte, error) {
	const patience = 2 * time.Second
	deadline := time.Now().Add(patience)
	var prev []byte
	for try := 0; ; try++ {
		b, err := readAll(fs.path("uprobe_events"))
		if err != nil {
			return nil, fmt.Errorf("read uprobe events: %w", permissionOr(err))
		}
		if prev != nil && bytes.Equal(b, prev) {
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("read uprobe events: the list kept changing for %v while being read", patience)
		}
		prev = b
		if try > 0 {
			time.Sleep(time.Duration(min(try, 50)) * 100 * time.Microsecond)
		}
	}
}

// readAll reads a whole file with a buffer large enough for the kernel to
// fill each read() as far as it will.
func readAll(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, 64*1024)
	for {
		if cap(buf)-len(buf) < 16*1024 {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseUprobeEvents parses the text of uprobe_events.
func parseUprobeEvents(r io.Reader) ([]Definition, error) {
	var out []Definition
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		d, err := parseDefinition(line)
		if err != nil {
			return nil, fmt.Errorf("uprobe_events line %d %q: %w", n, line, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read uprobe_events: %w", err)
	}
	return out, nil
}

func parseDefinition(line string) (Definition, error) {
	d := Definition{Line: line}
	// Split where the kernel does (ASCII blanks only): strings.Fields would
	// also split at Unicode spaces (U+2007, U+3000, ...), which are
	// ordinary bytes in a path or an argument to the kernel.
	words := strings.FieldsFunc(line, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
	})
	if len(words) < 2 {
		return d, fmt.Errorf("want \"p:GROUP/EVENT PATH:OFFSET [ARGS]\": %w", ErrInvalid)
	}
	head := words[0]
	switch {
	case strings.HasPrefix(head, "p:"):
	case strings.HasPrefix(head, "r:"):
		d.Return = true
	default:
		return d, fmt.Errorf("kind %q is not p: or r:: %w", head, ErrInvalid)
	}
	var ok bool
	d.Group, d.Event, ok = strings.Cut(head[2:], "/")
	if !ok || d.Group == "" || d.Event == "" {
		return d, fmt.Errorf("no GROUP/EVENT in %q: %w", head, ErrInvalid)
	}

	// The path may itself contain ':'; the kernel splits at the last one.
	loc := words[1]
	i := strings.LastIndexByte(loc, ':')
	if i <= 0 {
		return d, fmt.Errorf("no PATH:OFFSET in %q: %w", loc, ErrInvalid)
	}
	d.Path, loc = loc[:i], loc[i+1:]
	if j := strings.IndexByte(loc, '('); j >= 0 {
		if !strings.HasSuffix(loc, ")") {
			return d, fmt.Errorf("bad reference counter in %q: %w", words[1], ErrInvalid)
		}
		rc, err := strconv.ParseUint(loc[j+1:len(loc)-1], 0, 64)
		if err != nil {
			return d, fmt.Errorf("bad reference counter in %q: %w", words[1], ErrInvalid)
		}
		d.RefCtr, loc = rc, loc[:j]
	}
	off, err := strconv.ParseUint(loc, 0, 64)
	if err != nil {
		return d, fmt.Errorf("bad offset in %q: %w", words[1], ErrInvalid)
	}
	d.Offset = off
	if len(words) > 2 {
		d.Args = words[2:]
	}
	return d, nil
}

// reservedFieldNames cannot name a fetch argument: the format already has
// fields of these names (kernel/trace/trace_probe.c).
var reservedFieldNames = map[string]bool{
	"common_type": true, "common_flags": true, "common_preempt_count": true,
	"common_pid": true, "common_tgid": true,
	"__probe_ip": true, "__probe_ret_ip": true, "__probe_func": true,
}

// line returns the uprobe_events command that defines s in group, without
// the newline, or an ErrInvalid error naming what is wrong.
func (s UprobeSpec) line(group string) (string, error) {
	if !validName(s.Event, maxNameLen) {
		return "", fmt.Errorf("event name %q: want a C identifier of at most %d bytes: %w", s.Event, maxNameLen, ErrInvalid)
	}
	if !strings.HasPrefix(s.Path, "/") {
		return "", fmt.Errorf("path %q: not absolute: %w", s.Path, ErrInvalid)
	}
	if bad := checkToken(s.Path); bad != "" {
		return "", fmt.Errorf("path %q: %s: %w", s.Path, bad, ErrInvalid)
	}
	if len(s.Args) > maxArgs {
		return "", fmt.Errorf("%d fetch arguments: at most %d: %w", len(s.Args), maxArgs, ErrInvalid)
	}
	var b strings.Builder
	kind := byte('p')
	if s.Return {
		kind = 'r'
	}
	fmt.Fprintf(&b, "%c:%s/%s %s:%#x", kind, group, s.Event, s.Path, s.Offset)
	if s.RefCtr != 0 {
		fmt.Fprintf(&b, "(%#x)", s.RefCtr)
	}
	names := make(map[string]bool, len(s.Args))
	for _, a := range s.Args {
		if bad := checkToken(a); bad != "" {
			return "", fmt.Errorf("fetch argument %q: %s: %w", a, bad, ErrInvalid)
		}
		name, body, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			return "", fmt.Errorf("fetch argument %q: want name=expr[:type]: %w", a, ErrInvalid)
		case !validName(name, maxArgNameLen):
			return "", fmt.Errorf("fetch argument %q: name must be a C identifier of at most %d bytes: %w", a, maxArgNameLen, ErrInvalid)
		case reservedFieldNames[name]:
			return "", fmt.Errorf("fetch argument %q: name %s is reserved by the kernel: %w", a, name, ErrInvalid)
		case names[name]:
			return "", fmt.Errorf("fetch argument %q: name %s used twice: %w", a, name, ErrInvalid)
		case body == "" || len(body) > maxArgBodyLen:
			return "", fmt.Errorf("fetch argument %q: expression must have 1 to %d bytes: %w", a, maxArgBodyLen, ErrInvalid)
		}
		names[name] = true
		b.WriteByte(' ')
		b.WriteString(a)
	}
	if b.Len() > maxLineLen {
		return "", fmt.Errorf("definition of %s/%s is %d bytes: the kernel takes at most %d per line: %w", group, s.Event, b.Len(), maxLineLen, ErrInvalid)
	}
	return b.String(), nil
}

// Define creates the uprobe events of specs in group, then reads each
// event's id and format.
//
// Specs that share an Event name become probes of one trace event, as the
// kernel allows: one perf event then arms them all, and opening or closing
// it costs one grace period instead of one per probe. They must have the
// same Return and the same Args (ErrInvalid otherwise), and distinct
// (Path, Offset). The result has one Event per distinct name, in the order
// the names first appear in specs.
//
// group must be a uprobectl group (GroupPrefix; normally Owner.Group()).
// Every name, path and argument is validated before anything is written; a
// bad one returns ErrInvalid and leaves uprobe_events as it was. An event
// name that already exists in group returns ErrExist without writing (the
// kernel would not refuse it: it would silently add probes to the existing
// event). Define assumes that only this process writes to group, which
// owner groups guarantee.
//
// The definitions are written in batches of whole lines (about 4 KiB per
// write). The kernel runs the lines of a write in order and stops at the
// first error, so a failure can leave the earlier lines defined: Define
// then removes exactly the events this call created and returns the error,
// with the kernel's reason from error_log when there is one. Errors wrap
// ErrInvalid (the kernel refused a line), ErrNotExist (the probed file is
// gone), ErrExist, ErrPermission, and the raw errno.
func (fs *FS) Define(group string, specs []UprobeSpec) ([]*Event, error) {
	if err := checkOurGroup(group); err != nil {
		return nil, fmt.Errorf("define uprobes: %w", err)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("define uprobes in %s: no uprobes given: %w", group, ErrInvalid)
	}
	lines := make([]string, len(specs))
	firstOf := make(map[string]int, len(specs)) // event name -> index of its first spec
	type location struct {
		event, path string
		offset      uint64
	}
	locations := make(map[location]bool, len(specs))
	var names []string
	for i, s := range specs {
		l, err := s.line(group)
		if err != nil {
			return nil, fmt.Errorf("define uprobe %s/%s: %w", group, s.Event, err)
		}
		if loc := (location{s.Event, s.Path, s.Offset}); locations[loc] {
			return nil, fmt.Errorf("define uprobe %s/%s: %s:%#x given twice: %w", group, s.Event, s.Path, s.Offset, ErrInvalid)
		} else {
			locations[loc] = true
		}
		if j, ok := firstOf[s.Event]; ok {
			if s.Return != specs[j].Return || !slices.Equal(s.Args, specs[j].Args) {
				return nil, fmt.Errorf("define uprobe %s/%s: probes of one event need the same kind and fetch args: %w", group, s.Event, ErrInvalid)
			}
		} else {
			firstOf[s.Event] = i
			names = append(names, s.Event)
		}
		lines[i] = l
	}

	writeMu.Lock()
	defer writeMu.Unlock()

	existing, err := fs.groupEvents(group)
	if err != nil {
		return nil, fmt.Errorf("define uprobes in %s: %w", group, err)
	}
	for _, name := range names {
		if existing[name] {
			return nil, fmt.Errorf("define uprobe %s/%s: %w", group, name, ErrExist)
		}
	}

	f, err := fs.openUprobeEvents()
	if err != nil {
		return nil, fmt.Errorf("define uprobes in %s: open uprobe_events: %w", group, permissionOr(err))
	}
	defer f.Close()

	for first := 0; first < len(lines); {
		end, batch := nextBatch(lines, first)
		if _, werr := f.Write(batch); werr != nil {
			// error_log keeps only the last few entries of the machine:
			// read it before anything else happens.
			log, _ := fs.errorLogTail()
			failed := fs.failedLine(group, specs, lines, first, end, log)
			rbErr := removeEvents(f, group, names)
			return nil, joinRollback(lineError(specs[failed], group, lines[failed], werr, log, fs.Root), rbErr)
		}
		first = end
	}

	events := make([]*Event, len(names))
	for i, name := range names {
		format, err := fs.ReadFormat(group, name)
		if err != nil {
			err = fmt.Errorf("define uprobe %s/%s: read format: %w", group, name, err)
			return nil, joinRollback(err, removeEvents(f, group, names))
		}
		events[i] = &Event{Group: group, Name: name, ID: format.ID, Format: format}
	}
	return events, nil
}

// groupEvents returns the names of the events of group, from the
// directories under events/GROUP. Only this process writes to its groups
// (with writeMu held), so the listing is exact; uprobe_events could not be
// trusted for this: it can miss lines while other tools remove events
// (see readUprobeEvents).
func (fs *FS) groupEvents(group string) (map[string]bool, error) {
	ents, err := os.ReadDir(fs.path("events", group))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, permissionOr(err)
	}
	names := make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.IsDir() { // "enable" and "filter" are files
			names[e.Name()] = true
		}
	}
	return names, nil
}

// nextBatch returns the lines from first on that fit in one write of about
// batchLen bytes (at least one line), newline-terminated, and the index
// after the last of them.
func nextBatch(lines []string, first int) (end int, batch []byte) {
	var buf bytes.Buffer
	end = first
	for end < len(lines) {
		n := len(lines[end]) + 1
		if end > first && buf.Len()+n > batchLen {
			break
		}
		buf.WriteString(lines[end])
		buf.WriteByte('\n')
		end++
	}
	return end, buf.Bytes()
}

// joinRollback adds the failure of a rollback, if any, to err.
func joinRollback(err, rollbackErr error) error {
	if rollbackErr == nil {
		return err
	}
	return errors.Join(err, rollbackErr)
}

// lineError turns the failure of one definition line into one message,
// with the kernel's reason from the error_log entries log when it left
// one.
func lineError(s UprobeSpec, group, line string, werr error, log []errorLogEntry, root string) error {
	op := fmt.Sprintf("define uprobe %s/%s at %s:%#x", group, s.Event, s.Path, s.Offset)
	var errno unix.Errno
	if !errors.As(werr, &errno) {
		return fmt.Errorf("%s: %w", op, werr)
	}
	var sentinel error
	switch errno {
	case unix.EINVAL:
		sentinel = ErrInvalid
	case unix.ENOENT:
		sentinel = ErrNotExist
	case unix.EEXIST:
		sentinel = ErrExist
	case unix.EBUSY:
		sentinel = ErrBusy
	case unix.EPERM, unix.EACCES:
		return &kernelError{
			msg:  fmt.Sprintf("%s: needs root, or CAP_SYS_ADMIN/CAP_PERFMON and write access to tracefs (%s): %v", op, root, errno),
			errs: []error{ErrPermission, errno},
		}
	}
	errs := []error{errno}
	if sentinel != nil {
		errs = []error{sentinel, errno}
	}
	if e, ok := lastErrorFor(log, "trace_uprobe", line); ok {
		msg := op + ": " + e.Reason
		if c := e.culprit(); c != "" {
			msg += " (" + c + ")"
		}
		return &kernelError{msg: msg + " — kernel error_log", errs: errs}
	}
	why := ""
	if errno == unix.EINVAL {
		why = "; the kernel left no error_log entry (it does not for, e.g., a USDT semaphore offset that differs from the one of another uprobe at the same address)"
	}
	return &kernelError{msg: fmt.Sprintf("%s: %v%s", op, errno, why), errs: errs}
}

// failedLine finds the line of a failed write [first, end) that the
// kernel refused: the one error_log names, else the first line of the first
// event that does not exist (the kernel ran the lines in order and stopped
// there), else the first line of the write.
func (fs *FS) failedLine(group string, specs []UprobeSpec, lines []string, first, end int, log []errorLogEntry) int {
	for i := first; i < end; i++ {
		if _, ok := lastErrorFor(log, "trace_uprobe", lines[i]); ok {
			return i
		}
	}
	existing, _ := fs.groupEvents(group)
	for i := first; i < end; i++ {
		if !existing[specs[i].Event] {
			return i
		}
	}
	return first
}

// removeEvents removes the named events from group, in batched writes.
// A batch the kernel stops in is finished one event at a time, so that an
// event already gone (or never created) does not keep the others. Define
// checked, with writeMu held, that none of these events existed before the
// call, so everything removed here was created by it.
func removeEvents(f *os.File, group string, names []string) error {
	lines := make([]string, len(names))
	for i, name := range names {
		lines[i] = "-:" + group + "/" + name
	}
	var errs []error
	for first := 0; first < len(lines); {
		end, batch := nextBatch(lines, first)
		if _, err := f.Write(batch); err != nil {
			for i := first; i < end; i++ {
				if err := removeOne(f, group, names[i]); err != nil && !errors.Is(err, ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		first = end
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("roll back uprobes in %s: %w", group, err)
	}
	return nil
}

func removeOne(f *os.File, group, event string) error {
	if _, err := f.WriteString("-:" + group + "/" + event + "\n"); err != nil {
		return fmt.Errorf("remove uprobe %s/%s: %w", group, event, removeErr(err))
	}
	return nil
}

// Remove removes the trace event group/event ("-:GROUP/EVENT"). group must
// be a uprobectl group (GroupPrefix).
//
// Errors: ErrInvalid for a bad or foreign group or a bad event name;
// ErrNotExist if there is no such event; ErrBusy if a perf event is still
// open on it (close perf events first); ErrPermission.
func (fs *FS) Remove(group, event string) error {
	if err := checkOurGroup(group); err != nil {
		return fmt.Errorf("remove uprobe: %w", err)
	}
	if !validName(event, maxNameLen) {
		return fmt.Errorf("remove uprobe %s/%q: bad event name: %w", group, event, ErrInvalid)
	}
	if err := fs.writeRemoval("-:" + group + "/" + event + "\n"); err != nil {
		return fmt.Errorf("remove uprobe %s/%s: %w", group, event, err)
	}
	return nil
}

// RemoveGroup removes every trace event of group in one write
// ("-:GROUP/"). A group with no events is not an error. group must be a
// uprobectl group (GroupPrefix).
//
// Errors: ErrInvalid for a bad or foreign group; ErrBusy if a perf event is
// still open on one of its events (the kernel stops at that event: the
// ones before it are removed); ErrPermission.
func (fs *FS) RemoveGroup(group string) error {
	if err := checkOurGroup(group); err != nil {
		return fmt.Errorf("remove uprobe group: %w", err)
	}
	err := fs.writeRemoval("-:" + group + "/\n")
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove uprobe group %s: %w", group, err)
	}
	return nil
}

func (fs *FS) writeRemoval(cmd string) error {
	writeMu.Lock()
	defer writeMu.Unlock()
	f, err := fs.openUprobeEvents()
	if err != nil {
		return fmt.Errorf("open uprobe_events: %w", permissionOr(err))
	}
	defer f.Close()
	if _, err := f.WriteString(cmd); err != nil {
		return removeErr(err)
	}
	return nil
}

// removeErr translates the errno of a removal write.
func removeErr(err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case unix.ENOENT:
		// dyn_event_release: no event matched.
		return &kernelError{msg: "no such trace event", errs: []error{ErrNotExist, errno}}
	case unix.EBUSY:
		// unregister_trace_uprobe: a perf event (or ftrace) holds it.
		return &kernelError{msg: "in use by an open perf event (close it first)", errs: []error{ErrBusy, errno}}
	case unix.EPERM, unix.EACCES:
		return &kernelError{msg: "needs root, or CAP_SYS_ADMIN/CAP_PERFMON and write access to tracefs: " + errno.Error(), errs: []error{ErrPermission, errno}}
	}
	return errno
}

// kernelError is an error whose message is written for people and whose
// chain holds a sentinel of this package and the raw errno.
type kernelError struct {
	msg  string
	errs []error
}

func (e *kernelError) Error() string   { return e.msg }
func (e *kernelError) Unwrap() []error { return e.errs }
