package finder

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/internal/procfs"
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
	File       FileID // the probed file (for a view, the file it is a view of)
	Start, End uint64
	Offset     uint64
	View       bool // another overlay mount's view of File (FileSet)
}

// FileOffset returns the file offset of addr, if this mapping holds it.
func (m Mapping) FileOffset(addr uint64) (uint64, bool) {
	if addr < m.Start || addr >= m.End {
		return 0, false
	}
	return addr - m.Start + m.Offset, true
}

// Mappings returns the mappings of the wanted files in the maps of pid.
// Anonymous memory (inode 0) is never a wanted file.
func Mappings(procRoot string, pid int, wanted map[FileID]bool) ([]Mapping, error) {
	maps, err := procfs.New(procRoot).Maps(pid)
	if err != nil {
		return nil, err
	}
	var found []Mapping
	for _, m := range maps {
		id := FileID{Dev: m.Dev, Ino: m.Ino}
		if m.Ino != 0 && wanted[id] {
			found = append(found, Mapping{File: id, Start: m.Start, End: m.End, Offset: m.Offset})
		}
	}
	return found, nil
}

// ScanMappers lists the processes (not threads) under procRoot whose maps
// contain any of the wanted files, with those mappings. Processes that exit
// during the scan are skipped, and so is this process.
func ScanMappers(procRoot string, wanted map[FileID]bool) (map[int][]Mapping, error) {
	pids, err := procfs.New(procRoot).PIDs()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	result := map[int][]Mapping{}
	for _, pid := range pids {
		if pid == self {
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
