package probe

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Fuzz targets for the parsers of untrusted text in this package. Run one
// with, e.g.,
//
//	go test -run='^$' -fuzz=FuzzParseSpec -fuzztime=30s ./probe/
//
// A failing input is saved under testdata/fuzz/FuzzXxx/ and replayed by
// every plain "go test" from then on.

// specSeeds are probe words from spec_test.go and fetcharg_test.go.
var specSeeds = []string{
	"libc.so.6:malloc", "/usr/bin/bash:readline", "./a.out:main",
	"libc.so.6:malloc+0x10", "libc.so.6:malloc+16", "libc.so.6:malloc+0",
	"/bin/x:fn%return", "/bin/x:fn+0%return", "/bin/x:0x1139", "/bin/x:0X1139",
	"/bin/x:4409", "/bin/x:0", "/bin/x:0x1139%return",
	"libc.so.6:pthread_mutex_*lock", "libc.so.6:str[cn]py", "/opt/a:b/bin:fn",
	"libc.so.6:memcpy@GLIBC_2.2.5", "/bin/goapp:main.main", `/bin/goapp:main.(\*T).Run`,
	"/tmp/é/x:fn", "  libc.so.6:free \t ",
	"", " \t ", "libc.so.6:mal\nloc", "libc.so.6:malloc a=%di\n-:uprobes/x", "/tmp/a#b:fn",
	"/tmp/a\x00b:fn", "/tmp/\rfoo:fn", "/tmp/\vfoo:fn", "/tmp/\xc3\xa0:fn", "libc.so.6",
	":malloc", "libc.so.6:", "libc.so.6:%return", "libc.so.6:malloc%entry",
	"libc.so.6:malloc+0x10%return", "libc.so.6:malloc+", "libc.so.6:malloc+010",
	"libc.so.6:+0x10", "libc.so.6:0x", "/x:0x99999999999999999999",
	"libstdc++.so.6:std::string", "libc.so.6:foo[", "libc.so.6:a/b", "libc.so.6:malloc %rdi",
	"./app:ns::Class::method(int)", "./app:*ns::twice<*", "./app:ns::operator+(ns::Vec,ns::Vec)",
	"./app:ns::operator++0x10", "./app:ns::operator%%return", "/opt/a:b/app:::f", "./app::f",

	"libc.so.6:malloc size=%di:u64", "BIN:fn s=+0(%si):string", "BIN:fn%return rv=$retval:s32",
	"BIN:fn $comm", "BIN:fn arg1:u32", "BIN:fn arg1 arg2 arg3 arg4 arg5 arg6",
	"BIN:fn n=arg3:s32", "BIN:fn +0(arg2):string", "BIN:fn p=+8(+0(arg1)):u32",
	"BIN:fn -8(%bp):s64", "BIN:fn +u0(%di):ustring -u8(%sp)", "BIN:fn -0x80000000(%di)",
	"BIN:fn " + strings.Repeat("+0(", 10) + "%di" + strings.Repeat(")", 10),
	"BIN:fn%return +0($retval):string", "BIN:fn +0($stack):x64",
	"BIN:fn $stack $stack3:u32 $stack0", "BIN:fn $COMM", "BIN:fn c=$comm:string",
	"BIN:fn%return $retval", "BIN:fn @0x601040:u32 @4096", "BIN:fn v=@+0x2000:u64",
	`BIN:fn \123 \0x1f:u8 \-5:s32 \+7`, `BIN:fn \"hello"`, `BIN:fn \""`, `BIN:fn s=\"a=b"`,
	"BIN:fn %di:u8 %di:s16 %di:x32 %di:char +0(%di):x64",
	"BIN:fn +0(%di):b4@2/8 %di:b3@0/64 +0(%si):b32@32/64",
	"BIN:fn +0(%di):u8[16] +0(%si):string[4] @0x1000:x32[64] +0(%dx):u16[0x10]",
	"BIN:fn %di %di", "BIN:fn arg1 arg1=%si", "BIN:fn $comm $comm",
	"BIN:fn abcdefghijabcdefghijabcdefghij12=%di", "BIN:fn\targ1\targ2",
	"BIN:fn +0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(%di)))):u64[64]",
	"BIN:fn %eax", "BIN:fn %r8d", "BIN:fn %dil", "BIN:fn %fs", "BIN:fn $arg1",
	"BIN:fn $stack99999999999", "BIN:fn arg7", "BIN:fn%return arg1", "BIN:fn +0%di",
	"BIN:fn +0(%di)x", "BIN:fn +0()", "BIN:fn +0x80000000(%di)", "BIN:fn +0($comm)",
	"BIN:fn @sym", "BIN:fn @+-4", `BIN:fn \"a:b"`, `BIN:fn \-0x8000000000000001`,
	"BIN:fn %di:string", "BIN:fn $comm:string[2]", "BIN:fn %di:u8[4]", "BIN:fn +0(%di):u8[65]",
	"BIN:fn %di:symbol", "BIN:fn %di:b4@6/8", "BIN:fn %di:b4@x/8", "BIN:fn :u32", "BIN:fn =%di",
	"BIN:fn 1x=%di", "BIN:fn common_pid=%di", "BIN:fn%return __probe_ret_ip=%di",
	"BIN:fn abcdefghijabcdefghijabcdefghij123=%di", "BIN:fn a=%di a=%si",
}

