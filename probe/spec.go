package probe

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Spec is one probe as the user wrote it: one shell word, perf-probe style.
//
// Forms of the location (the first token of the word):
//
//	PATH:SYMBOL            function entry; SYMBOL may be a glob (path.Match syntax)
//	PATH:SYMBOL+OFF        OFF bytes into the function (0x hex or decimal)
//	PATH:SYMBOL%return     function return (a uretprobe)
//	PATH:0xFILEOFFSET      a raw file offset (also PATH:0xFILEOFFSET%return)
//	PATH:usdt:PROV:NAME    a USDT (SDT) marker; PROV: may be omitted (see usdt.go)
//
// followed in the same word by fetch arguments separated by spaces or tabs,
// e.g. 'libc.so.6:malloc size=%di:u64' or 'BIN:fn%return rv=$retval:s32'.
//
// PATH ends at the first ':' after the last '/' of the first token that is
// not part of a "::" (precisely: the first colon of the first run of an odd
// number of colons), so a directory name may contain ':' and a C++ name may
// contain "::" (a single ':' after that one, as in "[abi:cxx11]", belongs
// to the symbol): "/opt/a:b/app:ns::f(int)" is PATH "/opt/a:b/app" and
// SYMBOL "ns::f(int)". A file name with a ':' of its own cannot be written:
// probe it through a symlink. PATH without '/' is a library or program
// name, resolved by [ResolveLibrary]. SYMBOL may name a version,
// "memcpy@GLIBC_2.2.5"; without one the default version is taken.
//
// SYMBOL may be a demangled C++ or Rust name, written without spaces
// ("ns::f(int,int)", matched against the demangled name with its spaces
// removed; see demangle.go). '+' starts an offset unless it belongs to an
// operator name ("operator+", "operator+=", "operator++"), and '%' starts
// the %return suffix unless it follows "operator". A '[' is a glob class:
// write "\[" for a literal one ("f\[abi:cxx11\]()").
type Spec struct {
	Raw           string // the word as given
	Path          string // as written: absolute/relative path, or a library name such as "libc.so.6" or "libc"
	Symbol        string // symbol or glob; "" when FileOffset is used
	SymbolOffset  uint64 // the +OFF after SYMBOL
	FileOffset    uint64 // PATH:0xOFF form
	HasFileOffset bool   // the PATH:0xOFF form was used
	Return        bool   // %return
	Args          []Arg  // validated and translated fetch arguments

	// USDT: the PATH:usdt:PROVIDER:NAME form (see usdt.go); the provider
	// is "" when omitted. Both may be globs.
	USDT         bool
	USDTProvider string
	USDTName     string
	// USDTArgs are the fetch args written in a usdt word, checked for
	// syntax; argK in them is the marker's Kth argument (see usdt.go).
	USDTArgs []string

	// Skipped is set by Resolve on the Spec its Targets point to: the
	// functions a glob matched that the kernel cannot probe, each with why.
	Skipped []string
}

