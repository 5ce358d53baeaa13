// Package finder is the task-finder: it knows which processes map a probed
// file and records each of them (the process table) before anything arms a
// probe for it, so a hit never lands on an unknown process.
package finder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoProcess is returned when a process does not exist (or exited while
// it was being read).
var ErrNoProcess = errors.New("no such process")

// Process is what the table records of one traced process.
type Process struct {
	PID       int       // in our PID namespace
	PPID      int       // parent, in our PID namespace
	NSPID     int       // in the process's own (innermost) PID namespace
	Comm      string    // /proc/PID/comm at the time it was recorded
	Exe       string    // /proc/PID/exe target ("" if unreadable: kernel thread, exited)
	StartTime uint64    // field 22 of /proc/PID/stat, clock ticks since boot: tells a reused PID apart
	Cgroup    string    // the cgroup v2 path ("0::" line of /proc/PID/cgroup)
	Maps      []Mapping // where the probed files are mapped, when recorded
}

// FileOffset turns an address in p into an offset in file, through the
// mappings known when p was recorded.
func (p *Process) FileOffset(file FileID, addr uint64) (uint64, bool) {
	for _, m := range p.Maps {
		if m.File == file {
			if off, ok := m.FileOffset(addr); ok {
				return off, true
			}
		}
	}
	return 0, false
}

// ReadProcess records the process pid from procRoot (normally "/proc").
func ReadProcess(procRoot string, pid int) (*Process, error) {
	dir := fmt.Sprintf("%s/%d", procRoot, pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, procError(pid, err)
	}
	st, err := parseStat(stat)
	if err != nil {
		return nil, fmt.Errorf("%s/stat: %w", dir, err)
	}
	p := &Process{PID: pid, PPID: st.ppid, NSPID: pid, Comm: st.comm, StartTime: st.startTime}
	if b, err := os.ReadFile(dir + "/comm"); err == nil {
		p.Comm = strings.TrimSuffix(string(b), "\n")
	}
	p.Exe, _ = os.Readlink(dir + "/exe")
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		if tgid := parseStatusInt(b, "Tgid:"); tgid > 0 && tgid != pid {
			// pid names a thread: the process is its thread group.
			return ReadProcess(procRoot, tgid)
		}
		if ns := parseNSPID(b); ns > 0 {
			p.NSPID = ns
		}
	}
	if b, err := os.ReadFile(dir + "/cgroup"); err == nil {
		p.Cgroup = parseCgroup2(b)
	}
	return p, nil
}

// statFields are the fields of /proc/PID/stat the table keeps.
type statFields struct {
	comm      string
	ppid      int
	startTime uint64
}

// parseStat reads /proc/PID/stat. comm is in parentheses and may itself
// contain ") ", so fields are counted after the last ')'.
func parseStat(b []byte) (statFields, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return statFields{}, errors.New("malformed stat line")
	}
	st := statFields{comm: string(b[open+1 : close])}
	fields := strings.Fields(string(b[close+1:]))
	// fields[0] is field 3 (state); ppid is field 4, starttime field 22.
	const ppidIndex, startTimeIndex = 4 - 3, 22 - 3
	if len(fields) <= startTimeIndex {
		return statFields{}, errors.New("stat line too short")
	}
	var err error
	if st.ppid, err = strconv.Atoi(fields[ppidIndex]); err != nil {
		return statFields{}, fmt.Errorf("ppid: %w", err)
	}
	st.startTime, err = strconv.ParseUint(fields[startTimeIndex], 10, 64)
	return st, err
}

// parseStatusInt returns the number after key ("Tgid:") in /proc/PID/status.
func parseStatusInt(status []byte, key string) int {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// parseNSPID returns the last (innermost namespace) pid of the NSpid line.
func parseNSPID(status []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// parseCgroup2 returns the path of the unified hierarchy line "0::PATH".
func parseCgroup2(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path
		}
	}
	return ""
}

// procError turns a failed read under /proc/PID into ErrNoProcess when the
// process is gone (ENOENT, or ESRCH for a file opened just before it exited).
func procError(pid int, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}

// Threads lists the thread ids of pid from /proc/PID/task.
func Threads(procRoot string, pid int) ([]int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("%s/%d/task", procRoot, pid))
	if err != nil {
		return nil, procError(pid, err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// OldestWithComm returns the pid of the oldest process named comm, or 0.
func OldestWithComm(procRoot, comm string) int {
	entries, _ := os.ReadDir(procRoot)
	best, bestStart := 0, uint64(0)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
		if err != nil {
			continue
		}
		st, err := parseStat(b)
		if err != nil || st.comm != comm {
			continue
		}
		if best == 0 || st.startTime < bestStart {
			best, bestStart = pid, st.startTime
		}
	}
	return best
}