// checkKernelText fails unless s can stand as one word of a uprobe_events
// command: no byte the kernel splits or cuts at, no control character.
func checkKernelText(t *testing.T, what, s string) {
	t.Helper()
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' || unsafeByte(s[i]) != "" {
			t.Fatalf("%s %q holds byte %#02x at %d, which would split or inject a uprobe_events command", what, s, s[i], i)
		}
	}
}

// renderSpec writes s back as a probe word. It is what a caller would
// write to get s again.
func renderSpec(s Spec) string {
	var b strings.Builder
	b.WriteString(s.Path)
	b.WriteByte(':')
	if s.HasFileOffset {
		fmt.Fprintf(&b, "%#x", s.FileOffset)
	} else {
		b.WriteString(s.Symbol)
		// A '+' in the symbol would be read as the offset's: an explicit
		// offset keeps it in the symbol.
		if s.SymbolOffset != 0 || strings.Contains(s.Symbol, "+") {
			fmt.Fprintf(&b, "+%#x", s.SymbolOffset)
		}
	}
	if s.Return {
		b.WriteString("%return")
	}
	for _, a := range s.Args {
		b.WriteByte(' ')
		b.WriteString(a.Fetch())
	}
	return b.String()
}

// checkArgs checks what the kernel needs of a probe's fetch arguments.
func checkArgs(t *testing.T, args []Arg) {
	t.Helper()
	if len(args) > maxArgs {
		t.Fatalf("%d arguments accepted, the kernel takes %d", len(args), maxArgs)
	}
	names := map[string]bool{}
	for _, a := range args {
		checkKernelText(t, "argument", a.Fetch())
		if !isCIdent(a.Name) || len(a.Name) > maxArgNameLen {
			t.Fatalf("argument %q: name %q is not a C identifier of at most %d bytes", a.Given, a.Name, maxArgNameLen)
		}
		if strings.HasPrefix(a.Name, "common_") || reservedArgNames[a.Name] {
			t.Fatalf("argument %q: reserved name %q", a.Given, a.Name)
		}
		if names[a.Name] {
			t.Fatalf("argument name %q used twice", a.Name)
		}
		names[a.Name] = true
		if a.Expr == "" || strings.ContainsRune(a.Expr, ':') {
			t.Fatalf("argument %q: expression %q is empty or holds the type separator", a.Given, a.Expr)
		}
		body := a.Expr
		if a.Type != "" {
			body += ":" + a.Type
		}
		if len(body) > maxArgBodyLen {
			t.Fatalf("argument %q: body %q is %d bytes, the kernel takes %d", a.Given, body, len(body), maxArgBodyLen)
		}
		if a.Fetch() != a.Name+"="+body {
			t.Fatalf("Fetch() = %q, want %q", a.Fetch(), a.Name+"="+body)
		}
	}
}

// sameArgs compares what is written to the kernel, not what was given.
func sameArgs(a, b []Arg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Expr != b[i].Expr || a[i].Type != b[i].Type {
			return false
		}
	}
	return true
}

// FuzzParseSpec: whatever ParseSpec accepts is safe to write to
// uprobe_events and reads back the same once rendered; whatever it refuses
// is refused with a one-line ErrBadSpec/ErrBadArg error.
func FuzzParseSpec(f *testing.F) {
	for _, s := range specSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, word string) {
		spec, err := ParseSpec(word)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) && !errors.Is(err, ErrBadArg) {
				t.Fatalf("error wraps neither ErrBadSpec nor ErrBadArg: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err.Error())
			}
			return
		}
		if spec.Raw != word {
			t.Fatalf("Raw = %q, want %q", spec.Raw, word)
		}
		if spec.Path == "" {
			t.Fatal("empty Path accepted")
		}
		checkKernelText(t, "path", spec.Path)
		checkKernelText(t, "symbol", spec.Symbol)
		if spec.HasFileOffset == (spec.Symbol != "") {
			t.Fatalf("HasFileOffset %v with symbol %q", spec.HasFileOffset, spec.Symbol)
		}
		if spec.HasFileOffset && spec.SymbolOffset != 0 {
			t.Fatalf("file offset with a symbol offset: %+v", spec)
		}
		if spec.Return && spec.SymbolOffset != 0 {
			t.Fatalf("%%return at +%#x accepted", spec.SymbolOffset)
		}
		if strings.ContainsRune(spec.Symbol, '/') && strings.Contains(spec.Symbol, "::") || suffixPercent(spec.Symbol) >= 0 {
			t.Fatalf("symbol %q holds '/' in a C++ name or a '%%' that is not part of an operator name", spec.Symbol)
		}
		checkArgs(t, spec.Args)

		again := renderSpec(spec)
		spec2, err := ParseSpec(again)
		if err != nil {
			t.Fatalf("%q parsed, but its rendering %q does not: %v", word, again, err)
		}
		if spec2.Path != spec.Path || spec2.Symbol != spec.Symbol || spec2.SymbolOffset != spec.SymbolOffset ||
			spec2.FileOffset != spec.FileOffset || spec2.HasFileOffset != spec.HasFileOffset ||
			spec2.Return != spec.Return || !sameArgs(spec2.Args, spec.Args) {
			t.Fatalf("%q -> %+v\nrendered %q -> %+v", word, spec, again, spec2)
		}
	})
}

