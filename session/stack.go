package session

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/symtab"
)

// Frame is one frame of a hit's user call stack.
type Frame struct {
	Addr   uint64 // the address: frame 0 the probe's, the others return addresses
	Symbol string // the function (C++ demangled), "" when no symbol covers Addr
	// Offset is Addr's offset from the function's start; without a
	// symbol, its offset in Binary.
	Offset uint64
	Binary string // the mapped file holding Addr, "" when none does (JIT code, anonymous memory)
	// Unreliable: a frame below it is in a function that does not set up
	// a frame pointer (or has no symbol), so the kernel's frame-pointer
	// walk may have skipped a caller here or read garbage.
	Unreliable bool
}

// symbolizer turns a hit's addresses into frames through the process's
// executable mappings (finder.Process.Images) and the symbol tables of the
// mapped files, read once per (device, inode) and shared by every process.
type symbolizer struct {
	cache    *symtab.Cache
	procRoot string
}

func newSymbolizer(procRoot string) *symbolizer {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &symbolizer{cache: symtab.NewCache(symtab.DefaultMaxBytes), procRoot: procRoot}
}

// frames appends the frames of ips (innermost first) in process p to dst.
// atEntry: frame 0 is a function's first instruction, where the caller is
// known from the stack pointer (see stackReturnArg) whatever the function
// does with its frame pointer.
func (z *symbolizer) frames(p *finder.Process, ips []uint64, atEntry bool, dst []Frame) []Frame {
	unreliable := false
	for i, ip := range ips {
		f := Frame{Addr: ip, Unreliable: unreliable}
		im, ok := p.Images.Find(ip)
		if i > 0 && !ok {
			im, ok = p.Images.Find(ip - 1)
		}
		if ok {
			// A return address follows its call: the call's byte names
			// the caller (a call that ends a function would otherwise
			// name the next one).
			look := ip
			if i > 0 && look > im.Start {
				look--
			}
			off := look - im.Start + im.Offset
			sf := z.cache.Lookup(symtab.Key{Dev: im.File.Dev, Ino: im.File.Ino}, im.Path, off, z.opener(p.PID, im))
			f.Binary, f.Symbol = im.Path, sf.Symbol
			f.Offset = sf.Offset + (ip - look)
			if sf.Symbol == "" {
				f.Offset = ip - im.Start + im.Offset
			}
			if !sf.FramePointer && (i > 0 || !atEntry) {
				unreliable = true
			}
		} else if i > 0 || !atEntry {
			unreliable = true
		}
		dst = append(dst, f)
	}
	return dst
}

// opener opens the file of image im as process pid sees it: through
// /proc/PID/map_files (the very mapped file, even deleted or in another
// mount namespace), else through /proc/PID/root, else by its path. The
// file must be the mapped inode: a path may now name another file.
func (z *symbolizer) opener(pid int, im finder.Image) func() (*os.File, error) {
	return func() (*os.File, error) {
		for _, path := range []string{
			fmt.Sprintf("%s/%d/map_files/%x-%x", z.procRoot, pid, im.Start, im.End),
			fmt.Sprintf("%s/%d/root%s", z.procRoot, pid, im.Path),
			im.Path,
		} {
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Fstat(int(f.Fd()), &st) == nil && st.Ino == im.File.Ino {
				return f, nil
			}
			f.Close()
		}
		return nil, fmt.Errorf("%s (inode %d) of pid %d: cannot open it", im.Path, im.File.Ino, pid)
	}
}
