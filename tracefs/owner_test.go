package tracefs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/internal/procfs"
)

func TestOwnerGroup(t *testing.T) {
	tests := []struct {
		name  string
		owner Owner
		group string
	}{
		{"typical", Owner{PIDNS: 4026531836, PID: 12345, StartTime: 987654}, "uprobectl_4026531836_12345_987654"},
		{"longest", Owner{PIDNS: math.MaxUint64, PID: math.MaxInt32, StartTime: math.MaxUint64}, "uprobectl_18446744073709551615_2147483647_18446744073709551615"},
		{"zero start", Owner{PIDNS: 1, PID: 1, StartTime: 0}, "uprobectl_1_1_0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.owner.Group()
			if g != tt.group {
				t.Errorf("Group() = %q, want %q", g, tt.group)
			}
			if !validGroupName(g) || len(g) > maxNameLen {
				t.Errorf("%q (%d bytes) is not a valid kernel group name", g, len(g))
			}
			if err := checkOurGroup(g); err != nil {
				t.Error(err)
			}
			o, ok := ParseGroup(g)
			if !ok || o != tt.owner {
				t.Errorf("ParseGroup(%q) = %+v, %v", g, o, ok)
			}
		})
	}
}

func TestParseGroupRejects(t *testing.T) {
	for _, tt := range []struct{ name, group string }{
		{"foreign", "probe_libc"},
		{"kernel default", "uprobes"},
		{"prefix only", "uprobectl_"},
		{"two fields", "uprobectl_1_2"},
		{"four fields", "uprobectl_1_2_3_4"},
		{"leading zero", "uprobectl_1_02_3"},
		{"sign", "uprobectl_1_+2_3"},
		{"zero pid", "uprobectl_1_0_3"},
		{"negative pid", "uprobectl_1_-2_3"},
		{"pid beyond int32", "uprobectl_1_4294967296_3"},
		{"letters", "uprobectl_1_2_x"},
		{"dash", "uprobectl_1_2_3-4"},
		{"uppercase prefix", "UPROBECTL_1_2_3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if o, ok := ParseGroup(tt.group); ok {
				t.Errorf("ParseGroup(%q) = %+v, want false", tt.group, o)
			}
		})
	}
}

func TestSelf(t *testing.T) {
	o, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if o.PID != os.Getpid() {
		t.Errorf("PID %d, want %d", o.PID, os.Getpid())
	}
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	if want := "pid:[" + strconv.FormatUint(o.PIDNS, 10) + "]"; link != want {
		t.Errorf("ns link %q, want %q", link, want)
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if f[19] != strconv.FormatUint(o.StartTime, 10) {
		t.Errorf("StartTime %d, /proc says %s", o.StartTime, f[19])
	}
	if alive, known := o.Alive(); !alive || !known {
		t.Errorf("Self().Alive() = %v, %v", alive, known)
	}
}

// exitedOwner starts a process, records it as an Owner, and lets it exit.
func exitedOwner(t *testing.T) Owner {
	t.Helper()
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := procfs.New("").Stat(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return Owner{PIDNS: self.PIDNS, PID: cmd.Process.Pid, StartTime: st.StartTime}
}

func TestAlive(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		owner     Owner
		alive     bool
		known     bool
		skipIfPid bool
	}{
		{"self", self, true, true, false},
		{"exited child", exitedOwner(t), false, true, true},
		{"pid never used", Owner{PIDNS: self.PIDNS, PID: math.MaxInt32, StartTime: 1}, false, true, false},
		{"reused pid: our pid, another start time", Owner{PIDNS: self.PIDNS, PID: self.PID, StartTime: self.StartTime + 1}, false, true, false},
		// No process is in a namespace of that inode (PID_NS_INIT_INO + 1
		// is the initial user namespace's): from the initial pid namespace
		// that is provably dead, from another one unknown.
		{"pid namespace without processes", Owner{PIDNS: self.PIDNS + 1, PID: 1, StartTime: 1}, self.PIDNS != initialPIDNS, self.PIDNS == initialPIDNS, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alive, known := tt.owner.Alive()
			if alive != tt.alive || known != tt.known {
				t.Errorf("Alive() = %v, %v; want %v, %v", alive, known, tt.alive, tt.known)
			}
		})
	}
}

