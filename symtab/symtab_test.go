package symtab

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/uprobectl/uprobectl/internal/mangled"
)

const (
	libc      = "/lib/x86_64-linux-gnu/libc.so.6"
	libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
)

// build compiles testdata/src with compiler into a temporary directory. A
// missing compiler skips the test, or fails it when UPROBECTL_REQUIRE_KERNEL=1
// (CI, where scripts/setup installs it).
func build(t testing.TB, compiler, src string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath(compiler); err != nil {
		if os.Getenv("UPROBECTL_REQUIRE_KERNEL") == "1" {
			t.Fatalf("%s is missing (UPROBECTL_REQUIRE_KERNEL=1)", compiler)
		}
		t.Skipf("%s is missing", compiler)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	args := append(append([]string{}, flags...), "-o", out, filepath.Join("testdata", src))
	if b, err := exec.Command(compiler, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", compiler, strings.Join(args, " "), err, b)
	}
	return out
}

// needFile skips a test on a system without path (not Debian x86-64).
func needFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s: %v", path, err)
	}
}

// keyOf returns the Key of the file at path.
func keyOf(t testing.TB, path string) Key {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return Key{Dev: st.Dev, Ino: st.Ino}
}

// opener returns an open func for path that counts its calls in n.
func opener(path string, n *atomic.Int32) func() (*os.File, error) {
	return func() (*os.File, error) {
		if n != nil {
			n.Add(1)
		}
		return os.Open(path)
	}
}

// offsetOf returns the file offset of the function name in the ELF file at
// path (of debugFile's .symtab when not ""), computed the way the kernel
// maps it: through the executable PT_LOAD segment holding its address.
func offsetOf(t testing.TB, path, debugFile, name string) uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	symsFrom := ef
	if debugFile != "" {
		if symsFrom, err = elf.Open(debugFile); err != nil {
			t.Fatal(err)
		}
		defer symsFrom.Close()
	}
	static, _ := symsFrom.Symbols()
	dynamic, _ := ef.DynamicSymbols()
	for _, s := range append(static, dynamic...) {
		if s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
				return s.Value - p.Vaddr + p.Off
			}
		}
		t.Fatalf("%s: %s at 0x%x is in no executable segment", path, name, s.Value)
	}
	t.Fatalf("%s: no function %s", path, name)
	return 0
}

func TestLookupC(t *testing.T) {
	for _, pie := range []string{"-no-pie", "-pie"} {
		t.Run(pie, func(t *testing.T) {
			bin := build(t, "gcc", "stack.c", "-O0", "-fno-omit-frame-pointer", pie)
			c := NewCache(0)
			key := keyOf(t, bin)
			var opens atomic.Int32
			for _, tc := range []struct {
				name  string
				delta uint64
			}{{"leaf", 0}, {"a", 0}, {"b", 0}, {"main", 0}, {"leaf", 3}} {
				off := offsetOf(t, bin, "", tc.name) + tc.delta
				got := c.Lookup(key, bin, off, opener(bin, &opens))
				want := Frame{Symbol: tc.name, Offset: tc.delta, Binary: bin, FramePointer: true} // -O0 keeps frame pointers
				if got != want {
					t.Errorf("Lookup(0x%x) = %+v, want %+v", off, got, want)
				}
			}
			if n := opens.Load(); n != 1 {
				t.Errorf("opened %d times, want 1", n)
			}
			if st := c.Stats(); st.Files != 1 || st.Loads != 1 || st.Bytes <= 0 {
				t.Errorf("Stats = %+v, want one file loaded", st)
			}
		})
	}
}

func TestLookupCXX(t *testing.T) {
	bin := build(t, "g++", "method.cc", "-O0")
	off := offsetOf(t, bin, "", "_ZN2ns1K1mEi")
	c := NewCache(0)
	for range 2 { // the second from the demangled cache
		got := c.Lookup(keyOf(t, bin), bin, off+1, opener(bin, nil))
		if want := (Frame{Symbol: "ns::K::m(int)", Offset: 1, Binary: bin, FramePointer: true}); got != want {
			t.Errorf("Lookup = %+v, want %+v", got, want)
		}
	}
}

