package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// Status holds the fields of /proc/PID/status (proc_pid_status(5)) that
// uprobectl uses. A field missing from the file is left zero.
type Status struct {
	State byte // the letter of "State:", as Stat.State
	// Tgid is the thread group the task belongs to: the pid of its
	// process, which differs from the pid read for a thread.
	Tgid int
	PPid int // the parent process
	// NSpid is the pid in every pid namespace the task is visible in, from
	// the namespace of the proc mount to the task's own (innermost). It is
	// empty before Linux 4.1.
	NSpid []int
}

// InnermostPID returns the pid of the task in its own pid namespace (the
// last of NSpid), as a process in a container sees itself; 0 when NSpid is
// empty.
func (s Status) InnermostPID() int {
	if len(s.NSpid) == 0 {
		return 0
	}
	return s.NSpid[len(s.NSpid)-1]
}

// ParseStatus parses /proc/PID/status, "Key:\tvalue" lines. Lines it does
// not use are skipped; a malformed value of one it uses is an error
// wrapping ErrMalformed.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	for line := range bytes.Lines(b) {
		key, value, ok := strings.Cut(strings.TrimSuffix(string(line), "\n"), ":")
		if !ok {
			continue
		}
		var err error
		fields := strings.Fields(value)
		switch key {
		case "State":
			// "S (sleeping)"
			if len(fields) == 0 || len(fields[0]) != 1 {
				return Status{}, fmt.Errorf("status State %q: %w", value, ErrMalformed)
			}
			s.State = fields[0][0]
		case "Tgid":
			s.Tgid, err = parseOneID(fields)
		case "PPid":
			s.PPid, err = parseOneID(fields)
		case "NSpid":
			s.NSpid = make([]int, len(fields))
			for i, f := range fields {
				if s.NSpid[i], err = parseID(f); err != nil {
					break
				}
			}
		}
		if err != nil {
			return Status{}, fmt.Errorf("status %s %q: %w: %w", key, value, ErrMalformed, err)
		}
	}
	return s, nil
}

// parseOneID parses the value of a status line that holds a single id.
func parseOneID(fields []string) (int, error) {
	if len(fields) != 1 {
		return 0, fmt.Errorf("%d values, want 1", len(fields))
	}
	return parseID(fields[0])
}

// Status reads /proc/PID/status.
func (fs FS) Status(pid int) (Status, error) {
	b, err := fs.readFile(pid, "status")
	if err != nil {
		return Status{}, err
	}
	s, err := ParseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", fs.path(pid, "status"), err)
	}
	return s, nil
}
