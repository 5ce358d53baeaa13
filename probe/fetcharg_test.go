package probe

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fetches returns the kernel text of the arguments of a probe word.
func fetches(t *testing.T, word string) ([]string, error) {
	t.Helper()
	spec, err := ParseSpec(word)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range spec.Args {
		out = append(out, a.Fetch())
	}
	return out, nil
}

func TestFetchArgs(t *testing.T) {
	many := strings.Repeat(" %di", 128)
	var manyWant []string
	for i := 1; i <= 128; i++ {
		name := "di"
		if i > 1 {
			name = fmt.Sprintf("di_%d", i)
		}
		manyWant = append(manyWant, name+"=%di")
	}
	deep := strings.Repeat("+0(", 10) + "%di" + strings.Repeat(")", 10)
	body63 := "+0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(%di)))):u64[64]" // 63 characters
	for _, tc := range []struct {
		name string
		word string // the probe word
		want []string
	}{
		// The examples of the brief.
		{"register with type", "libc.so.6:malloc size=%di:u64", []string{"size=%di:u64"}},
		{"string through deref", "BIN:fn s=+0(%si):string", []string{"s=+0(%si):string"}},
		{"retval", "BIN:fn%return rv=$retval:s32", []string{"rv=$retval:s32"}},
		{"comm", "BIN:fn $comm", []string{"comm=$comm:string"}},
		{"alias", "BIN:fn arg1:u32", []string{"arg1=%di:u32"}},

		// Registers: the kernel's x86-64 table.
		{"all registers", "BIN:fn %ax %bx %cx %dx %si %di %bp %sp %r8 %r9 %r10 %r11 %r12 %r13 %r14 %r15 %ip %flags %cs %ss %orig_ax",
			[]string{"ax=%ax", "bx=%bx", "cx=%cx", "dx=%dx", "si=%si", "di=%di", "bp=%bp", "sp=%sp", "r8=%r8", "r9=%r9",
				"r10=%r10", "r11=%r11", "r12=%r12", "r13=%r13", "r14=%r14", "r15=%r15", "ip=%ip", "flags=%flags",
				"cs=%cs", "ss=%ss", "orig_ax=%orig_ax"}},
		{"aliases", "BIN:fn arg1 arg2 arg3 arg4 arg5 arg6",
			[]string{"arg1=%di", "arg2=%si", "arg3=%dx", "arg4=%cx", "arg5=%r8", "arg6=%r9"}},
		{"named alias", "BIN:fn n=arg3:s32", []string{"n=%dx:s32"}},

		// Dereferences.
		{"alias in deref", "BIN:fn +0(arg2):string", []string{"arg1=+0(%si):string"}},
		{"nested deref", "BIN:fn p=+8(+0(arg1)):u32", []string{"p=+8(+0(%di)):u32"}},
		{"negative deref", "BIN:fn -8(%bp):s64", []string{"arg1=-8(%bp):s64"}},
		{"user deref", "BIN:fn +u0(%di):ustring -u8(%sp)", []string{"arg1=+u0(%di):ustring", "arg2=-u8(%sp)"}},
		{"largest negative offset", "BIN:fn -0x80000000(%di)", []string{"arg1=-0x80000000(%di)"}},
		{"ten levels", "BIN:fn " + deep, []string{"arg1=" + deep}},
		{"deref of retval", "BIN:fn%return +0($retval):string", []string{"arg1=+0($retval):string"}},
		{"deref of stack", "BIN:fn +0($stack):x64", []string{"arg1=+0($stack):x64"}},

		// Variables.
		{"stack", "BIN:fn $stack $stack3:u32 $stack0", []string{"arg1=$stack", "arg2=$stack3:u32", "arg3=$stack0"}},
		{"COMM", "BIN:fn $COMM", []string{"comm=$COMM:string"}},
		{"comm as string", "BIN:fn c=$comm:string", []string{"c=$comm:string"}},
		{"retval default name", "BIN:fn%return $retval", []string{"retval=$retval"}},

		// Memory and immediates.
		{"absolute address", "BIN:fn @0x601040:u32 @4096", []string{"arg1=@0x601040:u32", "arg2=@4096"}},
		{"file offset", "BIN:fn v=@+0x2000:u64", []string{"v=@+0x2000:u64"}},
		{"string at address", "BIN:fn @+0x2000:string", []string{"arg1=@+0x2000:string"}},
		{"immediates", `BIN:fn \123 \0x1f:u8 \-5:s32 \+7`, []string{`arg1=\123`, `arg2=\0x1f:u8`, `arg3=\-5:s32`, `arg4=\+7`}},
		{"immediate string", `BIN:fn \"hello"`, []string{`arg1=\"hello":string`}},
		{"empty immediate string", `BIN:fn \""`, []string{`arg1=\"":string`}},
		{"named string with =", `BIN:fn s=\"a=b"`, []string{`s=\"a=b":string`}},
		{"unnamed string with =", `BIN:fn \"a=b"`, []string{`arg1=\"a=b":string`}},

		// Types.
		{"basic types", "BIN:fn %di:u8 %di:s16 %di:x32 %di:char +0(%di):x64",
			[]string{"di=%di:u8", "di_2=%di:s16", "di_3=%di:x32", "di_4=%di:char", "arg5=+0(%di):x64"}},
		{"bitfields", "BIN:fn +0(%di):b4@2/8 %di:b3@0/64 +0(%si):b32@32/64",
			[]string{"arg1=+0(%di):b4@2/8", "di=%di:b3@0/64", "arg3=+0(%si):b32@32/64"}},
		{"arrays", "BIN:fn +0(%di):u8[16] +0(%si):string[4] @0x1000:x32[64] +0(%dx):u16[0x10]",
			[]string{"arg1=+0(%di):u8[16]", "arg2=+0(%si):string[4]", "arg3=@0x1000:x32[64]", "arg4=+0(%dx):u16[0x10]"}},

		// Names.
		{"derived names dedupe", "BIN:fn %di %di", []string{"di=%di", "di_2=%di"}},
		{"derived name avoids a later explicit one", "BIN:fn arg1 arg1=%si", []string{"arg1_2=%di", "arg1=%si"}},
		{"positional names", "BIN:fn +0(%di) +8(%di)", []string{"arg1=+0(%di)", "arg2=+8(%di)"}},
		{"two comms", "BIN:fn $comm $comm", []string{"comm=$comm:string", "comm_2=$comm:string"}},
		{"32-character name", "BIN:fn abcdefghijabcdefghijabcdefghij12=%di", []string{"abcdefghijabcdefghijabcdefghij12=%di"}},
		{"underscore name", "BIN:fn _x1=%di", []string{"_x1=%di"}},
		{"128 arguments", "BIN:fn" + many, manyWant},
		{"63-character body", "BIN:fn " + body63, []string{"arg1=" + body63}},
		{"tab separated", "BIN:fn\targ1\targ2", []string{"arg1=%di", "arg2=%si"}},

		// Kernel limits at their edge.
		{"32-character derived name", "BIN:fn arg00000000000000000000000000001", []string{"arg00000000000000000000000000001=%di"}},
		{"derived name named", "BIN:fn x=arg000000000000000000000000000001", []string{"x=%di"}},
		{"3072 bytes per hit", "BIN:fn" + strings.Repeat(" +0(%di):u64[64]", 6), positional("+0(%di):u64[64]", 6)},
		{"3072 bytes of strings", "BIN:fn" + strings.Repeat(" +0(%di):string[64]", 12), positional("+0(%di):string[64]", 12)},
		{"3072 bytes, mixed sizes", "BIN:fn" + strings.Repeat(" +0(%di):u64[64]", 5) + " +0(%di):u32[64] +0(%di):b4@0/16[64] +0(%si):x8[64] %di:char $comm", // 2560+256+128+64+1+4 = 3013
			append(positional("+0(%di):u64[64]", 5), "arg6=+0(%di):u32[64]", "arg7=+0(%di):b4@0/16[64]", "arg8=+0(%si):x8[64]", "di=%di:char", "comm=$comm:string")},
		{"4068 bytes of arguments", "BIN:fn " + strings.Join(lineArgs(maxArgsLineLen), " "), lineArgs(maxArgsLineLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fetches(t, tc.word)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestFetchArgErrors(t *testing.T) {
	args129 := strings.Repeat(" %di", 129)
	deep11 := strings.Repeat("+0(", 11) + "%di" + strings.Repeat(")", 11)
	for _, tc := range []struct {
		name string
		word string
		msg  string // part of the message
	}{
		{"r prefix", "BIN:fn %rdi", "unknown register %rdi: the kernel names x86-64 registers without size prefixes or suffixes; use %di"},
		{"e prefix", "BIN:fn %eax", "use %ax"},
		{"rip", "BIN:fn %rip", "use %ip"},
		{"d suffix", "BIN:fn %r8d", "use %r8"},
		{"byte register", "BIN:fn %dil", "use %di"},
		{"upper case", "BIN:fn %DI", "use %di"},
		{"unknown register", "BIN:fn %xyz", "unknown register %xyz: use one of"},
		{"segment register", "BIN:fn %fs", "32-bit only"},
		{"bare percent", "BIN:fn %", "missing register name"},
		{"$argN", "BIN:fn $arg1", "$arg1 is not available for uprobes (the kernel refuses it): use arg1..arg6"},
		{"retval on entry", "BIN:fn $retval", "$retval is only available on a %return probe"},
		{"retval in deref on entry", "BIN:fn +0($retval):string", "only available on a %return probe"},
		{"retval prefix", "BIN:fn%return $retvalx", "unknown variable $retvalx"},
		{"unknown variable", "BIN:fn $foo", "unknown variable $foo"},
		{"stack out of range", "BIN:fn $stack99999999999", "out of range"},
		{"stackx", "BIN:fn $stackx", "unknown variable"},
		{"arg0", "BIN:fn arg0", "numbered from arg1"},
		{"arg10", "BIN:fn arg10", "arg10 is passed on the stack, not in a register (x86-64 C functions take 6 arguments in registers, Go functions 9)"}, // arg7..arg9: by the file, see TestGoArgs
		{"alias on return", "BIN:fn%return arg1", "not available on a %return probe"},
		{"bare word", "BIN:fn foo", `unknown fetch argument "foo"`},
		{"deref without parens", "BIN:fn +0%di", "needs parentheses"},
		{"deref not closed", "BIN:fn +0(%di", "missing ')'"},
		{"deref trailing text", "BIN:fn +0(%di)x", "missing ')'"},
		{"empty parens", "BIN:fn +0()", "empty parentheses"},
		{"bad deref offset", "BIN:fn +x(%di)", "dereference offset"},
		{"octal deref offset", "BIN:fn +010(%di)", "leading zero"},
		{"deref offset too big", "BIN:fn +0x80000000(%di)", "out of range"},
		{"deref of comm", "BIN:fn +0($comm)", "$comm cannot be dereferenced"},
		{"deref of immediate string", `BIN:fn +0(\"s")`, "cannot be dereferenced"},
		{"eleven levels", "BIN:fn " + deep11, "nested more than 10 deep"},
		{"symbol address", "BIN:fn @sym", "symbols are not supported in uprobe arguments"},
		{"bare at", "BIN:fn @", "symbols are not supported"},
		{"file offset without number", "BIN:fn @+", "missing number"},
		{"negative file offset", "BIN:fn @+-4", "not a number"},
		{"unclosed string", `BIN:fn \"abc`, `must end with '"'`},
		{"lone quote", `BIN:fn \"`, `must end with '"'`},
		{"colon in string", `BIN:fn \"a:b"`, `must end with '"'`},
		{"immediate word", `BIN:fn \abc`, "not a number"},
		{"empty immediate", `BIN:fn \`, "missing number"},
		{"immediate out of range", `BIN:fn \-0x8000000000000001`, "out of range"},
		{"string from register", "BIN:fn %di:string", "%di is not a memory reference: to read the string it points to write +0(%di):string"},
		{"string from alias", "BIN:fn arg2:ustring", "arg2 is not a memory reference"},
		{"string from stack", "BIN:fn $stack:string", "not a memory reference"},
		{"comm typed", "BIN:fn $comm:u32", "$comm is a string"},
		{"comm array", "BIN:fn $comm:string[2]", "single string"},
		{"comm as ustring", "BIN:fn $comm:ustring", "$comm is a string: drop the type or write :string"},
		{"immediate string as ustring", `BIN:fn \"x":ustring`, "is a string"},
		{"array of register", "BIN:fn %di:u8[4]", "an array needs a memory reference"},
		{"array of zero", "BIN:fn +0(%di):u8[0]", "length must be 1..64"},
		{"array too big", "BIN:fn +0(%di):u8[65]", "length must be 1..64"},
		{"array not closed", "BIN:fn +0(%di):u8[4", "must end with ']'"},
		{"array suffix", "BIN:fn +0(%di):u8[4]x", "must end with ']'"},
		{"unknown type", "BIN:fn %di:int", `unknown type "int"`},
		{"symbol type", "BIN:fn %di:symbol", "not available for uprobes"},
		{"symstr type", "BIN:fn +0(%di):symstr", "not available for uprobes"},
		{"bitfield zero width", "BIN:fn %di:b0@0/8", "bitfield"},
		{"bitfield too wide", "BIN:fn %di:b9@0/8", "bitfield"},
		{"bitfield overflows", "BIN:fn %di:b4@6/8", "bitfield"},
		{"bitfield container", "BIN:fn %di:b4@0/12", "bitfield"},
		{"bitfield incomplete", "BIN:fn %di:b4", "bitfield"},
		{"bitfield bad offset", "BIN:fn %di:b4@x/8", "bitfield"},
		{"missing type", "BIN:fn %di:", "missing type"},
		{"missing expression", "BIN:fn :u32", "missing expression"},
		{"missing name", "BIN:fn =%di", "missing name"},
		{"missing body", "BIN:fn x=", "missing expression"},
		{"name not an identifier", "BIN:fn 1x=%di", "must be a C identifier"},
		{"name with dash", "BIN:fn a-b=%di", "must be a C identifier"},
		{"reserved common_", "BIN:fn common_pid=%di", "reserved"},
		{"reserved common_ prefix", "BIN:fn common_foo=%di", "reserved"},
		{"reserved probe ip", "BIN:fn __probe_ip=%di", "reserved"},
		{"reserved ret ip", "BIN:fn%return __probe_ret_ip=%di", "reserved"},
		{"name too long", "BIN:fn abcdefghijabcdefghijabcdefghij123=%di", "33 characters, the kernel takes at most 32"},
		{"duplicate name", "BIN:fn a=%di a=%si", `argument name "a" is used twice`},
		{"129 arguments", "BIN:fn" + args129, "129 fetch arguments, the kernel takes at most 128"},
		{"body too long", "BIN:fn +0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(%di))))):string",
			"the kernel takes at most 63"},
		{"body of 64", "BIN:fn +0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(%r10)))):u64[64]", "are 64 characters"},

		// Names the parser makes are names the kernel reads (issue 8).
		{"derived name too long", "BIN:fn arg000000000000000000000000000001",
			`its name would be "arg000000000000000000000000000001" (an unnamed argument is named after its expression), 33 characters: the kernel takes at most 32 (it says "Argument name is too long"); name it, e.g. x=arg000000000000000000000000000001`},
		{"deduplicated name too long", "BIN:fn arg0000000000000000000000000001 arg0000000000000000000000000001",
			`its name would be "arg0000000000000000000000000001_2"`},
		{"explicit name too long says the kernel's reason", "BIN:fn abcdefghijabcdefghijabcdefghij123=%di", `"Argument name is too long"`},

		// The fixed size of a hit's record (MAX_PROBE_EVENT_SIZE).
		{"event too big", "BIN:fn" + strings.Repeat(" +0(%di):u64[64]", 7),
			`its fetch arguments take 3584 bytes per hit, the kernel takes at most 3072 (it says "Event too big (too many fields?)")`},
		{"event too big by one byte", "BIN:fn" + strings.Repeat(" +0(%di):u64[64]", 6) + " %di:u8", "take 3073 bytes per hit"},
		{"event too big, default type", "BIN:fn" + strings.Repeat(" +0(%di):u64[64]", 6) + " %di", "take 3080 bytes per hit"},
		{"event too big, strings", "BIN:fn" + strings.Repeat(" +0(%di):string[64]", 13), "take 3328 bytes per hit"},
		{"event too big, bitfields", "BIN:fn" + strings.Repeat(" +0(%di):b3@0/64[64]", 7), "take 3584 bytes per hit"},

		// The uprobe_events line (4094 bytes).
		{"arguments too long for a line", "BIN:fn " + strings.Join(lineArgs(maxArgsLineLen+1), " "),
			"its fetch arguments take 4069 bytes of the kernel's 4094-byte uprobe_events line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec(tc.word)
			if !errors.Is(err, ErrBadArg) {
				t.Fatalf("got %v, want ErrBadArg", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
			}
		})
	}
}

// TestFetchArgMessage pins the whole form of one message.
func TestFetchArgMessage(t *testing.T) {
	_, err := ParseSpec("libc.so.6:malloc sz=$arg1:u64")
	want := `bad fetch argument "sz=$arg1:u64" in probe "libc.so.6:malloc sz=$arg1:u64": $arg1 is not available for uprobes (the kernel refuses it): use arg1..arg6, the x86-64 argument registers %di %si %dx %cx %r8 %r9`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// positional returns n unnamed arguments expr as the parser names them.
func positional(expr string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("arg%d=%s", i, expr))
	}
	return out
}

// lineArgs returns named arguments that take exactly total bytes of a
// uprobe_events line, each with its leading space, and 4 bytes per hit each.
func lineArgs(total int) []string {
	const body = "+0x7fffffff(+0x7fffffff(+0x7fffffff(+0x7fffffff(%di)))):string" // 62
	var args []string
	for i := 0; ; i++ {
		// The last one: ` nNNN=\"a...":string` takes 16 bytes and its text.
		if k := total - len(` n000=\"":string`); k <= maxArgBodyLen-len(`\"":string`) {
			return append(args, fmt.Sprintf(`n%03d=\"%s":string`, i, strings.Repeat("a", k)))
		}
		a := fmt.Sprintf("n%03d=%s", i, body)
		args = append(args, a)
		total -= 1 + len(a)
	}
}

// TestLineArgs checks the helper above.
func TestLineArgs(t *testing.T) {
	for _, n := range []int{maxArgsLineLen, maxArgsLineLen + 1} {
		got := 0
		for _, a := range lineArgs(n) {
			got += 1 + len(a)
		}
		if got != n {
			t.Errorf("lineArgs(%d) takes %d bytes", n, got)
		}
	}
}
