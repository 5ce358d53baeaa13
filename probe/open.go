package probe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// FileID identifies a file the way the kernel binds a uprobe to it: the
// device and inode of the open file (fstat), not of a path walked again.
type FileID struct {
	Dev uint64 // unix.Mkdev(major, minor)
	Ino uint64
}

// Opened holds the files Resolve opened and read, one descriptor per file
// (by device and inode), shared by every target of that file. Each target
// names its file to the kernel as [Target.KernelPath], /proc/self/fd/N: the
// kernel arms exactly the inode whose symbols were read, and a path that
// changes after it was resolved (a container swapping a directory for a
// symlink, a package upgrade renaming a new file over the old) cannot
// redirect it.
//
// Keep an Opened open until every trace event of its targets is defined,
// then Close it: the kernel holds its own reference to a probed inode.
// KernelPath means nothing after Close (the descriptor number may be
// reused). An Opened is safe for concurrent use.
type Opened struct {
	mu     sync.Mutex
	files  map[FileID]*openFile
	closed bool
	libs   map[string][]string // library name lookups, by name and options
}

// libraries returns a library name's files looked up before (nil Opened:
// no cache).
func (o *Opened) libraries(key string) ([]string, bool) {
	if o == nil {
		return nil, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	files, ok := o.libs[key]
	return files, ok
}

func (o *Opened) storeLibraries(key string, files []string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.libs == nil {
		o.libs = map[string][]string{}
	}
	o.libs[key] = files
}

// openFile is one file an Opened holds.
type openFile struct {
	file       *os.File // O_RDONLY, read only with ReadAt (shared)
	id         FileID
	overlay    bool   // on overlayfs (fstatfs)
	kernelPath string // /proc/self/fd/N

	// The ELF image and its symbols, read once however many probe words
	// name the file (2,000 listed probes of libc parse its tables once).
	parse   sync.Once
	img     *elfImage
	syms    []Symbol
	gi      goInfo // read once: buildinfo.Read reads the file
	imgErr  error  // not a usable ELF file
	symsErr error  // no symbol table
}

// parsed returns the file's ELF image and symbols, read on first use.
// f.gi is set too when the image is usable.
func (f *openFile) parsed(path string) (*elfImage, []Symbol, error, error) {
	f.parse.Do(func() {
		if f.img, f.imgErr = newELFImage(path, f.file); f.imgErr == nil {
			f.syms, f.symsErr = f.img.symbols()
			f.gi = f.img.goInfo()
		}
	})
	return f.img, f.syms, f.imgErr, f.symsErr
}

// NewOpened returns an empty Opened.
func NewOpened() *Opened { return &Opened{files: map[FileID]*openFile{}} }

// Close closes every file. It may be called more than once; Resolve with a
// closed Opened fails.
func (o *Opened) Close() error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	var errs []error
	for id, f := range o.files {
		errs = append(errs, f.file.Close())
		delete(o.files, id)
	}
	return errors.Join(errs...)
}

// Len returns the number of files held open.
func (o *Opened) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.files)
}

// open opens the file at real, a path resolvePath returned (root+path
// inside root when root is not ""), once, and returns the open file: the
// one already held when it is the same inode.
//
// With a root, the path is walked again by the kernel inside root only
// (openat2 RESOLVE_IN_ROOT: an absolute symlink or ".." never leaves it; no
// /proc magic links), whatever happened to it since it was resolved. The
// file is first opened O_PATH, so that nothing but a regular file is ever
// really opened (a FIFO would block, a device could act on open), then
// opened for reading through its own descriptor: the same inode.
func (o *Opened) open(real, root string) (*openFile, error) {
	pathFD, err := openPath(real, root)
	if err != nil {
		return nil, fileError(real, err)
	}
	defer unix.Close(pathFD)
	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil {
		return nil, fileError(real, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, newError(ErrNotELF, "%s is not a regular file", real)
	}
	id := FileID{Dev: st.Dev, Ino: st.Ino}

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("%s: the files of this resolution are closed", real)
	}
	if f := o.files[id]; f != nil {
		return f, nil
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pathFD), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fileError(real, err)
	}
	f := &openFile{file: os.NewFile(uintptr(fd), real), id: id, kernelPath: fmt.Sprintf("/proc/self/fd/%d", fd)}
	if err := f.check(fd, real); err != nil {
		f.file.Close()
		return nil, err
	}
	var sfs unix.Statfs_t
	f.overlay = unix.Fstatfs(fd, &sfs) == nil && sfs.Type == unix.OVERLAYFS_SUPER_MAGIC
	o.files[id] = f
	return f, nil
}

// check makes sure that the descriptor is the file opened O_PATH and that
// the kernel finds it again through kernelPath (a /proc that is not this
// process's would name another file).
func (f *openFile) check(fd int, real string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileError(real, err)
	}
	if (FileID{Dev: st.Dev, Ino: st.Ino}) != f.id || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: reopening the file gave another file", real)
	}
	if err := unix.Stat(f.kernelPath, &st); err != nil || (FileID{Dev: st.Dev, Ino: st.Ino}) != f.id {
		return fmt.Errorf("%s: the kernel cannot be given the open file as %s (is /proc this process's procfs?)", real, f.kernelPath)
	}
	return nil
}

// openPath opens real O_PATH, inside root when root is not "".
func openPath(real, root string) (int, error) {
	if root == "" {
		return unix.Open(real, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	rel, ok := strings.CutPrefix(real, root)
	if !ok || rel != "" && !strings.HasPrefix(rel, "/") {
		return -1, &fs.PathError{Op: "open", Path: real, Err: fmt.Errorf("not under %s", root)}
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	// EAGAIN: a rename or mount somewhere raced with a scoped lookup
	// through ".."; the kernel asks for a retry.
	for try := 0; ; try++ {
		fd, err := unix.Openat2(rootFD, "/"+strings.TrimPrefix(rel, "/"), how)
		if err == unix.EAGAIN && try < 100 {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: real, Err: err}
		}
		return fd, nil
	}
}