func TestOwnedGroupsFromFixture(t *testing.T) {
	f, err := os.Open("testdata/uprobe_events_6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defs, err := parseUprobeEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	got := ownedGroups(defs)
	if len(got) != 1 {
		t.Fatalf("%d owned groups, want 1: %+v", len(got), got)
	}
	g := got[0]
	if g.Group != "uprobectl_4026531836_1234_5678" || g.Owner != (Owner{4026531836, 1234, 5678}) || len(g.Events) != 3 {
		t.Errorf("got %+v", g)
	}
}

// TestReap puts one event into each kind of group and reaps: only the
// groups of provably dead owners may go.
func TestReap(t *testing.T) {
	fs := kernelFS(t)
	tg := buildTarget(t)
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	// Every group is unique to this process, so that two runs of this test
	// at once do not meet in the same group.
	dead := []Owner{
		exitedOwner(t),
		{PIDNS: self.PIDNS, PID: math.MaxInt32, StartTime: self.StartTime}, // no such pid
		{PIDNS: self.PIDNS, PID: self.PID, StartTime: self.StartTime + 1},  // our pid, reused
	}
	kept := []Owner{self}
	// An owner in a pid namespace without processes is provably dead from
	// the initial pid namespace, and cannot be judged from another.
	noNS := Owner{PIDNS: 1, PID: self.PID, StartTime: self.StartTime}
	if self.PIDNS == initialPIDNS {
		dead = append(dead, noNS)
		// A live owner in another pid namespace is judged, and kept.
		kept = append(kept, otherNamespaceProcess(t))
	} else {
		kept = append(kept, noNS)
	}
	foreign := "probe_test"
	foreignEvent := "x_" + strconv.Itoa(os.Getpid())
	foreignLine := "p:" + foreign + "/" + foreignEvent + " " + tg.Path + ":0x" + strconv.FormatUint(tg.Off["work"], 16)

	var all []string
	for _, o := range append(append([]Owner{}, dead...), kept...) {
		all = append(all, o.Group())
	}
	guard(t, fs, all...)
	rawAppend(t, fs, foreignLine+"\n")
	t.Cleanup(func() { rawAppend(t, fs, "-:"+foreign+"/"+foreignEvent+"\n") })

	for _, g := range all {
		if _, err := fs.Define(g, []UprobeSpec{{Event: "work", Path: tg.Path, Offset: tg.Off["work"]}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, o := range kept {
			if err := fs.RemoveGroup(o.Group()); err != nil {
				t.Error(err)
			}
		}
	})

	owned, err := fs.OwnedGroups()
	if err != nil {
		t.Fatal(err)
	}
	byGroup := map[string]OwnedGroup{}
	for _, g := range owned {
		byGroup[g.Group] = g
	}
	for _, o := range dead {
		g, ok := byGroup[o.Group()]
		// Another process's Reap may already have taken it.
		if ok && (g.Alive || !g.Known || len(g.Events) != 1) {
			t.Errorf("dead owner %+v listed as %+v", o, g)
		}
	}
	for _, o := range kept {
		g, ok := byGroup[o.Group()]
		if !ok || !g.Alive || len(g.Events) != 1 || g.Events[0].Event != "work" {
			t.Errorf("owner %+v listed as %+v, %v", o, g, ok)
		}
	}
	if g := byGroup[self.Group()]; !g.Known {
		t.Errorf("self not known: %+v", g)
	}
	if _, ok := byGroup[foreign]; ok {
		t.Errorf("foreign group %s listed as owned", foreign)
	}

	removed := reap(t, fs)
	for _, r := range removed {
		if r.Alive || !r.Known {
			t.Errorf("reaped a group not proven dead: %+v", r)
		}
	}
	for _, o := range dead {
		if left := groupLines(t, fs, o.Group()); len(left) > 0 {
			t.Errorf("dead owner's group left: %v", left)
		}
	}
	for _, o := range kept {
		if left := groupLines(t, fs, o.Group()); len(left) != 1 {
			t.Errorf("group of %+v holds %d lines after Reap, want 1: %q", o, len(left), left)
		}
	}
	if len(groupLines(t, fs, foreign)) == 0 {
		t.Errorf("foreign group %s was touched", foreign)
	}
}

// Inodes of the fake machine's namespaces.
const (
	podNS      = 4026532177 // a sidecar's pid namespace
	otherPodNS = 4026532301
	initTimeNS = 4026531834
	podTimeNS  = 4026532402
)

// fakeProcess is a process of a fake /proc (see fakeProc).
type fakeProcess struct {
	pid   int   // in the fake /proc's (the reader's) pid namespace
	nspid []int // the NSpid line; nil: just pid; empty: no NSpid line (Linux < 4.1)
	// pidNS is the inode of /proc/PID/ns/pid; 0 makes it unreadable (as
	// an LSM may make it even to root).
	pidNS  uint64
	timeNS uint64 // /proc/PID/ns/time; 0: none (a kernel without time namespaces)
	start  uint64
	state  byte  // 0: 'S'
	tids   []int // task/; nil: just pid
}

// fakeProc writes a /proc of procs into a temporary directory: stat,
// status, task/ and the ns links of each, "self" linked to self, and
// self's mountinfo, where the fake /proc is mounted with the options
// procOpts (e.g. "rw" or "rw,hidepid=invisible"); no proc line for the
// fake /proc when procOpts is "".
func fakeProc(t *testing.T, self int, procOpts string, procs ...fakeProcess) procfs.FS {
	t.Helper()
	root := t.TempDir()
	write := func(name, content string) {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, target string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		dir := strconv.Itoa(p.pid)
		state, nspid, tids := p.state, p.nspid, p.tids
		if state == 0 {
			state = 'S'
		}
		if nspid == nil {
			nspid = []int{p.pid}
		}
		if tids == nil {
			tids = []int{p.pid}
		}
		// Field 22 is the start time; the others are a real line's.
		write(dir+"/stat", fmt.Sprintf("%d (uprobectl) %c 1 %d %d 0 -1 4194560 2453 0 12 0 31 9 0 0 20 0 %d 0 %d 225280000 5120 18446744073709551615 4194304 4522469 140724432311088 0 0 0 0 4096 16387 0 0 0 17 2 0 0 0 0 0 6627344 6637432 28979200 140724432318221 140724432318241 140724432318241 140724432322538 0\n",
			p.pid, state, p.pid, p.pid, len(tids), p.start))
		ids := make([]string, len(nspid))
		for i, id := range nspid {
			ids[i] = strconv.Itoa(id)
		}
		nsLine := ""
		if len(nspid) > 0 {
			nsLine = "NSpid:\t" + strings.Join(ids, "\t") + "\n"
		}
		write(dir+"/status", fmt.Sprintf("Name:\tuprobectl\nUmask:\t0022\nState:\t%c (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t1\nTracerPid:\t0\n%sThreads:\t%d\n",
			state, p.pid, p.pid, nsLine, len(tids)))
		for _, tid := range tids {
			write(fmt.Sprintf("%s/task/%d/comm", dir, tid), "uprobectl\n")
		}
		if err := os.MkdirAll(filepath.Join(root, dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if p.pidNS == 0 {
			write(dir+"/ns/pid", "") // readlink: EINVAL
		} else {
			link(dir+"/ns/pid", fmt.Sprintf("pid:[%d]", p.pidNS))
		}
		if p.timeNS != 0 {
			link(dir+"/ns/time", fmt.Sprintf("time:[%d]", p.timeNS))
		}
	}
	link("self", strconv.Itoa(self))
	mountinfo := "26 1 254:1 / / rw,relatime - ext4 /dev/root rw\n"
	if procOpts != "" {
		mountinfo += "21 26 0:20 / " + root + " rw,relatime - proc proc " + procOpts + "\n"
	}
	write(strconv.Itoa(self)+"/mountinfo", mountinfo)
	if err := os.Mkdir(filepath.Join(root, "sys"), 0o755); err != nil { // not a pid
		t.Fatal(err)
	}
	return procfs.New(root)
}

// TestJudgeFixtures covers each rule of Alive on fake /proc trees.
func TestJudgeFixtures(t *testing.T) {
	// The reader: pid 100 of the initial pid namespace.
	me := fakeProcess{pid: 100, pidNS: initialPIDNS, timeNS: initTimeNS, start: 5000}
	// The reader in a pod: pid 1 of podNS, 300 in the initial namespace.
	meInPod := fakeProcess{pid: 1, pidNS: podNS, timeNS: initTimeNS, start: 5000}
	// A pod's init and the owner, its pid 7 (205 in the initial namespace).
	podInit := fakeProcess{pid: 200, nspid: []int{200, 1}, pidNS: podNS, timeNS: initTimeNS, start: 6000}
	owner := fakeProcess{pid: 205, nspid: []int{205, 7}, pidNS: podNS, timeNS: initTimeNS, start: 7000}
	podOwner := Owner{PIDNS: podNS, PID: 7, StartTime: 7000}
	with := func(p fakeProcess, f func(*fakeProcess)) fakeProcess { f(&p); return p }

	tests := []struct {
		name   string
		self   int    // the fake /proc/self; 0: 100
		getpid int    // the reader's own pid; 0: self
		opts   string // mount options of the fake /proc; 0: "rw"
		procs  []fakeProcess
		owner  Owner
		alive  bool
		known  bool
	}{
		// Our pid namespace: by pid and start time.
		{name: "ours: runs", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, timeNS: initTimeNS, start: 7000}},
			owner: Owner{initialPIDNS, 150, 7000}, alive: true, known: true},
		{name: "ours: no such pid", procs: []fakeProcess{me},
			owner: Owner{initialPIDNS, 150, 7000}, known: true},
		{name: "ours: pid reused", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, timeNS: initTimeNS, start: 9000}},
			owner: Owner{initialPIDNS, 150, 7000}, known: true},
		{name: "ours: another start time seen from another time namespace", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, timeNS: podTimeNS, start: 9000}},
			owner: Owner{initialPIDNS, 150, 7000}, alive: true},
		{name: "ours: pid reused, kernel without time namespaces", procs: []fakeProcess{with(me, func(p *fakeProcess) { p.timeNS = 0 }), {pid: 150, pidNS: initialPIDNS, start: 9000}},
			owner: Owner{initialPIDNS, 150, 7000}, known: true},
		{name: "ours: zombie leader with a live thread", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, start: 7000, state: 'Z', tids: []int{150, 151}}},
			owner: Owner{initialPIDNS, 150, 7000}, alive: true, known: true},
		{name: "ours: zombie", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, start: 7000, state: 'Z'}},
			owner: Owner{initialPIDNS, 150, 7000}, known: true},
		{name: "ours, in a pod: runs", self: 1, procs: []fakeProcess{meInPod, {pid: 7, pidNS: podNS, start: 7000}},
			owner: podOwner, alive: true, known: true},
		{name: "ours, in a pod: gone", self: 1, procs: []fakeProcess{meInPod},
			owner: podOwner, known: true},
		{name: "/proc is not our namespace's", getpid: 4242, procs: []fakeProcess{me, owner},
			owner: podOwner, alive: true},

		// Another pid namespace, seen from the initial one.
		{name: "other: runs", procs: []fakeProcess{me, podInit, owner},
			owner: podOwner, alive: true, known: true},
		{name: "other: runs, nested two deep", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.nspid = []int{205, 31, 7} })},
			owner: podOwner, alive: true, known: true},
		{name: "other: runs as the namespace's init", procs: []fakeProcess{me, podInit},
			owner: Owner{podNS, 1, 6000}, alive: true, known: true},
		{name: "other: zombie leader with a live thread", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.state, p.tids = 'Z', []int{205, 206} })},
			owner: podOwner, alive: true, known: true},
		{name: "other: zombie", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.state = 'Z' })},
			owner: podOwner, known: true},
		{name: "other: namespace gone", procs: []fakeProcess{me, {pid: 150, pidNS: initialPIDNS, start: 7000}},
			owner: podOwner, known: true},
		{name: "other: namespace lives on, owner gone", procs: []fakeProcess{me, podInit, {pid: 210, nspid: []int{210, 8}, pidNS: podNS, start: 7000}},
			owner: podOwner, known: true},
		{name: "other: owner's pid reused in its namespace", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.start = 9000 })},
			owner: podOwner, known: true},
		{name: "other: namespace inode reused by a new namespace", procs: []fakeProcess{me, {pid: 400, nspid: []int{400, 1}, pidNS: podNS, timeNS: initTimeNS, start: 20000}},
			owner: Owner{podNS, 1, 6000}, known: true},
		{name: "other: pid reused, seen from another time namespace", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.start, p.timeNS = 9000, podTimeNS })},
			owner: podOwner, alive: true},
		{name: "other: our pid and start time, in our namespace", procs: []fakeProcess{me, {pid: 7, pidNS: initialPIDNS, start: 7000}},
			owner: podOwner, known: true},
		{name: "other: its pid and start time in a third namespace", procs: []fakeProcess{me, {pid: 500, nspid: []int{500, 7}, pidNS: otherPodNS, start: 7000}},
			owner: podOwner, known: true},
		{name: "other: namespace unreadable, could be the owner", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.pidNS = 0 })},
			owner: podOwner, alive: true},
		{name: "other: namespace unreadable, another pid there", procs: []fakeProcess{me, podInit, with(owner, func(p *fakeProcess) { p.pidNS, p.nspid = 0, []int{205, 8} })},
			owner: podOwner, known: true},
		{name: "other: namespace unreadable, our pid 1 and the owner pid 1", procs: []fakeProcess{me, {pid: 1, pidNS: 0, start: 6000}},
			owner: Owner{podNS, 1, 6000}, known: true},
		{name: "other: no NSpid (Linux < 4.1)", procs: []fakeProcess{me, with(owner, func(p *fakeProcess) { p.nspid = []int{} })},
			owner: podOwner, alive: true},
		{name: "other: hidepid=invisible", opts: "rw,hidepid=invisible", procs: []fakeProcess{me},
			owner: podOwner, alive: true},
		{name: "other: hidepid=ptraceable", opts: "rw,hidepid=ptraceable", procs: []fakeProcess{me},
			owner: podOwner, alive: true},
		{name: "other: hidepid=2 (Linux < 5.8)", opts: "rw,hidepid=2", procs: []fakeProcess{me},
			owner: podOwner, alive: true},
		{name: "other: hidepid=noaccess lists every process", opts: "rw,gid=5,hidepid=noaccess", procs: []fakeProcess{me},
			owner: podOwner, known: true},
		{name: "other: no proc mount in mountinfo", opts: "-", procs: []fakeProcess{me},
			owner: podOwner, alive: true},

		// Another pid namespace, seen from one that is not the initial.
		{name: "other, from a pod: nested namespace with the owner", self: 1, procs: []fakeProcess{meInPod, {pid: 9, nspid: []int{9, 7}, pidNS: otherPodNS, start: 7000}},
			owner: Owner{otherPodNS, 7, 7000}, alive: true},
		{name: "other, from a pod: nothing seen", self: 1, procs: []fakeProcess{meInPod},
			owner: Owner{otherPodNS, 7, 7000}, alive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self, opts := tt.self, tt.opts
			if self == 0 {
				self = 100
			}
			getpid := tt.getpid
			if getpid == 0 {
				getpid = self
			}
			switch opts {
			case "":
				opts = "rw"
			case "-":
				opts = ""
			}
			proc := fakeProc(t, self, opts, tt.procs...)
			alive, known := tt.owner.judge(proc, getpid)
			if alive != tt.alive || known != tt.known {
				t.Errorf("judge(%+v) = %v, %v; want %v, %v", tt.owner, alive, known, tt.alive, tt.known)
			}
		})
	}
}

