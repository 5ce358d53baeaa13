package probe

import (
	"bytes"
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Symbol is one probe-able function of an ELF file.
type Symbol struct {
	Name    string // bare name, without @VERSION
	Version string // symbol version, e.g. "GLIBC_2.14"; "" when unversioned
	Hidden  bool   // a non-default version (name@VERSION, not name@@VERSION)
	Value   uint64 // st_value: the address in the file's own layout
	Size    uint64 // st_size; 0 when the assembler did not say
	Offset  uint64 // file offset of the first instruction: what the kernel is given
	IFunc   bool   // STT_GNU_IFUNC: Value is the resolver, not the function
	Dynamic bool   // listed in .dynsym (exported)

	// Demangled is the C++ or Rust name of a mangled Name, as
	// github.com/ianlancetaylor/demangle prints it ("ns::Class::method(int)"
	// for _ZN2ns5Class6methodEi); "" when Name is not mangled.
	Demangled string
	demangled demangledNames // the forms probe words are matched against
}

// VersionedName returns the name as readelf shows it: name, name@@VERSION
// (default version) or name@VERSION (hidden, kept for old binaries).
func (s Symbol) VersionedName() string {
	switch {
	case s.Version == "":
		return s.Name
	case s.Hidden:
		return s.Name + "@" + s.Version
	}
	return s.Name + "@@" + s.Version
}

// sttGNUIFunc is STT_GNU_IFUNC, which debug/elf only knows as STT_LOOS.
const sttGNUIFunc = elf.STT_LOOS

// Symbols lists the probe-able functions of the ELF file at path: FUNC and
// GNU_IFUNC symbols that are defined and have a nonzero value, from .symtab
// and .dynsym, deduplicated by name and offset, sorted by offset then name.
//
// A missing table is tolerated when the other exists (a stripped executable
// linked with -rdynamic still has .dynsym); with neither the error wraps
// [ErrNoSymbols]. Other errors wrap fs.ErrNotExist (no such file),
// [ErrNotELF] or [ErrWrongArch].
func Symbols(path string) ([]Symbol, error) {
	img, err := openELF(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return img.symbols()
}

// elfImage is an open x86-64 ELF executable or shared library. It reads
// its file only with ReadAt, so that several images may share one open
// file (see Opened).
type elfImage struct {
	path  string
	file  *os.File
	elf   *elf.File
	owned bool // Close closes file
}

// openELF opens path and checks that it is an x86-64 ELF executable or
// shared library.
func openELF(path string) (*elfImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	img, err := newELFImage(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	img.owned = true
	return img, nil
}

// newELFImage reads the ELF file f, named path in messages. Its Close
// leaves f open.
func newELFImage(path string, f *os.File) (*elfImage, error) {
	if st, err := f.Stat(); err != nil {
		return nil, fileError(path, err)
	} else if !st.Mode().IsRegular() {
		return nil, newError(ErrNotELF, "%s is not a regular file", path)
	}
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || !bytes.Equal(magic[:], []byte(elf.ELFMAG)) {
		return nil, newError(ErrNotELF, "%s is not an ELF file", path)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, wrapError(ErrNotELF, err, "%s is not a valid ELF file: %v", path, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return nil, newError(ErrWrongArch, "%s is an ELF file for %s (%s); only x86-64 files can be probed", path, ef.Machine, ef.Class)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, newError(ErrNotELF, "%s is an ELF %s file, not an executable or shared library", path, ef.Type)
	}
	return &elfImage{path: path, file: f, elf: ef}, nil
}

func (img *elfImage) Close() error {
	if !img.owned {
		return nil
	}
	return img.file.Close()
}

// fileError turns an open/stat error into a one-line message that still
// matches fs.ErrNotExist and friends.
func fileError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return wrapError(fs.ErrNotExist, err, "%s: no such file", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	// No sentinel of ours fits (permission, loop, I/O): the cause is the kind.
	return &probeError{msg: fmt.Sprintf("%s: %v", path, err), kind: err}
}

// symbols implements Symbols for an open image.
func (img *elfImage) symbols() ([]Symbol, error) {
	static, errStatic := img.elf.Symbols()
	dynamic, errDynamic := img.elf.DynamicSymbols()
	for _, err := range []error{errStatic, errDynamic} {
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return nil, wrapError(ErrNotELF, err, "%s: reading the symbol table: %v", img.path, err)
		}
	}
	if errStatic != nil && errDynamic != nil {
		return nil, newError(ErrNoSymbols,
			"%s has no symbol table (stripped): rebuild it with symbols or link it with -rdynamic, or probe a file offset with --force",
			img.path)
	}

	type key struct {
		name   string
		offset uint64
	}
	index := map[key]int{}
	var out []Symbol
	add := func(es elf.Symbol, isDynamic bool) {
		s, ok := img.toSymbol(es, isDynamic)
		if !ok {
			return
		}
		k := key{s.Name, s.Offset}
		if i, seen := index[k]; seen {
			// The same function twice (both tables, or two versions at one
			// address): keep what each one knows, the default version first.
			prev := &out[i]
			prev.Dynamic = prev.Dynamic || s.Dynamic
			if s.Version != "" && (prev.Version == "" || prev.Hidden && !s.Hidden) {
				prev.Version, prev.Hidden = s.Version, s.Hidden
			}
			return
		}
		index[k] = len(out)
		out = append(out, s)
	}
	for _, es := range dynamic {
		add(es, true)
	}
	for _, es := range static {
		add(es, false)
	}
	slices.SortFunc(out, func(a, b Symbol) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), strings.Compare(a.Name, b.Name),
			strings.Compare(a.Version, b.Version))
	})
	return out, nil
}

