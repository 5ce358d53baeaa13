package finder

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTable(t *testing.T) {
	p1 := &Process{PID: 1, Comm: "one"}
	p2 := &Process{PID: 2, Comm: "two"}
	p2b := &Process{PID: 2, Comm: "two, pid reused"}
	type step struct {
		add    *Process
		remove int
	}
	tests := []struct {
		name  string
		steps []step
		want  map[int]*Process
	}{
		{name: "empty table"},
		{name: "add", steps: []step{{add: p1}, {add: p2}}, want: map[int]*Process{1: p1, 2: p2}},
		{name: "add then remove", steps: []step{{add: p1}, {add: p2}, {remove: 1}}, want: map[int]*Process{2: p2}},
		{name: "remove everything", steps: []step{{add: p1}, {remove: 1}}, want: map[int]*Process{}},
		{name: "remove from an empty table", steps: []step{{remove: 7}}, want: map[int]*Process{}},
		{name: "remove an unknown pid", steps: []step{{add: p1}, {remove: 7}}, want: map[int]*Process{1: p1}},
		{name: "add replaces the same pid", steps: []step{{add: p2}, {add: p2b}}, want: map[int]*Process{2: p2b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tab Table
			for _, s := range tt.steps {
				if s.add != nil {
					tab.Add(s.add)
				} else {
					tab.Remove(s.remove)
				}
			}
			if got := tab.All(); !maps.Equal(got, tt.want) {
				t.Errorf("All = %v, want %v", got, tt.want)
			}
			if tab.Len() != len(tt.want) {
				t.Errorf("Len = %d, want %d", tab.Len(), len(tt.want))
			}
			for _, pid := range []int{1, 2, 7} {
				if got := tab.Lookup(pid); got != tt.want[pid] {
					t.Errorf("Lookup(%d) = %v, want %v", pid, got, tt.want[pid])
				}
			}
		})
	}
}

// TestTableSnapshotImmutable: a snapshot is never changed by later writes,
// which is what lets Lookup and All go without a lock.
func TestTableSnapshotImmutable(t *testing.T) {
	var tab Table
	p1 := &Process{PID: 1}
	tab.Add(p1)
	before := tab.All()
	tab.Add(&Process{PID: 2})
	tab.Remove(1)
	tab.Add(&Process{PID: 1, Comm: "reused"})
	if want := map[int]*Process{1: p1}; !maps.Equal(before, want) {
		t.Errorf("snapshot taken before the writes is now %v, want %v", before, want)
	}
	if got := tab.Lookup(1); got == p1 || got.Comm != "reused" {
		t.Errorf("Lookup(1) = %+v, want the new process", got)
	}
}

// TestTableConcurrent runs readers against a writer; run it with -race.
func TestTableConcurrent(t *testing.T) {
	const pids, rounds = 64, 200
	var tab Table
	stable := &Process{PID: 0, Comm: "always there"}
	tab.Add(stable)

	var done atomic.Bool
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for !done.Load() {
				if tab.Lookup(0) != stable {
					t.Error("Lookup(0) lost the process that was never removed")
					return
				}
				for pid := 1; pid <= pids; pid++ {
					if p := tab.Lookup(pid); p != nil && p.PID != pid {
						t.Errorf("Lookup(%d) = process %d", pid, p.PID)
						return
					}
				}
				// Iterating a snapshot while the writer publishes new ones.
				for pid, p := range tab.All() {
					if p.PID != pid {
						t.Errorf("All()[%d] = process %d", pid, p.PID)
						return
					}
				}
			}
		})
	}

	for range rounds {
		for pid := 1; pid <= pids; pid++ {
			tab.Add(&Process{PID: pid})
		}
		for pid := 1; pid <= pids; pid += 2 {
			tab.Remove(pid)
		}
	}
	done.Store(true)
	readers.Wait()

	var got []int
	for pid := range tab.All() {
		got = append(got, pid)
	}
	slices.Sort(got)
	want := []int{0}
	for pid := 2; pid <= pids; pid += 2 {
		want = append(want, pid)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pids after the writes = %v, want %v", got, want)
	}
}
