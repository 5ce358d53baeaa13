package probe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestSymbolsMatchBinutils checks names, sizes and file offsets of every
// function against readelf (symbol values + segment math on readelf -lW)
// and objdump -F (binutils' own file offsets).
func TestSymbolsMatchBinutils(t *testing.T) {
	fx := testFixtures(t)
	for _, tc := range []struct {
		name string
		path string
	}{
		{"pie", fx.pie},
		{"no-pie", fx.nopie},
		{"rdynamic", fx.rdynamic},
		{"rdynamic stripped", fx.rdynStrip},
		{"shared library", fx.lib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			syms, err := Symbols(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			type key struct {
				name   string
				offset uint64
			}
			ours := map[key]Symbol{}
			for _, s := range syms {
				ours[key{s.Name, s.Offset}] = s
			}
			loads := readelfLoads(t, tc.path)
			want := map[key]bool{}
			for _, f := range readelfFunctions(t, tc.path) {
				off, ok := segmentMath(loads, f.value)
				if !ok {
					t.Fatalf("%s: readelf value 0x%x of %s is in no LOAD segment", tc.path, f.value, f.name)
				}
				k := key{f.name, off}
				want[k] = true
				s, found := ours[k]
				switch {
				case !found:
					t.Errorf("%s at file offset 0x%x (readelf value 0x%x) missing from Symbols", f.name, off, f.value)
				case s.Size != f.size || s.IFunc != f.ifunc || s.Value != f.value:
					t.Errorf("%s: got size %d ifunc %v value 0x%x, readelf says %d %v 0x%x",
						f.name, s.Size, s.IFunc, s.Value, f.size, f.ifunc, f.value)
				}
			}
			for k := range ours {
				if !want[k] {
					t.Errorf("Symbols lists %s at 0x%x, readelf does not", k.name, k.offset)
				}
			}
			dump := objdumpByName(t, tc.path)
			checked := 0
			for _, s := range syms {
				if f, ok := dump[s.Name]; ok && f.addr == s.Value {
					checked++
					if f.fileOff != s.Offset {
						t.Errorf("%s: offset 0x%x, objdump -F says 0x%x", s.Name, s.Offset, f.fileOff)
					}
				}
			}
			if checked == 0 {
				t.Errorf("no symbol could be checked against objdump -F")
			}
			for i := 1; i < len(syms); i++ {
				a, b := syms[i-1], syms[i]
				if a.Offset > b.Offset || a.Offset == b.Offset && a.Name > b.Name {
					t.Errorf("Symbols not sorted by offset, name: %s@0x%x before %s@0x%x", a.Name, a.Offset, b.Name, b.Offset)
				}
			}
		})
	}
}

// TestSymbolsDetails checks what the oracle test cannot: which table a
// symbol came from, versions, and that no-pie offsets really differ from
// the addresses.
func TestSymbolsDetails(t *testing.T) {
	fx := testFixtures(t)
	find := func(t *testing.T, path, name string) []Symbol {
		t.Helper()
		syms, err := Symbols(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []Symbol
		for _, s := range syms {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	t.Run("no-pie offset is not the address", func(t *testing.T) {
		s := find(t, fx.nopie, "tgt_mix")
		if len(s) != 1 || s[0].Value < 0x400000 || s[0].Offset >= 0x400000 {
			t.Fatalf("tgt_mix in the no-pie binary: %+v", s)
		}
	})
	t.Run("static function only with .symtab", func(t *testing.T) {
		if s := find(t, fx.pie, "tgt_static"); len(s) != 1 || s[0].Dynamic {
			t.Errorf("tgt_static in pie: %+v", s)
		}
		if s := find(t, fx.rdynStrip, "tgt_static"); len(s) != 0 {
			t.Errorf("tgt_static in the stripped binary: %+v", s)
		}
	})
	t.Run("stripped rdynamic keeps the same offsets", func(t *testing.T) {
		a, b := find(t, fx.rdynamic, "tgt_mix"), find(t, fx.rdynStrip, "tgt_mix")
		if len(a) != 1 || len(b) != 1 || a[0].Offset != b[0].Offset || !b[0].Dynamic {
			t.Errorf("tgt_mix: unstripped %+v, stripped %+v", a, b)
		}
	})
	t.Run("ifunc", func(t *testing.T) {
		if s := find(t, fx.pie, "tgt_ifunc"); len(s) != 1 || !s[0].IFunc {
			t.Errorf("tgt_ifunc: %+v", s)
		}
	})
	t.Run("versions", func(t *testing.T) {
		s := find(t, fx.lib, "lt_func")
		if len(s) != 2 {
			t.Fatalf("lt_func: want two versions, got %+v", s)
		}
		got := map[string]bool{s[0].VersionedName(): true, s[1].VersionedName(): true}
		if !got["lt_func@LT_1.0"] || !got["lt_func@@LT_2.0"] {
			t.Errorf("lt_func versions: %+v", s)
		}
	})
	t.Run("libc default memcpy is an ifunc", func(t *testing.T) {
		var def []Symbol
		for _, s := range find(t, libcPath(t), "memcpy") {
			if !s.Hidden {
				def = append(def, s)
			}
		}
		if len(def) != 1 || !def[0].IFunc || !def[0].Dynamic {
			t.Errorf("memcpy in libc: %+v", def)
		}
	})
}

func TestSymbolsErrors(t *testing.T) {
	fx := testFixtures(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "x.txt")
	if err := os.WriteFile(text, []byte("hello, not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An aarch64 ELF: the test binary with e_machine patched.
	arm := filepath.Join(dir, "arm")
	data, err := os.ReadFile(fx.pie)
	if err != nil {
		t.Fatal(err)
	}
	data[18], data[19] = 183, 0 // EM_AARCH64, little-endian
	if err := os.WriteFile(arm, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// A static binary stripped of everything: neither table.
	bare := filepath.Join(dir, "bare")
	data[18], data[19] = 62, 0 // back to EM_X86_64
	if err := os.WriteFile(bare, data, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "strip", "--strip-all", "--remove-section=.dynsym", "--remove-section=.dynstr", "-o", bare+".s", bare)

	for _, tc := range []struct {
		name string
		path string
		want error
		msg  string
	}{
		{"missing file", "/nope", fs.ErrNotExist, "/nope: no such file"},
		{"text file", text, ErrNotELF, text + " is not an ELF file"},
		{"directory", dir, ErrNotELF, dir + " is not a regular file"},
		{"wrong machine", arm, ErrWrongArch, arm + " is an ELF file for EM_AARCH64 (ELFCLASS64); only x86-64 files can be probed"},
		{"no tables", bare + ".s", ErrNoSymbols, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Symbols(tc.path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Errorf("message %q, want %q", err.Error(), tc.msg)
			}
		})
	}
}