// toSymbol converts a probe-able function symbol; ok is false for anything
// else (data, undefined imports, absolute symbols, addresses outside the
// file's loaded contents).
func (img *elfImage) toSymbol(es elf.Symbol, isDynamic bool) (Symbol, bool) {
	typ := elf.ST_TYPE(es.Info)
	if typ != elf.STT_FUNC && typ != sttGNUIFunc {
		return Symbol{}, false
	}
	if es.Section == elf.SHN_UNDEF || es.Section == elf.SHN_ABS || es.Section == elf.SHN_COMMON || es.Value == 0 {
		return Symbol{}, false
	}
	// A name with control characters cannot have been typed and would break
	// one-line messages and listings; no compiler makes one.
	if strings.ContainsFunc(es.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Symbol{}, false
	}
	off, ok := img.fileOffset(es.Value)
	if !ok {
		return Symbol{}, false
	}
	s := Symbol{Name: es.Name, Value: es.Value, Size: es.Size, Offset: off,
		IFunc: typ == sttGNUIFunc, Dynamic: isDynamic}
	switch {
	case isDynamic && es.HasVersion && es.Version != "":
		s.Version, s.Hidden = es.Version, es.VersionIndex.IsHidden()
	case !isDynamic:
		// .symtab spells versions into the name: name@@VER (default), name@VER.
		if name, ver, ok := strings.Cut(es.Name, "@"); ok && name != "" {
			s.Name = name
			s.Version, s.Hidden = strings.TrimPrefix(ver, "@"), !strings.HasPrefix(ver, "@")
		}
	}
	s.Demangled, s.demangled = demangleNames(s.Name)
	return s, true
}

// fileOffset maps an address of the file's own layout to a file offset
// through the PT_LOAD segment that holds it in the file (not in the
// zero-filled tail), preferring an executable segment.
func (img *elfImage) fileOffset(vaddr uint64) (uint64, bool) {
	for _, wantExec := range []bool{true, false} {
		for _, p := range img.elf.Progs {
			if p.Type != elf.PT_LOAD || (p.Flags&elf.PF_X != 0) != wantExec {
				continue
			}
			if vaddr >= p.Vaddr && vaddr-p.Vaddr < p.Filesz {
				return vaddr - p.Vaddr + p.Off, true
			}
		}
	}
	return 0, false
}

// execSegment returns the executable PT_LOAD segment whose file contents
// hold the file offset off.
func (img *elfImage) execSegment(off uint64) (*elf.Prog, bool) {
	for _, p := range img.elf.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && off >= p.Off && off-p.Off < p.Filesz {
			return p, true
		}
	}
	return nil, false
}

// readCode reads the bytes of a function from the file.
func (img *elfImage) readCode(fn Symbol) ([]byte, error) {
	code := make([]byte, fn.Size)
	if _, err := img.file.ReadAt(code, int64(fn.Offset)); err != nil {
		return nil, fmt.Errorf("reading %s at 0x%x: %w", fn.Name, fn.Offset, err)
	}
	return code, nil
}