// Go names are not mangled. (Not the test binary itself: go test links it
// without .symtab.)
func TestLookupGo(t *testing.T) {
	bin := build(t, "go", "gomain/main.go", "build")
	c := NewCache(0)
	// main.work is a leaf without a frame; main.main sets up a frame
	// pointer after its stack check.
	for name, fp := range map[string]bool{"main.work": false, "main.main": true} {
		off := offsetOf(t, bin, "", name)
		if got, want := c.Lookup(keyOf(t, bin), bin, off+2, opener(bin, nil)), (Frame{Symbol: name, Offset: 2, Binary: bin, FramePointer: fp}); got != want {
			t.Errorf("Lookup = %+v, want %+v", got, want)
		}
	}
}

// libc is stripped to .dynsym, where malloc and __libc_malloc are one
// function (without a frame pointer: it starts with push %r12), both
// GLOBAL with the default version: the name with fewer
// leading underscores wins. With Debian's libc6-dbg, the debug file found
// by build-id adds the local functions.
func TestLookupLibc(t *testing.T) {
	needFile(t, libc)
	key := keyOf(t, libc)
	malloc := offsetOf(t, libc, "", "malloc")
	if alias := offsetOf(t, libc, "", "__libc_malloc"); alias != malloc {
		t.Fatalf("__libc_malloc at 0x%x, malloc at 0x%x: no longer aliases", alias, malloc)
	}
	for _, debugDir := range []string{"", "/usr/lib/debug"} {
		t.Run(fmt.Sprintf("debugDir=%q", debugDir), func(t *testing.T) {
			c := NewCache(0)
			c.debugDir = debugDir
			for _, delta := range []uint64{0, 10} {
				got := c.Lookup(key, libc, malloc+delta, opener(libc, nil))
				if want := (Frame{Symbol: "malloc", Offset: delta, Binary: libc}); got != want {
					t.Errorf("Lookup(malloc+%d) = %+v, want %+v", delta, got, want)
				}
			}
		})
	}

	t.Run("debug file", func(t *testing.T) {
		ef, err := elf.Open(libc)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%x", buildID(ef))
		ef.Close()
		dbg := filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug")
		needFile(t, dbg)
		off := offsetOf(t, libc, dbg, "_int_malloc") // static in malloc.c: not in .dynsym
		c := NewCache(0)
		if got, want := c.Lookup(key, libc, off, opener(libc, nil)), (Frame{Symbol: "_int_malloc", Binary: libc}); got != want {
			t.Errorf("Lookup(_int_malloc) = %+v, want %+v", got, want)
		}
		c.debugDir = "" // the same file again, without the debug file
		c.remove(c.entries[key])
		if got := c.Lookup(key, libc, off, opener(libc, nil)); got.Symbol == "_int_malloc" {
			t.Errorf("Lookup(_int_malloc) without a debug file = %+v", got)
		}
	})
}

func TestLookupNoSymbols(t *testing.T) {
	stripped := build(t, "gcc", "stack.c", "-O0")
	off := offsetOf(t, stripped, "", "a")
	if b, err := exec.Command("strip", "--strip-all", stripped).CombinedOutput(); err != nil {
		t.Skipf("strip: %v\n%s", err, b)
	}
	notELF := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		off  uint64
		open func(*atomic.Int32) func() (*os.File, error)
	}{
		{"stripped", stripped, off, func(n *atomic.Int32) func() (*os.File, error) { return opener(stripped, n) }},
		{"not ELF", notELF, 4, func(n *atomic.Int32) func() (*os.File, error) { return opener(notELF, n) }},
		{"empty", notELF, 0, func(n *atomic.Int32) func() (*os.File, error) {
			return func() (*os.File, error) { n.Add(1); return os.Open(os.DevNull) }
		}},
		{"cannot open", "/proc/1/map_files/gone", 0x1234, func(n *atomic.Int32) func() (*os.File, error) {
			return func() (*os.File, error) { n.Add(1); return nil, os.ErrNotExist }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(0)
			var opens atomic.Int32
			for range 3 {
				got := c.Lookup(Key{Dev: 1, Ino: 2}, tc.path, tc.off, tc.open(&opens))
				if want := (Frame{Offset: tc.off, Binary: tc.path}); got != want {
					t.Errorf("Lookup = %+v, want %+v", got, want)
				}
			}
			if n := opens.Load(); n != 1 {
				t.Errorf("opened %d times, want 1 (a negative entry)", n)
			}
			if st := c.Stats(); st.Files != 1 || st.Failures != 1 || st.Loads != 0 || st.Bytes != entryBytes {
				t.Errorf("Stats = %+v, want one negative entry of %d bytes", st, entryBytes)
			}
		})
	}
}

