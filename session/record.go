package session

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
)

// recordInitialProcesses fills the table before anything is armed: the
// --pid processes (and, with --follow, their descendants), the command run
// launched, or every process that maps a probed file now.
func (s *Session) recordInitialProcesses(files map[finder.FileID]bool) error {
	if s.cfg.Launch > 0 {
		p, err := finder.ReadProcess(s.procRoot(), s.cfg.Launch)
		if err != nil {
			return fmt.Errorf("launched command (pid %d): %w", s.cfg.Launch, err)
		}
		s.record(p)
		return nil
	}
	if len(s.cfg.PIDs) > 0 {
		for _, pid := range s.cfg.PIDs {
			p, err := finder.ReadProcess(s.procRoot(), pid)
			if err != nil {
				return badInput(fmt.Errorf("--pid %d: no such process (list processes with ps, or pgrep NAME)", pid))
			}
			if p.PID != pid {
				s.warnf("--pid %d is a thread of process %d: tracing the whole process", pid, p.PID)
			}
			if s.table.Lookup(p.PID) != nil {
				continue
			}
			p.Maps, _ = finder.Mappings(s.procRoot(), p.PID, files)
			if len(p.Maps) == 0 {
				s.warnf("pid %d (%s) maps no probed file now: no hits from it unless it loads one later", p.PID, p.Comm)
			}
			s.record(p)
		}
		if s.cfg.Follow {
			s.recordDescendants(files)
		}
		return nil
	}
	mappers, err := finder.ScanMappers(s.procRoot(), files)
	if err != nil {
		return err
	}
	for pid, maps := range mappers {
		p, err := finder.ReadProcess(s.procRoot(), pid)
		if err != nil {
			continue // exited during the scan
		}
		p.Maps = maps
		s.record(p)
	}
	return nil
}

// recordDescendants records the existing descendants of the recorded
// processes (--follow); new ones come from the side-band.
func (s *Session) recordDescendants(files map[finder.FileID]bool) {
	parents := map[int]int{}
	entries, _ := os.ReadDir(s.procRoot())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := finder.ReadProcess(s.procRoot(), pid); err == nil {
			parents[pid] = p.PPID
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, ppid := range parents {
			if s.table.Lookup(pid) == nil && s.table.Lookup(ppid) != nil {
				if p, err := finder.ReadProcess(s.procRoot(), pid); err == nil {
					p.Maps, _ = finder.Mappings(s.procRoot(), pid, files)
					s.record(p)
					changed = true
				}
			}
		}
	}
}

func (s *Session) record(p *finder.Process) {
	s.table.Add(p)
	s.seen.Add(1)
	s.sink.Process("found", p)
}

// The side-band handlers run on the reader goroutine, in time order with
// the hits: a process is recorded here before its first hit is handled.

// onFork records the child of a recorded process (it shares the parent's
// mappings, so the probes are armed in it: by inherit, or by the kernel for
// every mapper).
func (s *Session) onFork(rec *perfevent.Record) {
	if rec.PID == rec.PPID || rec.PID == 0 {
		return // a new thread, or a process outside our PID namespace
	}
	parent := s.table.Lookup(int(rec.PPID))
	if parent == nil || !s.cfg.followsChildren() || s.table.Lookup(int(rec.PID)) != nil {
		return
	}
	child := *parent
	child.PID, child.PPID, child.NSPID, child.StartTime = int(rec.PID), parent.PID, int(rec.PID), 0
	if p, err := finder.ReadProcess(s.procRoot(), int(rec.PID)); err == nil {
		child.NSPID, child.StartTime, child.Cgroup = p.NSPID, p.StartTime, p.Cgroup
	}
	child.Maps = slices.Clone(parent.Maps)
	s.record(&child)
}

// onComm keeps the name of every task (a process that maps a probed file
// may be gone before its record is read from /proc), and updates a recorded
// process that calls execve: new name, new executable, no mappings yet (the
// new image's come as mmap records).
func (s *Session) onComm(rec *perfevent.Record) {
	if rec.PID == rec.TID {
		s.comms[rec.PID] = rec.Comm
	}
	if !rec.Exec {
		return
	}
	p := s.table.Lookup(int(rec.PID))
	if p == nil {
		return
	}
	updated := *p
	updated.Comm = rec.Comm
	updated.Maps = nil
	// The new executable's mapping is the next mmap record of the process;
	// /proc may be gone by the time this record is read.
	updated.Exe = ""
	s.awaitingExe[rec.PID] = true
	s.table.Add(&updated)
}

