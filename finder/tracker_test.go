package finder

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/perfevent"
)

// These tests drive the task-finder with synthetic record sequences: no
// root, no kernel, no /proc. The fake source plays /proc.

const tick = 10_000_000 // ns per clock tick (USER_HZ 100)

type fakeTask struct {
	proc    Process
	maps    []Mapping // raw: File is the mapped (dev, ino)
	threads []int
	zombie  bool
}

type fakeSource struct {
	procs map[int]*fakeTask
	now   uint64
}

func newFakeSource() *fakeSource { return &fakeSource{procs: map[int]*fakeTask{}, now: 1e12} }

func (f *fakeSource) Process(pid int) (*Process, error) {
	fp := f.procs[pid]
	if fp == nil || fp.zombie {
		return nil, ErrNoProcess
	}
	p := fp.proc
	p.Maps = nil
	return &p, nil
}

func (f *fakeSource) Mappings(pid int, files *FileSet) ([]Mapping, error) {
	fp := f.procs[pid]
	if fp == nil || fp.zombie {
		return nil, ErrNoProcess
	}
	var out []Mapping
	for _, m := range fp.maps {
		if files == nil {
			out = append(out, m)
			continue
		}
		if probed, view, ok := files.Match(m.File); ok {
			m.File, m.View = probed, view
			out = append(out, m)
		}
	}
	return out, nil
}

// Images: the fake's mappings are all executable.
func (f *fakeSource) Images(pid int) (Images, error) {
	fp := f.procs[pid]
	if fp == nil || fp.zombie {
		return nil, ErrNoProcess
	}
	var im Images
	for _, m := range fp.maps {
		im = im.With(Image{Start: m.Start, End: m.End, Offset: m.Offset, File: m.File, Path: "/fake"})
	}
	return im, nil
}

func (f *fakeSource) Threads(pid int) ([]int, error) {
	fp := f.procs[pid]
	if fp == nil {
		return nil, ErrNoProcess
	}
	if len(fp.threads) == 0 {
		return []int{pid}, nil
	}
	return fp.threads, nil
}

func (f *fakeSource) Exited(pid int, start uint64) bool {
	fp := f.procs[pid]
	return fp == nil || fp.zombie || (start != 0 && !sameStart(fp.proc.StartTime, start))
}

func (f *fakeSource) Now() uint64                   { return f.now }
func (f *fakeSource) StartTicks(mono uint64) uint64 { return mono / tick }

// spawn makes pid exist in the fake /proc, started at the source's clock.
func (f *fakeSource) spawn(pid, ppid int, comm string, maps ...Mapping) *fakeTask {
	fp := &fakeTask{proc: Process{PID: pid, PPID: ppid, NSPID: pid, Comm: comm, Exe: "/bin/" + comm, StartTime: f.now / tick, Cgroup: "/test"}, maps: maps}
	f.procs[pid] = fp
	return fp
}

var (
	libc     = FileID{Dev: unix.Mkdev(254, 0), Ino: 1001}
	otherLib = FileID{Dev: unix.Mkdev(254, 0), Ino: 2002}
	overlayA = FileID{Dev: unix.Mkdev(0, 38), Ino: 777}
	overlayB = FileID{Dev: unix.Mkdev(0, 40), Ino: 777}
	libcPath = "/usr/lib/libc.so.6"
	mapAt    = func(f FileID, start uint64) Mapping {
		return Mapping{File: f, Start: start, End: start + 0x10000, Offset: 0x1000}
	}
	libcMap   = mapAt(libc, 0x7f0000000000)
	probeAddr = libcMap.Start + 0x200 // file offset 0x1200
)

// harness is a tracker on a fake source, with the events it reported.
type harness struct {
	t      *testing.T
	src    *fakeSource
	tr     *Tracker
	events []string
	loaded []string
}

func newHarness(t *testing.T, scope Scope, files *FileSet) *harness {
	h := &harness{t: t, src: newFakeSource()}
	if files == nil {
		files = NewFileSet([]FileID{libc}, nil)
	}
	h.tr = NewTracker(TrackerConfig{Source: h.src, Scope: scope, Files: files, Paths: []string{libcPath},
		Report:   func(ev string, p *Process) { h.events = append(h.events, fmt.Sprintf("%s %d %s", ev, p.PID, p.Comm)) },
		Replaced: func(path string) { h.loaded = append(h.loaded, path) }})
	return h
}

