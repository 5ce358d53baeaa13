package probe

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestInstructionStartsMatchObjdump decodes every function of the fixtures
// and of this machine's libc and compares the instruction boundaries with
// objdump's. Where our decoder gives up, the offsets past that point are
// unprovable (refused), which is safe; a boundary objdump does not have
// would not be.
func TestInstructionStartsMatchObjdump(t *testing.T) {
	fx := testFixtures(t)
	for _, tc := range []struct {
		name string
		path string
	}{
		{"pie", fx.pie},
		{"no-pie", fx.nopie},
		{"shared library", fx.lib},
		{"libc", libcPath(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := openELF(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			syms, err := img.symbols()
			if err != nil {
				t.Fatal(err)
			}
			// objdump's instructions by address, across all labels.
			insns := map[uint64]bool{}
			for _, f := range objdumpFunctions(t, tc.path) {
				for _, a := range f.insns {
					insns[a] = true
				}
			}
			var compared, gaveUp int
			for _, s := range syms {
				if s.Size == 0 || !insns[s.Value] {
					continue // objdump is not in step at this function's entry
				}
				code, err := img.readCode(s)
				if err != nil {
					t.Fatal(err)
				}
				starts, err := instructionStarts(code, s.Size)
				if err != nil {
					gaveUp++
				}
				compared++
				var prev uint64
				for _, rel := range starts {
					if rel >= s.Size {
						break
					}
					if !insns[s.Value+rel] {
						t.Fatalf("%s: we decode an instruction at +0x%x, objdump does not", s.Name, rel)
					}
					// Nothing objdump has between two of ours may be skipped.
					for a := prev + 1; a < rel; a++ {
						if insns[s.Value+a] {
							t.Fatalf("%s: objdump has an instruction at +0x%x that we skip", s.Name, a)
						}
					}
					prev = rel
				}
			}
			if compared == 0 {
				t.Fatal("no function compared")
			}
			t.Logf("%d functions compared, decoder gave up in %d", compared, gaveUp)
		})
	}
}

func TestInstructionLen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  []byte
		want  int
		fails bool
	}{
		{"endbr64 (x86asm does not know it)", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x55}, 4, false},
		{"push rbp", []byte{0x55}, 1, false},
		{"mov rbp,rsp", []byte{0x48, 0x89, 0xe5}, 3, false},
		{"5-byte nop", []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}, 5, false},
		{"evex vmovups", []byte{0x62, 0xf1, 0x7c, 0x48, 0x10, 0x06}, 6, false},
		{"prefix before an unknown opcode", []byte{0xf3, 0x0f, 0x1e, 0xfc}, 0, true},
		{"truncated", []byte{0x48, 0x89}, 0, true},
		{"empty", nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := instructionLen(tc.code)
			if tc.fails {
				if err == nil {
					t.Fatalf("got length %d, want an error", n)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("got %d, %v; want %d", n, err, tc.want)
			}
		})
	}
}

// TestSafeOffsets resolves offsets inside tgt_mix taken from objdump: an
// instruction start is accepted, the byte after it is refused unless forced,
// both as SYMBOL+OFF and as a raw file offset.
func TestSafeOffsets(t *testing.T) {
	fx := testFixtures(t)
	for _, bin := range []struct {
		name string
		path string
	}{{"pie", fx.pie}, {"no-pie", fx.nopie}} {
		f, ok := objdumpByName(t, bin.path)["tgt_mix"]
		if !ok || len(f.insns) < 3 {
			t.Fatalf("%s: objdump shows no tgt_mix", bin.path)
		}
		// A multi-byte instruction that is not the first.
		var boundary, inside uint64
		for i := 1; i+1 < len(f.insns); i++ {
			if f.insns[i+1]-f.insns[i] > 1 {
				boundary, inside = f.insns[i]-f.addr, f.insns[i]-f.addr+1
				break
			}
		}
		if boundary == 0 {
			t.Fatalf("%s: no multi-byte instruction in tgt_mix", bin.path)
		}
		size := uint64(0)
		syms, _ := Symbols(bin.path)
		for _, s := range syms {
			if s.Name == "tgt_mix" {
				size = s.Size
			}
		}
		for _, tc := range []struct {
			name  string
			loc   string
			force bool
			want  error  // nil: accepted
			msg   string // part of the message
			off   uint64 // expected file offset when accepted
		}{
			{"entry", "tgt_mix", false, nil, "", f.fileOff},
			{"symbol+boundary", fmt.Sprintf("tgt_mix+0x%x", boundary), false, nil, "", f.fileOff + boundary},
			{"symbol+boundary decimal", fmt.Sprintf("tgt_mix+%d", boundary), false, nil, "", f.fileOff + boundary},
			{"symbol+inside", fmt.Sprintf("tgt_mix+0x%x", inside), false, ErrUnsafeOffset,
				fmt.Sprintf("+0x%x is inside the instruction at tgt_mix+0x%x", inside, boundary), 0},
			{"symbol+inside forced", fmt.Sprintf("tgt_mix+0x%x", inside), true, nil, "", f.fileOff + inside},
			{"symbol+past end", fmt.Sprintf("tgt_mix+0x%x", size+4), false, ErrUnsafeOffset, "past the end of tgt_mix", 0},
			{"file offset entry", fmt.Sprintf("0x%x", f.fileOff), false, nil, "", f.fileOff},
			{"file offset boundary", fmt.Sprintf("0x%x", f.fileOff+boundary), false, nil, "", f.fileOff + boundary},
			{"file offset inside", fmt.Sprintf("0x%x", f.fileOff+inside), false, ErrUnsafeOffset,
				fmt.Sprintf("offset 0x%x is inside function tgt_mix (0x%x..0x%x), not a proven instruction boundary",
					f.fileOff+inside, f.fileOff, f.fileOff+size), 0},
			{"file offset inside forced", fmt.Sprintf("0x%x", f.fileOff+inside), true, nil, "", f.fileOff + inside},
			{"file offset return inside", fmt.Sprintf("0x%x%%return", f.fileOff+boundary), false, ErrUnsafeOffset,
				"a %return probe must be on a function entry", 0},
			{"file offset return entry", fmt.Sprintf("0x%x%%return", f.fileOff), false, nil, "", f.fileOff},
			{"file offset in the ELF header", "0x10", true, ErrUnsafeOffset, "is not in an executable segment", 0},
			{"file offset past the file", "0x7fffffff", true, ErrUnsafeOffset, "is not in an executable segment", 0},
		} {
			t.Run(bin.name+"/"+tc.name, func(t *testing.T) {
				spec, err := ParseSpec(bin.path + ":" + tc.loc)
				if err != nil {
					t.Fatal(err)
				}
				targets, err := Resolve(spec, ResolveOptions{Force: tc.force})
				if tc.want != nil {
					if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
						t.Fatalf("got %v (%d targets), want %v containing %q", err, len(targets), tc.want, tc.msg)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(targets) != 1 || targets[0].Offset != tc.off {
					t.Fatalf("got %+v, want one target at 0x%x", targets, tc.off)
				}
			})
		}
	}
}
