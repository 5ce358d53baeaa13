package finder

import (
	"slices"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/perfevent"
)

// Source is what the tracker reads of processes outside the record stream:
// /proc in production (ProcSource), fixtures in tests.
type Source interface {
	// Process reads pid as it is now (comm, exe, start time, cgroup, ...).
	// Maps is left empty. A pid that names a thread gives its process.
	Process(pid int) (*Process, error)
	// Mappings lists pid's mappings of the probed files (and views of them).
	Mappings(pid int, files *FileSet) ([]Mapping, error)
	// Threads lists pid's thread ids.
	Threads(pid int) ([]int, error)
	// Exited reports that every thread of the process pid that started at
	// startTime (0: any) has exited: it is gone, a zombie, or the pid now
	// names another process.
	Exited(pid int, startTime uint64) bool
	// Now reads the clock the records are stamped with (CLOCK_MONOTONIC).
	Now() uint64
	// StartTicks turns a record's timestamp into the start-time unit of
	// /proc/PID/stat (clock ticks since boot).
	StartTicks(monotonic uint64) uint64
}

// Scope is which processes' hits are delivered.
type Scope struct {
	// Chosen: only the processes recorded at start (--pid, run) and, with
	// Follow, their descendants. Hits from other processes are filtered.
	Chosen bool
	Follow bool
	// Comm: only processes with this name (after an exec, the new name).
	Comm string
	// ExactFile: a process that maps a probed file only through another
	// overlay mount's view of it is outside the scope (it runs in another
	// container of the same image): --container-pid, --container-comm.
	ExactFile bool
	// Self is uprobectl's own pid: it maps libc too, but its own calls are
	// never traced (filtered, never recorded).
	Self int
}

func (s Scope) followsChildren() bool { return !s.Chosen || s.Follow }

// Verdict is what becomes of a hit.
type Verdict uint8

const (
	Deliver  Verdict = iota + 1 // from a recorded process in the scope
	Filtered                    // from a recorded process (or a task) outside the scope
	Unknown                     // from a process nothing is known of (only after side-band loss)
)

// Counters are the tracker's counts, read by Stats from any goroutine.
type Counters struct {
	// Recorded counts processes recorded over the run.
	Recorded atomic.Int64
	// Late counts processes (and mappings) learnt from /proc after their
	// side-band records were lost: their attribution came late, not from
	// the stream.
	Late atomic.Uint64
	// Filtered and Unknown count hits by verdict.
	Filtered, Unknown atomic.Uint64
	// MissedWindows counts mappings of a probed path whose inode is not
	// (yet) armed: the file was replaced.
	MissedWindows atomic.Uint64
}

// CheckInterval is how often, in the record clock's nanoseconds, recorded
// processes are checked against /proc for an exit whose record was lost.
const CheckInterval = 10e9

// afterSidebandLoss: after side-band records were lost, the next check
// comes this soon (exits, forks and mmaps may be missing).
const afterSidebandLoss = 1e9

// task is what the side-band told of a task (thread group leader) that is
// not necessarily recorded: enough to record it when it maps a probed file,
// even after it is gone from /proc.
type task struct {
	comm        string
	exe         string
	ppid        uint32
	forked      uint64 // record time of its fork, 0 if not seen
	awaitingExe bool   // called execve; the next executable mapping is the program
}

// tracked is the tracker's private state of a recorded process.
type tracked struct {
	threads map[uint32]bool // live threads, from /proc and fork/exit records
	// exitedBy: a check saw the process gone at this record-clock time;
	// once everything before it is delivered, it has no hit left.
	exitedBy uint64
}

// Tracker is the task-finder's state machine. It consumes the merged,
// time-ordered record stream — fork, comm (exec), mmap, exit, lost and
// samples — and decides: found, exec, exit, attribute, filter. It is the
// one owner of process state: everything below runs on one goroutine (the
// reader), except Lookup, which reads the table's immutable snapshot.
//
// The rule it keeps: a process is recorded before a hit of it is handled
// (the stream delivers its fork or mmap record first), and it is retired
// only when the stream proves no more of its hits can come: its exit
// record was delivered (every thread's), or a check saw it gone at time T
// and every record older than T has been delivered. Never on a look at
// /proc while its hits may still be in the rings.
type Tracker struct {
	src    Source
	scope  Scope
	files  atomic.Pointer[FileSet]
	table  Table
	report func(event string, p *Process)
	// replaced is called when a probed path is mapped with an inode that is
	// not armed: the file was replaced on disk.
	replaced func(path string)
	paths    map[string]bool // probed paths, to notice a replaced file
	images   ImageSource     // nil unless the config keeps images

	tasks        map[uint32]*task
	live         map[int]*tracked
	lastCheck    uint64
	checkSoon    bool
	pendingTasks []pendingTask // tasks seen gone by a check, forgotten once delivered past
	marked       int           // live processes with exitedBy set: Settle's loop runs only then

	Counters Counters
}

