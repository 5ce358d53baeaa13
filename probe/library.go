package probe

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/internal/procfs"
)

// libraryDirs are searched after the loader cache, in this order: the
// Debian multiarch directories first, then the classic ones.
var libraryDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// ResolveLibrary resolves a name without '/' to the ELF file it means, the
// way the dynamic loader would, and returns that file's path with every
// symlink resolved (the kernel binds a uprobe to the inode anyway).
//
// "libc.so.6" is an exact soname. A name without ".so", such as "libc",
// means the best "libc.so*": the soname "libc.so.6" (the highest major
// version when there are several) before longer versions and before the
// unversioned development link "libc.so" (often a linker script: only
// x86-64 ELF files are taken). Names are looked up in order:
//
//  1. when opts.PID > 0 (and no opts.Program), the files mapped by that
//     process (/proc/PID/maps), by file name, then for a soname by each
//     mapped file's DT_SONAME;
//  2. when the program is known (opts.Program, or /proc/PID/exe): the
//     program itself when the name is its file name, then the directories
//     its dynamic loader searches first, as ld.so does: DT_RPATH (when it
//     has no DT_RUNPATH), LD_LIBRARY_PATH (of /proc/PID/environ, or of
//     this process for opts.Program), DT_RUNPATH; $ORIGIN is the program's
//     directory;
//  3. for a name that does not look like a library (no "lib" prefix, no
//     ".so"), such as "bash": the directories of $PATH;
//  4. /etc/ld.so.cache (x86-64 entries; plain entries before glibc-hwcaps
//     variants);
//  5. the standard directories /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
//     /lib64 /usr/lib64 /lib /usr/lib.
//
// Probe words use [ResolveLibraries], which adds, for a bare name in the
// default scope, the other files of that name running processes map.
//
// When opts.Root is set, every path above except /proc/PID/maps is read
// inside Root (absolute symlinks start again at Root), and the returned path
// starts with Root. A process in another mount namespace needs
// Root=/proc/PID/root for the paths of its maps to make sense.
//
// Errors wrap [ErrLibraryNotFound] (and name every place searched),
// [ErrBadSpec] for a name that is not a plain file name, or [ErrBadPath]
// when the file found has a name that cannot be written to uprobe_events.
func ResolveLibrary(name string, opts ResolveOptions) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return "", newError(ErrBadSpec, "%q is not a library or program name; give a path with '/' instead", name)
	}
	for i := 0; i < len(name); i++ {
		if why := unsafeByte(name[i]); why != "" {
			return "", newError(ErrBadSpec, "library name %q contains %s at position %d", name, why, i+1)
		}
	}
	r := &libResolver{name: name, root: cleanRoot(opts.Root), pid: opts.PID, program: opts.Program}
	isLibrary := strings.HasPrefix(name, "lib") || strings.Contains(name, ".so")
	sources := []func() string{}
	if opts.PID > 0 && opts.Program == "" {
		sources = append(sources, r.fromMaps)
	}
	if opts.PID > 0 || opts.Program != "" {
		sources = append(sources, r.fromProgram)
	}
	if !isLibrary {
		sources = append(sources, r.fromPATH)
	}
	sources = append(sources, r.fromLDCache, r.fromDirs)
	for _, source := range sources {
		if p := source(); p != "" {
			// A symlink may lead to a name the kernel text cannot carry.
			if err := checkKernelPath(p); err != nil {
				return "", err
			}
			return p, nil
		}
	}
	what := "library"
	if !isLibrary {
		what = "program or library"
	}
	where := strings.Join(r.looked, ", ")
	if r.root != "" {
		where += " (under " + r.root + ")"
	}
	hint := "give its path instead"
	if st, err := os.Stat(name); r.root == "" && err == nil && st.Mode().IsRegular() {
		hint = "did you mean ./" + name + "? A name without '/' is looked up like a library"
	}
	return "", newError(ErrLibraryNotFound, "%s %q not found in %s; %s", what, name, where, hint)
}

