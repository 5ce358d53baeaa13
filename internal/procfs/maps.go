package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one line of /proc/PID/maps: a range of the address space and
// what is mapped there.
type Mapping struct {
	Start, End uint64 // the addresses [Start, End)
	Perms      string // "r-xp": read, write, execute, then p(rivate) or s(hared)
	Offset     uint64 // the offset in the file of Start
	// Dev and Ino name the mapped file the way the kernel binds a uprobe;
	// Dev is unix.Mkdev(major, minor). Ino is 0 for anonymous memory.
	Dev, Ino uint64
	// Path is the file as the process's mount namespace names it, "" for
	// anonymous memory, or a pseudo name such as "[heap]" or "[vdso]". It
	// may contain spaces, and ends in " (deleted)" when the file was
	// removed; a newline in a file name reads "\012". Match files by Dev
	// and Ino, not by Path.
	Path string
}

// maxMapsLine bounds a maps line: a path is at most PATH_MAX (4096) bytes,
// and four times that when escaped.
const maxMapsLine = 1 << 20

// ParseMaps parses /proc/PID/maps, lines of
//
//	start-end perms offset major:minor inode          path
//
// with the numbers in hex but the inode in decimal. Malformed lines are
// skipped: one odd line must not hide the others. The error is only that of
// a line longer than 1 MiB.
func ParseMaps(b []byte) ([]Mapping, error) {
	var maps []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxMapsLine)
	sc.Split(scanLinesKeepCR)
	for sc.Scan() {
		if m, ok := parseMapsLine(sc.Text()); ok {
			maps = append(maps, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("maps: %w", err)
	}
	return maps, nil
}

// scanLinesKeepCR is bufio.ScanLines without the dropping of a '\r' before
// the '\n': a path may end in one, and the kernel does not escape it.
func scanLinesKeepCR(data []byte, atEOF bool) (advance int, line []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// parseMapsLine parses one line of maps. The path is everything after the
// padding that follows the inode: it may hold spaces itself.
func parseMapsLine(line string) (Mapping, bool) {
	var fields [5]string
	rest := line
	for i := range fields {
		fields[i], rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
	}
	startHex, endHex, okRange := strings.Cut(fields[0], "-")
	majorHex, minorHex, okDev := strings.Cut(fields[3], ":")
	if !okRange || !okDev || len(fields[1]) != 4 {
		return Mapping{}, false
	}
	start, errStart := strconv.ParseUint(startHex, 16, 64)
	end, errEnd := strconv.ParseUint(endHex, 16, 64)
	offset, errOffset := strconv.ParseUint(fields[2], 16, 64)
	major, errMajor := strconv.ParseUint(majorHex, 16, 32)
	minor, errMinor := strconv.ParseUint(minorHex, 16, 32)
	ino, errIno := strconv.ParseUint(fields[4], 10, 64)
	if errStart != nil || errEnd != nil || errOffset != nil || errMajor != nil || errMinor != nil || errIno != nil || end < start {
		return Mapping{}, false
	}
	return Mapping{
		Start: start, End: end, Perms: fields[1], Offset: offset,
		Dev: unix.Mkdev(uint32(major), uint32(minor)), Ino: ino,
		Path: strings.TrimLeft(rest, " "),
	}, true
}

// Maps reads /proc/PID/maps. A kernel thread has none: the list is empty.
func (fs FS) Maps(pid int) ([]Mapping, error) {
	b, err := fs.readFile(pid, "maps")
	if err != nil {
		return nil, err
	}
	maps, err := ParseMaps(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fs.path(pid, "maps"), err)
	}
	return maps, nil
}
