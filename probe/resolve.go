package probe

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Target is one concrete probe location after resolution (a glob gives
// many). The orchestrator writes it to uprobe_events as
// "p:GROUP/Event KernelPath:0xOffset Args[i].Fetch()..." ("r:" when
// Return), or, for a return probe with ReturnSites (a Go function), one
// "p:" line at each of them with $retval read from RAX
// ([RetvalInRegister]): see golang.go.
type Target struct {
	Spec   *Spec  // the spec it came from
	Path   string // absolute path of the ELF file probed (symlinks resolved): for people, and for watching the path; never given to the kernel
	Symbol string // the concrete symbol ("" for a raw file offset)
	Offset uint64 // file offset the kernel gets: KernelPath:0xOffset (with ReturnSites: the function's entry, for people)
	Return bool   // a return probe (uretprobe, unless ReturnSites)
	RefCtr uint64 // a USDT marker's semaphore, as a file offset: the kernel's reference counter (0: none)
	Args   []Arg  // the spec's fetch arguments
	Event  string // event name for tracefs, set by AssignEventNames

	// KernelPath names to the kernel the very file whose symbols were read:
	// /proc/self/fd/N, a descriptor held by ResolveOptions.Opened. It is
	// valid in this process only, until that Opened is closed; "" when
	// Resolve was given no Opened.
	KernelPath string
	File       FileID // the device and inode of that open file: the one the kernel binds
	Overlay    bool   // that file is on overlayfs (the kernel binds the file underneath)

	// Go: the file was built by the Go toolchain (see golang.go): argN
	// names Go's argument registers, an entry probe is past the
	// stack-growth check, and a return probe has ReturnSites.
	Go bool
	// ReturnSites are the file offsets of the RET instructions of a Go
	// function's return probe: the kernel gets an entry-style probe at
	// each, never a uretprobe. Hits at any of them are this one probe.
	ReturnSites []uint64

	// Demangled is Symbol's C++ or Rust name when Symbol is mangled
	// ("ns::Class::method(int)"); "" otherwise.
	Demangled string
}

// ResolveOptions tune Resolve and ResolveLibrary.
type ResolveOptions struct {
	PID   int    // when >0, library names may be resolved through /proc/PID/maps
	Root  string // "" or "/"; else resolve PATH inside this root (e.g. /proc/PID/root)
	Force bool   // allow offsets not proven to be instruction boundaries, and GNU ifunc resolvers
	// Opened, when not nil, keeps every file Resolve reads open, and the
	// targets name it by KernelPath. The caller closes it once their trace
	// events are defined. Without it Resolve closes what it opened.
	Opened *Opened

	// Program, when set, is the program library names are resolved for
	// (run's command, before it execs): its RUNPATH/RPATH come first.
	Program string
	file    string // set by resolveLibraryTargets: the file a library name means here
}

// Resolve finds the file and the file offsets a spec means.
//
// The path is resolved (a name without '/' through [ResolveLibraries],
// which may give several files, each resolved alike; a
// relative path against the working directory, refused with opts.Root) to a
// regular x86-64 ELF file with all symlinks resolved inside opts.Root. That
// file is opened once (inside opts.Root only, whatever the path became
// since: see [Opened]) and everything is read from the open file; the
// targets carry its identity (Target.File) and, with opts.Opened, the name
// the kernel must be given (Target.KernelPath).
//
// A symbol or glob gives one Target per distinct function offset, sorted by
// offset:
//   - without @VERSION, a default-version symbol is preferred to hidden
//     (compatibility) versions of the same name;
//   - several names at one offset (aliases such as __libc_malloc and malloc)
//     give one target, named by the first of: exported (.dynsym) before
//     local, fewer leading underscores, shorter, alphabetical;
//   - a GNU indirect function (memcpy in glibc) is refused with [ErrIFunc]
//     (its address is the resolver, which runs once at load time) unless
//     opts.Force; a glob skips them silently when it matches anything else.
//
// SYMBOL+OFF and PATH:0xFILEOFFSET must be proven instruction boundaries by
// decoding the function from its entry ([ErrUnsafeOffset] otherwise, unless
// opts.Force). A file offset must lie in an executable segment, even with
// Force. A %return probe on a file offset must be a function entry (unless
// Force).
//
// Errors wrap fs.ErrNotExist, [ErrNotELF], [ErrWrongArch], [ErrNoSymbols],
// [ErrSymbolNotFound], [ErrIFunc], [ErrUnsafeOffset], [ErrLibraryNotFound],
// [ErrBadPath] or [ErrBadSpec].
func Resolve(spec Spec, opts ResolveOptions) ([]Target, error) {
	// A Spec may have been built by hand rather than by ParseSpec: what goes
	// to the kernel is checked again.
	for _, a := range spec.Args {
		if err := checkKernelArg(a); err != nil {
			return nil, err
		}
	}
	if opts.file == "" && !strings.ContainsRune(spec.Path, '/') {
		return resolveLibraryTargets(spec, opts) // each file the name means (library.go)
	}
	file, err := opts.file, error(nil)
	if file == "" {
		file, err = resolveRealPath(spec.Path, opts)
	}
	if err != nil {
		return nil, err
	}
	opened := opts.Opened
	if opened == nil {
		opened = NewOpened()
		defer opened.Close()
	}
	of, err := opened.open(file, cleanRoot(opts.Root))
	if err != nil {
		return nil, err
	}
	img, syms, err, symsErr := of.parsed(file)
	if err != nil {
		return nil, err
	}
	if spec.USDT { // markers need no symbol table (usdt.go)
		targets, err := img.resolveUSDT(&spec)
		for i := range targets {
			targets[i].Spec, targets[i].Path, targets[i].File, targets[i].Overlay = &spec, file, of.id, of.overlay
			if opts.Opened != nil {
				targets[i].KernelPath = of.kernelPath
			}
		}
		return targets, err
	}
	err = symsErr
	// Without symbols nothing can be proven, but a forced raw offset needs none.
	if err != nil && !(errors.Is(err, ErrNoSymbols) && spec.HasFileOffset && opts.Force) {
		return nil, err
	}

	sp := &spec
	gi := of.gi
	args, err := argsFor(sp, gi.argABI())
	if err != nil {
		return nil, err
	}
	var targets []Target
	if spec.HasFileOffset {
		t, err := img.resolveFileOffset(sp, syms, opts, gi)
		if err != nil {
			return nil, err
		}
		targets = []Target{t}
	} else {
		targets, err = img.resolveSymbol(sp, syms, opts, gi)
		if err != nil {
			return nil, err
		}
	}
	for i := range targets {
		targets[i].Spec = sp
		targets[i].Path = file
		targets[i].File = of.id
		targets[i].Overlay = of.overlay
		if opts.Opened != nil {
			targets[i].KernelPath = of.kernelPath
		}
		targets[i].Return = spec.Return
		targets[i].Args = slices.Clone(args)
		targets[i].Go = gi.isGo
	}
	return targets, nil
}

// checkKernelArg refuses an argument whose kernel text could change the
// uprobe_events command.
func checkKernelArg(a Arg) error {
	text := a.Fetch()
	if !isCIdent(a.Name) || a.Expr == "" {
		return newError(ErrBadArg, "bad fetch argument %q: name %q, expression %q", text, a.Name, a.Expr)
	}
	for i := 0; i < len(text); i++ {
		if why := unsafeByte(text[i]); why != "" {
			return newError(ErrBadArg, "bad fetch argument %q: %s at position %d", text, why, i+1)
		}
	}
	return nil
}

// resolvePath turns the spec's path into the real path of a regular file.
// Paths are checked for bytes the kernel text cannot carry before they are
// used or printed, both as given and once symlinks are resolved.
func resolvePath(p string, opts ResolveOptions) (string, error) {
	real, err := resolveRealPath(p, opts)
	if err != nil || !strings.ContainsRune(p, '/') {
		return real, err // ResolveLibrary checked the file
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fileError(real, err)
	}
	if !st.Mode().IsRegular() {
		return "", newError(ErrNotELF, "%s is not a regular file", real)
	}
	return real, nil
}

// resolveRealPath is resolvePath without the final check of the file:
// Resolve checks the file it opens instead (see Opened).
func resolveRealPath(p string, opts ResolveOptions) (string, error) {
	if err := checkKernelPath(p); err != nil {
		return "", err
	}
	if !strings.ContainsRune(p, '/') {
		return ResolveLibrary(p, opts) // checked the same way
	}
	root := cleanRoot(opts.Root)
	abs := p
	if !filepath.IsAbs(p) {
		if root != "" {
			return "", newError(ErrBadSpec, "%s is a relative path; with a root (%s) give the absolute path inside it", p, root)
		}
		var err error
		if abs, err = filepath.Abs(p); err != nil {
			return "", fileError(p, err)
		}
	}
	real, err := resolveInRoot(root, path.Clean(abs))
	if err != nil {
		return "", fileError(root+abs, err)
	}
	if err := checkKernelPath(real); err != nil {
		return "", err
	}
	return real, nil
}

// resolveSymbol resolves a symbol or glob to one target per offset.
func (img *elfImage) resolveSymbol(spec *Spec, syms []Symbol, opts ResolveOptions, gi goInfo) ([]Target, error) {
	want, glob := symbolPattern(syms, spec.Symbol, spec.IsGlob())
	matches := matchSymbols(syms, want, glob)
	if len(matches) == 0 {
		return nil, img.notFound(spec)
	}
	if !opts.Force {
		plain := slices.DeleteFunc(slices.Clone(matches), func(s Symbol) bool { return s.IFunc })
		if len(plain) == 0 {
			return nil, newError(ErrIFunc,
				"%s in %s is a GNU indirect function: its address is a resolver that runs once at load time, not %s itself; probe one of its implementations (list them: uprobectl symbols %s '*%s*'), or pass --force to probe the resolver",
				matches[0].Name, img.path, matches[0].Name, img.path, matches[0].Name)
		}
		matches = plain
	}
	matches = onePerOffset(matches)

	targets := make([]Target, 0, len(matches))
	for _, s := range matches {
		if _, ok := img.execSegment(s.Offset + spec.SymbolOffset); !ok {
			return nil, newError(ErrUnsafeOffset, "%s+0x%x in %s is not in an executable segment, so it can never be hit",
				s.Name, spec.SymbolOffset, img.path)
		}
		if spec.SymbolOffset != 0 && !opts.Force {
			if err := img.boundaryError(s, spec.SymbolOffset); err != nil {
				return nil, newError(ErrUnsafeOffset,
					"%s+0x%x in %s is not a proven instruction boundary: %v; pass --force if you are sure",
					s.Name, spec.SymbolOffset, img.path, err)
			}
		}
		t := Target{Symbol: s.Name, Offset: s.Offset + spec.SymbolOffset, Demangled: s.Demangled}
		if gi.isGo {
			if why := img.placeGo(&t, s, spec, gi, syms); why != "" {
				if glob {
					spec.Skipped = append(spec.Skipped, s.Name+": %return: "+why)
					continue
				}
				return nil, goReturnError(s.Name, img.path, why)
			}
		}
		why, at := "", uint64(0)
		for _, off := range t.KernelOffsets() {
			if why, at = img.kernelRefuses(off), off-s.Offset; why != "" {
				break
			}
		}
		if why != "" {
			if glob {
				// A glob takes what can be probed and names the rest.
				spec.Skipped = append(spec.Skipped, s.Name+": "+why)
				continue
			}
			return nil, newError(ErrRefused, "the kernel cannot put a uprobe on %s+0x%x in %s: %s; probe a later instruction (SYMBOL+OFF) or the caller",
				s.Name, at, img.path, why)
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		why := spec.Skipped[0]
		if n := len(spec.Skipped); n > 1 {
			why += fmt.Sprintf(" (and %d more)", n-1)
		}
		return nil, newError(ErrRefused, "no function that matches %q in %s can be probed: %s", spec.Symbol, img.path, why)
	}
	return targets, nil
}

// notFound explains a symbol or glob that matched nothing.
func (img *elfImage) notFound(spec *Spec) error {
	stripped := img.strippedNote()
	if spec.IsGlob() {
		return newError(ErrSymbolNotFound, "no function matches %q in %s (list them: uprobectl symbols %s)%s",
			spec.Symbol, img.path, img.path, stripped)
	}
	hint, _, _ := strings.Cut(spec.Symbol, "@")
	if len(hint) > 4 {
		hint = hint[:4]
	}
	return newError(ErrSymbolNotFound, "symbol %q not found in %s (list them: uprobectl symbols %s '%s*')%s",
		spec.Symbol, img.path, img.path, hint, stripped)
}

// strippedNote is added to messages about symbols of a stripped file.
func (img *elfImage) strippedNote() string {
	if img.elf.Section(".symtab") == nil {
		return "; the file is stripped, so only its exported functions are known"
	}
	return ""
}

// matchSymbols returns the functions a symbol or glob means. "name@VER" and
// "name@@VER" select a version; otherwise a name's hidden versions are
// dropped when it has a default or unversioned one. C++ and Rust symbols
// are matched by their demangled names too (see demangle.go): an exact name
// that is no ELF name is looked up among the demangled ones.
func matchSymbols(syms []Symbol, want string, glob bool) []Symbol {
	name, version, hasVersion := strings.Cut(want, "@")
	version = strings.TrimPrefix(version, "@")
	var out []Symbol
	for _, match := range []func(*Symbol) bool{
		func(s *Symbol) bool { return glob && s.matchesGlob(name) || !glob && s.matchesName(name) },
		func(s *Symbol) bool { return !glob && s.matchesDemangled(name) },
	} {
		for i := range syms {
			if s := &syms[i]; (!hasVersion || s.Version == version) && match(s) {
				out = append(out, *s)
			}
		}
		if len(out) > 0 {
			break
		}
	}
	if hasVersion {
		return out
	}
	visible := map[string]bool{}
	for _, s := range out {
		if !s.Hidden {
			visible[s.Name] = true
		}
	}
	return slices.DeleteFunc(out, func(s Symbol) bool { return s.Hidden && visible[s.Name] })
}

// onePerOffset keeps one symbol per offset, by the documented preference,
// sorted by offset.
func onePerOffset(syms []Symbol) []Symbol {
	sorted := slices.Clone(syms)
	slices.SortStableFunc(sorted, func(a, b Symbol) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), preferName(a, b))
	})
	return slices.CompactFunc(sorted, func(a, b Symbol) bool { return a.Offset == b.Offset })
}

