package output

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendName(t *testing.T) {
	tests := []struct{ in, want string }{
		// Clean names are printed as they are.
		{"", ""},
		{"server", "server"},
		{"Web Content", "Web Content"},
		{"kworker/0:1H", "kworker/0:1H"},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"café", "café"},
		{"日本語", "日本語"},
		{`say "hi"`, `say "hi"`},
		{"\uFFFD", "\uFFFD"}, // a real U+FFFD is printable
		// Anything else is escaped as strconv.Quote does, without the quotes.
		{"x\x1b[2J\nFAKE", `x\x1b[2J\nFAKE`},
		{"a\r\tb", `a\r\tb`},
		{"\a\b\f\v", `\a\b\f\v`},
		{"\x00", `\x00`},
		{"\x7f", `\x7f`},
		{"a\u0085b", `a\u0085b`},         // C1: NEL
		{"\u009b2J", `\u009b2J`},         // C1: CSI
		{"\xff", `\xff`},                 // not UTF-8
		{"\x9b2J", `\x9b2J`},             // a lone 8-bit CSI byte
		{"caf\xc3", `caf\xc3`},           // truncated sequence
		{"\xed\xa0\x80", `\xed\xa0\x80`}, // surrogate
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"a\u2028b", `a\u2028b`},
		{"\U000e0001", `\U000e0001`},
		{"\u00a0", `\u00a0`},
		{`a\x1b`, `a\\x1b`}, // a backslash is always escaped: no ambiguity
		{"é\n", `é\n`},      // printable runes stay when escaping
		{"\\\n", `\\\n`},
	}
	for _, tt := range tests {
		got := string(appendName([]byte("<"), tt.in))
		if got != "<"+tt.want {
			t.Errorf("appendName(%q) = %s, want <%s", tt.in, got, tt.want)
		}
		if got := escapeName(tt.in); got != tt.want {
			t.Errorf("escapeName(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if clean(tt.in) != (tt.in == tt.want) {
			t.Errorf("clean(%q) = %v", tt.in, clean(tt.in))
		}
		checkEscaped(t, tt.want)
		checkRoundTrip(t, tt.in, tt.want)
	}
}

func TestAppendNameAllBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := "a" + string([]byte{byte(c)}) + "b"
		got := escapeName(s)
		checkEscaped(t, got)
		checkRoundTrip(t, s, got)
	}
	for r := rune(0); r < 0x100; r++ {
		s := string(r)
		got := escapeName(s)
		checkEscaped(t, got)
		checkRoundTrip(t, s, got)
	}
}

func TestAppendNameNoAllocation(t *testing.T) {
	b := make([]byte, 0, 256)
	for _, s := range []string{"server", "/usr/lib/x86_64-linux-gnu/libc.so.6", "café"} {
		if n := testing.AllocsPerRun(100, func() {
			b = appendName(b[:0], s)
			_ = escapeName(s)
		}); n != 0 {
			t.Errorf("a clean name %q costs %v allocations", s, n)
		}
	}
}

func FuzzAppendName(f *testing.F) {
	for _, s := range []string{"", "server", "x\x1b[2J\nFAKE", "\xff\xfe", "a\u0085", `\`, "日本\u202e", "\t \r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := escapeName(s)
		if clean(s) && got != s {
			t.Fatalf("clean %q changed to %q", s, got)
		}
		checkEscaped(t, got)
		checkRoundTrip(t, s, got)
	})
}

// checkRoundTrip checks the escaping is unambiguous: the name comes back.
func checkRoundTrip(t *testing.T, in, escaped string) {
	t.Helper()
	back, err := strconv.Unquote(`"` + strings.ReplaceAll(escaped, `"`, `\"`) + `"`)
	if err != nil || back != in {
		t.Errorf("escaped %q as %q, which unquotes to %q (%v)", in, escaped, back, err)
	}
}

// checkEscaped checks an escaped name: no control character, no newline.
func checkEscaped(t *testing.T, escaped string) {
	t.Helper()
	if strings.Contains(escaped, "\n") {
		t.Errorf("escaped name %q holds a newline", escaped)
	}
	checkNoControl(t, "escaped", escaped)
}

// checkNoControl checks text holds no control character: no byte < 0x20
// but '\n' ending a line, no DEL, valid UTF-8, no C1 control, and (the
// stricter rule escaping follows) no rune strconv.IsPrint refuses but space.
func checkNoControl(t *testing.T, what, text string) {
	t.Helper()
	for _, line := range strings.SplitAfter(text, "\n") {
		line = strings.TrimSuffix(line, "\n")
		if !utf8.ValidString(line) {
			t.Errorf("%s: not UTF-8: %q", what, line)
			continue
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 || c == 0x7f {
				t.Errorf("%s: control byte %#x in %q", what, c, line)
			}
		}
		for _, r := range line {
			if r >= 0x80 && r <= 0x9f {
				t.Errorf("%s: C1 control %U in %q", what, r, line)
			} else if r != ' ' && !strconv.IsPrint(r) {
				t.Errorf("%s: unprintable %U in %q", what, r, line)
			}
		}
	}
}