type pendingTask struct {
	pid uint32
	by  uint64
}

// TrackerConfig sets up a Tracker.
type TrackerConfig struct {
	Source Source
	Scope  Scope
	Files  *FileSet
	Paths  []string // the probed paths as written to uprobe_events
	// Report receives "found", "exec" and "exit", in stream order.
	Report func(event string, p *Process)
	// Replaced is called (on the reader goroutine) when a probed path is
	// mapped with an inode that is not armed.
	Replaced func(path string)
	// KeepImages: keep every executable mapping of each recorded process
	// (Process.Images), to symbolize stacks.
	KeepImages bool
}

// NewTracker returns an empty tracker.
func NewTracker(cfg TrackerConfig) *Tracker {
	t := &Tracker{src: cfg.Source, scope: cfg.Scope, report: cfg.Report, replaced: cfg.Replaced,
		paths: map[string]bool{}, tasks: map[uint32]*task{}, live: map[int]*tracked{}}
	for _, p := range cfg.Paths {
		t.paths[p] = true
	}
	if is, ok := cfg.Source.(ImageSource); ok && cfg.KeepImages {
		t.images = is
	}
	if t.report == nil {
		t.report = func(string, *Process) {}
	}
	if t.replaced == nil {
		t.replaced = func(string) {}
	}
	t.files.Store(cfg.Files)
	t.lastCheck = t.src.Now()
	return t
}

// Files returns the probed files.
func (t *Tracker) Files() *FileSet { return t.files.Load() }

// SetFiles replaces the probed files (a replaced file was armed again).
// Safe from any goroutine.
func (t *Tracker) SetFiles(fs *FileSet) { t.files.Store(fs) }

// Lookup returns the recorded process pid, or nil. Lock-free.
func (t *Tracker) Lookup(pid int) *Process { return t.table.Lookup(pid) }

// Len is the number of processes in the table now.
func (t *Tracker) Len() int { return t.table.Len() }

// All returns the table's snapshot; callers must not modify it.
func (t *Tracker) All() map[int]*Process { return t.table.All() }

// Record puts p in the table (at start: the /proc scan, --pid, run). It
// must come before anything arms a probe for p.
func (t *Tracker) Record(p *Process) {
	if tids, err := t.src.Threads(p.PID); err == nil {
		t.record(p, tids)
	} else {
		t.record(p, []int{p.PID})
	}
}

func (t *Tracker) record(p *Process, tids []int) {
	if t.images != nil && p.Images == nil && p.Via != "fork" {
		// Best effort: a process already gone keeps none, and its frames
		// show addresses only.
		p.Images, _ = t.images.Images(p.PID)
	}
	t.judge(p)
	st := &tracked{threads: map[uint32]bool{}}
	for _, tid := range tids {
		st.threads[uint32(tid)] = true
	}
	t.live[p.PID] = st
	t.table.Add(p)
	t.Counters.Recorded.Add(1)
	t.report("found", p)
}

// judge sets p.Filtered from the scope: another name than --comm, or (with
// ExactFile) a process that maps the probed files only through another
// overlay mount's view. It runs whenever the name or the mappings change.
func (t *Tracker) judge(p *Process) {
	p.Filtered = t.scope.Comm != "" && p.Comm != t.scope.Comm
	if t.scope.ExactFile && len(p.Maps) > 0 && !slices.ContainsFunc(p.Maps, func(m Mapping) bool { return !m.View }) {
		p.Filtered = true
	}
}

// retire reports p's exit and forgets it.
func (t *Tracker) retire(p *Process) {
	t.report("exit", p)
	t.table.Remove(p.PID)
	if st := t.live[p.PID]; st != nil && st.exitedBy != 0 {
		t.marked--
	}
	delete(t.live, p.PID)
}

