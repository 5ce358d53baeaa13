package probe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Arg is one validated fetch argument of a probe.
//
// The rules are those of the Linux 6.18 uprobe parser (kernel/trace/
// trace_probe.c, trace_uprobe.c, arch/x86/kernel/ptrace.c), sometimes
// stricter, never looser, so that what passes here is accepted by the kernel
// and means what the user wrote:
//
//	%REG                 an x86-64 register as the kernel names it: ax bx cx dx si di
//	                     bp sp r8..r15 ip flags cs ss orig_ax (no r/e prefix)
//	arg1..arg6           aliases for %di %si %dx %cx %r8 %r9 (the x86-64 C ABI),
//	                     also inside dereferences: +0(arg2) is +0(%si); in a Go
//	                     binary arg1..arg9 are %ax %bx %cx %di %si %r8 %r9 %r10
//	                     %r11 (Go's register ABI, see golang.go)
//	$stack, $stackN      the stack pointer, the Nth word on the stack
//	$comm                the task's comm (a string)
//	$retval              the return value (%return probes only)
//	+OFF(EXPR) -OFF(EXPR) dereference (+uOFF/-uOFF: user-space dereference),
//	                     nested up to 10 deep
//	@ADDR  @+FILEOFF     memory at an absolute address, at a file offset
//	\NUM  \"STR"         immediates
//
// followed by an optional :TYPE: u8 u16 u32 u64 s8..s64 x8..x64 char string
// ustring, a bitfield b<width>@<offset>/<container bits>, or an array
// TYPE[N] with 1 <= N <= 64 (of a memory reference). string and ustring need
// a memory reference (+0(%si):string), $comm or an immediate.
//
// $argN is refused: the kernel accepts it only for kernel function-entry
// probes, not uprobes; use the argN aliases. argN is also refused on %return
// probes, where the argument registers no longer hold the arguments.
type Arg struct {
	Name  string // final argument name (explicit, or derived; unique within the probe)
	Expr  string // kernel expression after alias translation, e.g. "%di", "+0(%si)", "$retval"; ParseSpec leaves arg7..arg9 as written (registers only in Go's ABI), Resolve translates them for the file or refuses them
	Type  string // kernel type, e.g. "u64", "string", "s32"; "" means kernel default (x64)
	Given string // the text the user wrote, for error messages
}

// Fetch returns the argument as the kernel takes it: "name=expr" or
// "name=expr:type".
func (a Arg) Fetch() string {
	if a.Type == "" {
		return a.Name + "=" + a.Expr
	}
	return a.Name + "=" + a.Expr + ":" + a.Type
}

// Kernel limits (kernel/trace/trace_probe.h), and ours where stricter.
// Every argument is written as NAME=BODY, a derived name included, so every
// limit on names applies to every argument.
const (
	maxArgs       = 128 // MAX_TRACE_ARGS
	maxArgNameLen = 32  // MAX_ARG_NAME_LEN: the length of NAME before '=' (no NUL); 33 is refused
	maxArgBodyLen = 63  // MAX_ARGSTR_LEN: "EXPR[:TYPE]", after "NAME="
	maxArrayLen   = 64  // MAX_ARRAY_LEN
	// MAX_PROBE_EVENT_SIZE: the fixed part of a hit's record, the sum over
	// the arguments of their type's size times their array length (a
	// string counts 4 bytes, its text is stored apart), may be at most
	// 3072 bytes. Measured on 6.18: 3072 is defined, 3073 is refused with
	// "Event too big (too many fields?)". Kernels without that check
	// accept the definition, and a record larger than a page then trips
	// a WARN in prepare_uprobe_buffer on the first hit.
	maxEventSize = 3072
	// A line of uprobe_events holds at most 4094 bytes before its '\n'
	// (trace_parse_run_command, WRITE_BUFSIZE 4096 with '\n' and NUL). The
	// shortest location uprobectl writes, "p:uprobectl_1_1_1/e /a:0x0",
	// takes 26 of them: the arguments (each with its leading space) may
	// take the rest at most. tracefs checks the exact line before writing.
	maxLineLen     = 4094
	minLocationLen = len("p:uprobectl_1_1_1/e /a:0x0")
	maxArgsLineLen = maxLineLen - minLocationLen
	// The kernel compiles an argument into at most 16 fetch instructions
	// (FETCH_INSN_MAX); in the worst case (@ADDR under string arrays) ten
	// nested dereferences always fit. Nobody needs more.
	maxDerefDepth = 10
)

