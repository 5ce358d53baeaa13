package probe

// USDT markers: SystemTap SDT notes (<sys/sdt.h>, the format perf,
// bpftrace and SystemTap read). Each marker is an ELF note in
// .note.stapsdt, owner "stapsdt", type 3, whose descriptor is, on a 64-bit
// file,
//
//	pc, base, semaphore    three 8-byte addresses of the file's own layout
//	provider\0 name\0 args\0
//
// pc is the marker's instruction (a NOP); base is the address the
// .stapsdt.base section had when the note was written: if the file was
// moved since (prelink), pc is off by the section's actual address minus
// base. The semaphore, when not 0, is a 2-byte counter the program tests
// before it evaluates the marker's arguments. args is the assembler's
// operands, one "SIZE@OPERAND" per argument separated by spaces: SIZE is
// the size in bytes, negative when signed (-4@%edi is an int).

import (
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// USDTMarker is one SDT marker of an ELF file.
type USDTMarker struct {
	Provider string
	Name     string
	Address  uint64 // the marker's address in the file's layout, adjusted for .stapsdt.base
	Offset   uint64 // its file offset: what the kernel is given
	// Semaphore is the address of the marker's semaphore, 0 when it has
	// none; SemaphoreOffset its file offset (0 when none).
	Semaphore       uint64
	SemaphoreOffset uint64
	Args            string // the argument specs as written in the note, e.g. "8@%rdi -4@-20(%rbp)"
}

// FullName is "provider:name".
func (m USDTMarker) FullName() string { return m.Provider + ":" + m.Name }

// MatchesGlob reports whether glob (path.Match syntax) matches
// "provider:name" or the name alone.
func (m USDTMarker) MatchesGlob(glob string) bool {
	ok1, _ := path.Match(glob, m.FullName())
	ok2, _ := path.Match(glob, m.Name)
	return ok1 || ok2
}

// USDTMarkers lists the SDT markers of the ELF file at path, in note order.
// A file without markers gives none and no error. Errors wrap
// fs.ErrNotExist, [ErrNotELF] or [ErrWrongArch].
func USDTMarkers(path string) ([]USDTMarker, error) {
	img, err := openELF(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return img.usdtMarkers()
}

const ntStapsdt = 3

// usdtMarkers reads .note.stapsdt.
func (img *elfImage) usdtMarkers() ([]USDTMarker, error) {
	sec := img.elf.Section(".note.stapsdt")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, wrapError(ErrNotELF, err, "%s: reading .note.stapsdt: %v", img.path, err)
	}
	var baseAddr uint64
	hasBase := false
	if b := img.elf.Section(".stapsdt.base"); b != nil {
		baseAddr, hasBase = b.Addr, true
	}
	bo := img.elf.ByteOrder
	align4 := func(n uint32) int { return int((n + 3) &^ 3) }
	var out []USDTMarker
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		if align4(namesz) > len(data) || align4(namesz)+align4(descsz) > len(data) || namesz > 1<<20 || descsz > 1<<20 {
			return nil, newError(ErrNotELF, "%s: .note.stapsdt is truncated", img.path)
		}
		name := string(data[:namesz])
		desc := data[align4(namesz) : align4(namesz)+int(descsz)]
		data = data[align4(namesz)+align4(descsz):]
		if strings.TrimRight(name, "\x00") != "stapsdt" || typ != ntStapsdt || len(desc) < 3*8 {
			continue
		}
		m := USDTMarker{Address: bo.Uint64(desc), Semaphore: bo.Uint64(desc[16:])}
		noteBase := bo.Uint64(desc[8:])
		strs := strings.SplitN(string(desc[24:]), "\x00", 4)
		if len(strs) < 3 {
			continue
		}
		m.Provider, m.Name, m.Args = strs[0], strs[1], strings.TrimSpace(strs[2])
		// A marker that could not be typed or printed on one line is left out.
		if !printable(m.Provider) || !printable(m.Name) || m.Provider == "" || m.Name == "" ||
			strings.ContainsAny(m.Provider+m.Name, ": ") ||
			strings.ContainsFunc(m.Args, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			continue
		}
		if hasBase && noteBase != 0 {
			m.Address += baseAddr - noteBase
		}
		off, ok := img.fileOffset(m.Address)
		if !ok {
			continue
		}
		m.Offset = off
		if m.Semaphore != 0 {
			if m.SemaphoreOffset, ok = img.fileOffset(m.Semaphore); !ok {
				continue
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// parseUSDTLocation fills the USDT fields of s from "PROVIDER:NAME" or
// "NAME" (what follows "PATH:usdt:").
func (s *Spec) parseUSDTLocation(loc string) error {
	bad := func(format string, args ...any) error {
		return newError(ErrBadSpec, "bad probe %q: "+format, append([]any{s.Raw}, args...)...)
	}
	s.USDT = true
	provider, name, hasProvider := strings.Cut(loc, ":")
	if !hasProvider {
		provider, name = "", loc
	}
	if hasProvider && provider == "" || name == "" || strings.Contains(name, ":") {
		return bad("write PATH:usdt:PROVIDER:NAME or PATH:usdt:NAME (list the markers: uprobectl symbols --usdt PATH)")
	}
	if strings.Contains(name, "%") {
		return bad("a USDT marker takes no suffix (%q): it is one instruction, not a function", name[strings.Index(name, "%"):])
	}
	for _, p := range []string{provider, name} {
		if _, err := path.Match(p, ""); err != nil {
			return bad("marker pattern %q is malformed (path.Match syntax: * ? [a-z] and \\ to escape)", p)
		}
	}
	s.USDTProvider, s.USDTName = provider, name
	return nil
}

// resolveUSDT gives one target per marker site that the spec matches, with
// the marker's arguments as fetch args arg1..argN.
func (img *elfImage) resolveUSDT(spec *Spec) ([]Target, error) {
	markers, err := img.usdtMarkers()
	if err != nil {
		return nil, err
	}
	provGlob := spec.USDTProvider
	if provGlob == "" {
		provGlob = "*"
	}
	var matched []USDTMarker
	providers := map[string]bool{}
	for _, m := range markers {
		okP, _ := path.Match(provGlob, m.Provider)
		okN, _ := path.Match(spec.USDTName, m.Name)
		if okP && okN {
			matched = append(matched, m)
			providers[m.Provider] = true
		}
	}
	what := spec.USDTName
	if spec.USDTProvider != "" {
		what = spec.USDTProvider + ":" + what
	}
	if len(matched) == 0 {
		return nil, newError(ErrSymbolNotFound, "no USDT marker matches %q in %s (list them: uprobectl symbols --usdt %s)",
			what, img.path, img.path)
	}
	if spec.USDTProvider == "" && len(providers) > 1 {
		names := make([]string, 0, len(providers))
		for p := range providers {
			names = append(names, p)
		}
		slices.Sort(names)
		return nil, newError(ErrBadSpec, "USDT marker %q in %s is in several providers (%s): write PATH:usdt:PROVIDER:%s",
			what, img.path, strings.Join(names, ", "), spec.USDTName)
	}
	var targets []Target
	for _, m := range matched {
		refuse := func(kind error, format string, args ...any) error {
			return newError(kind, "USDT marker %s in %s: "+format, append([]any{m.FullName(), img.path}, args...)...)
		}
		var why error
		if _, ok := img.execSegment(m.Offset); !ok {
			why = refuse(ErrUnsafeOffset, "its address 0x%x is not in an executable segment", m.Address)
		} else if r := img.kernelRefuses(m.Offset); r != "" {
			why = refuse(ErrRefused, "the kernel cannot put a uprobe at file offset 0x%x: %s", m.Offset, r)
		}
		var args []Arg
		if why == nil {
			args, why = img.usdtFetchArgs(m, spec)
			if why != nil {
				why = refuse(ErrBadArg, "%v", why)
			}
		}
		if why != nil {
			if len(matched) > 1 {
				spec.Skipped = append(spec.Skipped, why.Error())
				continue
			}
			return nil, why
		}
		// A semaphore is the kernel's reference counter: it raises it in
		// every process the probe is armed in, now and at later mmaps, and
		// lowers it when the probe goes.
		targets = append(targets, Target{Symbol: m.FullName(), Offset: m.Offset, RefCtr: m.SemaphoreOffset, Args: args})
	}
	if len(targets) == 0 {
		why := spec.Skipped[0]
		if n := len(spec.Skipped); n > 1 {
			why += fmt.Sprintf(" (and %d more)", n-1)
		}
		return nil, newError(ErrRefused, "no USDT marker that matches %q in %s can be probed: %s", what, img.path, why)
	}
	return targets, nil
}

// usdtArg is one marker argument as the kernel fetches it.
type usdtArg struct {
	expr, typ string
	kind      exprKind // of expr: register, memory or immediate
}

// usdtArgs translates the marker's argument specs for the kernel. A
// %rip-relative operand (a global variable) becomes @+X, which the kernel
// reads at bp_addr - probe_offset + X (translate_user_vaddr): X is the
// variable's address minus the probe segment's vaddr-offset delta.
func (img *elfImage) usdtArgs(m USDTMarker) ([]usdtArg, error) {
	specs := strings.Fields(m.Args)
	out := make([]usdtArg, 0, len(specs))
	for i, s := range specs {
		expr, typ, err := usdtArgExpr(s, func(sym string, disp int64) (string, error) {
			return img.ripRelative(m, sym, disp)
		})
		if err != nil {
			return nil, fmt.Errorf("argument %d %q cannot be fetched: %v", i+1, s, err)
		}
		kind := kindRegister
		switch expr[0] {
		case '\\':
			kind = kindImm
		case '+', '-', '@':
			kind = kindMemory
		}
		out = append(out, usdtArg{expr, typ, kind})
	}
	return out, nil
}

// ripRelative is the kernel's @+X for the global sym+disp read by the
// marker m.
func (img *elfImage) ripRelative(m USDTMarker, sym string, disp int64) (string, error) {
	seg, ok := img.execSegment(m.Offset)
	if !ok {
		return "", fmt.Errorf("the marker is not in an executable segment")
	}
	addr, ok := img.dataSymbol(sym)
	if !ok {
		return "", fmt.Errorf("global %q is not in the file's symbol table", sym)
	}
	x := int64(addr) + disp - int64(seg.Vaddr-seg.Off)
	if x < 0 {
		return "", fmt.Errorf("global %q lies before the file's first byte", sym)
	}
	return fmt.Sprintf("@+%#x", x), nil
}

// dataSymbol returns the address of the defined symbol name (any type),
// from .symtab or .dynsym.
func (img *elfImage) dataSymbol(name string) (uint64, bool) {
	for _, read := range []func() ([]elf.Symbol, error){img.elf.Symbols, img.elf.DynamicSymbols} {
		syms, _ := read()
		for _, s := range syms {
			if s.Name == name && s.Section != elf.SHN_UNDEF && s.Value != 0 {
				return s.Value, true
			}
		}
	}
	return 0, false
}

// usdtFetchArgs gives the fetch args of a marker: its arguments arg1..argN
// with the size and sign of the note, where the user's own tokens in the
// word (spec.USDTArgs) rename or retype them: "fn=arg2:string" replaces
// arg2 by a string named fn; any other token (e.g. "+8(arg1):u32") is
// fetched after them, with argK meaning the marker's Kth argument.
func (img *elfImage) usdtFetchArgs(m USDTMarker, spec *Spec) ([]Arg, error) {
	margs, err := img.usdtArgs(m)
	if err != nil {
		return nil, err
	}
	abi := &argABI{tooFar: func(s string, n int) error {
		return fmt.Errorf("%s: marker %s has %d arguments", s, m.FullName(), len(margs))
	}}
	toks := make([]string, len(margs))
	for i, a := range margs {
		abi.regs = append(abi.regs, a.expr)
		abi.kinds = append(abi.kinds, a.kind)
		toks[i] = fmt.Sprintf("arg%d=%s:%s", i+1, a.expr, a.typ)
	}
	if _, err := parseArgsABI(toks, false, spec.Raw, abi); err != nil {
		var pe *probeError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("its arguments %q cannot be fetched: %s", m.Args, pe.msg)
		}
		return nil, fmt.Errorf("its arguments %q cannot be fetched: %v", m.Args, err)
	}
	if len(spec.USDTArgs) == 0 {
		return parseArgsABI(toks, false, spec.Raw, abi)
	}
	written := map[string]string{} // rewritten token -> what the user wrote
	for _, tok := range spec.USDTArgs {
		k, rewritten := usdtUserArg(tok, func(k int) string {
			if k >= 1 && k <= len(margs) {
				return margs[k-1].typ
			}
			return ""
		})
		written[rewritten] = tok
		if k >= 1 && k <= len(margs) {
			toks[k-1] = rewritten
		} else {
			toks = append(toks, rewritten)
		}
	}
	// An error now is the user's token's: it names it as they wrote it.
	args, err := parseArgsABI(toks, false, spec.Raw, abi)
	if err != nil {
		var pe *probeError
		if !errors.As(err, &pe) {
			return nil, err
		}
		msg := pe.msg
		for rewritten, tok := range written {
			msg = strings.ReplaceAll(msg, strconv.Quote(rewritten), strconv.Quote(tok))
		}
		return nil, errors.New(msg)
	}
	for i := range args {
		if tok, ok := written[args[i].Given]; ok {
			args[i].Given = tok
		}
	}
	return args, nil
}

// usdtUserArg reads a user token of a usdt word. When its expression is a
// bare argK it returns K (else 0) and the token the kernel parser gets:
// argK keeps the marker's type unless one is given (typeOf), and a string
// type reads the string argK points to ("fn=arg2:string" is
// "fn=+0(arg2):string"). An unnamed argK keeps its name argK.
func usdtUserArg(tok string, typeOf func(k int) string) (int, string) {
	name, body := "", tok
	if eq := strings.IndexByte(tok, '='); eq > 0 && !strings.ContainsRune(`%$+-@\`, rune(tok[0])) {
		name, body = tok[:eq+1], tok[eq+1:]
	}
	expr, typ, hasType := strings.Cut(body, ":")
	n, ok := strings.CutPrefix(expr, "arg")
	k, err := strconv.Atoi(n)
	if !ok || err != nil || k < 1 || !allDigits(n) {
		return 0, tok
	}
	if name == "" {
		name = expr + "="
	}
	if !hasType {
		typ = typeOf(k)
	}
	base, _, _ := strings.Cut(typ, "[")
	if base == "string" || base == "ustring" {
		expr = "+0(" + expr + ")"
	}
	if typ == "" {
		return k, name + expr
	}
	return k, name + expr + ":" + typ
}

// usdtRegisters maps every x86-64 register name an SDT operand may use
// (the 64-, 32-, 16- and low 8-bit forms) to the kernel's name for the
// whole register; the type then takes the low bytes. The high-byte
// registers %ah %bh %ch %dh are not here: no kernel type reads them.
var usdtRegisters = func() map[string]string {
	m := map[string]string{}
	for _, r := range [][]string{
		{"ax", "rax", "eax", "ax", "al"}, {"bx", "rbx", "ebx", "bx", "bl"},
		{"cx", "rcx", "ecx", "cx", "cl"}, {"dx", "rdx", "edx", "dx", "dl"},
		{"si", "rsi", "esi", "si", "sil"}, {"di", "rdi", "edi", "di", "dil"},
		{"bp", "rbp", "ebp", "bp", "bpl"}, {"sp", "rsp", "esp", "sp", "spl"},
	} {
		for _, name := range r[1:] {
			m[name] = r[0]
		}
	}
	for n := 8; n <= 15; n++ {
		r := fmt.Sprintf("r%d", n)
		for _, suffix := range []string{"", "d", "w", "b", "l"} {
			m[r+suffix] = r
		}
	}
	return m
}()

// USDTArgExpr translates one SDT argument spec ("-4@-20(%rbp)") into a
// kernel fetch expression and type ("-20(%bp)", "s32"):
//
//	N@%reg         %reg (the whole register; the type keeps its low N bytes)
//	N@disp(%reg)   +disp(%reg) (a user-memory dereference)
//	N@$const       \const (an immediate)
//
// N is 1, 2, 4 or 8, negative when signed; a spec without "N@" is 8 bytes
// unsigned. Refused: %rip-relative operands (sym(%rip): the kernel's fetch
// args have no PC-relative form), an index register (disp(%b,%i,s)),
// segment overrides, the high-byte registers %ah..%dh.
func USDTArgExpr(spec string) (expr, typ string, err error) {
	return usdtArgExpr(spec, nil)
}

// usdtArgExpr is USDTArgExpr with sym+disp(%rip) operands translated by
// global (nil: refused).
func usdtArgExpr(spec string, global func(sym string, disp int64) (string, error)) (expr, typ string, err error) {
	size, op := 8, spec
	if at := strings.IndexByte(spec, '@'); at >= 0 {
		n, err := strconv.Atoi(spec[:at])
		if err != nil {
			return "", "", fmt.Errorf("size %q is not a number", spec[:at])
		}
		size, op = n, spec[at+1:]
	}
	switch size {
	case 1, 2, 4, 8:
		typ = fmt.Sprintf("u%d", size*8)
	case -1, -2, -4, -8:
		typ = fmt.Sprintf("s%d", -size*8)
	default:
		return "", "", fmt.Errorf("size %d: only 1, 2, 4 and 8 bytes (negative when signed) can be fetched", size)
	}
	reg := func(r string) (string, error) {
		name, ok := strings.CutPrefix(r, "%")
		if !ok {
			return "", fmt.Errorf("%q is not a register", r)
		}
		if name == "rip" || name == "eip" {
			return "", fmt.Errorf("a %%rip-relative operand (a global variable) has no kernel fetch arg form")
		}
		k, ok := usdtRegisters[name]
		if !ok {
			return "", fmt.Errorf("register %s is not one the kernel's fetch args can read", r)
		}
		return "%" + k, nil
	}
	switch {
	case op == "":
		return "", "", fmt.Errorf("no operand")
	case op[0] == '$':
		v, err := strconv.ParseInt(op[1:], 0, 64)
		if err != nil {
			return "", "", fmt.Errorf("constant %q is not a number (a symbol's address cannot be fetched)", op[1:])
		}
		return `\` + strconv.FormatInt(v, 10), typ, nil
	case op[0] == '%':
		if strings.Contains(op, ":") {
			return "", "", fmt.Errorf("segment-relative operands cannot be fetched")
		}
		r, err := reg(op)
		return r, typ, err
	}
	open := strings.IndexByte(op, '(')
	if open < 0 || !strings.HasSuffix(op, ")") {
		return "", "", fmt.Errorf("operand %q is not a register, a constant or disp(%%reg)", op)
	}
	inner := op[open+1 : len(op)-1]
	if (inner == "%rip" || inner == "%eip") && global != nil {
		sym, disp, err := symbolDisplacement(op[:open])
		if err != nil {
			return "", "", err
		}
		expr, err := global(sym, disp)
		return expr, typ, err
	}
	if strings.Contains(inner, ",") {
		return "", "", fmt.Errorf("an indexed operand (base,index,scale) has no kernel fetch arg form")
	}
	r, err := reg(inner)
	if err != nil {
		return "", "", err
	}
	disp := int64(0)
	if d := op[:open]; d != "" {
		if disp, err = strconv.ParseInt(d, 0, 64); err != nil {
			return "", "", fmt.Errorf("displacement %q is not a number (a symbol cannot be fetched)", d)
		}
	}
	return fmt.Sprintf("%+d(%s)", disp, r), typ, nil
}

// symbolDisplacement splits the displacement of a %rip-relative SDT
// operand, "sym", "40+sym" or "sym+8" or "sym-8", into the symbol and the
// sum of the numbers. A bare number (relative to the next instruction,
// which the note does not give) is refused.
func symbolDisplacement(d string) (string, int64, error) {
	sym, total := "", int64(0)
	for i := 0; i < len(d); {
		j := i + 1
		for j < len(d) && d[j] != '+' && d[j] != '-' {
			j++
		}
		part := d[i:j]
		sign := int64(1)
		if part[0] == '+' || part[0] == '-' {
			if part[0] == '-' {
				sign = -1
			}
			part = part[1:]
		}
		if v, err := strconv.ParseInt(part, 0, 64); err == nil {
			total += sign * v
		} else if sym == "" && sign == 1 && part != "" {
			sym = part
		} else {
			return "", 0, fmt.Errorf("%%rip-relative operand %q: cannot read %q", d, part)
		}
		i = j
	}
	if sym == "" {
		return "", 0, fmt.Errorf("a %%rip-relative operand without a symbol (%q) has no kernel fetch arg form", d)
	}
	return sym, total, nil
}

// usdtWordArgs checks the fetch args written in a usdt probe word: argK
// means the marker's Kth argument, checked against the marker at Resolve.
// Here they are parsed as if every argK were a register, which catches
// everything but a K past the marker's arguments.
func usdtWordArgs(s *Spec, toks []string) error {
	if len(toks) == 0 {
		return nil
	}
	placeholder := &argABI{tooFar: func(a string, n int) error { return fmt.Errorf("%s: too many arguments", a) }}
	for range maxArgs {
		placeholder.regs = append(placeholder.regs, "%ax")
	}
	rewritten := make([]string, len(toks))
	for i, tok := range toks {
		_, rewritten[i] = usdtUserArg(tok, func(int) string { return "" })
	}
	if _, err := parseArgsABI(rewritten, false, s.Raw, placeholder); err != nil {
		return err
	}
	s.USDTArgs = toks
	return nil
}