// otherNamespaceProcess starts a process as pid 1 of a new pid namespace
// (unshare) and returns it as an Owner; it is killed at the end of the
// test.
func otherNamespaceProcess(t *testing.T) Owner {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	proc := procfs.New("")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids, err := proc.PIDs()
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			st, err := proc.Stat(pid)
			if err != nil || st.PPID != cmd.Process.Pid {
				continue
			}
			status, err1 := proc.Status(pid)
			ns, err2 := proc.NamespaceInode(pid, "pid")
			if err1 != nil || err2 != nil {
				t.Fatalf("child %d of unshare: %v, %v", pid, err1, err2)
			}
			if status.InnermostPID() != 1 {
				t.Fatalf("child %d of unshare has NSpid %v, want pid 1 of its namespace", pid, status.NSpid)
			}
			return Owner{PIDNS: ns, PID: 1, StartTime: st.StartTime}
		}
	}
	t.Fatalf("unshare (pid %d) has no child after 10s", cmd.Process.Pid)
	return Owner{}
}

// TestAliveInAnotherPIDNamespace judges, from the initial pid namespace,
// owners in a namespace of their own: the live one is alive, a wrong pid
// or start time there is dead, and once the namespace is killed, dead.
func TestAliveInAnotherPIDNamespace(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	kernelFS(t) // root and tracefs, or a failure when kernel tests are required
	if self.PIDNS != initialPIDNS {
		if os.Getenv("UPROBECTL_REQUIRE_KERNEL") == "1" {
			t.Fatal("not in the initial pid namespace: another namespace cannot be judged (UPROBECTL_REQUIRE_KERNEL=1)")
		}
		t.Skip("not in the initial pid namespace: another namespace cannot be judged")
	}
	o := otherNamespaceProcess(t)
	check := func(name string, o Owner, wantAlive, wantKnown bool) {
		t.Helper()
		if alive, known := o.Alive(); alive != wantAlive || known != wantKnown {
			t.Errorf("%s: %+v.Alive() = %v, %v; want %v, %v", name, o, alive, known, wantAlive, wantKnown)
		}
	}
	check("running", o, true, true)
	check("its namespace, another pid", Owner{PIDNS: o.PIDNS, PID: 2, StartTime: o.StartTime}, false, true)
	check("its namespace and pid, another start time", Owner{PIDNS: o.PIDNS, PID: 1, StartTime: o.StartTime + 1}, false, true)
	// SIGKILL of a namespace's init kills the namespace.
	pid := 0
	for _, p := range mustPIDs(t) {
		if st, err := procfs.New("").Stat(p); err == nil && st.StartTime == o.StartTime {
			if ns, err := procfs.New("").NamespaceInode(p, "pid"); err == nil && ns == o.PIDNS {
				pid = p
			}
		}
	}
	if pid == 0 {
		t.Fatal("the namespace's init is gone already")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := procfs.New("").Stat(pid); errors.Is(err, procfs.ErrNoProcess) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still there 10s after SIGKILL", pid)
		}
	}
	check("namespace killed", o, false, true)
}

func mustPIDs(t *testing.T) []int {
	t.Helper()
	pids, err := procfs.New("").PIDs()
	if err != nil {
		t.Fatal(err)
	}
	return pids
}