// A file that could not be opened is tried again after openRetry: the
// process it was opened through may have exited, not the file.
func TestLookupOpenRetry(t *testing.T) {
	bin := build(t, "gcc", "stack.c", "-O0")
	off := offsetOf(t, bin, "", "b")
	c := NewCache(0)
	key := keyOf(t, bin)
	gone := func() (*os.File, error) { return nil, os.ErrNotExist }
	if got := c.Lookup(key, bin, off, gone); got.Symbol != "" {
		t.Fatalf("Lookup = %+v from a file that cannot be opened", got)
	}
	if got := c.Lookup(key, bin, off, opener(bin, nil)); got.Symbol != "" {
		t.Fatalf("Lookup = %+v, want the negative entry before openRetry", got)
	}
	c.mu.Lock()
	c.entries[key].retry = c.entries[key].retry.Add(-2 * openRetry)
	c.mu.Unlock()
	if got := c.Lookup(key, bin, off, opener(bin, nil)); got.Symbol != "b" {
		t.Errorf("Lookup = %+v after openRetry, want b", got)
	}
	if st := c.Stats(); st.Files != 1 || st.Loads != 1 || st.Failures != 1 {
		t.Errorf("Stats = %+v, want one file, one load, one failure", st)
	}
}

func TestEviction(t *testing.T) {
	bin := build(t, "gcc", "stack.c", "-O0")
	off := offsetOf(t, bin, "", "a")
	// Three copies: three inodes, three tables.
	var files []string
	for i := range 3 {
		p := filepath.Join(t.TempDir(), fmt.Sprintf("copy%d", i))
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	one := NewCache(0)
	one.Lookup(keyOf(t, bin), bin, off, opener(bin, nil))
	tableBytes := one.Stats().Bytes

	for _, tc := range []struct {
		name      string
		maxBytes  int64
		wantFiles int
	}{
		{"tiny", 1, 1}, // over the limit with any table: only the last one stays
		{"two", 2*tableBytes + tableBytes/2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(tc.maxBytes)
			for round := range 2 {
				for _, p := range files {
					got := c.Lookup(keyOf(t, p), p, off, opener(p, nil))
					if want := (Frame{Symbol: "a", Binary: p, FramePointer: true}); got != want {
						t.Errorf("round %d: Lookup = %+v, want %+v", round, got, want)
					}
					st := c.Stats()
					if st.Files > tc.wantFiles || st.Files > 1 && st.Bytes > tc.maxBytes {
						t.Errorf("round %d: Stats = %+v, want at most %d files under %d bytes", round, st, tc.wantFiles, tc.maxBytes)
					}
				}
			}
			// LRU over three files cycled through: every lookup misses.
			if st := c.Stats(); st.Loads != 6 || st.Evictions != uint64(6-tc.wantFiles) {
				t.Errorf("Stats = %+v, want 6 loads and %d evictions", st, 6-tc.wantFiles)
			}
		})
	}
}

// Looking up every function of libstdc++ fills the demangled-name cache to
// its bound, no further, and the estimate follows it.
func TestDemangledBound(t *testing.T) {
	needFile(t, libstdcxx)
	c := NewCache(0)
	key, open := keyOf(t, libstdcxx), opener(libstdcxx, nil)
	c.Lookup(key, libstdcxx, 0, open)
	e := c.entries[key]
	if e.tab == nil {
		t.Fatal("libstdc++ did not load")
	}
	seg := e.tab.segs[0] // the executable one, which find tries first
	nMangled := 0
	for _, s := range e.tab.syms {
		if s.start < seg.vaddr || s.start-seg.vaddr >= seg.filesz {
			continue
		}
		fr := c.Lookup(key, libstdcxx, s.start-seg.vaddr+seg.off, open)
		if name := e.tab.name(s); mangled.Is(name) {
			nMangled++
			if want := demangleName(name); fr.Symbol != want {
				t.Fatalf("Lookup(%s) = %+v, want %q", name, fr, want)
			}
		}
	}
	if nMangled <= maxDemangled {
		t.Skipf("%s has only %d mangled functions", libstdcxx, nMangled)
	}
	want := entryBytes + e.tab.bytes()
	for _, s := range e.demangled {
		want += demangledBytes(s)
	}
	if st := c.Stats(); len(e.demangled) != maxDemangled || st.Bytes != want {
		t.Errorf("%d demangled names cached, Stats = %+v; want %d names, %d bytes", len(e.demangled), st, maxDemangled, want)
	}
}

