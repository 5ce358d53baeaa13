package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
)

var appendStringTests = []struct {
	name, in, want string
}{
	{name: "empty", in: "", want: `""`},
	{name: "plain", in: "hello, world", want: `"hello, world"`},
	{name: "quote", in: `say "hi"`, want: `"say \"hi\""`},
	{name: "backslash", in: `C:\dir\`, want: `"C:\\dir\\"`},
	{name: "newline and tab", in: "a\nb\tc\r", want: `"a\u000ab\u0009c\u000d"`},
	{name: "NUL", in: "a\x00b", want: `"a\u0000b"`},
	{name: "last control character", in: "\x1f", want: `"\u001f"`},
	{name: "space and tilde are printable", in: " ~", want: `" ~"`},
	{name: "DEL", in: "\x7f", want: `"\u007f"`},
	{name: "no HTML escaping", in: "<a href='x'>&</a>", want: `"<a href='x'>&</a>"`},
	{name: "two-byte UTF-8", in: "café", want: `"café"`},
	{name: "three-byte UTF-8", in: "5 €", want: `"5 €"`},
	{name: "four-byte UTF-8", in: "😀", want: `"😀"`},
	{name: "line separator (valid JSON)", in: "a\u2028b", want: "\"a\u2028b\""},
	{name: "U+FFFD itself is kept", in: "\ufffd", want: "\"\ufffd\""},
	{name: "invalid byte", in: "a\xffb", want: `"a\ufffdb"`},
	{name: "each invalid byte is replaced", in: "\xfe\xff", want: `"\ufffd\ufffd"`},
	{name: "truncated sequence", in: "\xe2\x82", want: `"\ufffd\ufffd"`},
	{name: "truncated sequence before ASCII", in: "\xe2\x82x", want: `"\ufffd\ufffdx"`},
	{name: "UTF-16 surrogate encoded in UTF-8", in: "\xed\xa0\x80", want: `"\ufffd\ufffd\ufffd"`},
	{name: "overlong encoding of /", in: "\xc0\xaf", want: `"\ufffd\ufffd"`},
	{name: "lone continuation byte then quote", in: "\x80\"", want: `"\ufffd\""`},
	{name: "beyond U+10FFFF", in: "\xf4\x90\x80\x80", want: `"\ufffd\ufffd\ufffd\ufffd"`},
}

func TestAppendString(t *testing.T) {
	for _, tt := range appendStringTests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendString([]byte("prefix:"), tt.in)
			if string(got) != "prefix:"+tt.want {
				t.Errorf("appendString(%q) = %s, want %s", tt.in, got[len("prefix:"):], tt.want)
			}
			checkJSONString(t, tt.in, got[len("prefix:"):])
		})
	}
}

// checkJSONString checks that out is a JSON string that decodes to in, with
// every byte that is not UTF-8 read as U+FFFD ([]rune does the same).
func checkJSONString(t *testing.T, in string, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("appendString(%q) = %s: not valid JSON", in, out)
	}
	var back string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("appendString(%q) = %s: %v", in, out, err)
	}
	want := string([]rune(in))
	if back != want {
		t.Errorf("appendString(%q) = %s, decodes to %q, want %q", in, out, back, want)
	}
	if utf8.ValidString(in) && back != in {
		t.Errorf("valid UTF-8 %q does not round-trip: %q", in, back)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, tt := range appendStringTests {
		f.Add(tt.in)
	}
	for c := range 256 {
		f.Add(string([]byte{byte(c)}))
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkJSONString(t, s, appendString(nil, s))
	})
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name string
		v    perfevent.Value
		want string
	}{
		{name: "unsigned zero", v: perfevent.Value{Kind: perfevent.Unsigned}, want: `0`},
		{name: "unsigned max", v: perfevent.Value{Kind: perfevent.Unsigned, Uint: math.MaxUint64}, want: `18446744073709551615`},
		{name: "signed", v: perfevent.Value{Kind: perfevent.Signed, Int: -7}, want: `-7`},
		{name: "signed min", v: perfevent.Value{Kind: perfevent.Signed, Int: math.MinInt64}, want: `-9223372036854775808`},
		{name: "signed max", v: perfevent.Value{Kind: perfevent.Signed, Int: math.MaxInt64}, want: `9223372036854775807`},
		{name: "hex", v: perfevent.Value{Kind: perfevent.Hex, Uint: 0xdeadbeef}, want: `"0xdeadbeef"`},
		{name: "hex zero", v: perfevent.Value{Kind: perfevent.Hex}, want: `"0x0"`},
		{name: "hex max", v: perfevent.Value{Kind: perfevent.Hex, Uint: math.MaxUint64}, want: `"0xffffffffffffffff"`},
		{name: "char", v: perfevent.Value{Kind: perfevent.Char, Uint: 'A'}, want: `"A"`},
		{name: "char quote", v: perfevent.Value{Kind: perfevent.Char, Uint: '"'}, want: `"\""`},
		{name: "char NUL", v: perfevent.Value{Kind: perfevent.Char}, want: `"\u0000"`},
		{name: "char newline", v: perfevent.Value{Kind: perfevent.Char, Uint: '\n'}, want: `"\u000a"`},
		{name: "char keeps the low byte only", v: perfevent.Value{Kind: perfevent.Char, Uint: 0x141}, want: `"A"`},
		{name: "string", v: perfevent.Value{Kind: perfevent.String, Str: "hello"}, want: `"hello"`},
		{name: "empty string", v: perfevent.Value{Kind: perfevent.String}, want: `""`},
		{name: "string from target memory", v: perfevent.Value{Kind: perfevent.String, Str: "a\x00\xff"}, want: `"a\u0000\ufffd"`},
		{name: "empty array", v: perfevent.Value{Kind: perfevent.Array}, want: `[]`},
		{
			name: "array of unsigned",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Uint: 1}, {Uint: 2}, {Uint: 255}}},
			want: `[1,2,255]`,
		},
		{
			name: "array of hex",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.Hex, Uint: 1}, {Kind: perfevent.Hex, Uint: 0xbeef}}},
			want: `["0x1","0xbeef"]`,
		},
		{
			name: "array of strings",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.String, Str: "a"}, {Kind: perfevent.String, Str: `"`}}},
			want: `["a","\""]`,
		},
		{
			name: "array of char",
			v:    perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.Char, Uint: 'o'}, {Kind: perfevent.Char, Uint: 'k'}}},
			want: `["o","k"]`,
		},
		{
			name: "nested arrays",
			v: perfevent.Value{Kind: perfevent.Array, Elems: []perfevent.Value{
				{Kind: perfevent.Array, Elems: []perfevent.Value{{Kind: perfevent.Signed, Int: -1}}},
				{Kind: perfevent.Array},
			}},
			want: `[[-1],[]]`,
		},
		{name: "unknown kind", v: perfevent.Value{Kind: 99}, want: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendValue(nil, tt.v)
			if string(got) != tt.want {
				t.Errorf("appendValue = %s, want %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("appendValue = %s: not valid JSON", got)
			}
		})
	}
}

