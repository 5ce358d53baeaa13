package probe

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		word string
		want Spec // Raw and Args are not compared here
	}{
		{"library name", "libc.so.6:malloc", Spec{Path: "libc.so.6", Symbol: "malloc"}},
		{"absolute path", "/usr/bin/bash:readline", Spec{Path: "/usr/bin/bash", Symbol: "readline"}},
		{"relative path", "./a.out:main", Spec{Path: "./a.out", Symbol: "main"}},
		{"hex symbol offset", "libc.so.6:malloc+0x10", Spec{Path: "libc.so.6", Symbol: "malloc", SymbolOffset: 16}},
		{"decimal symbol offset", "libc.so.6:malloc+16", Spec{Path: "libc.so.6", Symbol: "malloc", SymbolOffset: 16}},
		{"zero symbol offset", "libc.so.6:malloc+0", Spec{Path: "libc.so.6", Symbol: "malloc"}},
		{"return", "/bin/x:fn%return", Spec{Path: "/bin/x", Symbol: "fn", Return: true}},
		{"return with +0", "/bin/x:fn+0%return", Spec{Path: "/bin/x", Symbol: "fn", Return: true}},
		{"hex file offset", "/bin/x:0x1139", Spec{Path: "/bin/x", FileOffset: 0x1139, HasFileOffset: true}},
		{"uppercase hex file offset", "/bin/x:0X1139", Spec{Path: "/bin/x", FileOffset: 0x1139, HasFileOffset: true}},
		{"decimal file offset", "/bin/x:4409", Spec{Path: "/bin/x", FileOffset: 4409, HasFileOffset: true}},
		{"file offset zero", "/bin/x:0", Spec{Path: "/bin/x", HasFileOffset: true}},
		{"file offset return", "/bin/x:0x1139%return", Spec{Path: "/bin/x", FileOffset: 0x1139, HasFileOffset: true, Return: true}},
		{"glob", "libc.so.6:pthread_mutex_*lock", Spec{Path: "libc.so.6", Symbol: "pthread_mutex_*lock"}},
		{"glob with class", "libc.so.6:str[cn]py", Spec{Path: "libc.so.6", Symbol: "str[cn]py"}},
		{"path with a colon", "/opt/a:b/bin:fn", Spec{Path: "/opt/a:b/bin", Symbol: "fn"}},
		{"versioned symbol", "libc.so.6:memcpy@GLIBC_2.2.5", Spec{Path: "libc.so.6", Symbol: "memcpy@GLIBC_2.2.5"}},
		{"go symbol", "/bin/goapp:main.main", Spec{Path: "/bin/goapp", Symbol: "main.main"}},
		{"go package path", "/bin/goapp:net/http.(*conn).serve", Spec{Path: "/bin/goapp", Symbol: "net/http.(*conn).serve"}},
		{"go package path, path with a colon", "/opt/a:b/goapp:internal/poll.(*FD).Read%return", Spec{Path: "/opt/a:b/goapp", Symbol: "internal/poll.(*FD).Read", Return: true}},
		{"go generic", "/bin/goapp:main.Map[...]", Spec{Path: "/bin/goapp", Symbol: "main.Map[...]"}},
		{"escaped glob", `/bin/goapp:main.(\*T).Run`, Spec{Path: "/bin/goapp", Symbol: `main.(\*T).Run`}},
		{"utf-8 path", "/tmp/é/x:fn", Spec{Path: "/tmp/é/x", Symbol: "fn"}},
		{"blanks around", "  libc.so.6:free \t ", Spec{Path: "libc.so.6", Symbol: "free"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec(tc.word)
			if err != nil {
				t.Fatal(err)
			}
			if got.Raw != tc.word {
				t.Errorf("Raw = %q", got.Raw)
			}
			got.Raw, got.Args = "", nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		word string
		want error
		msg  string // part of the message
	}{
		{"empty", "", ErrBadSpec, "empty probe"},
		{"blank", " \t ", ErrBadSpec, "empty probe"},
		{"newline in symbol", "libc.so.6:mal\nloc", ErrBadSpec, `a newline (\n) at position 14`},
		{"trailing newline", "libc.so.6:malloc\n", ErrBadSpec, "a newline"},
		{"injected command", "libc.so.6:malloc a=%di\n-:uprobes/x", ErrBadSpec, "a newline (\\n) at position 23"},
		{"hash in path", "/tmp/a#b:fn", ErrBadSpec, "'#' (it starts a comment in uprobe_events) at position 7"},
		{"hash in argument", "/tmp/a:fn a=%di#x", ErrBadSpec, "'#'"},
		{"NUL in path", "/tmp/a\x00b:fn", ErrBadSpec, `a NUL byte (\x00) at position 7`},
		{"carriage return", "/tmp/\rfoo:fn", ErrBadSpec, `a carriage return (\r)`},
		{"vertical tab", "/tmp/\vfoo:fn", ErrBadSpec, `a control character (\x0b)`},
		{"escape", "/tmp/\x1b:fn", ErrBadSpec, `a control character (\x1b)`},
		{"DEL", "/tmp/\x7f:fn", ErrBadSpec, `a control character (\x7f)`},
		{"byte 0xa0", "/tmp/\xc3\xa0:fn", ErrBadSpec, "the byte 0xa0 (the kernel's parser takes it for a space) at position 7"},
		{"no colon", "libc.so.6", ErrBadSpec, "missing ':'"},
		{"no path", ":malloc", ErrBadSpec, "missing path"},
		{"no symbol", "libc.so.6:", ErrBadSpec, "missing symbol"},
		{"only return", "libc.so.6:%return", ErrBadSpec, "missing symbol"},
		{"unknown suffix", "libc.so.6:malloc%entry", ErrBadSpec, `unknown suffix "%entry"`},
		{"return with offset", "libc.so.6:malloc+0x10%return", ErrBadSpec, "must be on the function entry: drop +0x10"},
		{"empty offset", "libc.so.6:malloc+", ErrBadSpec, "missing number"},
		{"bad offset", "libc.so.6:malloc+xyz", ErrBadSpec, "not a number"},
		{"octal-looking offset", "libc.so.6:malloc+010", ErrBadSpec, "leading zero"},
		{"offset without symbol", "libc.so.6:+0x10", ErrBadSpec, "missing symbol"},
		{"empty hex", "libc.so.6:0x", ErrBadSpec, "missing number"},
		{"bad file offset", "libc.so.6:12abc", ErrBadSpec, "not a number"},
		{"huge file offset", "/x:0x99999999999999999999", ErrBadSpec, "out of range"},
		{"malformed glob", "libc.so.6:foo[", ErrBadSpec, "malformed"},
		{"bad argument", "libc.so.6:malloc %rdi", ErrBadArg, "use %di"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec(tc.word)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("message is not one line: %q", err.Error())
			}
		})
	}
}
