package output

import (
	"bytes"
	"math"
	"regexp"
	"testing"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
)

func TestAppendText(t *testing.T) {
	tests := []struct {
		name string
		v    perfevent.Value
		want string
	}{
		{name: "unsigned", v: perfevent.Value{Kind: perfevent.Unsigned, Uint: 42}, want: `42`},
		{name: "unsigned max", v: perfevent.Value{Kind: perfevent.Unsigned, Uint: math.MaxUint64}, want: `18446744073709551615`},
		{name: "signed", v: perfevent.Value{Kind: perfevent.Signed, Int: -7}, want: `-7`},
		{name: "signed min", v: perfevent.Value{Kind: perfevent.Signed, Int: math.MinInt64}, want: `-9223372036854775808`},
		{name: "hex", v: perfevent.Value{Kind: perfevent.Hex, Uint: 0xdeadbeef}, want: `0xdeadbeef`},
		{name: "hex zero", v: perfevent.Value{Kind: perfevent.Hex}, want: `0x0`},
		{name: "char", v: perfevent.Value{Kind: perfevent.Char, Uint: 'A'}, want: `'A'`},
		{name: "char quote", v: perfevent.Value{Kind: perfevent.Char, Uint: '\''}, want: `'\''`},
		{name: "char NUL", v: perfevent.Value{Kind: perfevent.Char}, want: `'\x00'`},
		{name: "char newline", v: perfevent.Value{Kind: perfevent.Char, Uint: '\n'}, want: `'\n'`},
		{name: "char keeps the low byte only", v: perfevent.Value{Kind: perfevent.Char, Uint: 0x141}, want: `'A'`},
		{name: "string", v: perfevent.Value{Kind: perfevent.String, Str: "hello"}, want: `"hello"`},
		{name: "empty string", v: perfevent.Value{Kind: perfevent.String}, want: `""`},
		{name: "string with quote and newline", v: perfevent.Value{Kind: perfevent.String, Str: "a\"b\n"}, want: `"a\"b\n"`},
		{name: "string not UTF-8", v: perfevent.Value{Kind: perfevent.String, Str: "\xff"}, want: `"\xff"`},
		{name: "empty array", v: perfevent.Value{Kind: perfevent.Array}, want: `{}`},
		{
			name: "array of unsigned",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Uint: 1}, {Uint: 2}, {Uint: 255}}},
			want: `{1,2,255}`,
		},
		{
			name: "array of hex",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.Hex, Uint: 1}, {Kind: perfevent.Hex, Uint: 0xbeef}}},
			want: `{0x1,0xbeef}`,
		},
		{
			name: "array of strings",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.String, Str: "a"}, {Kind: perfevent.String, Str: "b,c"}}},
			want: `{"a","b,c"}`,
		},
		{name: "unknown kind prints nothing", v: perfevent.Value{Kind: 99}, want: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appendText([]byte("x="), tt.v); string(got) != "x="+tt.want {
				t.Errorf("appendText = %s, want x=%s", got, tt.want)
			}
		})
	}
}

func TestTextHit(t *testing.T) {
	var out, status bytes.Buffer
	txt := NewText(&out, &status, nil)
	txt.Hit(&session.Hit{
		Probe:   &session.Probe{Target: probe.Target{Path: "/bin/target", Symbol: "work", Event: "work"}},
		Process: &finder.Process{PID: 4242, Comm: "target"},
		TID:     4243, CPU: 1, TimeNS: perfevent.MonotonicNow(),
		Payload: perfevent.Payload{Args: []perfevent.Value{
			{Name: "a", Kind: perfevent.Signed, Int: 7},
			{Name: "s", Kind: perfevent.String, Str: "hello"},
		}},
	})
	txt.Flush()
	line := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} target 4242/4243 \[1\] work a=7 s="hello"\n$`)
	if !line.Match(out.Bytes()) {
		t.Errorf("hit line %q does not match %s", out.Bytes(), line)
	}
	if status.Len() != 0 {
		t.Errorf("hit wrote to the status stream: %q", status.Bytes())
	}
}