func (h *harness) at() uint64 { h.src.now += 1000; return h.src.now }

func (h *harness) fork(ppid, pid int) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindFork, PID: uint32(pid), TID: uint32(pid), PPID: uint32(ppid), PTID: uint32(ppid), Time: h.at()})
}

func (h *harness) thread(pid, tid int) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindFork, PID: uint32(pid), TID: uint32(tid), PPID: uint32(pid), PTID: uint32(pid), Time: h.at()})
}

func (h *harness) exit(pid, tid int) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindExit, PID: uint32(pid), TID: uint32(tid), PPID: 1, PTID: 1, Time: h.at()})
}

func (h *harness) exec(pid int, comm string) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindComm, PID: uint32(pid), TID: uint32(pid), Comm: comm, Exec: true, Time: h.at()})
}

func (h *harness) mmap(pid int, id FileID, start uint64, path string) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindMmap, PID: uint32(pid), TID: uint32(pid), Time: h.at(),
		Mmap: &perfevent.Mmap{Addr: start, Len: 0x10000, Pgoff: 0x1000, Major: unix.Major(id.Dev), Minor: unix.Minor(id.Dev), Ino: id.Ino, Filename: path}})
}

func (h *harness) lostSideband(n uint64) {
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindLost, Lost: n, Sideband: true, Time: h.at()})
}

// hit attributes a hit of pid at addr on libc's trace event.
func (h *harness) hit(pid int, addr uint64) (*Process, Verdict) {
	h.at()
	p, off, ok, v := h.tr.Attribute(pid, libc, addr)
	if v == Deliver && ok && off != addr-libcMap.Start+libcMap.Offset && p.Maps[0].Start == libcMap.Start {
		h.t.Fatalf("hit of %d at %#x: offset %#x", pid, addr, off)
	}
	return p, v
}

func (h *harness) wantHit(pid int, v Verdict) *Process {
	h.t.Helper()
	p, got := h.hit(pid, probeAddr)
	if got != v {
		h.t.Fatalf("hit of pid %d: verdict %d, want %d (events %v)", pid, got, v, h.events)
	}
	return p
}

func (h *harness) wantEvents(want ...string) {
	h.t.Helper()
	if !slices.Equal(h.events, want) {
		h.t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(h.events, "\n  "), strings.Join(want, "\n  "))
	}
	h.events = nil
}

// recordScanned records pid as the /proc scan at start would.
func (h *harness) recordScanned(pid int, comm string) {
	h.src.spawn(pid, 1, comm, libcMap)
	p, _ := h.src.Process(pid)
	p.Maps, _ = h.src.Mappings(pid, h.tr.Files())
	p.Via = "scan"
	h.tr.Record(p)
}

func TestScannedProcessHitsThenExit(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "server")
	p := h.wantHit(100, Deliver)
	if p.Comm != "server" || p.Exe != "/bin/server" {
		t.Fatalf("attributed to %+v", p)
	}
	h.exit(100, 100)
	h.wantEvents("found 100 server", "exit 100 server")
	if h.tr.Len() != 0 {
		t.Fatalf("table has %d processes after exit", h.tr.Len())
	}
}

func TestForkStormChildrenRecordedBeforeTheirHits(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "parent")
	for i := 0; i < 500; i++ {
		child := 1000 + i
		h.fork(100, child)
		forkedAt := h.src.now
		p := h.wantHit(child, Deliver)
		if p.PPID != 100 || p.Comm != "parent" || p.Via != "fork" {
			t.Fatalf("child %+v", p)
		}
		if p.StartTime != forkedAt/tick {
			t.Fatalf("child %d start time %d, want %d (from its fork record)", child, p.StartTime, forkedAt/tick)
		}
		h.exit(child, child)
	}
	if h.tr.Len() != 1 || h.tr.Counters.Recorded.Load() != 501 || h.tr.Counters.Unknown.Load() != 0 {
		t.Fatalf("tracked %d, recorded %d, unknown %d", h.tr.Len(), h.tr.Counters.Recorded.Load(), h.tr.Counters.Unknown.Load())
	}
}

