package finder

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileID names a file by device and inode, the way the kernel binds a uprobe
// and the way /proc/PID/maps shows a mapping. Paths are not compared: a
// mapped path can carry " (deleted)", or be another mount namespace's view.
type FileID struct {
	Dev uint64 // unix.Mkdev(major, minor)
	Ino uint64
}

func (id FileID) String() string {
	return fmt.Sprintf("%d:%d inode %d", unix.Major(id.Dev), unix.Minor(id.Dev), id.Ino)
}

// Identify stats path.
func Identify(path string) (FileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return FileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Mapping is one mapping of a probed file in a process: the range of
// addresses and the file offset of its start. It turns a probe's address
// (as a hit reports it) back into the file offset the probe was defined at.
type Mapping struct {
	File       FileID
	Start, End uint64
	Offset     uint64
}

// FileOffset returns the file offset of addr, if this mapping holds it.
func (m Mapping) FileOffset(addr uint64) (uint64, bool) {
	if addr < m.Start || addr >= m.End {
		return 0, false
	}
	return addr - m.Start + m.Offset, true
}

// Mappings returns the mappings of the wanted files in the maps of pid.
func Mappings(procRoot string, pid int, wanted map[FileID]bool) ([]Mapping, error) {
	f, err := os.Open(fmt.Sprintf("%s/%d/maps", procRoot, pid))
	if err != nil {
		return nil, procError(pid, err)
	}
	defer f.Close()
	return parseMaps(f, wanted)
}

// parseMaps reads /proc/PID/maps lines:
//
//	start-end perms offset major:minor inode path
func parseMaps(r io.Reader, wanted map[FileID]bool) ([]Mapping, error) {
	var found []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] == "0" {
			continue
		}
		major, minor, ok := strings.Cut(fields[3], ":")
		if !ok {
			continue
		}
		maj, err1 := strconv.ParseUint(major, 16, 32)
		mnr, err2 := strconv.ParseUint(minor, 16, 32)
		ino, err3 := strconv.ParseUint(fields[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		id := FileID{Dev: unix.Mkdev(uint32(maj), uint32(mnr)), Ino: ino}
		if !wanted[id] {
			continue
		}
		startS, endS, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(startS, 16, 64)
		end, err2 := strconv.ParseUint(endS, 16, 64)
		off, err3 := strconv.ParseUint(fields[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		found = append(found, Mapping{File: id, Start: start, End: end, Offset: off})
	}
	return found, sc.Err()
}

// ScanMappers lists the processes (not threads) under procRoot whose maps
// contain any of the wanted files, with those mappings. Processes that exit
// during the scan are skipped, and so is this process.
func ScanMappers(procRoot string, wanted map[FileID]bool) (map[int][]Mapping, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	result := map[int][]Mapping{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		found, err := Mappings(procRoot, pid, wanted)
		if err != nil || len(found) == 0 {
			continue
		}
		result[pid] = found
	}
	return result, nil
}
