package symtab

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLookup feeds Lookup arbitrary files: a crafted ELF must give a
// negative entry or a table, never a panic.
func FuzzLookup(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("#!/bin/sh\n"))
	for _, path := range []string{"/bin/true", libc} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b[:min(len(b), 4096)]) // the headers, with the tables cut off
		}
	}
	if b, err := os.ReadFile("/bin/true"); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "elf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c := NewCache(1 << 20)
		c.debugDir = "" // the host's debug files are not the input
		for _, off := range []uint64{0, 0x40, 0x1000, uint64(len(data) / 2), uint64(len(data)), 1 << 63, ^uint64(0)} {
			fr := c.Lookup(Key{Ino: 1}, path, off, func() (*os.File, error) { return os.Open(path) })
			if fr.Binary != path || fr.Symbol == "" && fr.Offset != off {
				t.Errorf("Lookup(0x%x) = %+v", off, fr)
			}
		}
	})
}