// IsGlob reports whether Symbol is a pattern rather than one name.
func (s Spec) IsGlob() bool {
	return strings.ContainsAny(s.Symbol, `*?[\`)
}

// ParseSpec parses and validates one probe word. It checks syntax only: files
// and symbols are looked up by [Resolve]. Errors wrap [ErrBadSpec] or
// [ErrBadArg].
//
// Injection safety: any control character other than space and tab
// (newline, carriage return, NUL, ...), '#', and the byte 0xa0 (a space to
// the kernel's argv_split) is refused anywhere in the word, with its
// position, before anything else is looked at. Spaces and tabs only separate
// the location and the arguments, so none can end up inside a path, symbol
// or argument.
func ParseSpec(word string) (Spec, error) {
	spec := Spec{Raw: word}
	for i := 0; i < len(word); i++ {
		if word[i] == ' ' || word[i] == '\t' {
			continue
		}
		if why := unsafeByte(word[i]); why != "" {
			return Spec{}, newError(ErrBadSpec,
				"bad probe %q: %s at position %d; paths, symbols and arguments cannot contain control characters, spaces or '#'",
				word, why, i+1)
		}
	}
	toks := splitWord(word)
	if len(toks) == 0 {
		return Spec{}, newError(ErrBadSpec, "empty probe: write PATH:SYMBOL, e.g. libc.so.6:malloc")
	}
	if err := spec.parseLocation(toks[0]); err != nil {
		return Spec{}, err
	}
	if spec.USDT {
		return spec, usdtWordArgs(&spec, toks[1:])
	}
	args, err := parseArgs(toks[1:], spec.Return, word)
	if err != nil {
		return Spec{}, err
	}
	spec.Args = args
	return spec, nil
}

// parseLocation fills Path, Symbol, offsets and Return from the first token.
func (s *Spec) parseLocation(loc string) error {
	bad := func(format string, args ...any) error {
		return newError(ErrBadSpec, "bad probe %q: "+format, append([]any{s.Raw}, args...)...)
	}
	colon := pathColon(loc)
	if colon < 0 {
		return bad("missing ':' between path and symbol; write PATH:SYMBOL, e.g. libc.so.6:malloc or /usr/bin/bash:readline")
	}
	s.Path, loc = loc[:colon], loc[colon+1:]
	if s.Path == "" {
		return bad("missing path before ':'; write PATH:SYMBOL, e.g. libc.so.6:malloc")
	}
	if rest, ok := strings.CutPrefix(loc, "usdt:"); ok {
		return s.parseUSDTLocation(rest)
	}
	if rest, ok := strings.CutSuffix(loc, "%return"); ok {
		s.Return = true
		loc = rest
	}
	if i := suffixPercent(loc); i >= 0 {
		return bad("unknown suffix %q: the only suffix is %%return", loc[i:])
	}
	if loc == "" {
		return bad("missing symbol after ':'; write PATH:SYMBOL or PATH:0xFILEOFFSET")
	}

	// A symbol never starts with a digit, so a digit means a file offset.
	if loc[0] >= '0' && loc[0] <= '9' {
		off, err := parseUnsigned(loc)
		if err != nil {
			return bad("file offset %q: %v", loc, err)
		}
		s.FileOffset, s.HasFileOffset = off, true
		return nil
	}

	sym := loc
	if plus := strings.LastIndexByte(loc, '+'); plus >= 0 && !inOperatorName(loc, plus) {
		sym = loc[:plus]
		off, err := parseUnsigned(loc[plus+1:])
		if err != nil {
			return bad("offset %q after symbol: %v", loc[plus+1:], err)
		}
		s.SymbolOffset = off
	}
	if sym == "" {
		return bad("missing symbol before %q", loc)
	}
	// A Go name holds '/' (a package path: net/http.(*conn).serve).
	if strings.IndexByte(sym, '/') >= 0 && strings.Contains(sym, "::") {
		return bad("symbol %q contains '/'; write PATH:SYMBOL (for a C++ operator/ give the mangled name, or '?' in place of the '/')", sym)
	}
	s.Symbol = sym
	if s.IsGlob() {
		if _, err := path.Match(sym, ""); err != nil {
			return bad("symbol pattern %q is malformed (path.Match syntax: * ? [a-z] and \\ to escape)", sym)
		}
	}
	if s.Return && s.SymbolOffset != 0 {
		return bad("a %%return probe must be on the function entry: drop +0x%x (a uretprobe at another offset never sees the return)", s.SymbolOffset)
	}
	return nil
}

// pathColon returns the index of the ':' that ends PATH in loc, or -1: the
// first colon of the first odd-length run of colons after the last '/'
// ("::" is a C++ scope), or, when there is none after it, the first colon
// of the last odd-length run before it: the symbol then holds a '/', as a
// Go name with a package path does ("/opt/a:b/srv:net/http.(*conn).serve").
func pathColon(loc string) int {
	if i := oddColon(loc, strings.LastIndexByte(loc, '/')+1); i >= 0 {
		return i
	}
	last := -1
	for i := oddColon(loc, 0); i >= 0; i = oddColon(loc, i+1) {
		last = i
	}
	return last
}

// oddColon returns the first colon of the first odd-length run of colons
// in loc[from:], or -1.
func oddColon(loc string, from int) int {
	for i := from; i < len(loc); {
		if loc[i] != ':' {
			i++
			continue
		}
		j := i
		for j < len(loc) && loc[j] == ':' {
			j++
		}
		if (j-i)%2 == 1 {
			return i
		}
		i = j
	}
	return -1
}

// inOperatorName reports whether the byte at i of a symbol ('+' or '%')
// belongs to a C++ operator name: operator+, operator+=, operator++,
// operator%, operator%=. A '+' followed by a digit starts an offset all the
// same: "ns::operator++0x10" is operator+ at +0x10.
func inOperatorName(sym string, i int) bool {
	before := sym[:i]
	if sym[i] == '%' {
		return strings.HasSuffix(before, "operator")
	}
	if i+1 < len(sym) && sym[i+1] >= '0' && sym[i+1] <= '9' {
		return false
	}
	return strings.HasSuffix(before, "operator") || strings.HasSuffix(before, "operator+")
}

// suffixPercent returns the index of the first '%' of sym that is not part
// of an operator name, or -1.
func suffixPercent(sym string) int {
	for i := 0; i < len(sym); i++ {
		if sym[i] == '%' && !inOperatorName(sym, i) {
			return i
		}
	}
	return -1
}

// splitWord splits on spaces and tabs only. Other blanks were refused before.
func splitWord(word string) []string {
	var toks []string
	start := -1
	for i := 0; i <= len(word); i++ {
		blank := i == len(word) || word[i] == ' ' || word[i] == '\t'
		switch {
		case blank && start >= 0:
			toks = append(toks, word[start:i])
			start = -1
		case !blank && start < 0:
			start = i
		}
	}
	return toks
}

// unsafeByte says why b cannot be part of a path, symbol or argument written
// to uprobe_events, or returns "" when it can. The kernel splits a written
// buffer into commands at '\n', cuts each at '#' (a comment) and splits the
// rest with argv_split, whose isspace() also matches \t \v \f \r and 0xa0.
func unsafeByte(b byte) string {
	switch {
	case b == '\n':
		return `a newline (\n)`
	case b == '\t':
		return `a tab (\t)`
	case b == '\r':
		return `a carriage return (\r)`
	case b == 0:
		return `a NUL byte (\x00)`
	case b == ' ':
		return "a space"
	case b == '#':
		return "'#' (it starts a comment in uprobe_events)"
	case b < 0x20 || b == 0x7f:
		return fmt.Sprintf(`a control character (\x%02x)`, b)
	case b == 0xa0:
		return `the byte 0xa0 (the kernel's parser takes it for a space)`
	}
	return ""
}

// checkKernelPath returns an ErrBadPath error when p, a path about to be
// written to uprobe_events, holds a byte that would change the command.
func checkKernelPath(p string) error {
	for i := 0; i < len(p); i++ {
		if why := unsafeByte(p[i]); why != "" {
			return newError(ErrBadPath,
				"path %q contains %s at position %d and cannot be written to uprobe_events; probe it through a symlink or a copy with a plain name",
				p, why, i+1)
		}
	}
	return nil
}

// parseUnsigned parses "0x1f" (hex) or "31" (decimal) into a uint64.
// A decimal with a leading zero is refused: the kernel's kstrtoul would read
// it as octal, and we must mean what the kernel reads.
func parseUnsigned(s string) (uint64, error) {
	digits, base := s, 10
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	}
	if digits == "" {
		return 0, fmt.Errorf("missing number")
	}
	if base == 10 && len(digits) > 1 && digits[0] == '0' {
		return 0, fmt.Errorf("leading zero (the kernel reads it as octal): write 0x%s or drop the zero", strings.TrimLeft(digits, "0"))
	}
	for _, c := range digits {
		if !isDigit(c, base) {
			return 0, fmt.Errorf("not a number (write 0x1f or 31)")
		}
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("number out of range")
	}
	return v, nil
}

func isDigit(c rune, base int) bool {
	switch {
	case c >= '0' && c <= '9':
		return true
	case base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		return true
	}
	return false
}
