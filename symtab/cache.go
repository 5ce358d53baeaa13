// Package symtab turns the frames of user call stacks into function names.
// It owns the symbol tables of the ELF files that processes map, and the
// memory they take: a frame arrives as a file (its device and inode) and an
// offset in that file, which the caller computes from the process's mapping
// (address - mapping start + mapping file offset); symtab maps the offset to
// an address of the file's own layout through its PT_LOAD segments and
// finds the function there, in .symtab, .dynsym or a separate debug file
// found by build-id.
//
// Tables are shared by every process that maps the same file (libc is
// parsed once) and evicted, least recently used first, past a memory limit.
package symtab

import (
	"container/list"
	"os"
	"sync"
	"time"

	"github.com/uprobectl/uprobectl/internal/mangled"
)

// DefaultMaxBytes is a memory limit for a Cache that holds the tables of
// hundreds of typical files: Debian 12's libc takes 70 KB (123 KB with its
// debug file), libstdc++ 284 KB; a large Go or C++ program, a few MB.
const DefaultMaxBytes = 64 << 20

// Key identifies a file the way the kernel and /proc/PID/maps do: the path
// may differ from one mount namespace to another, or be gone.
type Key struct{ Dev, Ino uint64 }

// Frame is one symbolized address.
type Frame struct {
	// Symbol is the function: demangled for C++ and Rust
	// ("ns::Class::method(int)"), as is for C and Go ("main.foo"); "" when
	// no symbol covers the address.
	Symbol string
	// Offset is the address minus the start of Symbol, or the file offset
	// of the address when Symbol is "".
	Offset uint64
	// Binary is the path the caller gave for the file.
	Binary string
	// FramePointer: Symbol's function starts by setting up a frame
	// pointer (push %rbp; mov %rsp,%rbp). A frame-pointer walk through a
	// function that does not may skip its caller or read garbage.
	FramePointer bool
}

// Cache holds the symbol tables of files by Key, evicting the least
// recently used when their estimated memory passes a limit. It is safe for
// concurrent use.
type Cache struct {
	maxBytes int64
	debugDir string // where to find debug files by build-id; "" for nowhere

	mu        sync.Mutex
	entries   map[Key]*entry
	lru       list.List // of *entry, most recently used first
	bytes     int64     // sum of entry.size over entries
	loads     uint64
	failures  uint64
	evictions uint64
}

// entry is one file: its table once loaded, or nothing when it could not
// be opened or parsed (a negative entry).
type entry struct {
	key  Key
	elem *list.Element
	once sync.Once // loads tab: one Lookup parses, the others wait for it
	tab  *table    // written in once; nil for a negative entry

	// Guarded by Cache.mu.
	size      int64             // estimated bytes: counted in Cache.bytes while in Cache.entries
	retry     time.Time         // when a failed open may be tried again; zero otherwise
	demangled map[uint32]string // by sym.name; bounded by maxDemangled
}

const (
	// entryBytes estimates what an entry costs besides its table: the
	// entry, its map slot and list element.
	entryBytes = 256
	// maxDemangled bounds the demangled names cached per table: a stack
	// shows the same few functions again and again.
	maxDemangled = 1024
	// openRetry is how long a file that could not be opened stays
	// negative. Opening goes through one process (/proc/PID/...), which
	// may have exited, while the same file (libc) is mapped by others.
	openRetry = 5 * time.Second
)

// NewCache returns a cache that keeps its estimated memory under maxBytes
// (DefaultMaxBytes when maxBytes <= 0), except that it always keeps the
// table it loaded last, however large: dropping it would make every frame
// of that file parse the file again.
func NewCache(maxBytes int64) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Cache{maxBytes: maxBytes, debugDir: "/usr/lib/debug", entries: map[Key]*entry{}}
}

