package probe

import (
	"bytes"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Why this file exists: the kernel does not check a uprobe offset. A
// breakpoint written into the middle of an instruction is armed anyway and
// corrupts the traced process. An offset other than a function's entry is
// therefore accepted only when decoding the function from its entry lands
// exactly on it.

// boundaryError explains why rel (an offset from the start of fn) is not a
// proven instruction boundary; nil means it is one.
func (img *elfImage) boundaryError(fn Symbol, rel uint64) error {
	if rel == 0 {
		return nil
	}
	switch {
	case fn.Size == 0:
		return fmt.Errorf("the size of %s is unknown, so its instructions cannot be decoded", fn.Name)
	case rel >= fn.Size:
		return fmt.Errorf("+0x%x is past the end of %s (0x%x bytes)", rel, fn.Name, fn.Size)
	}
	code, err := img.readCode(fn)
	if err != nil {
		return err
	}
	starts, err := instructionStarts(code, rel)
	if err != nil {
		return fmt.Errorf("%s+0x%x: %v", fn.Name, starts[len(starts)-1], err)
	}
	last := starts[len(starts)-1]
	if last == rel {
		return nil
	}
	prev := starts[len(starts)-2]
	return fmt.Errorf("+0x%x is inside the instruction at %s+0x%x; the nearest boundaries are +0x%x and +0x%x",
		rel, fn.Name, prev, prev, last)
}

// instructionStarts decodes code linearly from its first byte and returns
// the offsets where instructions start, up to the first one at or past
// limit. On a decoding failure it returns the starts so far (the last one is
// where decoding failed) and the error.
func instructionStarts(code []byte, limit uint64) ([]uint64, error) {
	starts := []uint64{0}
	for pos := uint64(0); pos < limit; {
		n, err := instructionLen(code[pos:])
		if err != nil {
			return starts, err
		}
		pos += uint64(n)
		starts = append(starts, pos)
	}
	return starts, nil
}

var (
	endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}
	endbr32 = []byte{0xf3, 0x0f, 0x1e, 0xfb}
)

// instructionLen returns the length of the x86-64 instruction at the start
// of b. x86asm does not know every instruction; where it does not, it
// reports a one-byte "prefix" pseudo-instruction (Op == 0) instead of an
// error. Such a length would be a guess, so it is an error here.
func instructionLen(b []byte) (int, error) {
	// CET's endbr64 starts most functions of distribution binaries and is
	// one of the instructions x86asm does not know.
	if bytes.HasPrefix(b, endbr64) || bytes.HasPrefix(b, endbr32) {
		return 4, nil
	}
	inst, err := x86asm.Decode(b, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot decode the instruction (% x...): %v", head(b, 6), err)
	}
	if inst.Op == 0 || inst.Len == 0 {
		return 0, fmt.Errorf("cannot decode the instruction (% x...)", head(b, 6))
	}
	return inst.Len, nil
}

func head(b []byte, n int) []byte {
	return b[:min(len(b), n)]
}
