// Package tracefs defines and removes uprobe trace events through the
// kernel's tracefs (uprobe_events, events/GROUP/EVENT/{id,format},
// error_log). It is deliberately "dumb", like cilium/ebpf's
// internal/tracefs: it takes a file path and a file offset, never a symbol,
// and knows nothing of ELF or perf.
//
// Glossary:
//   - trace event: one named event, GROUP/EVENT, defined by a line written to
//     uprobe_events. It has an id and a format file and records nothing by
//     itself; perf_event_open on its id is what arms it (package perfevent).
//   - uprobe: the breakpoint behind a trace event: PATH:OFFSET, bound to the
//     file's inode when the line is written.
//   - group: the first half of GROUP/EVENT. Every group this package writes
//     starts with "uprobectl_", and an owner group ("uprobectl_NS_PID_START",
//     see Owner) says which process owns it, so the events of a process that
//     died without cleaning up can be reaped without touching anyone else's.
//
// Safety rules kept everywhere in this package:
//   - uprobe_events is opened O_WRONLY|O_APPEND only. O_TRUNC (a shell ">",
//     os.WriteFile, os.Create) deletes every uprobe of every tool on the
//     machine.
//   - Removal is always "-:GROUP/EVENT" or "-:GROUP/", and only for groups
//     with the "uprobectl_" prefix; a bare "-:EVENT" removes that event name
//     in every group and is never written.
//   - Every token written is validated first: the kernel splits a write into
//     lines and lines into words, so a newline or a space in a path or an
//     argument would inject another command.
package tracefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Sentinel errors. Every error of this package that falls in one of these
// classes wraps the sentinel (test with errors.Is); errors from a kernel
// write also wrap the raw syscall.Errno.
var (
	// ErrNotSupported: no tracefs, or a kernel without uprobe events
	// (CONFIG_UPROBE_EVENTS). Tests skip on exactly this error.
	ErrNotSupported = errors.New("not supported")
	// ErrPermission: tracefs cannot be mounted or uprobe_events cannot be
	// written (needs root, or CAP_SYS_ADMIN/CAP_PERFMON plus write access
	// to tracefs; kernel lockdown also refuses).
	ErrPermission = errors.New("permission denied")
	// ErrExist: the trace event already exists.
	ErrExist = errors.New("already exists")
	// ErrNotExist: the trace event, or the probed file, does not exist.
	ErrNotExist = errors.New("does not exist")
	// ErrBusy: the trace event is in use (a perf event is open on it).
	ErrBusy = errors.New("busy")
	// ErrInvalid: a name, path or argument this package or the kernel
	// refuses.
	ErrInvalid = errors.New("invalid")
)

// GroupPrefix starts every group this package writes to or removes. Groups
// without it belong to other tools (perf probe uses "probe_*", plain
// uprobe_events users "uprobes") and are never touched.
const GroupPrefix = "uprobectl_"

// Kernel limits (kernel/trace/trace.h, trace_probe.h on 6.18).
const (
	maxNameLen    = 63 // MAX_EVENT_NAME_LEN (64) including the NUL
	maxArgNameLen = 32 // MAX_ARG_NAME_LEN
	maxArgBodyLen = 63 // MAX_ARGSTR_LEN, the part after "name="
	maxArgs       = 128
	// trace_parse_run_command copies a write in chunks of WRITE_BUFSIZE-1
	// (4095) bytes and refuses a line that does not fit in one chunk with
	// its newline: a line may have at most 4094 bytes before the '\n'.
	maxLineLen = 4094
	// batchLen is the size we aim a write at. The kernel would take a
	// longer write in several chunks, but one write per ~4 KiB keeps each
	// write inside a single parse buffer.
	batchLen = 4000
)

// FS is a tracefs mount.
type FS struct {
	// Root is the mount point, e.g. /sys/kernel/tracing.
	Root string
}

// writeMu serializes this process's writes to uprobe_events, so that
// Define's "check, write, roll back" is not interleaved with another
// goroutine's Define or Remove.
var writeMu sync.Mutex

func (fs *FS) path(elem ...string) string {
	return filepath.Join(append([]string{fs.Root}, elem...)...)
}

// openUprobeEvents opens uprobe_events for writing. It is the only place
// that opens it for writing: O_APPEND and never O_TRUNC, which would
// release every uprobe event on the machine (probes_open in
// kernel/trace/trace_uprobe.c).
func (fs *FS) openUprobeEvents() (*os.File, error) {
	return os.OpenFile(fs.path("uprobe_events"), os.O_WRONLY|os.O_APPEND, 0)
}

// isNameByte reports whether c may appear in a kernel event or argument
// name after the first byte (is_good_name: a C identifier).
func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validName reports whether s is a valid event name: a C identifier of at
// most 63 bytes.
func validName(s string, max int) bool {
	if s == "" || len(s) > max || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

// validGroupName reports whether s is a valid kernel group name
// (is_good_system_name: a C identifier that may also contain '-' after the
// first byte).
func validGroupName(s string) bool {
	if s == "" || len(s) > maxNameLen || !isNameByte(s[0]) || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameByte(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// checkOurGroup returns an ErrInvalid error unless group is a valid group
// name with our prefix.
func checkOurGroup(group string) error {
	if !validGroupName(group) {
		return fmt.Errorf("group %q: not a valid trace event group (C identifier, '-' allowed, at most %d bytes): %w", group, maxNameLen, ErrInvalid)
	}
	if len(group) <= len(GroupPrefix) || group[:len(GroupPrefix)] != GroupPrefix {
		return fmt.Errorf("group %q: not a uprobectl group (prefix %q); other tools' groups are never touched: %w", group, GroupPrefix, ErrInvalid)
	}
	return nil
}

// checkToken returns a description of the first byte of s that the kernel
// would treat as a separator or comment, or "" if there is none. The kernel
// splits a write into lines at '\n', cuts each line at '#', and splits it
// into words at isspace() bytes, which in the kernel's Latin-1 ctype table
// include 0xA0 as well as the ASCII spaces. Other control bytes are refused
// too: they have no business in a path or fetch argument.
func checkToken(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			return fmt.Sprintf("newline at byte %d", i)
		case c == ' ':
			return fmt.Sprintf("space at byte %d", i)
		case c == '#':
			return fmt.Sprintf("'#' at byte %d", i)
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("control character %#02x at byte %d", c, i)
		case c == 0xa0:
			return fmt.Sprintf("byte 0xa0 (a space to the kernel's parser) at byte %d", i)
		}
	}
	return ""
}