// Observe consumes one side-band record (or a lost count).
func (t *Tracker) Observe(rec *perfevent.Record) {
	switch rec.Kind {
	case perfevent.KindFork:
		t.fork(rec)
	case perfevent.KindComm:
		t.comm(rec)
	case perfevent.KindMmap:
		t.mmap(rec)
	case perfevent.KindExit:
		t.exit(rec)
	case perfevent.KindLost:
		if rec.Sideband {
			// Forks, exits or mappings may be missing: the next check
			// comes soon, and hits of processes we missed are recorded
			// late from /proc.
			t.checkSoon = true
		}
	}
}

// fork: a new thread joins its process; a new process is recorded if its
// parent is (it shares the parent's mappings, so the probes are armed in
// it: by inherit, or by the kernel for every mapper).
func (t *Tracker) fork(rec *perfevent.Record) {
	if rec.PID == 0 {
		return // outside our PID namespace
	}
	if rec.PID == rec.PPID { // a new thread
		if st := t.live[int(rec.PID)]; st != nil {
			st.threads[rec.TID] = true
		}
		return
	}
	parentTask := t.tasks[rec.PPID]
	child := &task{ppid: rec.PPID, forked: rec.Time}
	if parentTask != nil {
		child.comm, child.exe = parentTask.comm, parentTask.exe
	}
	t.tasks[rec.PID] = child
	if old := t.table.Lookup(int(rec.PID)); old != nil {
		if sameStart(old.StartTime, t.src.StartTicks(rec.Time)) {
			return // recorded by the /proc scan after it forked: the same process
		}
		// The pid was reused: the old process exited and its exit record
		// was lost. Everything it did precedes this fork.
		t.retire(old)
	}
	parent := t.table.Lookup(int(rec.PPID))
	if parent == nil || !t.scope.followsChildren() {
		return
	}
	p := *parent
	p.PID, p.PPID, p.Via = int(rec.PID), parent.PID, "fork"
	p.StartTime = t.src.StartTicks(rec.Time)
	p.NSPID = 0
	if parent.NSPID == parent.PID {
		p.NSPID = p.PID // same PID namespace, unless it was cloned into a new one (then /proc says)
	}
	if cur, err := t.src.Process(p.PID); err == nil && sameStart(cur.StartTime, p.StartTime) {
		p.NSPID, p.StartTime, p.Cgroup = cur.NSPID, cur.StartTime, cur.Cgroup
	}
	p.Maps = slices.Clone(parent.Maps)
	t.record(&p, []int{p.PID})
}

// sameStart compares a start time read from /proc with one computed from a
// record's timestamp, which may fall in the next clock tick.
func sameStart(proc, computed uint64) bool {
	return proc == computed || proc+1 == computed || proc == computed+1
}

// comm keeps the name of every task, and updates a recorded process that
// calls execve: new name, no mappings (the new image's come as mmap
// records), and its program from the next executable mapping.
func (t *Tracker) comm(rec *perfevent.Record) {
	if rec.PID != rec.TID && !rec.Exec {
		return // a thread's name
	}
	tk := t.tasks[rec.PID]
	if tk == nil {
		tk = &task{}
		t.tasks[rec.PID] = tk
	}
	tk.comm = rec.Comm
	if !rec.Exec {
		return
	}
	tk.exe, tk.awaitingExe = "", true
	p := t.table.Lookup(int(rec.PID))
	if p == nil {
		return
	}
	updated := *p
	updated.Comm, updated.Exe, updated.Maps, updated.Images = rec.Comm, "", nil, nil
	t.judge(&updated)
	t.table.Add(&updated)
	if st := t.live[p.PID]; st != nil {
		// execve leaves one thread, which takes the process's pid.
		st.threads = map[uint32]bool{uint32(p.PID): true}
	}
}