// x86Registers is the x86-64 part of regoffset_table in
// arch/x86/kernel/ptrace.c: the only names regs_query_register_offset
// accepts. ds, es, fs and gs are there for 32-bit kernels only.
var x86Registers = map[string]bool{
	"r15": true, "r14": true, "r13": true, "r12": true,
	"r11": true, "r10": true, "r9": true, "r8": true,
	"bx": true, "cx": true, "dx": true, "si": true, "di": true, "bp": true, "ax": true,
	"orig_ax": true, "ip": true, "cs": true, "flags": true, "sp": true, "ss": true,
}

// An argABI says which registers the aliases argN name: the calling
// convention of the probed functions.
type argABI struct {
	regs []string // argN is regs[N-1]
	// kinds, when set, is the kind of each regs entry (a USDT marker's
	// argument may be memory or an immediate); otherwise a register.
	kinds []exprKind
	// pending: arg(len(regs)+1)..arg(pending) are left as written, for
	// Resolve to translate once it knows the file (ParseSpec's ABI).
	pending int
	// tooFar explains argN past the registers.
	tooFar func(s string, n int) error
}

var (
	// cABI is the x86-64 System V C ABI: six integer argument registers.
	cABI = &argABI{regs: []string{"%di", "%si", "%dx", "%cx", "%r8", "%r9"}, tooFar: func(s string, n int) error {
		return fmt.Errorf("%s is passed on the stack, not in a register: at the function entry write $stack%d", s, n-6)
	}}
	// specABI is what ParseSpec applies before the file is known: the C
	// ABI, with arg7..arg9 kept for Go binaries (see goABI).
	specABI = &argABI{regs: cABI.regs, pending: len(goArgRegisters), tooFar: func(s string, n int) error {
		return fmt.Errorf("%s is passed on the stack, not in a register (x86-64 C functions take 6 arguments in registers, Go functions 9): at the function entry read it with $stackN", s)
	}}
)

// reservedArgNames are field names every uprobe event already has
// (reserved_field_names in trace_probe.c). Any common_ prefix is refused too.
var reservedArgNames = map[string]bool{
	"__probe_ip": true, "__probe_func": true, "__probe_ret_ip": true,
}

// exprKind is what the outermost operation of an expression fetches; the
// kernel's type rules depend on it.
type exprKind int

const (
	kindRegister  exprKind = iota // %reg, argN
	kindStack                     // $stackN
	kindStackPtr                  // $stack
	kindRetval                    // $retval
	kindComm                      // $comm
	kindImm                       // \NUM
	kindImmString                 // \"STR"
	kindMemory                    // +OFF(...), -OFF(...), @ADDR, @+FILEOFF
)

// argError builds the one-line error for argument text in probe word.
func argError(word, text, format string, args ...any) error {
	return newError(ErrBadArg, "bad fetch argument %q in probe %q: "+format,
		append([]any{text, word}, args...)...)
}

// parseArgs validates and translates the argument tokens of a probe word.
func parseArgs(toks []string, isReturn bool, word string) ([]Arg, error) {
	return parseArgsABI(toks, isReturn, word, specABI)
}