// libResolver holds one ResolveLibrary lookup.
type libResolver struct {
	name    string
	root    string // "" for the host root, else a clean directory
	pid     int
	program string   // the program whose loader paths come first (run), as a host path
	looked  []string // the places searched, for the error message
}

// fromProgram looks where the program's own dynamic loader looks first:
// the program itself for its own name, then DT_RPATH, LD_LIBRARY_PATH and
// DT_RUNPATH in the loader's order.
func (r *libResolver) fromProgram() string {
	prog := r.program // a host path
	if prog == "" {
		exe, err := procfs.New("").Exe(r.pid)
		if err != nil || !path.IsAbs(exe) || strings.HasSuffix(exe, " (deleted)") {
			return ""
		}
		if prog, err = resolveInRoot(r.root, exe); err != nil {
			return ""
		}
	} else if abs, err := filepath.Abs(prog); err == nil {
		prog, _ = filepath.EvalSymlinks(abs)
	}
	if prog == "" || !isX8664ELF(prog) {
		return ""
	}
	if path.Base(prog) == r.name {
		return prog
	}
	rpath, runpath := loaderPaths(prog)
	// $ORIGIN is the program's directory as the process sees it.
	origin := path.Dir(strings.TrimPrefix(prog, r.root))
	var dirs []string
	add := func(what, list string) {
		if list == "" {
			return
		}
		r.looked = append(r.looked, what)
		for _, d := range strings.Split(list, ":") {
			d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
			if path.IsAbs(d) {
				dirs = append(dirs, path.Clean(d))
			}
		}
	}
	if runpath == "" {
		add("the DT_RPATH of "+prog, rpath)
	}
	add("LD_LIBRARY_PATH", r.libraryPathEnv())
	add("the DT_RUNPATH of "+prog, runpath)
	return r.inDirs(dirs)
}

// inDirs returns the best file with the library's name in dirs, searched
// in order.
func (r *libResolver) inDirs(dirs []string) string {
	var candidates []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(r.hostPath(dir))
		if err != nil {
			continue
		}
		var names []string
		for _, e := range entries {
			if _, _, ok := libNameRank(r.name, e.Name()); ok {
				names = append(names, path.Join(dir, e.Name()))
			}
		}
		candidates = append(candidates, r.rank(names)...)
	}
	return r.first(candidates)
}

// libraryPathEnv returns the LD_LIBRARY_PATH the program runs with: that
// of /proc/PID/environ, or this process's own for a program it starts.
func (r *libResolver) libraryPathEnv() string {
	if r.program != "" || r.pid <= 0 {
		return os.Getenv("LD_LIBRARY_PATH")
	}
	v, _, _ := procfs.New("").Environ(r.pid, "LD_LIBRARY_PATH")
	return v
}

// loaderPaths returns the DT_RPATH and DT_RUNPATH of the ELF file at p.
func loaderPaths(p string) (rpath, runpath string) {
	f, err := elf.Open(p)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	if v, err := f.DynString(elf.DT_RPATH); err == nil && len(v) > 0 {
		rpath = strings.Join(v, ":")
	}
	if v, err := f.DynString(elf.DT_RUNPATH); err == nil && len(v) > 0 {
		runpath = strings.Join(v, ":")
	}
	return rpath, runpath
}

// fromMaps looks among the files the process has mapped.
func (r *libResolver) fromMaps() string {
	r.looked = append(r.looked, fmt.Sprintf("/proc/%d/maps", r.pid))
	maps, err := procfs.New("").Maps(r.pid)
	if err != nil {
		// The process may be gone or hidden: the other sources still apply.
		r.looked[len(r.looked)-1] += " (unreadable)"
		return ""
	}
	paths := mapsFilePaths(maps)
	var byName []string
	for _, p := range paths {
		if _, _, ok := libNameRank(r.name, path.Base(p)); ok {
			byName = append(byName, p)
		}
	}
	if p := r.first(r.rank(byName)); p != "" {
		return p
	}
	if !strings.Contains(r.name, ".so") {
		return ""
	}
	// Old glibc maps libc-2.31.so, whose soname is libc.so.6.
	for _, p := range paths {
		if soname(r.hostPath(p)) == r.name {
			if p := r.first([]string{p}); p != "" {
				return p
			}
		}
	}
	return ""
}

