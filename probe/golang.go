package probe

import (
	"debug/buildinfo"
	"encoding/binary"
	"fmt"
	"go/version"
	"slices"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Why this file exists: a function of a Go binary cannot be probed like a C
// function, for three reasons (DESIGN.md §3).
//
//   - A uretprobe replaces the return address on the stack with the
//     kernel's trampoline. Go reads return addresses to copy a growing stack
//     and for tracebacks (GC, panics, profiling), and aborts on one it does
//     not know: "fatal error: unknown caller pc". So %return on a Go binary
//     never installs a uretprobe: it becomes one entry-style probe on every
//     RET instruction of the function, reading $retval from RAX, the first
//     result register. That needs every return to go through a RET of the
//     function: one that leaves by a tail call (a JMP to another function)
//     or whose code cannot be decoded is refused, --force or not.
//   - A Go function starts with a stack-growth check (CMP RSP, [R14+0x10];
//     JBE to a call of runtime.morestack at the end of the function, which
//     grows the stack and jumps back to the first instruction). A probe on
//     the first instruction fires twice for a call that grew the stack, so
//     the entry probe goes on the instruction right after the check's
//     conditional jump (proven a boundary by decoding from the entry). The
//     check does not touch the argument registers or RSP, so arguments and
//     $stackN read the same there. A function without it (a leaf, NOSPLIT)
//     keeps its entry.
//   - Go's register ABI (ABIInternal, go1.17 on amd64) passes integer
//     arguments in RAX RBX RCX RDI RSI R8 R9 R10 R11: that is what arg1..arg9
//     name in a Go binary.
//
// A Go binary is recognized by its .go.buildinfo or .gopclntab section.

// goArgRegisters are Go's ABIInternal integer argument registers, in order.
var goArgRegisters = []string{"%ax", "%bx", "%cx", "%di", "%si", "%r8", "%r9", "%r10", "%r11"}

var (
	// goABI is Go's register ABI. A parameter that does not fit in the
	// registers left is passed on the stack whole, so past them nothing
	// is numbered by position.
	goABI = &argABI{regs: goArgRegisters, tooFar: func(s string, n int) error {
		return fmt.Errorf("%s: Go's register ABI passes at most 9 integer words in registers (arg1..arg9 are %%ax %%bx %%cx %%di %%si %%r8 %%r9 %%r10 %%r11); a parameter that does not fit goes on the stack: at the function entry read it with $stackN", s)
	}}
	// goStackABI is Go before 1.17 (ABI0): everything on the stack.
	goStackABI = &argABI{tooFar: func(s string, n int) error {
		return fmt.Errorf("%s: this Go binary was built by Go before 1.17, which passes arguments on the stack, not in registers: at the function entry read them with $stack1, $stack2, ...", s)
	}}
)

// goInfo is what probing needs to know of a Go binary.
type goInfo struct {
	isGo    bool
	version string // "go1.26.8"; "" when the binary does not say
}

// regABI reports whether the binary's Go functions take arguments and
// return results in registers (go1.17 and later; assumed when unknown).
func (g goInfo) regABI() bool {
	v := g.version
	if i := strings.IndexByte(v, ' '); i >= 0 { // "devel go1.27-abcdef ..."
		v = v[i+1:]
	}
	if !version.IsValid(version.Lang(v)) {
		return true
	}
	return version.Compare(version.Lang(v), "go1.17") >= 0
}

// argABI returns how argN reads in the file.
func (g goInfo) argABI() *argABI {
	switch {
	case !g.isGo:
		return cABI
	case g.regABI():
		return goABI
	}
	return goStackABI
}

// goInfo tells whether the image was built by the Go toolchain.
func (img *elfImage) goInfo() goInfo {
	if img.elf.Section(".go.buildinfo") == nil && img.elf.Section(".gopclntab") == nil &&
		img.elf.Section(".data.rel.ro.gopclntab") == nil {
		return goInfo{}
	}
	g := goInfo{isGo: true}
	if bi, err := buildinfo.Read(img.file); err == nil {
		g.version = bi.GoVersion
	}
	return g
}

// IsGoBinary reports whether the ELF file at path was built by the Go
// toolchain (it has a .go.buildinfo or .gopclntab section): its %return
// probes are probes on RET instructions, its entry probes go after the
// stack-growth check, and argN names Go's argument registers. Errors are
// those of [Symbols].
func IsGoBinary(path string) (bool, error) {
	img, err := openELF(path)
	if err != nil {
		return false, err
	}
	defer img.Close()
	return img.goInfo().isGo, nil
}

// KernelOffsets returns the file offsets the kernel is given for t: its
// ReturnSites when it has them, else its Offset.
func (t Target) KernelOffsets() []uint64 {
	if len(t.ReturnSites) > 0 {
		return t.ReturnSites
	}
	return []uint64{t.Offset}
}

// RetvalInRegister returns args with $retval read from RAX, Go's first
// result register, for the probes of a return probe defined on RET
// instructions (Target.ReturnSites): the kernel gives $retval to uretprobes
// only. The argument keeps its name and type.
func RetvalInRegister(args []Arg) []Arg {
	out := slices.Clone(args)
	for i, a := range out {
		// An immediate string may spell "$retval" as text.
		if !strings.HasPrefix(a.Expr, `\`) {
			out[i].Expr = strings.ReplaceAll(a.Expr, "$retval", "%ax")
		}
	}
	return out
}

// placeGo puts t, a target on function fn of a Go binary, where it is
// safe and fires once per call: a %return on fn's RET instructions, an
// entry after the stack-growth check. An offset inside the function
// (SYMBOL+OFF) is left where the user put it. It returns why a %return
// cannot be done, or "".
func (img *elfImage) placeGo(t *Target, fn Symbol, spec *Spec, g goInfo, syms []Symbol) string {
	if spec.Return {
		if !g.regABI() {
			return fmt.Sprintf("this Go binary (%s) returns results on the stack (Go before 1.17); probe the entry instead", g.version)
		}
		sites, err := img.goReturnSites(fn, syms)
		if err != nil {
			return err.Error()
		}
		t.Offset = fn.Offset
		t.ReturnSites = sites
		return ""
	}
	if t.Offset != fn.Offset || fn.Size == 0 {
		return ""
	}
	code, err := img.readCode(fn)
	if err != nil {
		return "" // the entry, as for any function
	}
	t.Offset = fn.Offset + goStackCheckEnd(code)
	return ""
}

// goReturnError is the refusal of a %return on function name (or an
// offset) of a Go binary.
func goReturnError(name, path, why string) error {
	return newError(ErrUnsafeOffset,
		"%%return on %s in %s cannot be done: %s; a uretprobe would crash a Go program (\"fatal error: unknown caller pc\"), so only the function's RET instructions are probed, and --force does not change that",
		name, path, why)
}

// goEntry returns the function whose entry is the file offset off.
func goEntry(syms []Symbol, off uint64) (Symbol, bool) {
	for _, s := range syms {
		if s.Offset == off && s.Size > 0 {
			return s, true
		}
	}
	return Symbol{}, false
}

// decodeInst decodes the instruction at the start of b, with the same
// rules as instructionLen (endbr64 known, x86asm's guesses refused).
func decodeInst(b []byte) (x86asm.Inst, error) {
	n, err := instructionLen(b)
	if err != nil {
		return x86asm.Inst{}, err
	}
	if n == 4 && (hasPrefix(b, endbr64) || hasPrefix(b, endbr32)) {
		return x86asm.Inst{Op: x86asm.NOP, Len: 4}, nil
	}
	return x86asm.Decode(b, 64)
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

// goStackCheckEnd returns the offset, from the entry of the function whose
// code this is, of the first instruction after its stack-growth check, or
// 0 when it has no check this recognizes. The forms are those of
// cmd/internal/obj/x86's stacksplit, after an optional load of g from TLS
// (ABI0 functions):
//
//	CMP RSP, [g+16]                               small frames
//	LEA R12, [RSP-N]; CMP R12, [g+16]             large frames
//	MOV R12, RSP; SUB R12, N; JB m; CMP R12, [g+16] huge frames
//
// each followed by JBE m (g+24, stackguard1, for functions run on the
// system stack). It is only taken for one when m is the morestack call
// that jumps back to the entry: then the instruction after JBE runs
// exactly once per call.
func goStackCheckEnd(code []byte) uint64 {
	g := x86asm.R14
	var tmp x86asm.Reg // the register holding SP or SP-N
	pos := 0
	for n := 0; n < 6 && pos < len(code); n++ {
		inst, err := decodeInst(code[pos:])
		if err != nil {
			return 0
		}
		next := pos + inst.Len
		a0, a1 := inst.Args[0], inst.Args[1]
		switch inst.Op {
		case x86asm.MOV:
			if m, ok := a1.(x86asm.Mem); ok && m.Segment == x86asm.FS && n == 0 {
				g, _ = a0.(x86asm.Reg) // g from TLS
			} else if a1 == x86asm.RSP {
				tmp, _ = a0.(x86asm.Reg)
			} else {
				return 0
			}
		case x86asm.LEA:
			if m, ok := a1.(x86asm.Mem); !ok || m.Base != x86asm.RSP || m.Index != 0 {
				return 0
			}
			tmp, _ = a0.(x86asm.Reg)
		case x86asm.SUB:
			if _, ok := a1.(x86asm.Imm); !ok || a0 != tmp || tmp == 0 {
				return 0
			}
		case x86asm.JB:
			// The underflow check of huge frames jumps to the same place.
		case x86asm.CMP:
			m, ok := a1.(x86asm.Mem)
			if !ok || g == 0 || m.Base != g || m.Index != 0 || (m.Disp != 16 && m.Disp != 24) ||
				(a0 != x86asm.RSP && (tmp == 0 || a0 != tmp)) {
				return 0
			}
			jbe, err := decodeInst(code[next:])
			rel, isRel := jbe.Args[0].(x86asm.Rel)
			if err != nil || jbe.Op != x86asm.JBE || !isRel {
				return 0
			}
			end := next + jbe.Len
			if !goMorestackAt(code, end+int(rel)) {
				return 0
			}
			return uint64(end)
		default:
			return 0
		}
		pos = next
	}
	return 0
}

// goMorestackAt reports whether the code at target (an offset in code) is
// a morestack block: register spills, a direct CALL, reloads, and a JMP
// back to the entry (offset 0).
func goMorestackAt(code []byte, target int) bool {
	if target <= 0 || target >= len(code) {
		return false
	}
	called := false
	for pos, n := target, 0; pos < len(code) && n < 64; n++ {
		inst, err := decodeInst(code[pos:])
		if err != nil {
			return false
		}
		pos += inst.Len
		rel, isRel := inst.Args[0].(x86asm.Rel)
		switch inst.Op {
		case x86asm.MOV, x86asm.MOVUPS, x86asm.MOVSD_XMM, x86asm.MOVSS, x86asm.NOP, x86asm.PUSH, x86asm.POP:
		case x86asm.CALL:
			called = called || isRel
		case x86asm.JMP:
			return called && isRel && pos+int(rel) == 0
		default:
			return false
		}
	}
	return false
}

// goReturnSites returns the file offsets of the RET instructions of fn,
// decoded linearly from its entry, once it is proven that the function
// returns only through them: every jump stays inside it (a switch's jump
// table included, whose entries are read), and every instruction decodes.
func (img *elfImage) goReturnSites(fn Symbol, syms []Symbol) ([]uint64, error) {
	if fn.Size == 0 {
		return nil, fmt.Errorf("the size of %s is unknown, so its instructions cannot be decoded", fn.Name)
	}
	code, err := img.readCode(fn)
	if err != nil {
		return nil, err
	}
	var rets []uint64
	starts := map[uint64]bool{}
	type table struct {
		at    int    // the JMP
		addr  uint64 // the table's address
		count uint64
	}
	var tables []table
	var insts []x86asm.Inst
	var offs []int
	for pos := 0; pos < len(code); {
		inst, err := decodeInst(code[pos:])
		if err != nil {
			return nil, fmt.Errorf("%s+0x%x: %v", fn.Name, pos, err)
		}
		starts[uint64(pos)] = true
		insts, offs = append(insts, inst), append(offs, pos)
		next := pos + inst.Len
		switch inst.Op {
		case x86asm.RET:
			rets = append(rets, fn.Offset+uint64(pos))
		case x86asm.LRET, x86asm.LJMP, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.SYSRET:
			return nil, fmt.Errorf("%s+0x%x is a %s, which leaves the function without a RET", fn.Name, pos, inst.Op)
		case x86asm.JMP, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JCXZ, x86asm.JE, x86asm.JECXZ,
			x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS,
			x86asm.JO, x86asm.JP, x86asm.JRCXZ, x86asm.JS, x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
			if rel, ok := inst.Args[0].(x86asm.Rel); ok {
				if to := next + int(rel); to < 0 || to >= len(code) {
					return nil, fmt.Errorf("%s+0x%x jumps out of the function, to %s (a tail call: it returns through another function's RET)",
						fn.Name, pos, nameAt(syms, fn, int64(to)))
				}
				break
			}
			t, ok := img.goJumpTable(fn, insts, offs)
			if !ok {
				return nil, fmt.Errorf("%s+0x%x is an indirect jump (%s) that is not a jump table it can read: it may be a tail call", fn.Name, pos, inst)
			}
			tables = append(tables, table{at: pos, addr: t.addr, count: t.count})
		}
		pos = next
	}
	for _, t := range tables {
		entries := make([]byte, 8*t.count)
		off, ok := img.fileOffset(t.addr)
		if ok {
			_, err = img.file.ReadAt(entries, int64(off))
		}
		if !ok || err != nil {
			return nil, fmt.Errorf("the jump table of %s+0x%x at 0x%x cannot be read", fn.Name, t.at, t.addr)
		}
		for i := range t.count {
			to := binary.LittleEndian.Uint64(entries[8*i:]) - fn.Value
			if !starts[to] {
				return nil, fmt.Errorf("the jump table of %s+0x%x has an entry (0x%x) that is not an instruction of the function", fn.Name, t.at, to+fn.Value)
			}
		}
	}
	if len(rets) == 0 {
		return nil, fmt.Errorf("%s has no RET instruction (it never returns: it panics, exits or loops forever)", fn.Name)
	}
	return rets, nil
}

// goJumpTable recognizes the jump table the Go compiler makes of a switch
// (ssagen, BlockAMD64JUMPTABLE), ending with the instruction it reads:
//
//	CMP idx, N-1; JA default   the bounds check
//	...
//	LEA tab, [RIP+table]
//	JMP [tab+idx*8]
func (img *elfImage) goJumpTable(fn Symbol, insts []x86asm.Inst, offs []int) (struct{ addr, count uint64 }, bool) {
	var out struct{ addr, count uint64 }
	k := len(insts) - 1
	m, ok := insts[k].Args[0].(x86asm.Mem)
	if !ok || k < 3 || m.Segment != 0 || m.Base == 0 || m.Index == 0 || m.Scale != 8 || m.Disp != 0 {
		return out, false
	}
	lea := insts[k-1]
	lm, ok := lea.Args[1].(x86asm.Mem)
	if lea.Op != x86asm.LEA || lea.Args[0] != m.Base || !ok || lm.Base != x86asm.RIP || lm.Index != 0 {
		return out, false
	}
	out.addr = fn.Value + uint64(offs[k]) + uint64(lm.Disp) // RIP-relative: from the JMP
	for j := k - 1; j >= 1 && j >= k-8; j-- {
		jcc, cmp := insts[j], insts[j-1]
		if jcc.Op != x86asm.JA && jcc.Op != x86asm.JAE {
			continue
		}
		r, _ := cmp.Args[0].(x86asm.Reg)
		imm, ok := cmp.Args[1].(x86asm.Imm)
		if cmp.Op != x86asm.CMP || !ok || reg64(r) != reg64(m.Index) || imm < 0 || imm >= 1<<12 {
			return out, false
		}
		out.count = uint64(imm)
		if jcc.Op == x86asm.JA {
			out.count++
		}
		return out, out.count > 0
	}
	return out, false
}

// reg64 maps a 32-bit general register to its 64-bit name.
func reg64(r x86asm.Reg) x86asm.Reg {
	if r >= x86asm.EAX && r <= x86asm.R15L {
		return r - x86asm.EAX + x86asm.RAX
	}
	return r
}

// nameAt names the code at rel (an offset from fn's entry) for a message:
// the function that starts there, or an address.
func nameAt(syms []Symbol, fn Symbol, rel int64) string {
	off := int64(fn.Offset) + rel
	for _, s := range syms {
		if int64(s.Offset) == off {
			return s.Name
		}
	}
	return fmt.Sprintf("file offset 0x%x", off)
}

// symbolPattern returns what to match for the symbol the user wrote, and
// whether it is a glob. Go names hold glob characters: a word that is
// exactly the name of a function means that function ('main.(*T).m',
// 'main.Map[go.shape.int]'), and "[...]", as Go prints an instance of a
// generic function in tracebacks, means any type arguments
// ('main.Map[...]' is every instance of main.Map).
func symbolPattern(syms []Symbol, want string, glob bool) (string, bool) {
	if !glob || strings.ContainsRune(want, '@') {
		return want, glob
	}
	for _, s := range syms {
		if s.Name == want {
			return want, false
		}
	}
	if strings.Contains(want, "[...]") {
		parts := strings.Split(want, "[...]")
		return strings.Join(parts, `\[*\]`), true
	}
	return want, glob
}
