package finder

import (
	"cmp"
	"slices"
	"strings"

	"github.com/uprobectl/uprobectl/internal/procfs"
)

// Image is one executable file mapping of a process: what a stack frame's
// address is symbolized through (with --stacks; the probed files' own
// mappings are Process.Maps).
type Image struct {
	Start, End uint64 // the addresses [Start, End)
	Offset     uint64 // the file offset of Start
	File       FileID
	Path       string // as the process's mount namespace names it
}

// Images are a process's executable mappings, sorted by Start, not
// overlapping. A value is never changed once stored in a Process (the
// hit path reads it without a lock): With returns a new one.
type Images []Image

// Find returns the image holding addr.
func (im Images) Find(addr uint64) (Image, bool) {
	i, _ := slices.BinarySearchFunc(im, addr, func(m Image, a uint64) int {
		switch {
		case m.End <= a:
			return -1
		case m.Start > a:
			return 1
		}
		return 0
	})
	if i < len(im) && im[i].Start <= addr && addr < im[i].End {
		return im[i], true
	}
	return Image{}, false
}

// With returns a copy of im with m added; mappings m overlaps are gone (a
// new mmap over a range replaces what was there: munmap is not reported).
func (im Images) With(m Image) Images {
	out := make(Images, 0, len(im)+1)
	for _, old := range im {
		if old.End <= m.Start || old.Start >= m.End {
			out = append(out, old)
		}
	}
	i, _ := slices.BinarySearchFunc(out, m.Start, func(o Image, start uint64) int {
		if o.Start < start {
			return -1
		}
		return 1
	})
	return slices.Insert(out, i, m)
}

// ImageSource is a Source that can also list every executable file
// mapping of a process (ProcSource can): the tracker then keeps Images
// for stacks (TrackerConfig.KeepImages).
type ImageSource interface {
	Images(pid int) (Images, error)
}

// Images lists pid's executable file mappings.
func (s *ProcSource) Images(pid int) (Images, error) {
	all, err := s.fs.Maps(pid)
	if err != nil {
		return nil, err
	}
	return imagesOf(all), nil
}

// imagesOf keeps the executable file mappings of all, sorted by start.
func imagesOf(all []procfs.Mapping) Images {
	var im Images
	for _, m := range all {
		if m.Ino == 0 || !strings.Contains(m.Perms, "x") {
			continue
		}
		im = append(im, Image{Start: m.Start, End: m.End, Offset: m.Offset,
			File: FileID{Dev: m.Dev, Ino: m.Ino}, Path: strings.TrimSuffix(m.Path, " (deleted)")})
	}
	slices.SortFunc(im, func(a, b Image) int { return cmp.Compare(a.Start, b.Start) })
	return im
}