func TestForkedChildReadsProcWhenAlive(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "parent")
	h.src.now += 5 * tick
	h.src.spawn(101, 100, "parent", libcMap).proc.Cgroup = "/child"
	h.fork(100, 101)
	if p := h.tr.Lookup(101); p == nil || p.Cgroup != "/child" || p.StartTime == 0 {
		t.Fatalf("child %+v", p)
	}
}

func TestChildOfUnrecordedParentExecsProbedProgram(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindComm, PID: 50, TID: 50, Comm: "make", Time: h.at()})
	h.fork(50, 51)
	if h.tr.Lookup(51) != nil {
		t.Fatal("a child of an unrecorded parent was recorded before it mapped a probed file")
	}
	h.exec(51, "cc1")
	h.mmap(51, otherLib, 0x400000, "/usr/libexec/cc1") // its program
	h.mmap(51, libc, libcMap.Start, libcPath)
	// Gone from /proc before the records are read: the side-band is enough.
	p := h.wantHit(51, Deliver)
	if p.Comm != "cc1" || p.Exe != "/usr/libexec/cc1" || p.PPID != 50 || p.Via != "mmap" || p.StartTime == 0 {
		t.Fatalf("recorded from the side-band as %+v", p)
	}
	h.exit(51, 51)
	h.wantEvents("found 51 cc1", "exit 51 cc1")
}

func TestExecOfRecordedProcess(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "sh")
	h.exec(100, "worker")
	h.mmap(100, otherLib, 0x400000, "/usr/bin/worker")
	if p := h.tr.Lookup(100); p.Comm != "worker" || p.Exe != "/usr/bin/worker" || len(p.Maps) != 0 {
		t.Fatalf("after exec: %+v", p)
	}
	h.mmap(100, libc, libcMap.Start, libcPath)
	h.wantHit(100, Deliver)
	h.wantEvents("found 100 sh", "exec 100 worker")
}

func TestDlopenAddsMapping(t *testing.T) {
	lib := FileID{Dev: unix.Mkdev(254, 0), Ino: 3003}
	h := newHarness(t, Scope{}, NewFileSet([]FileID{libc, lib}, nil))
	h.recordScanned(100, "app")
	h.mmap(100, lib, 0x7f1000000000, "/opt/libx.so")
	p, off, ok, v := h.tr.Attribute(100, lib, 0x7f1000000010)
	if v != Deliver || !ok || off != 0x1010 || p == nil {
		t.Fatalf("dlopened library: verdict %d offset %#x ok %v", v, off, ok)
	}
}

// The zombie reproducer of issue 7: the process exits, its exit record is
// lost, the consumer is late; its last hits arrive after a check saw it gone.
func TestZombieHitsAfterCheckAreAttributed(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "child")
	h.src.procs[100].zombie = true // exited; its hits are still in the rings
	lastHit := h.at()
	h.src.now += CheckInterval + 1
	h.tr.Settle(lastHit - 10) // the reader is behind: the hits are not delivered yet
	if h.tr.Lookup(100) == nil {
		t.Fatal("retired on a look at /proc while its hits were pending")
	}
	for i := 0; i < 1000; i++ {
		h.wantHit(100, Deliver)
	}
	h.tr.Settle(h.at())
	if h.tr.Lookup(100) != nil {
		t.Fatal("not retired once everything before the check was delivered")
	}
	h.wantEvents("found 100 child", "exit 100 child")
}

func TestLeaderExitWithLiveThreads(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "app")
	h.thread(100, 101)
	h.exit(100, 100) // main called pthread_exit
	h.wantHit(100, Deliver)
	h.exit(100, 101)
	if h.tr.Lookup(100) != nil {
		t.Fatal("not retired after its last thread")
	}
}

func TestThreadsFromProcAtRecord(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.src.spawn(100, 1, "app", libcMap).threads = []int{100, 102, 103}
	h.tr.Record(&Process{PID: 100, Comm: "app", Maps: []Mapping{libcMap}})
	h.exit(100, 102)
	h.exit(100, 100)
	if h.tr.Lookup(100) == nil {
		t.Fatal("retired with thread 103 alive")
	}
	h.exit(100, 103)
	if h.tr.Lookup(100) != nil {
		t.Fatal("not retired after its last thread")
	}
}

