package output

import (
	"bytes"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

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

// hostile is a name a traced program can choose: its comm after exec, a
// file or directory name in its container.
const hostile = "x\x1b[2J\nFAKE\r\t\x00\x7f\u0085\u009b\xff\\"

// hostileEscaped is how text output shows it.
const hostileEscaped = `x\x1b[2J\nFAKE\r\t\x00\x7f\u0085\u009b\xff\\`

func hostileHit(pid int) *session.Hit {
	return &session.Hit{
		Probe: &session.Probe{Target: probe.Target{
			Spec: &probe.Spec{Path: "lib" + hostile + ".so"},
			Path: "/c/" + hostile + "/lib.so", Symbol: hostile, Event: hostile,
		}},
		Process: &finder.Process{PID: pid, Comm: hostile, Exe: "/bin/" + hostile, Cgroup: "/" + hostile},
		TID:     4243, CPU: 1, TimeNS: perfevent.MonotonicNow(),
		Payload: perfevent.Payload{Args: []perfevent.Value{
			{Name: "a" + hostile, Kind: perfevent.Signed, Int: 7},
			{Name: "s", Kind: perfevent.String, Str: hostile},
			{Name: "c", Kind: perfevent.Char, Uint: 0x9b},
			{Name: "e", Kind: perfevent.Char, Uint: 0x1b},
			{Name: "v", Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.String, Str: "\n"}, {Kind: perfevent.Char, Uint: '\r'}}},
		}},
	}
}

