package symtab

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/uprobectl/uprobectl/internal/mangled"
)

// errNoSymbols: the file has no function symbol, in itself or in a debug
// file found by its build-id (stripped).
var errNoSymbols = errors.New("no function symbols")

// table is the symbol table of one file, immutable once loaded.
type table struct {
	segs  []segment // executable segments first
	syms  []sym     // sorted by start, non-overlapping starts
	names string    // every name NUL-terminated; sym.name is an offset here
}

// sym is one function in 16 bytes: a Go string per symbol would cost a
// 16-byte header plus its own allocation.
type sym struct {
	start uint64 // st_value: the address in the file's own layout
	size  uint32 // bytes covered (for a size-0 symbol, see build), and the noFramePointer bit
	name  uint32 // offset of the name in table.names
}

// noFramePointer, in sym.size: the function does not start by setting up
// a frame pointer (push %rbp; mov %rsp,%rbp, after an optional endbr64),
// so a frame-pointer walk through it may skip its caller or read garbage.
const noFramePointer = 1 << 31

// covers is the number of bytes s covers.
func (s sym) covers() uint64 { return uint64(s.size &^ noFramePointer) }

// FramePointer reports whether s's function sets up a frame pointer.
func (s sym) framePointer() bool { return s.size&noFramePointer == 0 }

// segment is a PT_LOAD segment: what maps file offsets to addresses.
type segment struct{ off, filesz, vaddr uint64 }

// bytes estimates the memory the table holds.
func (t *table) bytes() int64 {
	return int64(unsafe.Sizeof(*t)) +
		int64(cap(t.segs))*int64(unsafe.Sizeof(segment{})) +
		int64(cap(t.syms))*int64(unsafe.Sizeof(sym{})) +
		int64(len(t.names))
}

// find returns the symbol covering the file offset off and the address
// off has in the file's layout.
func (t *table) find(off uint64) (s sym, addr uint64, ok bool) {
	for _, seg := range t.segs {
		if off >= seg.off && off-seg.off < seg.filesz {
			addr, ok = off-seg.off+seg.vaddr, true
			break
		}
	}
	if !ok {
		return sym{}, 0, false
	}
	// i: the first symbol starting after addr.
	i, j := 0, len(t.syms)
	for i < j {
		h := int(uint(i+j) >> 1)
		if t.syms[h].start <= addr {
			i = h + 1
		} else {
			j = h
		}
	}
	if i == 0 || addr-t.syms[i-1].start >= t.syms[i-1].covers() {
		return sym{}, addr, false
	}
	return t.syms[i-1], addr, true
}

// name returns the (mangled) name of s, without copying.
func (t *table) name(s sym) string {
	n := t.names[s.name:]
	return n[:strings.IndexByte(n, 0)]
}

// loadTable reads the function symbols of the ELF file f: .dynsym and
// .symtab, or, when f has no .symtab, the .symtab of its separate debug
// file under debugDir/.build-id/ ("" for none).
func loadTable(f *os.File, debugDir string) (*table, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, err
	}
	t := &table{}
	for _, exec := range []bool{true, false} {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && p.Filesz > 0 && (p.Flags&elf.PF_X != 0) == exec {
				t.segs = append(t.segs, segment{off: p.Off, filesz: p.Filesz, vaddr: p.Vaddr})
			}
		}
	}
	if len(t.segs) == 0 {
		return nil, errors.New("no PT_LOAD segment")
	}
	t.segs = slices.Clone(t.segs)

	var cands []candidate
	// A table that cannot be read is skipped, not fatal: the other one may
	// still name the functions (a stripped library keeps .dynsym).
	if dyn, err := ef.DynamicSymbols(); err == nil {
		cands = appendCandidates(cands, ef, dyn, true)
	}
	static, err := ef.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) && debugDir != "" {
		if dbg := openDebugFile(ef, debugDir); dbg != nil {
			defer dbg.Close()
			// Same section headers and addresses as f: only the contents
			// were moved out.
			ef = dbg
			static, err = dbg.Symbols()
		}
	}
	if err == nil {
		cands = appendCandidates(cands, ef, static, false)
	}
	if err := t.build(cands); err != nil {
		return nil, err
	}
	t.markFramePointers(f)
	return t, nil
}

