package finder

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Table is the process table. Lookups (on the hit path) read an immutable
// snapshot without locking; Add and Remove are serialized and publish a new
// snapshot (copy on write), the way kprobes moved their lookups to RCU.
type Table struct {
	mu       sync.Mutex // serializes writers
	snapshot atomic.Pointer[map[int]*Process]
}

// Lookup returns the recorded process pid, or nil.
func (t *Table) Lookup(pid int) *Process {
	m := t.snapshot.Load()
	if m == nil {
		return nil
	}
	return (*m)[pid]
}

// Add records p. It must be called before any probe is armed for p.
func (t *Table) Add(p *Process) {
	t.update(func(m map[int]*Process) { m[p.PID] = p })
}

// Remove retires pid.
func (t *Table) Remove(pid int) {
	t.update(func(m map[int]*Process) { delete(m, pid) })
}

// All returns the current snapshot; callers must not modify it.
func (t *Table) All() map[int]*Process {
	if m := t.snapshot.Load(); m != nil {
		return *m
	}
	return nil
}

// Len is the number of recorded processes.
func (t *Table) Len() int { return len(t.All()) }

func (t *Table) update(change func(map[int]*Process)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[int]*Process{}
	if cur := t.snapshot.Load(); cur != nil {
		next = maps.Clone(*cur)
	}
	change(next)
	t.snapshot.Store(&next)
}