// lines splits output into lines, each with its '\n'; it fails on a last
// line without one.
func lines(t *testing.T, what string, b []byte) []string {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Errorf("%s does not end with a newline: %q", what, b)
	}
	l := strings.SplitAfter(string(b), "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

func TestTextHostileNames(t *testing.T) {
	var out, status bytes.Buffer
	txt := NewText(&out, &status, nil)
	h := hostileHit(4242)
	txt.Process("found", h.Process)
	txt.Process("exec", h.Process)
	txt.Ready([]*session.Probe{h.Probe, h.Probe}, 1)
	txt.Rearmed(h.Probe.Binary(), 2)
	for range 3 {
		txt.Hit(h)
	}
	txt.Stats(session.Stats{Hits: 3})
	txt.Process("exit", h.Process)
	txt.Summary(session.Stats{Hits: 3}, time.Second)

	checkNoControl(t, "hits", out.String())
	checkNoControl(t, "status", status.String())
	hit := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} ` + regexp.QuoteMeta(hostileEscaped) + ` 4242/4243 \[1\] ` +
		regexp.QuoteMeta(hostileEscaped+` a`+hostileEscaped+`=7 s="x\x1b[2J\nFAKE\r\t\x00\x7f\u0085\u009b\xff\\" c='\u009b' e='\x1b' v={"\n",'\r'}`) + "\n$")
	hits := lines(t, "hits", out.Bytes())
	if len(hits) != 3 {
		t.Fatalf("3 hits gave %d lines: %q", len(hits), out.Bytes())
	}
	for _, l := range hits {
		if !hit.MatchString(l) {
			t.Errorf("hit line %q does not match %s", l, hit)
		}
	}
	want := []string{
		"uprobectl: process found: 4242 (" + hostileEscaped + ") /bin/" + hostileEscaped + "\n",
		"uprobectl: process exec: 4242 (" + hostileEscaped + ") /bin/" + hostileEscaped + "\n",
		"uprobectl: lib" + hostileEscaped + ".so -> /c/" + hostileEscaped + "/lib.so (2 probes)\n",
		"uprobectl: 2 probe(s) armed in 1 process(es); Ctrl-C to stop\n",
		"uprobectl: /c/" + hostileEscaped + "/lib.so was replaced: 2 probe(s) armed on the new file too\n",
		"uprobectl: stats: 3 hit(s), lost 0, unknown 0, 0 process(es) tracked, 0 seen, 0 fds, 0 goroutines\n",
		"uprobectl: process exit: 4242 (" + hostileEscaped + ") /bin/" + hostileEscaped + "\n",
		"uprobectl: 3 hit(s) from 0 process(es) on 0 probe(s) in 1s; lost 0, unknown 0\n",
	}
	got := lines(t, "status", status.Bytes())
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("status lines:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
}

func TestCountTableHostileNames(t *testing.T) {
	var out, status bytes.Buffer
	c := NewCount(NewText(&out, &status, nil), CountOptions{})
	h1, h2 := hostileHit(4242), hostileHit(4343)
	h2.Probe = h1.Probe
	c.Hit(h1)
	c.Hit(h1)
	c.Hit(h2)
	c.Summary(session.Stats{Hits: 3}, time.Second)

	checkNoControl(t, "count table", out.String())
	checkNoControl(t, "status", status.String())
	got := lines(t, "count table", out.Bytes())
	if len(got) != 3 {
		t.Fatalf("a header and 2 rows gave %d lines: %q", len(got), out.Bytes())
	}
	for i, pid := range []string{"4242", "4343"} {
		row := regexp.MustCompile(`^` + regexp.QuoteMeta(hostileEscaped) + ` +` + pid + ` ` + regexp.QuoteMeta(hostileEscaped) + ` +` + []string{"2", "1"}[i] + "\n$")
		if !row.MatchString(got[i+1]) {
			t.Errorf("row %q does not match %s", got[i+1], row)
		}
	}
}

func TestTextNormalNames(t *testing.T) {
	var out, status bytes.Buffer
	txt := NewText(&out, &status, nil)
	p := &finder.Process{PID: 4242, Comm: "Web Content", Exe: "/usr/lib/firefox/firefox"}
	pr := &session.Probe{Target: probe.Target{Spec: &probe.Spec{Path: "/usr/lib/firefox/libxul.so"}, Path: "/usr/lib/firefox/libxul.so", Symbol: "f", Event: "f"}}
	txt.Process("found", p)
	txt.Ready([]*session.Probe{pr}, 1)
	txt.Rearmed("/usr/lib/firefox/libxul.so", 1)
	want := "uprobectl: process found: 4242 (Web Content) /usr/lib/firefox/firefox\n" +
		"uprobectl: /usr/lib/firefox/libxul.so (1 probe)\n" +
		"uprobectl: 1 probe(s) armed in 1 process(es); Ctrl-C to stop\n" +
		"uprobectl: /usr/lib/firefox/libxul.so was replaced: 1 probe(s) armed on the new file too\n"
	if status.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", status.String(), want)
	}

	c := NewCount(NewText(&out, &status, nil), CountOptions{})
	c.Hit(&session.Hit{Probe: pr, Process: &finder.Process{PID: 7, Comm: "café"}})
	c.Summary(session.Stats{}, 0)
	wantTable := "PROBE                                 PID COMM                     HITS\n" +
		"f                                       7 café                        1\n"
	if out.String() != wantTable {
		t.Errorf("count table:\n%s\nwant:\n%s", out.String(), wantTable)
	}
}

func TestTextReady(t *testing.T) {
	libc := "/usr/lib/x86_64-linux-gnu/libc.so.6"
	target := func(word, path, sym string) *session.Probe {
		tg := probe.Target{Path: path, Symbol: sym, Event: sym}
		if word != "" {
			tg.Spec = &probe.Spec{Path: word}
		}
		return &session.Probe{Target: tg}
	}
	probes := []*session.Probe{
		target("libc.so.6", libc, "malloc"),
		target("/bin/target", "/bin/target", "work"),
		target("libc.so.6", libc, "free"),
		target("/lib/x86_64-linux-gnu/libc.so.6", libc, "calloc"),
		target("./server", "/home/u/server", "handle"),
		target("", "/opt/x", "y"),
	}
	var out, status bytes.Buffer
	txt := NewText(&out, &status, nil)
	txt.Ready(probes, 2)
	want := "uprobectl: libc.so.6, /lib/x86_64-linux-gnu/libc.so.6 -> /usr/lib/x86_64-linux-gnu/libc.so.6 (3 probes)\n" +
		"uprobectl: /bin/target (1 probe)\n" +
		"uprobectl: ./server -> /home/u/server (1 probe)\n" +
		"uprobectl: /opt/x (1 probe)\n" +
		"uprobectl: 6 probe(s) armed in 2 process(es); Ctrl-C to stop\n"
	if status.String() != want {
		t.Errorf("ready:\n%s\nwant:\n%s", status.String(), want)
	}
	if out.Len() != 0 {
		t.Errorf("ready wrote to the hit stream: %q", out.Bytes())
	}

	status.Reset()
	txt.Ready(nil, 0)
	if want := "uprobectl: 0 probe(s) armed in 0 process(es); Ctrl-C to stop\n"; status.String() != want {
		t.Errorf("ready without probes: %q, want %q", status.String(), want)
	}
}

func TestTextHitNoAllocation(t *testing.T) {
	txt := NewText(io.Discard, io.Discard, nil)
	h := &session.Hit{
		Probe:   &session.Probe{Target: probe.Target{Path: "/bin/target", Symbol: "work", Event: "work"}},
		Process: &finder.Process{PID: 4242, Comm: "target"},
		TID:     4243, CPU: 1, TimeNS: perfevent.MonotonicNow(),
		Payload: perfevent.Payload{Args: []perfevent.Value{
			{Name: "a", Kind: perfevent.Signed, Int: 7},
			{Name: "s", Kind: perfevent.String, Str: "hello"},
		}},
	}
	if n := testing.AllocsPerRun(100, func() { txt.Hit(h) }); n != 0 {
		t.Errorf("a hit with clean names costs %v allocations", n)
	}
}