// Concurrent lookups of one file parse it once and all get the answer.
func TestLookupConcurrent(t *testing.T) {
	bin := build(t, "gcc", "stack.c", "-O0")
	off := offsetOf(t, bin, "", "leaf")
	key := keyOf(t, bin)
	c := NewCache(0)
	var opens atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if got := c.Lookup(key, bin, off, opener(bin, &opens)); got.Symbol != "leaf" {
					t.Errorf("Lookup = %+v, want leaf", got)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Errorf("opened %d times, want 1", n)
	}
}

// The size-0 rule: a symbol without a size covers up to the next symbol or
// the end of its section, and among aliases the best-ranked name wins.
func TestBuild(t *testing.T) {
	var tab table
	tab.segs = []segment{{off: 0, filesz: 0x10000, vaddr: 0}}
	err := tab.build([]candidate{
		{start: 0x100, size: 0x10, limit: 0x1000, rank: 3, name: "sized"},
		{start: 0x200, size: 0, limit: 0x1000, rank: 1, name: "asm_entry"},
		{start: 0x300, size: 0x20, limit: 0x1000, rank: 1, name: "next"},
		{start: 0x800, size: 0, limit: 0x900, rank: 1, name: "last_in_section"},
		{start: 0x2000, size: 0x40, limit: 0x3000, rank: 1, name: "__libc_f"},
		{start: 0x2000, size: 0x40, limit: 0x3000, rank: 1, name: "f"},
		{start: 0x2000, size: 0x40, limit: 0x3000, rank: 2, name: "a_weak"},
		{start: 0x2000, size: 0, limit: 0x3000, rank: 0, name: "unsized"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr uint64
		want string
	}{
		{0x100, "sized"}, {0x10f, "sized"}, {0x110, ""},
		{0x200, "asm_entry"}, {0x2ff, "asm_entry"}, {0x300, "next"},
		{0x8ff, "last_in_section"}, {0x900, ""},
		{0x2000, "f"}, {0x203f, "f"}, {0x2040, ""},
		{0x50, ""}, {0x20000, ""},
	} {
		s, _, ok := tab.find(tc.addr)
		got := ""
		if ok {
			got = tab.name(s)
		}
		if got != tc.want {
			t.Errorf("find(0x%x) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	needFile(b, libstdcxx)
	needFile(b, libc)
	for _, tc := range []struct{ name, path, symbol, want string }{
		{"C", libc, "malloc", "malloc"},
		{"C++", libstdcxx, "_ZNSo3putEc", "std::ostream::put(char)"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := NewCache(0)
			key, off, open := keyOf(b, tc.path), offsetOf(b, tc.path, "", tc.symbol)+4, opener(tc.path, nil)
			if got := c.Lookup(key, tc.path, off, open); got.Symbol != tc.want {
				b.Fatalf("Lookup = %+v, want %s", got, tc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Lookup(key, tc.path, off, open)
			}
		})
	}
}

// BenchmarkLoad reports what parsing a file costs, and its table's size.
func BenchmarkLoad(b *testing.B) {
	for _, path := range []string{libc, libstdcxx} {
		b.Run(filepath.Base(path), func(b *testing.B) {
			needFile(b, path)
			for _, debugDir := range []string{"", "/usr/lib/debug"} {
				b.Run(fmt.Sprintf("debug=%v", debugDir != ""), func(b *testing.B) {
					var tab *table
					for b.Loop() {
						f, err := os.Open(path)
						if err != nil {
							b.Fatal(err)
						}
						tab, err = loadTable(f, debugDir)
						f.Close()
						if err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(tab.bytes()), "table-bytes")
					b.ReportMetric(float64(len(tab.syms)), "symbols")
				})
			}
		})
	}
}

func TestSetsUpFramePointer(t *testing.T) {
	for _, c := range []struct {
		code []byte
		want bool
	}{
		{[]byte{0x55, 0x48, 0x89, 0xe5, 0x90}, true},
		{[]byte{0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5}, true},
		{[]byte{0x41, 0x54, 0x55, 0x53}, false}, // libc malloc: push %r12
		{[]byte{0x55, 0x48}, false},
		// Go: the stack check, then the frame pointer
		{[]byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x2b, 0x55, 0x48, 0x89, 0xe5}, true},
		{nil, false},
	} {
		if got := setsUpFramePointer(c.code); got != c.want {
			t.Errorf("% x: %v, want %v", c.code, got, c.want)
		}
	}
}
