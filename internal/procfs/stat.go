package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// Stat holds the fields of /proc/PID/stat (proc_pid_stat(5)) that uprobectl
// uses.
type Stat struct {
	PID int // field 1: the pid whose file was read (a tid under task/)
	// Comm is field 2, the command name as of the read (at most 15 bytes,
	// which may be anything but NUL: spaces, ')' and newlines included).
	Comm string
	// State is field 3: R running, S sleeping, D disk sleep, Z zombie,
	// X dead, T stopped, t traced, I idle (kernel thread)...
	State     byte
	PPID      int    // field 4: the parent, 0 for init and kthreadd
	StartTime uint64 // field 22: clock ticks after boot; with PID it names a process, since a pid is reused
}

// Fields of stat, numbered from 1 as in proc_pid_stat(5), that Stat keeps
// after the command name.
const (
	statState     = 3
	statPPID      = 4
	statStartTime = 22
)

// ParseStat parses the line of /proc/PID/stat. The command name is in
// parentheses and may itself contain ") " or newlines, so the fields after
// it are counted from the last ')'. Errors wrap ErrMalformed.
func ParseStat(b []byte) (Stat, error) {
	openParen, closeParen := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if openParen < 0 || closeParen < openParen {
		return Stat{}, fmt.Errorf("stat: no command name in parentheses: %w", ErrMalformed)
	}
	pid, err := parseID(string(bytes.TrimSpace(b[:openParen])))
	if err != nil {
		return Stat{}, fmt.Errorf("stat field 1 (pid): %w: %w", ErrMalformed, err)
	}
	after := bytes.Fields(b[closeParen+1:]) // after[0] is field 3
	if want := statStartTime - statState + 1; len(after) < want {
		return Stat{}, fmt.Errorf("stat: %d fields after the command name, want at least %d: %w", len(after), want, ErrMalformed)
	}
	field := func(n int) string { return string(after[n-statState]) }
	state := field(statState)
	if len(state) != 1 {
		return Stat{}, fmt.Errorf("stat field 3 (state) %q: %w", state, ErrMalformed)
	}
	st := Stat{PID: pid, Comm: string(b[openParen+1 : closeParen]), State: state[0]}
	if st.PPID, err = parseID(field(statPPID)); err != nil {
		return Stat{}, fmt.Errorf("stat field 4 (ppid): %w: %w", ErrMalformed, err)
	}
	if st.StartTime, err = strconv.ParseUint(field(statStartTime), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("stat field 22 (starttime): %w: %w", ErrMalformed, err)
	}
	return st, nil
}

// Stat reads /proc/PID/stat.
func (fs FS) Stat(pid int) (Stat, error) {
	b, err := fs.readFile(pid, "stat")
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", fs.path(pid, "stat"), err)
	}
	return st, nil
}