// TestAppendValueCharValid: every byte a char can hold gives valid JSON.
func TestAppendValueCharValid(t *testing.T) {
	for c := range 256 {
		got := appendValue(nil, perfevent.Value{Kind: perfevent.Char, Uint: uint64(c)})
		var s string
		if err := json.Unmarshal(got, &s); err != nil || utf8.RuneCountInString(s) != 1 {
			t.Errorf("char %#x: %s (%q, %v), want one character", c, got, s, err)
		}
	}
}

// decodeLine parses one JSON line, keeping numbers exact.
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if dec.More() {
		t.Fatalf("%s: more than one object", line)
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestJSONHit(t *testing.T) {
	proc := &finder.Process{PID: 4242, NSPID: 17, Comm: `tar"get`, Exe: "/opt/my app/target"}
	entry := &session.Probe{Target: probe.Target{Path: "/opt/my app/target", Symbol: "work", Offset: 0x1136, Event: "work"}}
	ret := &session.Probe{Target: probe.Target{Path: "/usr/lib/libc.so.6", Symbol: "malloc", Offset: 0xa50e0, Return: true, Event: "malloc__return"}}
	retArgs := []perfevent.Value{{Name: "rv", Kind: perfevent.Hex, Uint: 0x55550000}}

	tests := []struct {
		name       string
		hit        *session.Hit
		want       map[string]any // every field but time_ns
		wantRetval bool
	}{
		{
			name: "entry probe with every kind of argument",
			hit: &session.Hit{Probe: entry, Process: proc, TID: 4243, CPU: 2, TimeNS: 1_000_000_007,
				Payload: perfevent.Payload{IP: 0x401136, Args: []perfevent.Value{
					{Name: "a", Kind: perfevent.Signed, Int: -7},
					{Name: "h", Kind: perfevent.Hex, Uint: 0xdeadbeef},
					{Name: "u", Kind: perfevent.Unsigned, Uint: math.MaxUint64},
					{Name: "c", Kind: perfevent.Char, Uint: 'A'},
					{Name: "s", Kind: perfevent.String, Str: "hi\n\xff"},
					{Name: "arr", Kind: perfevent.Array, Elems: []perfevent.Value{{Uint: 1}, {Uint: 2}}},
				}}},
			want: map[string]any{
				"type": "hit", "probe": "work", "binary": "/opt/my app/target", "symbol": "work",
				"pid": json.Number("4242"), "tid": json.Number("4243"), "comm": `tar"get`, "cpu": json.Number("2"),
				"args": map[string]any{
					"a": json.Number("-7"), "h": "0xdeadbeef", "u": json.Number("18446744073709551615"),
					"c": "A", "s": "hi\n\ufffd", "arr": []any{json.Number("1"), json.Number("2")},
				},
			},
		},
		{
			name: "entry probe without arguments",
			hit:  &session.Hit{Probe: entry, Process: proc, TID: 4242, TimeNS: 1, Payload: perfevent.Payload{IP: 0x401136}},
			want: map[string]any{
				"type": "hit", "probe": "work", "binary": "/opt/my app/target", "symbol": "work",
				"pid": json.Number("4242"), "tid": json.Number("4242"), "comm": `tar"get`, "cpu": json.Number("0"),
				"args": map[string]any{},
			},
		},
		{
			name: "return probe with retval",
			hit: &session.Hit{Probe: ret, Process: proc, TID: 4242, CPU: 1, TimeNS: 5,
				Payload: perfevent.Payload{Func: 0x7f00000a50e0, RetIP: 0x401200, Args: retArgs},
				Retval:  &retArgs[0]},
			want: map[string]any{
				"type": "hit", "probe": "malloc__return", "binary": "/usr/lib/libc.so.6", "symbol": "malloc",
				"pid": json.Number("4242"), "tid": json.Number("4242"), "comm": `tar"get`, "cpu": json.Number("1"),
				"args": map[string]any{"rv": "0x55550000"}, "retval": "0x55550000",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			j := NewJSON(&buf, nil)
			j.Hit(tt.hit)
			j.Flush()
			if j.Err() != nil {
				t.Fatal(j.Err())
			}
			got := decodeLine(t, buf.Bytes())

			contract := []string{"type", "probe", "binary", "symbol", "pid", "tid", "comm", "cpu", "time_ns", "args"}
			if tt.hit.Retval != nil {
				contract = append(contract, "retval")
			}
			for _, k := range contract {
				if _, ok := got[k]; !ok {
					t.Errorf("no %q in %s", k, buf.Bytes())
				}
			}
			if _, ok := got["retval"]; ok && tt.hit.Retval == nil {
				t.Errorf("retval without Retval: %s", buf.Bytes())
			}

			wantTime := j.wallTime(tt.hit.TimeNS)
			if n, ok := got["time_ns"].(json.Number); !ok || n.String() != strconv.FormatInt(wantTime, 10) {
				t.Errorf("time_ns = %v, want %d", got["time_ns"], wantTime)
			}
			delete(got, "time_ns")
			if g, w := sortedKeys(got), sortedKeys(tt.want); !slices.Equal(g, w) {
				t.Errorf("fields %v, want %v", g, w)
			}
			for k, w := range tt.want {
				if g, _ := json.Marshal(got[k]); string(g) != mustMarshal(t, w) {
					t.Errorf("%s = %s, want %s", k, g, mustMarshal(t, w))
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONHitWallTime: time_ns is the monotonic stamp moved to Unix time.
func TestJSONHitWallTime(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf, nil)
	h := &session.Hit{Probe: &session.Probe{}, Process: &finder.Process{}, TimeNS: perfevent.MonotonicNow()}
	j.Hit(h)
	j.Flush()
	n, err := decodeLine(t, buf.Bytes())["time_ns"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.Unix(0, n)); d < -time.Second || d > time.Minute {
		t.Errorf("time_ns %d is %v from now", n, d)
	}
}

func TestJSONOtherLines(t *testing.T) {
	proc := &finder.Process{PID: 4242, NSPID: 17, Comm: "my) prog", Exe: "/opt/my app/target", StartTime: 8675309, Cgroup: "/system.slice/t.service"}
	tests := []struct {
		name  string
		write func(j *JSON)
		want  map[string]any
	}{
		{
			name:  "process",
			write: func(j *JSON) { j.Process("attach", proc) },
			want: map[string]any{
				"type": "process", "event": "attach", "pid": json.Number("4242"), "nspid": json.Number("17"),
				"comm": "my) prog", "exe": "/opt/my app/target", "start_time": json.Number("8675309"),
				"cgroup": "/system.slice/t.service",
			},
		},
		{
			name:  "ready without probes",
			write: func(j *JSON) { j.Ready(nil, 3) },
			want:  map[string]any{"type": "ready", "probes": json.Number("0"), "processes": json.Number("3"), "events": []any{}},
		},
		{
			name: "summary",
			write: func(j *JSON) {
				j.Summary(session.Stats{Hits: 10, Lost: 1, LostSideband: 13, Late: 14, Unknown: 2, Undecoded: 3, Filtered: 6, Unresolved: 7, MissedWindows: 8,
					Processes: 4, Tracked: 9, Probes: 5, FDs: 11, Goroutines: 12}, 1500*time.Millisecond)
			},
			want: map[string]any{
				"type": "summary", "hits": json.Number("10"), "lost": json.Number("1"), "unknown": json.Number("2"),
				"lost_sideband": json.Number("13"), "late": json.Number("14"),
				"undecoded": json.Number("3"), "filtered": json.Number("6"), "unresolved": json.Number("7"),
				"missed_windows": json.Number("8"), "processes": json.Number("4"), "tracked": json.Number("9"),
				"probes": json.Number("5"), "fds": json.Number("11"), "goroutines": json.Number("12"),
				"duration_ns": json.Number("1500000000"),
			},
		},
		{
			name:  "stats",
			write: func(j *JSON) { j.Stats(session.Stats{Hits: 1, Tracked: 2}) },
			want: map[string]any{
				"type": "stats", "hits": json.Number("1"), "lost": json.Number("0"), "unknown": json.Number("0"),
				"lost_sideband": json.Number("0"), "late": json.Number("0"),
				"undecoded": json.Number("0"), "filtered": json.Number("0"), "unresolved": json.Number("0"),
				"missed_windows": json.Number("0"), "processes": json.Number("0"), "tracked": json.Number("2"),
				"probes": json.Number("0"), "fds": json.Number("0"), "goroutines": json.Number("0"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			j := NewJSON(&buf, nil)
			tt.write(j)
			j.Flush()
			got := decodeLine(t, buf.Bytes())
			if g, w := mustMarshal(t, got), mustMarshal(t, tt.want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

// TestJSONWriteError: the first write error is kept and reported once.
func TestJSONWriteError(t *testing.T) {
	calls := 0
	j := NewJSON(failingWriter{}, func() { calls++ })
	for range 3 {
		j.Hit(&session.Hit{Probe: &session.Probe{}, Process: &finder.Process{}})
		j.Flush()
	}
	if !errors.Is(j.Err(), syscall.EPIPE) || calls != 1 {
		t.Errorf("Err = %v, onError called %d times; want the write error, once", j.Err(), calls)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }
