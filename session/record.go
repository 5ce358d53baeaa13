package session

import (
	"fmt"

	"github.com/uprobectl/uprobectl/finder"
)

// recordInitialProcesses fills the process table before anything is armed:
// the --pid processes (and, with --follow, their descendants), the command
// run launched, or every process that maps a probed file now. Later
// processes come from the record stream (finder.Tracker).
func (s *Session) recordInitialProcesses() error {
	files, src := s.finder.Files(), s.proc
	if s.cfg.Launch > 0 {
		p, err := src.Process(s.cfg.Launch)
		if err != nil {
			return fmt.Errorf("launched command (pid %d): %w", s.cfg.Launch, err)
		}
		p.Via = "pid"
		s.finder.Record(p)
		return nil
	}
	if len(s.cfg.PIDs) > 0 {
		for _, pid := range s.cfg.PIDs {
			p, err := src.Process(pid)
			if err != nil {
				return badInput(fmt.Errorf("--pid %d: no such process (list processes with ps, or pgrep NAME)", pid))
			}
			if p.PID != pid {
				s.warnf("--pid %d is a thread of process %d: tracing the whole process", pid, p.PID)
			}
			if s.finder.Lookup(p.PID) != nil {
				continue
			}
			p.Maps, p.Images, _ = s.readMaps(p.PID, files)
			if len(p.Maps) == 0 {
				s.warnf("pid %d (%s) maps no probed file now: no hits from it unless it loads one later", p.PID, p.Comm)
			}
			p.Via = "pid"
			s.finder.Record(p)
		}
		if s.cfg.Follow {
			s.recordDescendants(files)
		}
		return nil
	}
	pids, err := src.PIDs()
	if err != nil {
		return err
	}
	self := src.Self()
	// Reading every process's maps is most of the start-up time of a run
	// on a busy machine: read them concurrently, record in pid order.
	found := make([]*finder.Process, len(pids))
	parallel(len(pids), func(i int) error {
		if pids[i] == self {
			return nil
		}
		maps, images, err := s.readMaps(pids[i], files)
		if err != nil || len(maps) == 0 {
			return nil // exited during the scan, or maps no probed file
		}
		if p, err := src.Process(pids[i]); err == nil {
			p.Maps, p.Images, p.Via = maps, images, "scan"
			found[i] = p
		}
		return nil
	})
	for _, p := range found {
		if p != nil {
			s.finder.Record(p)
		}
	}
	return nil
}

// readMaps reads pid's mappings of the probed files and, with stacks, its
// executable mappings, from one read of /proc/PID/maps.
func (s *Session) readMaps(pid int, files *finder.FileSet) ([]finder.Mapping, finder.Images, error) {
	if s.cfg.StackDepth > 0 {
		return s.proc.MappingsAndImages(pid, files)
	}
	maps, err := s.proc.Mappings(pid, files)
	return maps, nil, err
}

// recordDescendants records the existing descendants of the recorded
// processes (--follow); new ones come from the side-band.
func (s *Session) recordDescendants(files *finder.FileSet) {
	src := s.proc
	parents := map[int]int{}
	pids, _ := src.PIDs()
	for _, pid := range pids {
		if p, err := src.Process(pid); err == nil && p.PID == pid {
			parents[pid] = p.PPID
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, ppid := range parents {
			if s.finder.Lookup(pid) == nil && s.finder.Lookup(ppid) != nil {
				if p, err := src.Process(pid); err == nil {
					p.Maps, _ = src.Mappings(pid, files)
					p.Via = "pid"
					s.finder.Record(p)
					changed = true
				}
			}
		}
	}
}
