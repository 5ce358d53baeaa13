package tracefs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// errorLogEntry is one entry of tracefs's error_log (tracing_err_log_seq_show
// in kernel/trace/trace.c):
//
//	[  334.679311] trace_uprobe: error: Invalid register name
//	  Command: p:grp/ev /tmp/t:0x1139 x=%zz
//	                                    ^
//
// The log is global to the machine and keeps the last few (16) entries, so
// an entry is matched to a write by its command text.
type errorLogEntry struct {
	Time    string // seconds since boot, as printed: "334.679311"
	Source  string // "trace_uprobe", "trace_kprobe", "hist:sched:sched_switch", ...
	Reason  string // the kernel's message: "Invalid register name"
	Command string // the command as the kernel saw it: its words joined by one space
	Pos     int    // byte index into Command under the caret, -1 if none was shown
}

const errorLogCmdPrefix = "  Command: "

var errorLogHead = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\] (.*?): error: (.*)$`)

// parseErrorLog parses the text of error_log. Lines it does not recognise
// are skipped: the file is diagnostics, not an interface to fail on.
func parseErrorLog(r io.Reader) ([]errorLogEntry, error) {
	var out []errorLogEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1024*1024)
	var cur *errorLogEntry
	for sc.Scan() {
		line := sc.Text()
		if m := errorLogHead.FindStringSubmatch(line); m != nil {
			out = append(out, errorLogEntry{Time: m[1], Source: m[2], Reason: m[3], Pos: -1})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, errorLogCmdPrefix) && cur.Command == "":
			cur.Command = line[len(errorLogCmdPrefix):]
		// The caret is under the command: a caret left of it is not one
		// the kernel printed, and would give a negative position.
		case cur.Command != "" && cur.Pos < 0 && strings.TrimLeft(line, " ") == "^" && len(line) > len(errorLogCmdPrefix):
			cur.Pos = len(line) - 1 - len(errorLogCmdPrefix)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read error_log: %w", err)
	}
	return out, nil
}

// errorLogTail returns the entries now in error_log, oldest first.
func (fs *FS) errorLogTail() ([]errorLogEntry, error) {
	f, err := os.Open(fs.path("error_log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseErrorLog(f)
}

// lastErrorFor returns the newest entry from source whose command is cmd.
func lastErrorFor(entries []errorLogEntry, source, cmd string) (errorLogEntry, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Source == source && entries[i].Command == cmd {
			return entries[i], true
		}
	}
	return errorLogEntry{}, false
}

// culprit names the word of the command under the caret, the way a user
// would look for it: `arg "x=%zz"`, `path "/bin/x:0x1139"`, or "" if the
// caret is not under a word.
func (e errorLogEntry) culprit() string {
	if e.Pos < 0 || e.Pos >= len(e.Command) || e.Command[e.Pos] == ' ' {
		return ""
	}
	start := strings.LastIndexByte(e.Command[:e.Pos], ' ') + 1
	end := strings.IndexByte(e.Command[e.Pos:], ' ')
	if end < 0 {
		end = len(e.Command)
	} else {
		end += e.Pos
	}
	word := e.Command[start:end]
	if word == "" {
		return ""
	}
	switch strings.Count(e.Command[:start], " ") {
	case 0:
		return fmt.Sprintf("event %q", word)
	case 1:
		if i := strings.LastIndexByte(word, ':'); i > 0 {
			word = word[:i] // PATH:OFFSET: the file is what was not found
		}
		return fmt.Sprintf("path %q", word)
	default:
		return fmt.Sprintf("arg %q", word)
	}
}