// mmap records a process that maps a probed file (exec, dlopen), or adds
// the mapping to its record: the hit path turns probe addresses into file
// offsets with it.
func (t *Tracker) mmap(rec *perfevent.Record) {
	m := rec.Mmap
	tk := t.tasks[rec.PID]
	if tk != nil && tk.awaitingExe {
		// The first executable mapping after execve is the program itself.
		tk.exe, tk.awaitingExe = m.Filename, false
		if p := t.table.Lookup(int(rec.PID)); p != nil {
			updated := *p
			updated.Exe = m.Filename
			t.table.Add(&updated)
			t.report("exec", &updated)
		}
	}
	id := FileID{Dev: unix.Mkdev(m.Major, m.Minor), Ino: m.Ino}
	if t.images != nil {
		if p := t.table.Lookup(int(rec.PID)); p != nil {
			updated := *p
			updated.Images = p.Images.With(Image{Start: m.Addr, End: m.Addr + m.Len, Offset: m.Pgoff, File: id, Path: m.Filename})
			t.table.Add(&updated)
		}
	}
	files := t.files.Load()
	probed, view, ok := files.Match(id)
	if !ok {
		if t.paths[m.Filename] && !t.scope.Chosen {
			// The path is probed but this inode is not (yet): the file was
			// replaced. Hits before the new inode is armed are missed.
			t.Counters.MissedWindows.Add(1)
			t.replaced(m.Filename)
		}
		return
	}
	if rec.PID == 0 || int(rec.PID) == t.scope.Self {
		return // outside our PID namespace (its hits come with pid 0), or ourselves: filtered
	}
	mapping := Mapping{File: probed, Start: m.Addr, End: m.Addr + m.Len, Offset: m.Pgoff, View: view}
	if p := t.table.Lookup(int(rec.PID)); p != nil {
		if !slices.Contains(p.Maps, mapping) {
			updated := *p
			updated.Maps = append(slices.Clip(p.Maps), mapping)
			t.judge(&updated)
			t.table.Add(&updated)
		}
		return
	}
	if t.scope.Chosen {
		return // not a chosen process
	}
	p := t.fromStream(rec.PID)
	p.Via = "mmap"
	p.Maps = []Mapping{mapping}
	t.record(p, t.threadsOf(p.PID))
}

// fromStream builds the record of pid from /proc if it is still the
// process the stream speaks of, else from what the side-band told.
func (t *Tracker) fromStream(pid uint32) *Process {
	tk := t.tasks[pid]
	p, err := t.src.Process(int(pid))
	if err == nil && (tk == nil || tk.forked == 0 || sameStart(p.StartTime, t.src.StartTicks(tk.forked))) {
		if tk != nil && tk.exe != "" && p.Exe == "" {
			p.Exe = tk.exe
		}
		return p
	}
	// Gone (or the pid was reused): what the side-band knows is enough to
	// attribute its hits.
	p = &Process{PID: int(pid)}
	if tk != nil {
		p.Comm, p.Exe, p.PPID = tk.comm, tk.exe, int(tk.ppid)
		if tk.forked != 0 {
			p.StartTime = t.src.StartTicks(tk.forked)
		}
	}
	return p
}

func (t *Tracker) threadsOf(pid int) []int {
	if tids, err := t.src.Threads(pid); err == nil {
		return tids
	}
	return []int{pid}
}

// exit: a thread is gone; a process is retired when its last thread is.
// Everything a thread did precedes its exit record in the merged stream,
// so all its hits have been delivered.
func (t *Tracker) exit(rec *perfevent.Record) {
	if rec.PID == rec.TID {
		delete(t.tasks, rec.PID)
	}
	st := t.live[int(rec.PID)]
	if st == nil {
		return
	}
	delete(st.threads, rec.TID)
	if len(st.threads) == 0 {
		if p := t.table.Lookup(int(rec.PID)); p != nil {
			t.retire(p)
		}
	}
}

