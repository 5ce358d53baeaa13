package probe

import (
	"path"
	"strings"

	"github.com/ianlancetaylor/demangle"

	"github.com/uprobectl/uprobectl/internal/mangled"
)

// C++ and Rust names.
//
// A mangled symbol (_ZN2ns5Class6methodEi, _RNvCs1234_5crate3foo, or an
// old-style Rust _ZN...17h<hash>E) is known by its ELF name and by its
// demangled name, as github.com/ianlancetaylor/demangle (what pprof uses)
// prints it: "ns::Class::method(int)". A probe word cannot hold a space (it
// separates the fetch args), so demangled names are matched with every space
// removed, on both sides: "ns::f(int,int)" means "ns::f(int, int)",
// "ns::g(unsignedint)" means "ns::g(unsigned int)".
//
// A symbol is matched, besides its ELF name, under three forms of its
// demangled name:
//
//	int ns::twice<int>(int)      the full name (c++filt's), return type of a template included
//	ns::twice<int>(int)          without the return type
//	ns::twice<int>               without the parameters: every overload (not clones such as .cold)
//
// An exact name that matches some ELF name means that symbol only; one
// that matches none is looked up among the demangled forms. A glob matches
// a symbol when it matches its ELF name or any of the forms.

// demangledNames are the forms of a symbol's demangled name that probe
// words are matched against, spaces removed. All "" for a name that is not
// mangled.
type demangledNames struct {
	full     string // "intns::twice<int>(int)"
	noReturn string // "ns::twice<int>(int)"
	bare     string // "ns::twice<int>"; "" for a clone (.cold, .constprop.0, ...)
}

// Demangle returns the demangled C++ or Rust name of a mangled symbol name
// ("ns::Class::method(int)" for "_ZN2ns5Class6methodEi"), or "" when name
// is not a mangled name (a C or Go name) or does not demangle.
func Demangle(name string) string {
	full, _ := demangleNames(name)
	return full
}

// demangleNames returns the demangled name and its match forms.
func demangleNames(name string) (full string, forms demangledNames) {
	full = mangled.Demangle(name)
	if full == "" || full == name {
		return "", demangledNames{}
	}
	bare := mangled.Demangle(name, demangle.NoParams)
	noReturn := full
	if bare != "" && !strings.HasPrefix(full, bare) {
		// "int ns::twice<int>(int)": the function's own name follows the
		// return type and a space, and is followed by its parameters.
		if i := strings.Index(full, " "+bare+"("); i >= 0 {
			noReturn = full[i+1:]
		}
	}
	if strings.Contains(full, "[clone ") {
		bare = "" // a part or a specialised copy of a function, not the function
	}
	return full, demangledNames{full: squash(full), noReturn: squash(noReturn), bare: squash(bare)}
}

// squash removes the spaces from a demangled name: what a probe word,
// which cannot hold one, is compared with.
func squash(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	return strings.ReplaceAll(s, " ", "")
}

// matchesName reports whether the ELF name of s is want (exact).
func (s *Symbol) matchesName(want string) bool { return s.Name == want }

// matchesDemangled reports whether a demangled form of s is want (exact;
// want holds no space).
func (s *Symbol) matchesDemangled(want string) bool {
	d := &s.demangled
	return d.full != "" && (d.full == want || d.noReturn == want || d.bare != "" && d.bare == want)
}

// matchesGlob reports whether pattern (path.Match syntax) matches the ELF
// name of s or a demangled form. A '/' (operator/, a Go package path) is a
// byte like any other: '*' and '?' match it too.
func (s *Symbol) matchesGlob(pattern string) bool {
	if strings.IndexByte(pattern, '/') >= 0 {
		pattern = strings.ReplaceAll(pattern, "/", "\x00")
	}
	match := func(name string) bool {
		if name == "" {
			return false
		}
		if strings.IndexByte(name, '/') >= 0 {
			name = strings.ReplaceAll(name, "/", "\x00")
		}
		ok, _ := path.Match(pattern, name)
		return ok
	}
	d := &s.demangled
	return match(s.Name) || match(d.full) || match(d.noReturn) || match(d.bare)
}

// MatchesGlob reports whether pattern, a probe word's glob (path.Match
// syntax; spaces removed from demangled names as in probe words), matches
// the symbol by its ELF name or its demangled name. A pattern without glob
// characters is an exact name.
func (s Symbol) MatchesGlob(pattern string) bool {
	return s.matchesGlob(squash(pattern))
}