// preferName orders aliases: exported first, then fewer leading
// underscores, then shorter, then alphabetical.
func preferName(a, b Symbol) int {
	underscores := func(s string) int { return len(s) - len(strings.TrimLeft(s, "_")) }
	return cmp.Or(
		cmp.Compare(boolInt(!a.Dynamic), boolInt(!b.Dynamic)),
		cmp.Compare(underscores(a.Name), underscores(b.Name)),
		cmp.Compare(len(a.Name), len(b.Name)),
		strings.Compare(a.Name, b.Name),
	)
}

// resolveFileOffset checks a PATH:0xFILEOFFSET spec.
func (img *elfImage) resolveFileOffset(spec *Spec, syms []Symbol, opts ResolveOptions, gi goInfo) (Target, error) {
	off := spec.FileOffset
	t := Target{Offset: off}
	if _, ok := img.execSegment(off); !ok {
		return t, newError(ErrUnsafeOffset,
			"offset 0x%x is not in an executable segment of %s, so it can never be hit (see readelf -lW %s)",
			off, img.path, img.path)
	}
	if gi.isGo && spec.Return {
		// Never a uretprobe in a Go binary, --force or not: its RETs.
		fn, ok := goEntry(syms, off)
		if !ok {
			return t, goReturnError(fmt.Sprintf("offset 0x%x", off), img.path, "it is not the entry of a function of known size, whose RET instructions could be found")
		}
		if why := img.placeGo(&t, fn, spec, gi, syms); why != "" {
			return t, goReturnError(fn.Name, img.path, why)
		}
		return t, nil
	}
	var inside *Symbol
	for i := range syms {
		s := &syms[i]
		if s.Offset == off {
			return t, nil // a function entry
		}
		if s.Offset < off && off-s.Offset < s.Size && (inside == nil || s.Offset > inside.Offset) {
			inside = s
		}
	}
	if opts.Force {
		return t, nil
	}
	switch {
	case inside == nil:
		return t, newError(ErrUnsafeOffset,
			"offset 0x%x is not inside any function known to the symbol tables of %s, so it cannot be proven an instruction boundary; pass --force if you are sure%s",
			off, img.path, img.strippedNote())
	case spec.Return:
		return t, newError(ErrUnsafeOffset,
			"offset 0x%x is inside function %s (0x%x..0x%x), not at its entry; a %%return probe must be on a function entry",
			off, inside.Name, inside.Offset, inside.Offset+inside.Size)
	}
	if err := img.boundaryError(*inside, off-inside.Offset); err != nil {
		return t, newError(ErrUnsafeOffset,
			"offset 0x%x is inside function %s (0x%x..0x%x), not a proven instruction boundary: %v; pass --force if you are sure",
			off, inside.Name, inside.Offset, inside.Offset+inside.Size, err)
	}
	return t, nil
}