func TestPIDReuseAfterLostExit(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "old")
	h.recordScanned(200, "parent")
	h.src.now += 100 * tick // old exits (record lost); much later 200 forks a child that gets pid 100
	h.fork(200, 100)
	p := h.wantHit(100, Deliver)
	if p.Comm != "parent" || p.PPID != 200 {
		t.Fatalf("reused pid attributed to %+v", p)
	}
	h.wantEvents("found 100 old", "found 200 parent", "exit 100 old", "found 100 parent")
}

func TestForkRecordOlderThanScanIsSameProcess(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	forkTime := h.at()
	h.recordScanned(100, "child") // /proc scan finds it after the fork
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindFork, PID: 100, TID: 100, PPID: 50, PTID: 50, Time: forkTime})
	if h.tr.Lookup(100) == nil || len(h.events) != 1 {
		t.Fatalf("the scan's own process retired by its older fork record: %v", h.events)
	}
}

func TestSidebandLossChecksSoon(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.recordScanned(100, "app")
	h.src.procs[100].zombie = true
	h.lostSideband(12) // its exit record may be among them
	h.src.now += afterSidebandLoss + 1
	checkAt := h.src.now
	h.tr.Settle(checkAt - 1)
	h.tr.Settle(checkAt + 1)
	if h.tr.Lookup(100) != nil {
		t.Fatal("not retired within a second of side-band loss")
	}
	// Without loss, nothing is checked before CheckInterval.
	h.recordScanned(200, "app")
	h.src.procs[200].zombie = true
	h.src.now += afterSidebandLoss + 1
	h.tr.Settle(h.src.now)
	if h.tr.Lookup(200) == nil {
		t.Fatal("checked /proc before CheckInterval without any loss")
	}
}

func TestLostForkRecordedLateFromProc(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.src.spawn(300, 1, "worker", libcMap)
	p := h.wantHit(300, Deliver)
	if p.Via != "late" || h.tr.Counters.Late.Load() != 1 || h.tr.Counters.Unknown.Load() != 0 {
		t.Fatalf("late record %+v, late %d", p, h.tr.Counters.Late.Load())
	}
	h.wantHit(300, Deliver)
	if h.tr.Counters.Late.Load() != 1 {
		t.Fatal("recorded late twice")
	}
}

func TestLostForkOfGoneProcess(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	// Known to the side-band by its comm record only.
	h.tr.Observe(&perfevent.Record{Kind: perfevent.KindComm, PID: 400, TID: 400, Comm: "short", Time: h.at()})
	if p := h.wantHit(400, Deliver); p.Comm != "short" {
		t.Fatalf("attributed to %+v", p)
	}
	// Known to nobody: counted, never dropped silently.
	h.wantHit(401, Unknown)
	if h.tr.Counters.Unknown.Load() != 1 || h.tr.Counters.Late.Load() != 1 {
		t.Fatalf("unknown %d late %d", h.tr.Counters.Unknown.Load(), h.tr.Counters.Late.Load())
	}
}

func TestTwoOverlayMountsOfOneImage(t *testing.T) {
	for _, tc := range []struct {
		scope Scope
		want  Verdict
	}{{Scope{}, Deliver}, {Scope{ExactFile: true}, Filtered}} {
		h := newHarness(t, tc.scope, NewFileSet(nil, []FileID{overlayA}))
		h.mmap(10, overlayA, 0x7f0000000000, "/a/loop")
		h.mmap(20, overlayB, 0x7f0000000000, "/b/loop")
		for i := 0; i < 40; i++ {
			h.at()
			if _, _, _, v := h.tr.Attribute(10, overlayA, 0x7f0000000000); v != Deliver {
				t.Fatalf("container A: verdict %d", v)
			}
			if _, _, _, v := h.tr.Attribute(20, overlayA, 0x7f0000000000); v != tc.want {
				t.Fatalf("scope %+v: container B: verdict %d, want %d", tc.scope, v, tc.want)
			}
		}
		if h.tr.Counters.Unknown.Load() != 0 {
			t.Fatalf("unknown %d", h.tr.Counters.Unknown.Load())
		}
	}
}