// onMmap records a process that maps a probed file (exec, dlopen), or adds
// the mapping to its record: the hit path turns probe addresses into file
// offsets with it.
func (s *Session) onMmap(rec *perfevent.Record) {
	m := rec.Mmap
	if s.awaitingExe[rec.PID] {
		// The first executable mapping after execve is the program itself.
		delete(s.awaitingExe, rec.PID)
		if p := s.table.Lookup(int(rec.PID)); p != nil {
			updated := *p
			updated.Exe = m.Filename
			s.table.Add(&updated)
			s.sink.Process("exec", &updated)
		}
	}
	id := finder.FileID{Dev: unix.Mkdev(m.Major, m.Minor), Ino: m.Ino}
	armed := s.armed.Load()
	if !armed.files[id] {
		if armed.paths[m.Filename] && !s.cfg.perProcess() {
			// The path is probed but this inode is not (yet): the file was
			// replaced. Hits before the new inode is armed are missed.
			s.missed.Add(1)
			go s.rearm(m.Filename)
		}
		return
	}
	mapping := finder.Mapping{File: id, Start: m.Addr, End: m.Addr + m.Len, Offset: m.Pgoff}
	pid := int(rec.PID)
	if pid == 0 {
		// The kernel gives pid 0 for a task outside our PID namespace (a
		// sidecar sees its pod, not the node): it cannot be recorded.
		return
	}
	if p := s.table.Lookup(pid); p != nil {
		if !slices.Contains(p.Maps, mapping) {
			updated := *p
			updated.Maps = append(slices.Clip(p.Maps), mapping)
			s.table.Add(&updated)
		}
		return
	}
	if s.cfg.perProcess() {
		return // not a chosen process
	}
	p, err := finder.ReadProcess(s.procRoot(), pid)
	if err != nil {
		// Already gone: what the side-band knows is enough to attribute.
		p = &finder.Process{PID: pid, NSPID: pid, Comm: s.comms[rec.PID]}
	}
	p.Maps = []finder.Mapping{mapping}
	s.record(p)
}

// onExit retires a recorded process. Everything it did was before its exit
// record in the merged stream, so all its hits have been delivered.
func (s *Session) onExit(rec *perfevent.Record) {
	if rec.PID != rec.TID {
		return // a thread
	}
	delete(s.comms, rec.PID)
	delete(s.awaitingExe, rec.PID)
	if p := s.table.Lookup(int(rec.PID)); p != nil {
		s.retire(p)
	}
}

// retire reports the exit of p, removes it from the table and closes its
// perf events.
func (s *Session) retire(p *finder.Process) {
	s.sink.Process("exit", p)
	s.table.Remove(p.PID)
	s.mu.Lock()
	closing := s.attachments[p.PID]
	delete(s.attachments, p.PID)
	s.mu.Unlock()
	if len(closing) > 0 {
		// Closing may wait for a grace period; keep the reader reading.
		s.closers.Add(1)
		go func() { defer s.closers.Done(); closeAll(closing) }()
	}
}

// recordLate handles a hit from a process not in the table, which the
// side-band should have made impossible (its records can be lost when a
// ring overflows): it is recorded from /proc if it still maps a probed file.
func (s *Session) recordLate(pid int) *finder.Process {
	if s.cfg.perProcess() {
		return nil
	}
	maps, err := finder.Mappings(s.procRoot(), pid, s.armed.Load().files)
	if err != nil || len(maps) == 0 {
		return nil
	}
	p, err := finder.ReadProcess(s.procRoot(), pid)
	if err != nil {
		return nil
	}
	p.Maps = maps
	s.record(p)
	return p
}

// sweep retires processes that are gone but whose exit record was lost, so
// the table stays bounded whatever the kernel drops.
func (s *Session) sweep() {
	if time.Since(s.lastSweep) < 10*time.Second {
		return
	}
	s.lastSweep = time.Now()
	for pid, p := range s.table.All() {
		cur, err := finder.ReadProcess(s.procRoot(), pid)
		if err != nil || (p.StartTime != 0 && cur.StartTime != p.StartTime) || strings.HasPrefix(stateOf(s.procRoot(), pid), "Z") {
			s.retire(p)
		}
	}
}

// stateOf returns the state letter of /proc/PID/stat ("Z" for a zombie).
func stateOf(procRoot string, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return ""
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return ""
}