// parseArgsABI is parseArgs with argN translated by abi.
func parseArgsABI(toks []string, isReturn bool, word string, abi *argABI) ([]Arg, error) {
	if len(toks) > maxArgs {
		return nil, newError(ErrBadArg, "bad probe %q: %d fetch arguments, the kernel takes at most %d",
			word, len(toks), maxArgs)
	}
	args := make([]Arg, 0, len(toks))
	hints := make([]string, 0, len(toks)) // derived-name hints, "" when named
	used := map[string]bool{}
	for _, tok := range toks {
		a, hint, err := parseArg(tok, isReturn, abi)
		if err != nil {
			return nil, argError(word, tok, "%v", err)
		}
		if a.Name != "" {
			if used[a.Name] {
				return nil, argError(word, tok, "argument name %q is used twice; names must be unique", a.Name)
			}
			used[a.Name] = true
		}
		args = append(args, a)
		hints = append(hints, hint)
	}
	// Derived names go around every explicit name, wherever it stands.
	for i := range args {
		if args[i].Name != "" {
			continue
		}
		base := hints[i]
		if base == "" {
			base = fmt.Sprintf("arg%d", i+1)
		}
		name := base
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s_%d", base, n)
		}
		used[name] = true
		args[i].Name = name
		// The name is written as NAME= like any other: the kernel's name
		// rules apply to it (arg000000000000000000000000000001 is a valid
		// alias of %di, but a 33-character name).
		if len(name) > maxArgNameLen {
			return nil, argError(word, args[i].Given, "its name would be %q (an unnamed argument is named after its expression), %d characters: the kernel takes at most %d (it says \"Argument name is too long\"); name it, e.g. x=%s",
				name, len(name), maxArgNameLen, args[i].Given)
		}
		if err := checkArgName(name); err != nil {
			return nil, argError(word, args[i].Given, "%v", err)
		}
	}
	size, line := 0, 0
	for _, a := range args {
		size += a.recordSize()
		line += 1 + len(a.Fetch())
	}
	if size > maxEventSize {
		return nil, newError(ErrBadArg, "bad probe %q: its fetch arguments take %d bytes per hit, the kernel takes at most %d (it says \"Event too big (too many fields?)\"): fetch fewer or shorter arrays (a u64 takes 8 bytes, u64[64] 512, a string 4)",
			word, size, maxEventSize)
	}
	if line > maxArgsLineLen {
		return nil, newError(ErrBadArg, "bad probe %q: its fetch arguments take %d bytes of the kernel's %d-byte uprobe_events line, which must also hold the event and the location: at most %d are left for them; fetch fewer or name them shorter",
			word, line, maxLineLen, maxArgsLineLen)
	}
	return args, nil
}

// recordSize is the number of bytes the argument takes in the fixed part of
// a hit's record: its type's size (x64 when none is given; the 4-byte
// data_loc for a string) times its array length.
func (a Arg) recordSize() int {
	base, count := a.Type, 1
	if open := strings.IndexByte(base, '['); open >= 0 {
		n, _ := parseUnsigned(base[open+1 : len(base)-1]) // checked by checkType
		base, count = base[:open], int(n)
	}
	size := 8 // x64, the default
	switch {
	case base == "string" || base == "ustring":
		size = 4
	case strings.HasPrefix(base, "b"): // b<width>@<offset>/<container bits>
		_, bits, _ := strings.Cut(base, "/")
		n, _ := strconv.Atoi(bits)
		size = n / 8
	case base == "char":
		size = 1
	case base != "":
		n, _ := strconv.Atoi(base[1:]) // u8..u64, s8..s64, x8..x64
		size = n / 8
	}
	return size * count
}