func TestHitTeachesAViewTheSetDidNotKnow(t *testing.T) {
	h := newHarness(t, Scope{}, NewFileSet(nil, []FileID{overlayA}))
	xino := FileID{Dev: unix.Mkdev(0, 44), Ino: 1<<40 | 777} // overlay with xino: another inode number
	h.src.spawn(30, 1, "c", Mapping{File: xino, Start: 0x5000, End: 0x9000, Offset: 0})
	h.mmap(30, xino, 0x5000, "/c/loop") // not recognised
	if h.tr.Lookup(30) != nil {
		t.Fatal("recorded before any proof")
	}
	h.at()
	p, off, ok, v := h.tr.Attribute(30, overlayA, 0x5010)
	if v != Deliver || !ok || off != 0x10 || p.Via != "late" {
		t.Fatalf("verdict %d, offset %#x %v, %+v", v, off, ok, p)
	}
	h.mmap(31, xino, 0x6000, "/c/loop")
	if h.tr.Lookup(31) == nil {
		t.Fatal("a learnt view did not record the next process mapping it")
	}
}

func TestChosenScopeFollow(t *testing.T) {
	for _, follow := range []bool{false, true} {
		h := newHarness(t, Scope{Chosen: true, Follow: follow}, nil)
		h.recordScanned(100, "server")
		h.fork(100, 101)
		want := Filtered
		if follow {
			want = Deliver
		}
		h.wantHit(101, want)
		// Another process mapping libc is never recorded in this scope.
		h.mmap(500, libc, libcMap.Start, libcPath)
		if h.tr.Lookup(500) != nil {
			t.Fatal("chosen scope recorded an unchosen process")
		}
		h.wantHit(500, Filtered)
	}
}

func TestCommScopeJudgedAgainAtExec(t *testing.T) {
	h := newHarness(t, Scope{Comm: "worker"}, nil)
	h.recordScanned(100, "sh")
	h.wantHit(100, Filtered)
	h.exec(100, "worker")
	h.mmap(100, libc, libcMap.Start, libcPath)
	h.wantHit(100, Deliver)
	if h.tr.Counters.Filtered.Load() != 1 {
		t.Fatalf("filtered %d", h.tr.Counters.Filtered.Load())
	}
}

func TestReplacedFileNoticed(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	newInode := FileID{Dev: libc.Dev, Ino: 9999}
	h.mmap(100, newInode, libcMap.Start, libcPath)
	if h.tr.Counters.MissedWindows.Load() != 1 || !slices.Equal(h.loaded, []string{libcPath}) || h.tr.Lookup(100) != nil {
		t.Fatalf("missed %d, replaced %v", h.tr.Counters.MissedWindows.Load(), h.loaded)
	}
	h.tr.SetFiles(h.tr.Files().With([]FileID{newInode}, nil))
	h.mmap(101, newInode, libcMap.Start, libcPath)
	if h.tr.Lookup(101) == nil {
		t.Fatal("not recorded on the re-armed inode")
	}
}

func TestOutsideOurPIDNamespace(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.mmap(0, libc, libcMap.Start, libcPath)
	h.fork(0, 0)
	if h.tr.Len() != 0 {
		t.Fatal("recorded pid 0")
	}
	h.wantHit(0, Filtered)
}

func TestOwnCallsFiltered(t *testing.T) {
	h := newHarness(t, Scope{Self: 77}, nil)
	h.src.spawn(77, 1, "uprobectl", libcMap)
	h.mmap(77, libc, libcMap.Start, libcPath)
	h.wantHit(77, Filtered)
	if h.tr.Len() != 0 || h.tr.Counters.Late.Load() != 0 {
		t.Fatalf("recorded itself: tracked %d, late %d", h.tr.Len(), h.tr.Counters.Late.Load())
	}
}

func TestTasksBoundedWhenExitsAreLost(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	for pid := 1000; pid < 3000; pid++ {
		h.fork(1, pid) // exits lost; none maps libc
	}
	if h.tr.Tasks() != 2000 {
		t.Fatalf("tasks %d", h.tr.Tasks())
	}
	h.src.now += CheckInterval + 1
	checked := h.src.now
	h.tr.Settle(0)
	if h.tr.Tasks() != 2000 {
		t.Fatal("forgotten before everything up to the check was delivered")
	}
	h.tr.Settle(checked + 1)
	if h.tr.Tasks() != 0 {
		t.Fatalf("tasks %d after the check", h.tr.Tasks())
	}
}