// Lookup symbolizes fileOffset in the file key. The first time the file is
// needed, Lookup calls open (os.Open of /proc/PID/map_files/START-END or of
// /proc/PID/root/PATH, say), reads the file's symbols and closes it. A
// file that cannot be opened is not tried again for a few seconds; one
// that cannot be parsed, or has no symbols, never again while it is
// cached. Lookup then returns Frame{Offset: fileOffset, Binary: path}.
//
// path is returned as Frame.Binary; it is not part of the key.
func (c *Cache) Lookup(key Key, path string, fileOffset uint64, open func() (*os.File, error)) Frame {
	e := c.entry(key)
	e.once.Do(func() { c.load(e, open) })
	if e.tab == nil {
		return Frame{Offset: fileOffset, Binary: path}
	}
	s, addr, ok := e.tab.find(fileOffset)
	if !ok {
		return Frame{Offset: fileOffset, Binary: path}
	}
	name := e.tab.name(s)
	if mangled.Is(name) {
		name = c.demangle(e, s.name, name)
	}
	return Frame{Symbol: name, Offset: addr - s.start, Binary: path, FramePointer: s.framePointer()}
}

// entry returns the entry of key, a new one if there is none, as the most
// recently used.
func (c *Cache) entry(key Key) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e != nil && !e.retry.IsZero() && time.Now().After(e.retry) {
		c.remove(e)
		e = nil
	}
	if e == nil {
		e = &entry{key: key}
		e.elem = c.lru.PushFront(e)
		c.entries[key] = e
		return e
	}
	c.lru.MoveToFront(e.elem)
	return e
}

// load reads the table of e, outside c.mu, and accounts for it.
func (c *Cache) load(e *entry, open func() (*os.File, error)) {
	var tab *table
	f, err := open()
	openFailed := err != nil || f == nil
	if !openFailed {
		// Why a file does not parse is not kept: Frame has no room for
		// it, and every frame of the file would repeat it.
		tab, _ = loadTable(f, c.debugDir)
		f.Close()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	e.tab, e.size = tab, entryBytes
	if tab != nil {
		e.size += tab.bytes()
		c.loads++
	} else {
		c.failures++
		if openFailed {
			e.retry = time.Now().Add(openRetry)
		}
	}
	if c.entries[e.key] == e { // not evicted while it loaded
		c.bytes += e.size
		c.evict()
	}
}

// demangle returns the demangled form of the name at offset off of e's
// table, from e's cache of them or adding it there.
func (c *Cache) demangle(e *entry, off uint32, mangled string) string {
	c.mu.Lock()
	s, ok := e.demangled[off]
	c.mu.Unlock()
	if ok {
		return s
	}
	s = demangleName(mangled) // outside the lock: it can take microseconds

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.key] != e {
		return s // evicted: its cache goes with it
	}
	if _, ok := e.demangled[off]; ok {
		return s // another Lookup added it meanwhile
	}
	if e.demangled == nil {
		e.demangled = map[uint32]string{}
	}
	var delta int64
	if len(e.demangled) >= maxDemangled {
		for k, old := range e.demangled { // map order: a random victim
			delete(e.demangled, k)
			delta -= demangledBytes(old)
			break
		}
	}
	e.demangled[off] = s
	delta += demangledBytes(s)
	e.size += delta
	c.bytes += delta
	c.evict()
	return s
}

// demangledBytes estimates the cost of one cached demangled name: the
// string and its map slot.
func demangledBytes(s string) int64 { return int64(len(s)) + 32 }

// evict removes the least recently used entries until the estimate is
// under the limit, keeping the most recent one. c.mu is held.
func (c *Cache) evict() {
	for c.bytes > c.maxBytes && c.lru.Len() > 1 {
		c.remove(c.lru.Back().Value.(*entry))
		c.evictions++
	}
}

// remove drops e from the cache. A Lookup that still uses e finishes with
// it; the garbage collector frees it after. c.mu is held.
func (c *Cache) remove(e *entry) {
	delete(c.entries, e.key)
	c.lru.Remove(e.elem)
	c.bytes -= e.size
}

// Stats describes what a Cache holds and has done.
type Stats struct {
	Files     int    // files held now: tables and negative entries
	Bytes     int64  // estimated memory they take
	Loads     uint64 // symbol tables read since NewCache, reloads after eviction included
	Failures  uint64 // files that could not be opened or parsed, or had no symbols
	Evictions uint64 // files dropped to stay under the limit
}

// Stats returns the cache's current figures.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Files: len(c.entries), Bytes: c.bytes, Loads: c.loads, Failures: c.failures, Evictions: c.evictions}
}
