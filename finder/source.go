package finder

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/internal/procfs"
	"github.com/uprobectl/uprobectl/perfevent"
)

// ProcSource is the tracker's Source on a real /proc.
type ProcSource struct {
	root string
	fs   procfs.FS
	// bootOffset is CLOCK_BOOTTIME - CLOCK_MONOTONIC, measured once: the
	// records are stamped with the second, /proc's start times count from
	// boot by the first.
	bootOffset uint64
}

// userHZ is the unit of start times in /proc (sysconf(_SC_CLK_TCK)); the
// kernel fixes it at 100 for user space on every architecture.
const userHZ = 100

// NewProcSource reads processes under root ("" or "/proc").
func NewProcSource(root string) *ProcSource {
	if root == "" {
		root = "/proc"
	}
	var boot, mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	return &ProcSource{root: root, fs: procfs.New(root), bootOffset: uint64(boot.Nano() - mono.Nano())}
}

// Process reads pid from /proc.
func (s *ProcSource) Process(pid int) (*Process, error) { return ReadProcess(s.root, pid) }

// Mappings lists pid's mappings of the probed files and their views; with
// files nil, every file mapping (File is then the mapped file itself).
func (s *ProcSource) Mappings(pid int, files *FileSet) ([]Mapping, error) {
	all, err := s.fs.Maps(pid)
	if err != nil {
		return nil, err
	}
	return probedMappings(all, files), nil
}

// MappingsAndImages is Mappings and, when pid maps a probed file, Images,
// from one read of /proc/PID/maps (the start-up scan, with stacks).
func (s *ProcSource) MappingsAndImages(pid int, files *FileSet) ([]Mapping, Images, error) {
	all, err := s.fs.Maps(pid)
	if err != nil {
		return nil, nil, err
	}
	maps := probedMappings(all, files)
	if len(maps) == 0 {
		return nil, nil, nil
	}
	return maps, imagesOf(all), nil
}

func probedMappings(all []procfs.Mapping, files *FileSet) []Mapping {
	var found []Mapping
	for _, m := range all {
		if m.Ino == 0 {
			continue
		}
		id := FileID{Dev: m.Dev, Ino: m.Ino}
		mapping := Mapping{File: id, Start: m.Start, End: m.End, Offset: m.Offset}
		if files != nil {
			probed, view, ok := files.Match(id)
			if !ok {
				continue
			}
			mapping.File, mapping.View = probed, view
		}
		found = append(found, mapping)
	}
	return found
}

// Threads lists pid's threads.
func (s *ProcSource) Threads(pid int) ([]int, error) { return s.fs.Threads(pid) }

// PIDs lists the processes under root.
func (s *ProcSource) PIDs() ([]int, error) { return s.fs.PIDs() }

// Self is our own pid as root names it (0 if it cannot tell).
func (s *ProcSource) Self() int {
	pid, _ := s.fs.Self()
	return pid
}

// Exited reports that the process pid that started at startTime has no
// thread left: /proc has no such pid, or another process has it now, or
// its pidfd is readable (the kernel's own word that the thread group is
// empty: a zombie whose main thread called pthread_exit while others still
// run is not exited).
func (s *ProcSource) Exited(pid int, startTime uint64) bool {
	st, err := s.fs.Stat(pid)
	if errors.Is(err, procfs.ErrNoProcess) {
		return true
	}
	if err != nil {
		return false // cannot tell: never retire on doubt
	}
	if startTime != 0 && !sameStart(st.StartTime, startTime) {
		return true
	}
	if st.State != 'Z' && st.State != 'X' {
		return false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// Now reads CLOCK_MONOTONIC, the records' clock.
func (s *ProcSource) Now() uint64 { return perfevent.MonotonicNow() }

// StartTicks turns a record's CLOCK_MONOTONIC stamp into /proc's start
// time unit: clock ticks since boot.
func (s *ProcSource) StartTicks(monotonic uint64) uint64 {
	return (monotonic + s.bootOffset) / (1e9 / userHZ)
}