// fromPATH looks in the directories of $PATH, for program names.
func (r *libResolver) fromPATH() string {
	r.looked = append(r.looked, "$PATH")
	var candidates []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if path.IsAbs(dir) {
			candidates = append(candidates, path.Join(dir, r.name))
		}
	}
	return r.first(candidates)
}

// fromLDCache looks in the loader cache.
func (r *libResolver) fromLDCache() string {
	const cachePath = "/etc/ld.so.cache"
	r.looked = append(r.looked, cachePath)
	data, err := os.ReadFile(r.hostPath(cachePath))
	if err != nil {
		r.looked[len(r.looked)-1] += " (unreadable)"
		return ""
	}
	entries, err := parseLDCache(data)
	if err != nil {
		r.looked[len(r.looked)-1] += " (unparsable)"
		return ""
	}
	type candidate struct {
		entry ldCacheEntry
		rank  int
		ver   int
	}
	var found []candidate
	for _, e := range entries {
		if !e.isX8664() {
			continue
		}
		if rank, ver, ok := libNameRank(r.name, e.Name); ok {
			found = append(found, candidate{e, rank, ver})
		}
	}
	slices.SortStableFunc(found, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(b.ver, a.ver),
			cmp.Compare(boolInt(a.entry.HWCap != 0), boolInt(b.entry.HWCap != 0)))
	})
	var paths []string
	for _, c := range found {
		paths = append(paths, c.entry.Path)
	}
	return r.first(paths)
}

// fromDirs looks in the standard library directories.
func (r *libResolver) fromDirs() string {
	r.looked = append(r.looked, libraryDirs...)
	return r.inDirs(libraryDirs)
}

// rank orders paths by how well their file names match the wanted name.
func (r *libResolver) rank(paths []string) []string {
	out := slices.Clone(paths)
	slices.SortStableFunc(out, func(a, b string) int {
		ra, va, _ := libNameRank(r.name, path.Base(a))
		rb, vb, _ := libNameRank(r.name, path.Base(b))
		return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(vb, va))
	})
	return out
}

// first returns the first candidate (a path inside the root) that is an
// x86-64 ELF file, resolved to its real path on the host; "" if none is.
func (r *libResolver) first(candidates []string) string {
	for _, c := range candidates {
		real, err := resolveInRoot(r.root, c)
		if err == nil && isX8664ELF(real) {
			return real
		}
	}
	return ""
}

func (r *libResolver) hostPath(p string) string { return r.root + p }

// libNameRank says whether the file name base can be what name means, and
// how well: lower rank first, then higher version. An exact match is always
// best. A name without ".so" (libc) also matches, in order, libc.so.N,
// libc.so.N.M..., libc.so and the old glibc style libc-2.31.so.
func libNameRank(name, base string) (rank, version int, ok bool) {
	if base == name {
		return 0, 0, true
	}
	if strings.Contains(name, ".so") {
		return 0, 0, false
	}
	stem := name + ".so"
	switch {
	case strings.HasPrefix(base, stem+"."):
		v := base[len(stem)+1:]
		if n, err := strconv.Atoi(v); err == nil && allDigits(v) {
			return 1, n, true
		}
		major, _, _ := strings.Cut(v, ".")
		n, _ := strconv.Atoi(major)
		return 2, n, true
	case base == stem:
		return 3, 0, true
	case strings.HasPrefix(base, name+"-") && strings.HasSuffix(base, ".so"):
		return 4, 0, true
	}
	return 0, 0, false
}

