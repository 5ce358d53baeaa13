// Package mangled demangles C++ and Rust symbol names for probe words
// (package probe) and stack frames (package symtab), with one set of
// safety rules: a bounded length, no control characters, and a panic of
// the demangler turned into a failure.
package mangled

import (
	"strings"

	"github.com/ianlancetaylor/demangle"
)

// maxLog2 bounds a demangled name to 2^16 bytes: some template names expand
// enormously, and nobody types or reads those.
const maxLog2 = 16

// Is reports whether name may be a C++ (_Z) or Rust (legacy _ZN, v0 _R)
// mangled name.
func Is(name string) bool {
	return strings.HasPrefix(name, "_Z") || strings.HasPrefix(name, "_R")
}

// Demangle returns the demangled form of name with opts, or "" when it
// does not demangle (or is not mangled).
func Demangle(name string, opts ...demangle.Option) (s string) {
	if !Is(name) {
		return ""
	}
	defer func() {
		if recover() != nil {
			s = "" // a demangler bug must not take the tool down
		}
	}()
	s, err := demangle.ToString(name, append(opts, demangle.MaxLength(maxLog2))...)
	if err != nil || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ""
	}
	return s
}
