package finder

import (
	"maps"

	"golang.org/x/sys/unix"
)

// FileSet is the set of probed files as the kernel sees them. It is
// immutable: a file armed later (a replaced library) gives a new set.
//
// The kernel binds a uprobe to the inode the path resolves to *underneath*
// overlayfs (the lower or upper layer's file), while /proc/PID/maps and the
// side-band's mmap records show each overlay mount's own view of it: its
// own anonymous device (major 0) and, on one filesystem, the real inode's
// number. Two containers of one image are two overlay mounts over the same
// lower file, so a probe set through one container's path fires in both.
// A file on overlayfs therefore also matches, as a "view", any mapping with
// its inode number on another anonymous device; a hit proves the match (the
// hit's trace event is bound to the probed inode), and Learn records a view
// that only a hit revealed.
type FileSet struct {
	files map[FileID]bool
	// views: inode number -> the probed overlay file with that number.
	views map[uint64]FileID
	// learned: mappings a hit proved to be views of a probed file.
	learned map[FileID]FileID
}

// NewFileSet returns the set of files; overlay lists those among them that
// are on overlayfs.
func NewFileSet(files []FileID, overlay []FileID) *FileSet {
	return (&FileSet{}).With(files, overlay)
}

// With returns a copy of the set with more files.
func (fs *FileSet) With(files []FileID, overlay []FileID) *FileSet {
	next := fs.clone()
	for _, f := range files {
		next.files[f] = true
	}
	for _, f := range overlay {
		next.files[f] = true
		next.views[f.Ino] = f
	}
	return next
}

// Learn returns a copy of the set in which id is a view of probed: a hit
// from a mapping of id on probed's trace event proved it.
func (fs *FileSet) Learn(id, probed FileID) *FileSet {
	next := fs.clone()
	next.learned[id] = probed
	return next
}

func (fs *FileSet) clone() *FileSet {
	next := &FileSet{files: map[FileID]bool{}, views: map[uint64]FileID{}, learned: map[FileID]FileID{}}
	maps.Copy(next.files, fs.files)
	maps.Copy(next.views, fs.views)
	maps.Copy(next.learned, fs.learned)
	return next
}

// Match tells whether a mapping of id is a probed file: the probed file it
// is (itself, or the probed file it is a view of), and whether it is a view.
func (fs *FileSet) Match(id FileID) (probed FileID, view, ok bool) {
	if fs == nil {
		return FileID{}, false, false
	}
	if fs.files[id] {
		return id, false, true
	}
	if p, ok := fs.learned[id]; ok {
		return p, true, true
	}
	if unix.Major(id.Dev) == 0 {
		if p, ok := fs.views[id.Ino]; ok {
			return p, true, true
		}
	}
	return FileID{}, false, false
}