// mapsFilePaths returns the distinct files of maps, in order of first
// appearance. Anonymous and pseudo mappings ([heap], [vdso]) and deleted
// files are skipped: they have no path to resolve.
func mapsFilePaths(maps []procfs.Mapping) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range maps {
		p := m.Path
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// soname returns the DT_SONAME of the ELF file at p, or "".
func soname(p string) string {
	f, err := elf.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	names, err := f.DynString(elf.DT_SONAME)
	if err != nil || len(names) == 0 {
		return ""
	}
	return names[0]
}

// isX8664ELF reports whether p is a regular file with the ELF header of a
// 64-bit little-endian x86-64 object: a 32-bit library of the same name in
// /usr/lib, or a linker script such as libc.so, is not what a name means.
func isX8664ELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	return bytes.Equal(h[:4], []byte(elf.ELFMAG)) &&
		elf.Class(h[elf.EI_CLASS]) == elf.ELFCLASS64 && elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2LSB &&
		elf.Machine(binary.LittleEndian.Uint16(h[18:])) == elf.EM_X86_64
}

// cleanRoot returns "" for the host root and a clean path otherwise.
func cleanRoot(root string) string {
	if root == "" || filepath.Clean(root) == "/" {
		return ""
	}
	return filepath.Clean(root)
}

// maxSymlinks is the kernel's MAXSYMLINKS: more links than this is a loop.
const maxSymlinks = 40

// resolveInRoot resolves every symlink of p, an absolute path as seen inside
// root, the way a process chrooted to root would: an absolute link target
// starts again at root and ".." never climbs above it. It returns the host
// path root+resolved. With root "" it is filepath.EvalSymlinks.
func resolveInRoot(root, p string) (string, error) {
	if root == "" {
		return filepath.EvalSymlinks(p)
	}
	cur, rest, links := "/", p, 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, comp)
		st, err := os.Lstat(root + next)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: root + p, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = target + "/" + rest
	}
	if cur == "/" {
		return root, nil
	}
	return root + cur, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ResolveLibraries returns every file a library or program name (no '/')
// means for a probe word, each as a real path.
//
// With opts.PID, opts.Program or opts.Root it is the one file
// [ResolveLibrary] finds: the traced program's own maps and RUNPATH/RPATH
// win. In the default scope (none of them) it is that file, if the loader
// finds one, followed by every other distinct file (by device and inode)
// that a running process maps now under that name: by path file name or
// by DT_SONAME. For a name without ".so" ("libc", "bash") the names are
// the given one and the file name and soname of what the loader found.
// Only files reached at the same path here with the same device and inode
// as in the process's maps are taken (a process in another mount namespace
// maps files of its own: trace those with --container-pid), and only
// x86-64 ELF files (a 32-bit process's libc.so.6 is not). They are sorted
// by path after the loader's. The error is the loader's when there is no
// file at all.
func ResolveLibraries(name string, opts ResolveOptions) ([]string, error) {
	found, err := ResolveLibrary(name, opts)
	if opts.PID > 0 || opts.Program != "" || cleanRoot(opts.Root) != "" {
		if err != nil {
			return nil, err
		}
		return []string{found}, nil
	}
	if err != nil && !errors.Is(err, ErrLibraryNotFound) {
		return nil, err // a bad name
	}
	names := map[string]bool{name: true}
	var files []string
	seen := map[FileID]bool{}
	if err == nil {
		files = append(files, found)
		if id, ok := fileIDOf(found); ok {
			seen[id] = true
		}
		names[path.Base(found)] = true
		if so := soname(found); so != "" {
			names[so] = true
		}
	}
	isLibrary := strings.HasPrefix(name, "lib") || strings.Contains(name, ".so")
	var more []string
	for _, m := range mappedFiles() {
		if seen[m.id] {
			continue
		}
		if !names[path.Base(m.path)] && !(isLibrary && sonameMatches(m.path, names)) {
			continue
		}
		seen[m.id] = true
		// The path as mapped must still be that file here.
		real, rerr := filepath.EvalSymlinks(m.path)
		if id, ok := fileIDOf(real); rerr != nil || !ok || id != m.id || !isX8664ELF(real) || checkKernelPath(real) != nil {
			continue
		}
		more = append(more, real)
	}
	slices.Sort(more)
	files = append(files, slices.Compact(more)...)
	if len(files) == 0 {
		return nil, err
	}
	return files, nil
}