// candidate is a function symbol before aliases are resolved.
type candidate struct {
	start, size uint64
	limit       uint64 // end of the symbol's section: bounds a size-0 symbol
	rank        int    // among aliases, lower wins
	name        string
}

// appendCandidates appends the defined functions of syms, a symbol table
// of ef (.dynsym when dynamic).
func appendCandidates(cands []candidate, ef *elf.File, syms []elf.Symbol, dynamic bool) []candidate {
	for _, es := range syms {
		typ := elf.ST_TYPE(es.Info)
		if typ != elf.STT_FUNC && typ != elf.STT_LOOS || // STT_LOOS is STT_GNU_IFUNC
			es.Value == 0 || es.Section == elf.SHN_UNDEF || es.Section >= elf.SHN_LORESERVE ||
			int(es.Section) >= len(ef.Sections) {
			continue
		}
		name, hidden := es.Name, es.HasVersion && es.VersionIndex.IsHidden()
		if i := strings.IndexByte(name, '@'); i > 0 {
			// .symtab spells the version into the name: name@@VER is the
			// default version, name@VER an old one kept for old binaries.
			hidden = hidden || !strings.HasPrefix(name[i:], "@@")
			name = name[:i]
		}
		// A control character would break one-line output; no compiler
		// makes one.
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			continue
		}
		sec := ef.Sections[es.Section]
		limit := sec.Addr + sec.Size
		if limit < sec.Addr || es.Value < sec.Addr || es.Value >= limit {
			limit = es.Value // not in its section: only its own size counts
		}
		// Aliases (libc's malloc and __libc_malloc): the exported default
		// version first, then by binding; among equals the name with fewer
		// leading underscores (both of those are GLOBAL in .dynsym), then
		// the first alphabetically.
		bind := elf.ST_BIND(es.Info)
		rank := 3
		switch {
		case dynamic && bind == elf.STB_GLOBAL && !hidden:
			rank = 0
		case bind == elf.STB_GLOBAL:
			rank = 1
		case bind == elf.STB_WEAK:
			rank = 2
		}
		cands = append(cands, candidate{start: es.Value, size: es.Size, limit: limit, rank: rank, name: name})
	}
	return cands
}

// build keeps one candidate per address and packs them into t. A symbol
// with a size covers that size; a size-0 one (assembly without .size)
// covers up to the next symbol or the end of its section, whichever comes
// first.
func (t *table) build(cands []candidate) error {
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.start, b.start),
			cmp.Compare(min(b.size, 1), min(a.size, 1)), // a size says more than none
			cmp.Compare(a.rank, b.rank),
			cmp.Compare(leadingUnderscores(a.name), leadingUnderscores(b.name)),
			strings.Compare(a.name, b.name))
	})
	t.syms = make([]sym, 0, len(cands))
	var names []byte
	for i := 0; i < len(cands); {
		c := cands[i]
		for i++; i < len(cands) && cands[i].start == c.start; i++ { // c's aliases
		}
		size := c.size
		if size == 0 {
			end := c.limit
			if i < len(cands) {
				end = min(end, cands[i].start)
			}
			size = end - c.start // neither the limit nor the next start precedes c.start
		}
		if size == 0 {
			continue
		}
		if len(names)+len(c.name)+1 > math.MaxUint32 {
			return fmt.Errorf("symbol names over %d bytes", uint32(math.MaxUint32))
		}
		t.syms = append(t.syms, sym{start: c.start, size: uint32(min(size, noFramePointer-1)), name: uint32(len(names))})
		names = append(append(names, c.name...), 0)
	}
	if len(t.syms) == 0 {
		return errNoSymbols
	}
	t.syms = slices.Clone(t.syms) // drop the room left for aliases: tables live long
	t.names = string(names)
	return nil
}

// markFramePointers reads the first bytes of every function of f and marks
// those that do not set up a frame pointer. One read per function: ~1 ms
// per thousand functions, once per file.
func (t *table) markFramePointers(f *os.File) {
	var code [prologueWindow + 4]byte
	for i := range t.syms {
		s := &t.syms[i]
		off, ok := t.fileOffset(s.start)
		if !ok {
			s.size |= noFramePointer
			continue
		}
		n, _ := f.ReadAt(code[:min(uint64(len(code)), s.covers())], int64(off))
		if !setsUpFramePointer(code[:n]) {
			s.size |= noFramePointer
		}
	}
}

