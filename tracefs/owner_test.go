package tracefs

import (
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

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
		{"another pid namespace", Owner{PIDNS: self.PIDNS + 1, PID: 1, StartTime: 1}, true, false, false},
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
	kept := []Owner{
		self,
		{PIDNS: 1, PID: self.PID, StartTime: self.StartTime}, // another pid namespace: cannot judge
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
