// Package probe turns what the user writes into what the kernel is given.
//
// It owns three steps, and nothing else (it never touches tracefs):
//
//   - Parsing and validating a probe word, perf-probe style
//     ("libc.so.6:malloc size=arg1:u64"), into a [Spec]. Every byte that can
//     reach the kernel's uprobe_events text is checked here: control
//     characters, spaces and '#' are refused before anything else, because a
//     newline in a path or argument injects a second command into
//     uprobe_events and '#' starts a comment there.
//   - Validating fetch arguments against the rules of the Linux 6.18 uprobe
//     parser (kernel/trace/trace_probe.c) and translating the aliases
//     arg1..arg6 to x86-64 registers, so that a bad argument gets a clear error
//     here instead of a bare EINVAL from the kernel.
//   - Resolving a [Spec] to concrete [Target]s: library names to files
//     ([ResolveLibrary]), symbols and globs to ELF file offsets ([Symbols]),
//     and proving that an offset inside a function is an instruction boundary
//     (a uprobe on the middle of an instruction is accepted by the kernel and
//     corrupts the traced process).
//
// The orchestrator writes one line per target:
//
//	p:GROUP/EVENT PATH:0xOFFSET ARG.Fetch()...
//
// (r: instead of p: for Target.Return), with EVENT from [AssignEventNames].
//
// Glossary: a "symbol offset" is the distance from the start of a function
// (malloc+0x10); a "file offset" is a position in the ELF file, which is what
// the kernel's uprobe_events syntax takes (PATH:0xOFFSET).
package probe
