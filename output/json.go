package output

import (
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
)

// JSON writes one JSON object per line. The objects and their fields are a
// contract with scripts: add fields, never rename or remove them.
type JSON struct {
	base
}

// NewJSON writes JSON lines to w; onError is called once on the first
// write error.
func NewJSON(w io.Writer, onError func()) *JSON {
	return &JSON{base: newBase(w, onError)}
}

func (j *JSON) Process(event string, p *finder.Process) {
	b := j.buf[:0]
	b = append(b, `{"type":"process","event":`...)
	b = appendString(b, event)
	b = appendProcess(b, p)
	b = append(b, "}\n"...)
	j.buf = b
	j.write(b)
}

func appendProcess(b []byte, p *finder.Process) []byte {
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, `,"nspid":`...)
	b = strconv.AppendInt(b, int64(p.NSPID), 10)
	b = append(b, `,"comm":`...)
	b = appendString(b, p.Comm)
	b = append(b, `,"exe":`...)
	b = appendString(b, p.Exe)
	b = append(b, `,"start_time":`...)
	b = strconv.AppendUint(b, p.StartTime, 10)
	b = append(b, `,"cgroup":`...)
	b = appendString(b, p.Cgroup)
	if p.Via != "" {
		b = append(b, `,"via":`...)
		b = appendString(b, p.Via)
	}
	if p.Filtered {
		b = append(b, `,"filtered":true`...)
	}
	return b
}

