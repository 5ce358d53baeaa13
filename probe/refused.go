package probe

import "fmt"

// Why this file exists: the kernel refuses to put a uprobe on some x86
// instructions (arch/x86/kernel/uprobes.c, uprobe_init_insn): it cannot
// single-step or emulate them out of line. It says so only when a perf
// event is opened — ENOTSUPP, for the whole trace event — so one such
// function in a glob of hundreds would make the attach fail. Measured here:
// libc's pthread_spin_lock starts with `lock decl (%rdi)` and is refused.
//
// The check is conservative: the LOCK prefix and the privileged or
// trapping one-byte opcodes the kernel's good_insns_64 table leaves out.

// refusedOpcodes are one-byte opcodes uprobes refuse in 64-bit code.
var refusedOpcodes = map[byte]string{
	0xcc: "int3", 0xcd: "int", 0xce: "into", 0xcf: "iret", 0xf1: "int1",
	0xf4: "hlt", 0xfa: "cli", 0xfb: "sti",
	0xe4: "in", 0xe5: "in", 0xe6: "out", 0xe7: "out",
	0xec: "in", 0xed: "in", 0xee: "out", 0xef: "out",
}

// legacyPrefixes may precede an opcode; REX (0x40-0x4f) comes after them.
var legacyPrefixes = map[byte]bool{
	0xf0: true, 0xf2: true, 0xf3: true, 0x2e: true, 0x36: true, 0x3e: true,
	0x26: true, 0x64: true, 0x65: true, 0x66: true, 0x67: true,
}

// kernelRefuses says why the kernel will not probe the instruction at the
// file offset off, or "" if it will.
func (img *elfImage) kernelRefuses(off uint64) string {
	var insn [15]byte
	n, _ := img.file.ReadAt(insn[:], int64(off))
	for i := 0; i < n; i++ {
		b := insn[i]
		if b == 0xf0 {
			return "it starts with a LOCK-prefixed instruction"
		}
		if legacyPrefixes[b] {
			continue
		}
		if b >= 0x40 && b <= 0x4f { // REX
			continue
		}
		if name, ok := refusedOpcodes[b]; ok {
			return fmt.Sprintf("it starts with %s (0x%02x)", name, b)
		}
		return ""
	}
	return ""
}