// parseArg parses one "[NAME=]EXPR[:TYPE]". It returns the argument (Name
// empty when none was given) and, for an unnamed argument, a name derived
// from the expression ("" when the position should be used).
func parseArg(text string, isReturn bool, abi *argABI) (Arg, string, error) {
	a := Arg{Given: text}
	body := text
	if eq := strings.IndexByte(text, '='); eq >= 0 {
		name := text[:eq]
		switch {
		case name == "":
			return a, "", fmt.Errorf("missing name before '='")
		case strings.ContainsRune(`%$+-@\`, rune(name[0])):
			// The '=' belongs to the expression (\"a=b"); the kernel splits
			// at the first '=', which is why we always write NAME= ourselves.
		default:
			if err := checkArgName(name); err != nil {
				return a, "", err
			}
			a.Name, body = name, text[eq+1:]
		}
	}
	if body == "" {
		return a, "", fmt.Errorf("missing expression after '='")
	}

	// The kernel takes the type after the first ':'.
	expr, typ, hasType := strings.Cut(body, ":")
	if expr == "" {
		return a, "", fmt.Errorf("missing expression before ':'")
	}
	if hasType && typ == "" {
		return a, "", fmt.Errorf("missing type after ':'")
	}
	translated, kind, err := parseExpr(expr, isReturn, 0, abi)
	if err != nil {
		return a, "", err
	}
	a.Expr = translated
	if a.Type, err = checkType(typ, expr, kind); err != nil {
		return a, "", err
	}
	if n := len(a.Fetch()) - len(a.Name) - 1; n > maxArgBodyLen {
		return a, "", fmt.Errorf("expression and type are %d characters (%q), the kernel takes at most %d",
			n, a.Fetch()[len(a.Name)+1:], maxArgBodyLen)
	}
	return a, derivedName(expr, kind), nil
}

// CheckArgName reports whether name can name a fetch arg (the kernel's
// rules: a C identifier of at most 32 bytes, not a reserved field name).
func CheckArgName(name string) error { return checkArgName(name) }

// checkArgName applies the kernel's rules for argument names.
func checkArgName(name string) error {
	switch {
	case !isCIdent(name):
		return fmt.Errorf("argument name %q must be a C identifier ([A-Za-z_][A-Za-z0-9_]*)", name)
	case len(name) > maxArgNameLen:
		return fmt.Errorf("argument name %q is %d characters, the kernel takes at most %d (it says \"Argument name is too long\")", name, len(name), maxArgNameLen)
	case strings.HasPrefix(name, "common_") || reservedArgNames[name]:
		return fmt.Errorf("argument name %q is reserved for the event's own fields; choose another", name)
	}
	return nil
}

// derivedName names an unnamed argument after what it fetches.
func derivedName(expr string, kind exprKind) string {
	switch {
	case kind == kindComm:
		return "comm"
	case kind == kindRetval:
		return "retval"
	case kind == kindRegister && expr[0] == '%':
		return expr[1:]
	case kind == kindRegister: // an argN alias
		return expr
	}
	return ""
}

// parseExpr validates one fetch expression and returns it with the argN
// aliases translated to registers, and the kind of its outermost operation.
func parseExpr(s string, isReturn bool, depth int, abi *argABI) (string, exprKind, error) {
	switch s[0] {
	case '%':
		return s, kindRegister, checkRegister(s[1:])
	case '$':
		return parseVariable(s, isReturn)
	case '@':
		return parseAddress(s)
	case '+', '-':
		return parseDeref(s, isReturn, depth, abi)
	case '\\':
		return parseImmediate(s)
	}
	if n, ok := strings.CutPrefix(s, "arg"); ok && n != "" && allDigits(n) {
		return aliasRegister(s, n, isReturn, abi)
	}
	return "", 0, fmt.Errorf("unknown fetch argument %q: write %%REG, argN, $stackN, $comm, $retval, +OFF(EXPR), @ADDR or \\IMM", s)
}

// checkRegister accepts the register names of the kernel's table and
// explains the usual mistake, an r/e prefix (%rdi, %eax).
func checkRegister(reg string) error {
	if x86Registers[reg] {
		return nil
	}
	if reg == "" {
		return fmt.Errorf("missing register name after '%%'")
	}
	switch reg {
	case "ds", "es", "fs", "gs":
		return fmt.Errorf("register %%%s is not readable by x86-64 uprobes (the kernel's table has it on 32-bit only)", reg)
	}
	lower := strings.ToLower(reg)
	for _, guess := range []string{
		lower,                           // DI
		strings.TrimLeft(lower, "re"),   // rdi, eax, rflags
		strings.TrimRight(lower, "dwb"), // r8d, r10w, r9b
		strings.TrimSuffix(strings.TrimLeft(lower, "re"), "l"), // dil, sil
	} {
		if guess != reg && x86Registers[guess] {
			return fmt.Errorf("unknown register %%%s: the kernel names x86-64 registers without size prefixes or suffixes; use %%%s", reg, guess)
		}
	}
	return fmt.Errorf("unknown register %%%s: use one of %%ax %%bx %%cx %%dx %%si %%di %%bp %%sp %%r8..%%r15 %%ip %%flags %%cs %%ss %%orig_ax", reg)
}

// aliasRegister translates argN (n is the digits) to its ABI register.
func aliasRegister(s, n string, isReturn bool, abi *argABI) (string, exprKind, error) {
	i, err := strconv.Atoi(n)
	switch {
	case err != nil || i < 1:
		return "", 0, fmt.Errorf("%s: arguments are numbered from arg1", s)
	case i > len(abi.regs) && i > abi.pending:
		return "", 0, abi.tooFar(s, i)
	case isReturn:
		return "", 0, fmt.Errorf("%s is not available on a %%return probe: the argument registers are reused by then; fetch it on the entry probe", s)
	case i > len(abi.regs):
		return s, kindRegister, nil // pending: Resolve translates it
	}
	if len(abi.kinds) >= i {
		return abi.regs[i-1], abi.kinds[i-1], nil
	}
	return abi.regs[i-1], kindRegister, nil
}

// argsFor translates the fetch arguments of spec for a file whose functions
// follow abi: ParseSpec could not know it (argN names other registers in a
// Go binary). Arguments built by hand, without the text the user wrote,
// are taken as they are.
func argsFor(spec *Spec, abi *argABI) ([]Arg, error) {
	toks := make([]string, len(spec.Args))
	for i, a := range spec.Args {
		if a.Given == "" {
			return slices.Clone(spec.Args), nil
		}
		toks[i] = a.Given
	}
	return parseArgsABI(toks, spec.Return, spec.Raw, abi)
}

// parseVariable handles $comm, $retval, $stack, $stackN and refuses $argN.
func parseVariable(s string, isReturn bool) (string, exprKind, error) {
	switch {
	case s == "$comm" || s == "$COMM":
		return s, kindComm, nil
	case s == "$retval":
		if !isReturn {
			return "", 0, fmt.Errorf("$retval is only available on a %%return probe: write SYMBOL%%return")
		}
		return s, kindRetval, nil
	case s == "$stack":
		return s, kindStackPtr, nil
	case strings.HasPrefix(s, "$stack") && allDigits(s[len("$stack"):]):
		// kstrtoul base 10 into an unsigned int: keep it in 32 bits.
		if _, err := strconv.ParseUint(s[len("$stack"):], 10, 32); err != nil {
			return "", 0, fmt.Errorf("%s: stack index out of range", s)
		}
		return s, kindStack, nil
	case strings.HasPrefix(s, "$arg"):
		return "", 0, fmt.Errorf("%s is not available for uprobes (the kernel refuses it): use arg1..arg6, the x86-64 argument registers %%di %%si %%dx %%cx %%r8 %%r9", s)
	}
	return "", 0, fmt.Errorf("unknown variable %s: use $stack, $stackN, $comm or $retval", s)
}

// parseAddress handles @ADDR and @+FILEOFF; @SYMBOL is kernel-only.
func parseAddress(s string) (string, exprKind, error) {
	switch {
	case len(s) > 1 && s[1] >= '0' && s[1] <= '9':
		if _, err := parseUnsigned(s[1:]); err != nil {
			return "", 0, fmt.Errorf("address %q: %v", s[1:], err)
		}
		return s, kindMemory, nil
	case strings.HasPrefix(s, "@+"):
		off, err := parseUnsigned(s[2:])
		if err == nil && off > 1<<63-1 { // kstrtol
			err = fmt.Errorf("number out of range")
		}
		if err != nil {
			return "", 0, fmt.Errorf("file offset %q: %v", s[2:], err)
		}
		return s, kindMemory, nil
	}
	return "", 0, fmt.Errorf("%s: symbols are not supported in uprobe arguments; use @+FILEOFFSET (the variable's file offset) or @ADDR", s)
}

// parseDeref handles [+-][u]OFF(EXPR), recursively.
func parseDeref(s string, isReturn bool, depth int, abi *argABI) (string, exprKind, error) {
	sign, rest := s[:1], s[1:]
	user := ""
	if strings.HasPrefix(rest, "u") {
		user, rest = "u", rest[1:]
	}
	open := strings.IndexByte(rest, '(')
	if open < 0 {
		return "", 0, fmt.Errorf("%s: a dereference needs parentheses, e.g. +0(%%si) or +8(arg1)", s)
	}
	off, err := parseUnsigned(rest[:open])
	if err != nil {
		return "", 0, fmt.Errorf("dereference offset %q: %v", rest[:open], err)
	}
	// The kernel keeps the offset in an int.
	if limit := uint64(1<<31 - 1); off > limit+boolUint(sign == "-") {
		return "", 0, fmt.Errorf("dereference offset %s%s is out of range (32 bits, signed)", sign, rest[:open])
	}
	if !strings.HasSuffix(rest, ")") {
		return "", 0, fmt.Errorf("%s: missing ')' at the end", s)
	}
	inner := rest[open+1 : len(rest)-1]
	if inner == "" {
		return "", 0, fmt.Errorf("%s: empty parentheses", s)
	}
	if depth+1 > maxDerefDepth {
		return "", 0, fmt.Errorf("dereferences nested more than %d deep", maxDerefDepth)
	}
	in, kind, err := parseExpr(inner, isReturn, depth+1, abi)
	if err != nil {
		return "", 0, err
	}
	if kind == kindComm || kind == kindImmString {
		return "", 0, fmt.Errorf("%s cannot be dereferenced", inner)
	}
	return sign + user + rest[:open] + "(" + in + ")", kindMemory, nil
}

// parseImmediate handles \NUM (optionally signed) and \"STR".
func parseImmediate(s string) (string, exprKind, error) {
	body := s[1:]
	if strings.HasPrefix(body, `"`) {
		if len(body) < 2 || !strings.HasSuffix(body, `"`) {
			return "", 0, fmt.Errorf(`%s: an immediate string must end with '"' (and cannot hold ':' or spaces)`, s)
		}
		return s, kindImmString, nil
	}
	num, limit := body, uint64(1<<64-1)
	if body != "" && (body[0] == '+' || body[0] == '-') {
		num, limit = body[1:], 1<<63-1 // kstrtol
		if body[0] == '-' {
			limit++
		}
	}
	v, err := parseUnsigned(num)
	if err == nil && v > limit {
		err = fmt.Errorf("number out of range")
	}
	if err != nil {
		return "", 0, fmt.Errorf("immediate %q: %v", body, err)
	}
	return s, kindImm, nil
}

// checkType validates TYPE for an expression of the given kind and returns
// the type to write ("" for the kernel default).
func checkType(typ, expr string, kind exprKind) (string, error) {
	stringOnly := kind == kindComm || kind == kindImmString
	if typ == "" {
		if stringOnly {
			return "string", nil // what the kernel uses anyway; explicit is clearer
		}
		return "", nil
	}
	base := typ
	if open := strings.IndexByte(typ, '['); open >= 0 {
		base = typ[:open]
		if !strings.HasSuffix(typ, "]") {
			return "", fmt.Errorf("array type %q must end with ']'", typ)
		}
		n, err := parseUnsigned(typ[open+1 : len(typ)-1])
		if err != nil || n == 0 || n > maxArrayLen {
			return "", fmt.Errorf("array type %q: the length must be 1..%d", typ, maxArrayLen)
		}
		if stringOnly {
			return "", fmt.Errorf("%s is a single string: write :string, not an array", expr)
		}
		if kind != kindMemory {
			return "", fmt.Errorf("an array needs a memory reference, e.g. +0(%%si):%s", typ)
		}
	}
	switch {
	case stringOnly && base != "string":
		return "", fmt.Errorf("%s is a string: drop the type or write :string", expr)
	case base == "string" || base == "ustring":
		switch kind {
		case kindMemory, kindImm, kindComm, kindImmString:
		default:
			return "", fmt.Errorf("%s is not a memory reference: to read the string it points to write +0(%s):%s", expr, expr, base)
		}
	case base == "symbol" || base == "symstr":
		return "", fmt.Errorf("type %q is not available for uprobes (the kernel refuses it)", base)
	case strings.HasPrefix(base, "b"):
		if err := checkBitfield(base); err != nil {
			return "", err
		}
	case !basicTypes[base]:
		return "", fmt.Errorf("unknown type %q: use u8..u64, s8..s64, x8..x64, char, string, ustring, b<width>@<offset>/<size> or TYPE[N]", base)
	}
	return typ, nil
}

var basicTypes = map[string]bool{
	"u8": true, "u16": true, "u32": true, "u64": true,
	"s8": true, "s16": true, "s32": true, "s64": true,
	"x8": true, "x16": true, "x32": true, "x64": true,
	"char": true,
}

// checkBitfield validates b<width>@<offset>/<container size>.
func checkBitfield(t string) error {
	bad := fmt.Errorf("bitfield %q: write b<width>@<bit offset>/<container bits>, e.g. b4@2/8; width >= 1, container 8, 16, 32 or 64, width+offset <= container", t)
	w, rest, ok1 := strings.Cut(t[1:], "@")
	o, c, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || !allDigits(w) || !allDigits(o) || !allDigits(c) || w == "" || o == "" || c == "" {
		return bad
	}
	width, _ := strconv.ParseUint(w, 10, 32)
	offset, _ := strconv.ParseUint(o, 10, 32)
	size, _ := strconv.ParseUint(c, 10, 32)
	if width == 0 || (size != 8 && size != 16 && size != 32 && size != 64) || width+offset > size {
		return bad
	}
	// The kernel reads the numbers with base 0: a leading zero would be octal.
	for _, n := range []string{w, o, c} {
		if len(n) > 1 && n[0] == '0' {
			return bad
		}
	}
	return nil
}

func isCIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