func (j *JSON) Ready(probes []*session.Probe, processes int) {
	b := j.buf[:0]
	b = append(b, `{"type":"ready","probes":`...)
	b = strconv.AppendInt(b, int64(len(probes)), 10)
	b = append(b, `,"processes":`...)
	b = strconv.AppendInt(b, int64(processes), 10)
	if len(probes) > 0 {
		b = append(b, `,"group":`...)
		b = appendString(b, probes[0].Group())
	}
	b = append(b, `,"events":[`...)
	for i, p := range probes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"probe":`...)
		b = appendString(b, p.Name())
		b = append(b, `,"binary":`...)
		b = appendString(b, p.Binary())
		b = appendSymbol(b, &p.Target)
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, p.Target.Offset, 10)
		b = append(b, `,"return":`...)
		b = strconv.AppendBool(b, p.Target.Return)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	j.buf = b
	j.write(b)
}

func (j *JSON) Progress(stage string, done, total int) {
	b := j.buf[:0]
	b = append(b, `{"type":"progress","stage":`...)
	b = appendString(b, stage)
	b = append(b, `,"done":`...)
	b = strconv.AppendInt(b, int64(done), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, "}\n"...)
	j.buf = b
	j.write(b)
}

func (j *JSON) Rearmed(path string, probes int) {
	b := j.buf[:0]
	b = append(b, `{"type":"rearmed","binary":`...)
	b = appendString(b, path)
	b = append(b, `,"probes":`...)
	b = strconv.AppendInt(b, int64(probes), 10)
	b = append(b, "}\n"...)
	j.buf = b
	j.write(b)
}

func (j *JSON) Hit(h *session.Hit) {
	b := j.buf[:0]
	b = append(b, `{"type":"hit","probe":`...)
	b = appendString(b, h.Probe.Name())
	b = append(b, `,"binary":`...)
	b = appendString(b, h.Probe.Binary())
	b = appendSymbol(b, &h.Probe.Target)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(h.Process.PID), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(h.TID), 10)
	b = append(b, `,"comm":`...)
	b = appendString(b, h.Process.Comm)
	b = append(b, `,"cpu":`...)
	b = strconv.AppendInt(b, int64(h.CPU), 10)
	b = append(b, `,"time_ns":`...)
	b = strconv.AppendInt(b, j.wallTime(h.TimeNS), 10)
	b = append(b, `,"args":{`...)
	for i, v := range h.Payload.Args {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v.Name)
		b = append(b, ':')
		b = appendValue(b, v)
	}
	b = append(b, '}')
	if h.Retval != nil {
		b = append(b, `,"retval":`...)
		b = appendValue(b, *h.Retval)
	}
	if h.StackIPs != nil {
		b = append(b, `,"stack":`...)
		b = appendStack(b, h.Frames())
	}
	b = append(b, "}\n"...)
	j.buf = b
	j.write(b)
}

// appendStack renders frames, innermost first:
// [{"addr":N,"symbol":"name","offset":N,"binary":"path"},…]; a frame
// without a symbol has no "symbol" (offset is then in the binary), one
// outside any file mapping has only "addr"; "unreliable":true marks the
// frames below a function without a frame pointer.
func appendStack(b []byte, frames []session.Frame) []byte {
	b = append(b, '[')
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"addr":`...)
		b = strconv.AppendUint(b, f.Addr, 10)
		if f.Symbol != "" {
			b = append(b, `,"symbol":`...)
			b = appendString(b, f.Symbol)
		}
		if f.Binary != "" {
			b = append(b, `,"offset":`...)
			b = strconv.AppendUint(b, f.Offset, 10)
			b = append(b, `,"binary":`...)
			b = appendString(b, f.Binary)
		}
		if f.Unreliable {
			b = append(b, `,"unreliable":true`...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func (j *JSON) Summary(st session.Stats, elapsed time.Duration) {
	j.counters("summary", st, elapsed)
	j.finish()
}

func (j *JSON) Stats(st session.Stats) { j.counters("stats", st, -1) }

// counters writes a summary or stats line.
func (j *JSON) counters(typ string, st session.Stats, elapsed time.Duration) {
	b := j.buf[:0]
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"hits", st.Hits}, {"lost", st.Lost}, {"lost_sideband", st.LostSideband}, {"late", st.Late},
		{"unknown", st.Unknown}, {"undecoded", st.Undecoded},
		{"filtered", st.Filtered}, {"unresolved", st.Unresolved}, {"missed_windows", st.MissedWindows},
		{"processes", uint64(st.Processes)}, {"tracked", uint64(st.Tracked)}, {"probes", uint64(st.Probes)},
		{"fds", uint64(st.FDs)}, {"goroutines", uint64(st.Goroutines)},
	} {
		b = append(b, ',', '"')
		b = append(b, c.name...)
		b = append(b, '"', ':')
		b = strconv.AppendUint(b, c.n, 10)
	}
	if st.Groups > 0 {
		b = append(b, `,"groups":`...)
		b = strconv.AppendInt(b, int64(st.Groups), 10)
	}
	if elapsed >= 0 {
		b = append(b, `,"duration_ns":`...)
		b = strconv.AppendInt(b, elapsed.Nanoseconds(), 10)
	}
	if st.Exit != nil {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(st.Exit.Code), 10)
		if st.Exit.Signal != 0 {
			b = append(b, `,"signal":`...)
			b = strconv.AppendInt(b, int64(st.Exit.Signal), 10)
		}
	}
	b = append(b, "}\n"...)
	j.buf = b
	j.write(b)
}

// appendSymbol appends the "symbol" field: the demangled name of a C++ or
// Rust symbol, with the ELF name in "mangled"; the ELF name otherwise.
func appendSymbol(b []byte, t *probe.Target) []byte {
	b = append(b, `,"symbol":`...)
	if t.Demangled == "" {
		return appendString(b, t.Symbol)
	}
	b = appendString(b, t.Demangled)
	b = append(b, `,"mangled":`...)
	return appendString(b, t.Symbol)
}

// appendValue renders a fetched argument: integers as JSON numbers, hex
// types as "0x…" strings (their meaning is usually an address), strings as
// strings, arrays as arrays.
func appendValue(b []byte, v perfevent.Value) []byte {
	switch v.Kind {
	case perfevent.Unsigned:
		return strconv.AppendUint(b, v.Uint, 10)
	case perfevent.Signed:
		return strconv.AppendInt(b, v.Int, 10)
	case perfevent.Hex:
		b = append(b, `"0x`...)
		b = strconv.AppendUint(b, v.Uint, 16)
		return append(b, '"')
	case perfevent.Char:
		return appendString(b, string(rune(byte(v.Uint))))
	case perfevent.String:
		return appendString(b, v.Str)
	case perfevent.Array:
		b = append(b, '[')
		for i, e := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != 0x7f
	}
	return t
}()

// appendString appends s as a JSON string. Bytes that are not valid UTF-8
// (a target's memory can hold anything) become U+FFFD. Runs of bytes that
// need no escape are copied at once: names and most strings are one run.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		run := i
		for run < len(s) && s[run] < utf8.RuneSelf && jsonSafe[s[run]] {
			run++
		}
		b = append(b, s[i:run]...)
		if i = run; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			default: // controls and DEL
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