// Attribute decides what becomes of a hit of pid at addr on a trace event
// bound to file. It returns the process and, when its mappings tell, the
// file offset of addr. A hit from a process the stream did not record
// (only possible after side-band loss) is recorded late from /proc.
func (t *Tracker) Attribute(pid int, file FileID, addr uint64) (p *Process, off uint64, offOK bool, v Verdict) {
	p = t.table.Lookup(pid)
	if p == nil {
		if t.scope.Chosen || pid == 0 || (pid == t.scope.Self && pid != 0) {
			// Children of a --pid process carry its inherited events;
			// pid 0 is a process outside our PID namespace (another pod
			// sharing the file's inode); and our own calls: all are
			// outside the scope.
			t.Counters.Filtered.Add(1)
			return nil, 0, false, Filtered
		}
		if p = t.recordLate(pid, file, addr); p == nil {
			t.Counters.Unknown.Add(1)
			return nil, 0, false, Unknown
		}
	}
	if p.Filtered {
		t.Counters.Filtered.Add(1)
		return p, 0, false, Filtered
	}
	off, offOK = p.FileOffset(file, addr)
	if !offOK {
		// A mapping whose mmap record was lost: read it from /proc.
		if maps, err := t.src.Mappings(pid, t.files.Load()); err == nil && len(maps) > 0 {
			updated := *p
			updated.Maps = maps
			t.judge(&updated)
			t.table.Add(&updated)
			if off, offOK = updated.FileOffset(file, addr); offOK {
				t.Counters.Late.Add(1)
			}
			p = &updated
		}
	}
	return p, off, offOK, Deliver
}

// recordLate records pid from /proc (or the side-band's knowledge) when a
// hit proves it maps file: its fork or mmap record was lost.
func (t *Tracker) recordLate(pid int, file FileID, addr uint64) *Process {
	tk := t.tasks[uint32(pid)]
	p, err := t.src.Process(pid)
	if err != nil {
		if tk == nil {
			return nil
		}
		p = t.fromStream(uint32(pid))
	} else {
		p.Maps, _ = t.src.Mappings(pid, t.files.Load())
		if _, ok := p.FileOffset(file, addr); !ok {
			// The hit proves the mapping holding addr is the probed file
			// (a view the FileSet did not know, e.g. overlayfs with xino):
			// learn it.
			if m, ok := t.mappingAt(pid, addr); ok {
				t.files.Store(t.files.Load().Learn(m.File, file))
				m.File, m.View = file, true
				p.Maps = append(p.Maps, m)
			}
		}
	}
	p.Via = "late"
	t.Counters.Late.Add(1)
	t.record(p, t.threadsOf(pid))
	return p
}

// mappingAt finds the mapping of any file holding addr in pid.
func (t *Tracker) mappingAt(pid int, addr uint64) (Mapping, bool) {
	all, err := t.src.Mappings(pid, nil)
	if err != nil {
		return Mapping{}, false
	}
	for _, m := range all {
		if addr >= m.Start && addr < m.End {
			return m, true
		}
	}
	return Mapping{}, false
}

// Settle runs after each delivery round with the time before which every
// record has been delivered. It retires the processes a check saw gone
// before that time, and checks again when one is due.
func (t *Tracker) Settle(deliveredBefore uint64) {
	for pid, st := range t.live {
		if t.marked == 0 {
			break // it runs every round: nothing to look for is the usual case
		}
		if st.exitedBy != 0 && st.exitedBy <= deliveredBefore {
			if p := t.table.Lookup(pid); p != nil {
				t.retire(p)
			}
		}
	}
	kept := t.pendingTasks[:0]
	for _, pt := range t.pendingTasks {
		if pt.by <= deliveredBefore {
			delete(t.tasks, pt.pid)
		} else {
			kept = append(kept, pt)
		}
	}
	t.pendingTasks = kept
	now := t.src.Now()
	due := t.lastCheck + CheckInterval
	if t.checkSoon {
		due = min(due, t.lastCheck+afterSidebandLoss)
	}
	if now >= due {
		t.check(now)
	}
}

// check looks for processes (and tasks) that exited without an exit record
// in the stream (it was lost): seen gone at now, they are retired once
// everything before now has been delivered.
func (t *Tracker) check(now uint64) {
	t.lastCheck, t.checkSoon = now, false
	for pid, st := range t.live {
		if st.exitedBy != 0 {
			continue
		}
		p := t.table.Lookup(pid)
		if p != nil && t.src.Exited(pid, p.StartTime) {
			st.exitedBy = now
			t.marked++
		}
	}
	pending := map[uint32]bool{}
	for _, pt := range t.pendingTasks {
		pending[pt.pid] = true
	}
	for pid := range t.tasks {
		if !pending[pid] && t.src.Exited(int(pid), 0) {
			t.pendingTasks = append(t.pendingTasks, pendingTask{pid, now})
		}
	}
}

// Tasks is the number of tasks the side-band knows of (bounded by the live
// tasks on the machine, plus those a check found gone).
func (t *Tracker) Tasks() int { return len(t.tasks) }