// FuzzFetchArgs drives the fetch-argument parser (parseArgs, as ParseSpec
// calls it) with argument text alone, on entry and on return probes.
// Accepted arguments fit the kernel's limits (name <= 32 bytes, body <= 63,
// <= 128 arguments, unique names), hold no byte that would split the
// command, and are a fixed point: the kernel text parses back to itself.
func FuzzFetchArgs(f *testing.F) {
	for _, s := range specSeeds {
		if _, args, ok := strings.Cut(s, " "); ok {
			f.Add(args, false)
			f.Add(args, true)
		}
	}
	f.Add("x=%di:b4@99999999999/8", false)
	f.Add(`\-9223372036854775808 \18446744073709551615:x64`, false)
	f.Fuzz(func(t *testing.T, text string, isReturn bool) {
		// ParseSpec refuses these bytes before the arguments are looked at.
		for i := 0; i < len(text); i++ {
			if text[i] != ' ' && text[i] != '\t' && unsafeByte(text[i]) != "" {
				return
			}
		}
		toks := splitWord(text)
		args, err := parseArgs(toks, isReturn, text)
		if err != nil {
			if !errors.Is(err, ErrBadArg) {
				t.Fatalf("error does not wrap ErrBadArg: %v", err)
			}
			return
		}
		if len(args) != len(toks) {
			t.Fatalf("%d tokens, %d arguments", len(toks), len(args))
		}
		checkArgs(t, args)
		for i, a := range args {
			if a.Given != toks[i] {
				t.Fatalf("Given = %q, want %q", a.Given, toks[i])
			}
			if !isReturn && strings.Contains(a.Expr, "$retval") {
				t.Fatalf("$retval accepted on an entry probe: %q", a.Given)
			}
			if strings.Contains(a.Expr, "$arg") {
				t.Fatalf("$argN accepted: %q", a.Given)
			}
		}
		fetch := make([]string, len(args))
		for i, a := range args {
			fetch[i] = a.Fetch()
		}
		args2, err := parseArgs(fetch, isReturn, strings.Join(fetch, " "))
		if err != nil {
			t.Fatalf("%q accepted, but its kernel text %q is not: %v", text, fetch, err)
		}
		if !sameArgs(args, args2) {
			t.Fatalf("%q -> %q, which parses to %+v", text, fetch, args2)
		}
	})
}

// FuzzParseLDCache feeds ld.so.cache images to parseLDCache. Two kinds of
// input: raw bytes (must not panic, and every string returned is a real
// NUL-terminated string of the image), and a list of libraries laid out by
// buildLDCache (must parse back to exactly that list, with or without the
// old-format prefix).
func FuzzParseLDCache(f *testing.F) {
	libs := [][2]string{{"libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"}, {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}}
	good := buildLDCache(false, libs)
	f.Add(good, "", false)
	f.Add(buildLDCache(true, libs), "", false)
	f.Add(buildLDCache(true, libs[:1]), "", false)
	f.Add([]byte(nil), "libc.so.6=/lib/libc.so.6;libm.so.6=/lib/libm.so.6", true)
	f.Add([]byte(nil), "a=b", false)
	f.Add([]byte("ld.so-1.7.0\x00\x00\x00\x00\x00"), "", false)
	f.Add(good[:30], "", false)
	f.Add(good[:ldCacheNewHeader+10], "", false)
	f.Add(good[:len(good)-1], "", false)
	f.Fuzz(func(t *testing.T, data []byte, list string, old bool) {
		entries, err := parseLDCache(data)
		if err == nil {
			for _, e := range entries {
				if strings.IndexByte(e.Name, 0) >= 0 || strings.IndexByte(e.Path, 0) >= 0 {
					t.Fatalf("entry %+v holds a NUL", e)
				}
				if !bytes.Contains(data, append([]byte(e.Path), 0)) || !bytes.Contains(data, append([]byte(e.Name), 0)) {
					t.Fatalf("entry %+v is not made of strings of the image", e)
				}
			}
		}

		if list == "" || strings.IndexByte(list, 0) >= 0 {
			return
		}
		var want [][2]string
		for _, l := range strings.Split(list, ";") {
			name, path, _ := strings.Cut(l, "=")
			want = append(want, [2]string{name, path})
		}
		got, err := parseLDCache(buildLDCache(old, want))
		if err != nil {
			t.Fatalf("%q (old %v): %v", want, old, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d entries, want %d", want, len(got), len(want))
		}
		for i, e := range got {
			if e.Name != want[i][0] || e.Path != want[i][1] || !e.isX8664() {
				t.Fatalf("entry %d: %+v, want %q", i, e, want[i])
			}
		}
	})
}
