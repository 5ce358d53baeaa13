package probe

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The dynamic loader's cache, /etc/ld.so.cache, written by ldconfig. Two
// layouts exist (glibc elf/cache.c, sysdeps/generic/dl-cache.h):
//
//   - new: "glibc-ld.so.cache" "1.1", nlibs u32, len_strings u32, flags u8,
//     3 bytes padding, extension_offset u32, 3 unused u32 (48 bytes), then
//     nlibs entries of {flags i32, key u32, value u32, osversion u32,
//     hwcap u64} (24 bytes). key (the soname) and value (the path) are
//     offsets of NUL-terminated strings from the start of this header.
//   - old, from glibc < 2.32 by default: "ld.so-1.7.0", nlibs u32 (16 bytes),
//     nlibs entries of 12 bytes, then the new layout, 8-byte aligned. Only the
//     new part is read.

const (
	ldCacheOldMagic   = "ld.so-1.7.0"
	ldCacheNewMagic   = "glibc-ld.so.cache1.1"
	ldCacheNewHeader  = 48
	ldCacheNewEntry   = 24
	ldCacheOldHeader  = 16
	ldCacheOldEntry   = 12
	ldCacheLittleEnd  = 2 // cache_file_new.flags: cache_file_new_flags_endian_little
	ldCacheBigEnd     = 3
	ldFlagELFLibc6    = 0x0003 // FLAG_ELF_LIBC6
	ldFlagX8664Lib64  = 0x0300 // FLAG_X8664_LIB64
	ldFlagTypeMask    = 0x00ff
	ldFlagRequireMask = 0xff00
)

// ldCacheEntry is one library of the cache.
type ldCacheEntry struct {
	Name  string // the soname, e.g. "libc.so.6"
	Path  string // where it is, e.g. "/lib/x86_64-linux-gnu/libc.so.6"
	Flags int32  // library type and ABI (FLAG_* of dl-cache.h)
	HWCap uint64 // nonzero for a glibc-hwcaps subdirectory variant
}

// isX8664 reports whether the entry is a 64-bit x86-64 glibc library, as
// "ldconfig -p" shows "(libc6,x86-64)".
func (e ldCacheEntry) isX8664() bool {
	return e.Flags&ldFlagTypeMask == ldFlagELFLibc6 && e.Flags&ldFlagRequireMask == ldFlagX8664Lib64
}

// parseLDCache parses the contents of ld.so.cache, in cache order.
func parseLDCache(data []byte) ([]ldCacheEntry, error) {
	if bytes.HasPrefix(data, []byte(ldCacheOldMagic)) {
		if len(data) < ldCacheOldHeader {
			return nil, fmt.Errorf("ld.so.cache: truncated old header")
		}
		nlibs := uint64(binary.LittleEndian.Uint32(data[12:]))
		start := (ldCacheOldHeader + nlibs*ldCacheOldEntry + 7) &^ 7
		if start >= uint64(len(data)) || !bytes.HasPrefix(data[start:], []byte(ldCacheNewMagic)) {
			return nil, fmt.Errorf("ld.so.cache: old format without the new format after it")
		}
		data = data[start:]
	}
	if !bytes.HasPrefix(data, []byte(ldCacheNewMagic)) {
		return nil, fmt.Errorf("ld.so.cache: unknown format (no %q magic)", ldCacheNewMagic)
	}
	if len(data) < ldCacheNewHeader {
		return nil, fmt.Errorf("ld.so.cache: truncated header")
	}
	if data[28] == ldCacheBigEnd {
		return nil, fmt.Errorf("ld.so.cache: big-endian cache, not for this machine")
	}
	le := binary.LittleEndian
	nlibs := uint64(le.Uint32(data[20:]))
	if ldCacheNewHeader+nlibs*ldCacheNewEntry > uint64(len(data)) {
		return nil, fmt.Errorf("ld.so.cache: %d entries do not fit in %d bytes", nlibs, len(data))
	}
	str := func(off uint32) (string, error) {
		if uint64(off) >= uint64(len(data)) {
			return "", fmt.Errorf("ld.so.cache: string offset 0x%x out of range", off)
		}
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			return "", fmt.Errorf("ld.so.cache: unterminated string at 0x%x", off)
		}
		return string(data[off : int(off)+end]), nil
	}
	entries := make([]ldCacheEntry, 0, nlibs)
	for i := uint64(0); i < nlibs; i++ {
		e := data[ldCacheNewHeader+i*ldCacheNewEntry:]
		name, err := str(le.Uint32(e[4:]))
		if err != nil {
			return nil, err
		}
		path, err := str(le.Uint32(e[8:]))
		if err != nil {
			return nil, err
		}
		entries = append(entries, ldCacheEntry{Name: name, Path: path,
			Flags: int32(le.Uint32(e[0:])), HWCap: le.Uint64(e[16:])})
	}
	return entries, nil
}