func TestExecByThreadResetsThreads(t *testing.T) {
	h := newHarness(t, Scope{}, nil)
	h.src.spawn(100, 1, "app", libcMap).threads = []int{100, 101}
	h.tr.Record(&Process{PID: 100, Comm: "app", Maps: []Mapping{libcMap}})
	// Thread 101 execs: the kernel ends the leader, then 101 takes pid 100.
	h.exit(100, 100)
	h.exec(100, "next")
	h.mmap(100, libc, libcMap.Start, libcPath)
	h.wantHit(100, Deliver)
	h.exit(100, 100)
	if h.tr.Lookup(100) != nil {
		t.Fatal("not retired after the exec'd process exited")
	}
}

// TestImagesKeptForStacks: with KeepImages a recorded process keeps every
// executable mapping the stream reports, a child shares its parent's, and
// exec starts over.
func TestImagesKeptForStacks(t *testing.T) {
	src := newFakeSource()
	probed := FileID{Dev: 1, Ino: 10}
	src.spawn(100, 1, "app", Mapping{File: probed, Start: 0x1000, End: 0x2000})
	tr := NewTracker(TrackerConfig{Source: src, Files: NewFileSet([]FileID{probed}, nil), KeepImages: true, Report: func(string, *Process) {}})
	p, _ := src.Process(100)
	p.Maps, _ = src.Mappings(100, tr.Files())
	tr.Record(p)
	lib := &perfevent.Mmap{Addr: 0x7000, Len: 0x1000, Major: 0, Minor: 1, Ino: 20, Filename: "/lib/x.so"}
	tr.Observe(&perfevent.Record{Kind: perfevent.KindMmap, PID: 100, TID: 100, Time: 5, Mmap: lib})
	im, ok := tr.Lookup(100).Images.Find(0x7010)
	if !ok || im.Path != "/lib/x.so" || im.File.Ino != 20 {
		t.Fatalf("image of 0x7010: %+v %v (all %+v)", im, ok, tr.Lookup(100).Images)
	}
	if _, ok := tr.Lookup(100).Images.Find(0x8000); ok {
		t.Errorf("0x8000 found in an image")
	}
	tr.Observe(&perfevent.Record{Kind: perfevent.KindFork, PID: 101, PPID: 100, TID: 101, PTID: 100, Time: 6})
	if _, ok := tr.Lookup(101).Images.Find(0x7010); !ok {
		t.Errorf("child does not share the parent's images")
	}
	tr.Observe(&perfevent.Record{Kind: perfevent.KindComm, PID: 101, TID: 101, Time: 7, Comm: "other", Exec: true})
	if n := len(tr.Lookup(101).Images); n != 0 {
		t.Errorf("after exec: %d images, want 0", n)
	}
	// A mapping over an old range replaces it.
	over := &perfevent.Mmap{Addr: 0x6800, Len: 0x1000, Ino: 30, Filename: "/lib/y.so"}
	tr.Observe(&perfevent.Record{Kind: perfevent.KindMmap, PID: 100, TID: 100, Time: 8, Mmap: over})
	if im, _ := tr.Lookup(100).Images.Find(0x7010); im.Path != "/lib/y.so" {
		t.Errorf("after an overlapping mmap: %+v", im)
	}
	if len(tr.Lookup(101).Images) != 0 {
		t.Errorf("the parent's change reached the child")
	}
}

func TestImagesWithAndFind(t *testing.T) {
	var im Images
	for _, start := range []uint64{0x5000, 0x1000, 0x3000} {
		im = im.With(Image{Start: start, End: start + 0x1000, Path: fmt.Sprint(start)})
	}
	for i := 1; i < len(im); i++ {
		if im[i-1].Start >= im[i].Start {
			t.Fatalf("not sorted: %+v", im)
		}
	}
	for addr, want := range map[uint64]string{0x1000: "4096", 0x1fff: "4096", 0x3500: "12288", 0x5fff: "20480"} {
		if m, ok := im.Find(addr); !ok || m.Path != want {
			t.Errorf("Find(%#x) = %+v %v, want %s", addr, m, ok, want)
		}
	}
	for _, addr := range []uint64{0, 0x2000, 0x4fff, 0x6000} {
		if m, ok := im.Find(addr); ok {
			t.Errorf("Find(%#x) = %+v", addr, m)
		}
	}
}