// resolveLibraryTargets resolves a spec whose path is a library or program
// name: in each file [ResolveLibraries] gives. Every file must resolve (a
// symbol missing from one of them is an error naming it). The targets
// share one Spec.
func resolveLibraryTargets(spec Spec, opts ResolveOptions) ([]Target, error) {
	// A name is looked up once per resolution, however many probe words
	// use it (10,000 words of libc.so.6 read ld.so.cache once).
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%s", spec.Path, opts.PID, opts.Program, opts.Root)
	files, cached := opts.Opened.libraries(key)
	if !cached {
		var err error
		if files, err = ResolveLibraries(spec.Path, opts); err != nil {
			return nil, err
		}
		opts.Opened.storeLibraries(key, files)
	}
	var targets []Target
	var shared *Spec
	for _, file := range files {
		o := opts
		o.file = file
		ts, err := Resolve(spec, o)
		if err != nil {
			if len(files) > 1 {
				return nil, newError(err, "%v (%s is one of the %d files named %s: %s; give the path of the one to probe)",
					err, file, len(files), spec.Path, strings.Join(files, ", "))
			}
			return nil, err
		}
		if len(ts) == 0 {
			continue
		}
		if shared == nil {
			shared = ts[0].Spec
		} else {
			shared.Skipped = append(shared.Skipped, ts[0].Spec.Skipped...)
		}
		for i := range ts {
			ts[i].Spec = shared
		}
		targets = append(targets, ts...)
	}
	return targets, nil
}

// mappedFile is a file some process maps: its path there and its identity.
type mappedFile struct {
	path string
	id   FileID
}

// mappedCache holds the last scan of every process's maps, for a second:
// 500 probe words of one library scan once.
var mappedCache struct {
	sync.Mutex
	at    time.Time
	files []mappedFile
}

// mappedFiles returns the distinct files (by device and inode) that the
// processes map now, from /proc/*/maps, with the first path seen for each.
// Deleted files and pseudo mappings are left out.
func mappedFiles() []mappedFile {
	mappedCache.Lock()
	defer mappedCache.Unlock()
	if mappedCache.files != nil && time.Since(mappedCache.at) < time.Second {
		return mappedCache.files
	}
	fs := procfs.New("")
	pids, _ := fs.PIDs()
	self := os.Getpid()
	seen := map[FileID]bool{}
	files := []mappedFile{}
	for _, pid := range pids {
		if pid == self {
			continue
		}
		maps, err := fs.Maps(pid)
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, m := range maps {
			id := FileID{Dev: m.Dev, Ino: m.Ino}
			if m.Ino == 0 || seen[id] || !strings.HasPrefix(m.Path, "/") || strings.HasSuffix(m.Path, " (deleted)") {
				continue
			}
			seen[id] = true
			files = append(files, mappedFile{path: m.Path, id: id})
		}
	}
	mappedCache.at, mappedCache.files = time.Now(), files
	return files
}

// sonameMatches reports whether the DT_SONAME of the ELF file at p is one
// of names. Only files whose name starts like one of names (libc for
// libc.so.6: libc-2.31.so) are read.
func sonameMatches(p string, names map[string]bool) bool {
	base := path.Base(p)
	for n := range names {
		stem, _, _ := strings.Cut(n, ".so")
		if stem != "" && strings.HasPrefix(base, stem) {
			return names[soname(p)]
		}
	}
	return false
}

// fileIDOf returns the device and inode of the file at p.
func fileIDOf(p string) (FileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return FileID{}, false
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}, true
}