// prologueWindow: where a frame pointer set-up may start. C puts it
// first (after endbr64); Go after its stack check (cmp and jbe, 6-13
// bytes).
const prologueWindow = 24

// setsUpFramePointer: push %rbp; mov %rsp,%rbp (55 48 89 e5) starts
// within the first prologueWindow bytes of code.
func setsUpFramePointer(code []byte) bool {
	return bytes.Contains(code[:min(len(code), prologueWindow+4)], []byte{0x55, 0x48, 0x89, 0xe5})
}

// fileOffset is the file offset of the address addr, in an executable
// segment.
func (t *table) fileOffset(addr uint64) (uint64, bool) {
	for _, seg := range t.segs {
		if addr >= seg.vaddr && addr-seg.vaddr < seg.filesz {
			return addr - seg.vaddr + seg.off, true
		}
	}
	return 0, false
}

func leadingUnderscores(s string) int { return len(s) - len(strings.TrimLeft(s, "_")) }

// openDebugFile opens the separate debug file of ef by its build-id, as
// gdb and perf find it: debugDir/.build-id/xx/yyyy.debug. The build-id names
// one build, so the host's debug file fits a file seen through another
// mount namespace too; nil when there is none or its build-id differs.
func openDebugFile(ef *elf.File, debugDir string) *elf.File {
	id := buildID(ef)
	if len(id) < 2 {
		return nil
	}
	h := hex.EncodeToString(id)
	dbg, err := elf.Open(filepath.Join(debugDir, ".build-id", h[:2], h[2:]+".debug"))
	if err != nil {
		return nil
	}
	if !bytes.Equal(buildID(dbg), id) {
		dbg.Close()
		return nil
	}
	return dbg
}

// buildID returns the NT_GNU_BUILD_ID note of ef, from its note sections,
// or from its PT_NOTE segments when it has no section headers; nil if none.
func buildID(ef *elf.File) []byte {
	const maxNotes = 1 << 16 // a build-id note is 36 bytes; bound what a crafted file makes us read
	type note struct {
		r    io.ReaderAt
		size uint64
	}
	var notes []note
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_NOTE {
			notes = append(notes, note{s, s.Size})
		}
	}
	if len(notes) == 0 {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_NOTE {
				notes = append(notes, note{p, p.Filesz})
			}
		}
	}
	for _, n := range notes {
		if n.size > maxNotes {
			continue
		}
		data := make([]byte, n.size)
		if _, err := n.r.ReadAt(data, 0); err != nil {
			continue
		}
		if id := parseBuildID(data, ef.ByteOrder); id != nil {
			return id
		}
	}
	return nil
}

// parseBuildID finds the GNU build-id note in data, a sequence of ELF
// notes: namesz, descsz, type, then name and desc, each padded to 4 bytes.
func parseBuildID(data []byte, order binary.ByteOrder) []byte {
	const ntGNUBuildID = 3
	pad := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(data) >= 12 {
		namesz, descsz := uint64(order.Uint32(data)), uint64(order.Uint32(data[4:]))
		typ := order.Uint32(data[8:])
		descOff := 12 + pad(namesz)
		next := descOff + pad(descsz)
		if next > uint64(len(data)) {
			return nil
		}
		if typ == ntGNUBuildID && string(data[12:12+namesz]) == "GNU\x00" && descsz > 0 {
			return data[descOff : descOff+descsz]
		}
		data = data[next:]
	}
	return nil
}

// Demangling happens at lookup time, not at load: of the 3,839 functions
// of Debian 12's libstdc++.so.6.0.30, 3,796 are mangled; demangling them
// all takes 25-35 ms (loading the table, 5-7 ms) and adds 420 KB of names
// (the table is 284 KB), for stacks that name a handful. Those few are
// cached per table (see Cache.demangle).

// demangleName returns the demangled form of a mangled name, or name itself
// when it does not demangle.
func demangleName(name string) string {
	if s := mangled.Demangle(name); s != "" {
		return s
	}
	return name
}
