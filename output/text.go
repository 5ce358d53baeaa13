package output

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/session"
)

// Text writes one readable line per hit to stdout and the rest (processes,
// readiness, summary) to stderr, so stdout holds only hits. Names from the
// traced processes are escaped (see escape.go) and string args quoted, so a
// line never holds a control character and a hit is always one line:
//
//	14:03:07.123456 target 4242/4243 [1] fn a=7 s="hello"
//	14:03:07.123460 target 4242/4243 [1] fn__return retval=42
type Text struct {
	base
	status io.Writer
}

// NewText writes hits to w and status lines to status.
func NewText(w, status io.Writer, onError func()) *Text {
	return &Text{base: newBase(w, onError), status: status}
}

func (t *Text) Process(event string, p *finder.Process) {
	t.Flush() // the hits before an exit come before it, on a terminal too
	fmt.Fprintf(t.status, "uprobectl: process %s: %d (%s) %s\n", escapeName(event), p.PID, escapeName(p.Comm), escapeName(p.Exe))
}

// Ready names each probed file, with the words that named it when they
// differ (a library name, a relative path, a symlink), then the count:
//
//	uprobectl: libc.so.6 -> /usr/lib/x86_64-linux-gnu/libc.so.6 (2 probes)
//	uprobectl: 3 probe(s) armed in 1 process(es); Ctrl-C to stop
func (t *Text) Ready(probes []*session.Probe, processes int) {
	type file struct {
		binary string
		words  []string
		probes int
	}
	var files []*file
	byBinary := map[string]*file{}
	for _, p := range probes {
		bin := p.Binary()
		f := byBinary[bin]
		if f == nil {
			f = &file{binary: bin}
			byBinary[bin] = f
			files = append(files, f)
		}
		f.probes++
		if p.Target.Spec != nil {
			if w := p.Target.Spec.Path; w != "" && w != bin && !slices.Contains(f.words, w) {
				f.words = append(f.words, w)
			}
		}
	}
	for _, f := range files {
		b := append([]byte(nil), "uprobectl: "...)
		for i, w := range f.words {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendName(b, w)
		}
		if len(f.words) > 0 {
			b = append(b, " -> "...)
		}
		b = appendName(b, f.binary)
		b = append(b, " ("...)
		b = strconv.AppendInt(b, int64(f.probes), 10)
		if f.probes == 1 {
			b = append(b, " probe)\n"...)
		} else {
			b = append(b, " probes)\n"...)
		}
		t.status.Write(b) //nolint:errcheck // status lines are best effort, as with fmt.Fprintf
	}
	fmt.Fprintf(t.status, "uprobectl: %d probe(s) armed in %d process(es); Ctrl-C to stop\n", len(probes), processes)
}

func (t *Text) Progress(stage string, done, total int) {
	what := map[string]string{"define": "probes defined", "arm": "perf events open"}[stage]
	fmt.Fprintf(t.status, "uprobectl: arming: %d of %d %s\n", done, total, what)
}

func (t *Text) Rearmed(path string, probes int) {
	fmt.Fprintf(t.status, "uprobectl: %s was replaced: %d probe(s) armed on the new file too\n", escapeName(path), probes)
}

func (t *Text) Hit(h *session.Hit) {
	b := t.buf[:0]
	b = time.Unix(0, t.wallTime(h.TimeNS)).AppendFormat(b, "15:04:05.000000")
	b = append(b, ' ')
	b = appendName(b, h.Process.Comm)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(h.Process.PID), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(h.TID), 10)
	b = append(b, " ["...)
	b = strconv.AppendInt(b, int64(h.CPU), 10)
	b = append(b, "] "...)
	b = appendProbeName(b, h.Probe)
	for _, v := range h.Payload.Args {
		b = append(b, ' ')
		b = appendName(b, v.Name)
		b = append(b, '=')
		b = appendText(b, v)
	}
	b = append(b, '\n')
	if h.StackIPs != nil {
		b = appendFrames(b, h.Frames())
	}
	t.buf = b
	t.write(b)
}

// appendFrames renders a stack one frame a line, innermost first, like
// perf script: "\t    55af7548e179 leaf+0x0 (/tmp/stacks)".
func appendFrames(b []byte, frames []session.Frame) []byte {
	for _, f := range frames {
		b = append(b, '\t')
		var digits [16]byte
		addr := strconv.AppendUint(digits[:0], f.Addr, 16)
		for range 16 - len(addr) {
			b = append(b, ' ')
		}
		b = append(b, addr...)
		b = append(b, ' ')
		b = appendFrameName(b, f)
		if f.Binary != "" {
			b = append(b, " ("...)
			b = appendName(b, f.Binary)
			b = append(b, ')')
		}
		if f.Unreliable {
			b = append(b, " [unreliable]"...)
		}
		b = append(b, '\n')
	}
	return b
}

// appendFrameName is how a frame is named in text and folded stacks:
// "symbol+0xOFF", or "[unknown]" when no symbol covers it.
func appendFrameName(b []byte, f session.Frame) []byte {
	if f.Symbol == "" {
		return append(b, "[unknown]"...)
	}
	b = appendName(b, f.Symbol)
	b = append(b, "+0x"...)
	return strconv.AppendUint(b, f.Offset, 16)
}

// appendProbeName appends how a hit names its probe: the probe's name, or
// for a C++ or Rust function its demangled name, written as in a probe
// word: "ns::Class::method(int)", "ns::f(int)+0x8", "ns::f(int)%return".
func appendProbeName(b []byte, p *session.Probe) []byte {
	t := &p.Target
	if t.Demangled == "" {
		return appendName(b, p.Name())
	}
	b = appendName(b, t.Demangled)
	if t.Spec != nil && t.Spec.SymbolOffset != 0 {
		b = append(b, "+0x"...)
		b = strconv.AppendUint(b, t.Spec.SymbolOffset, 16)
	}
	if t.Return {
		b = append(b, "%return"...)
	}
	return b
}

func (t *Text) Stats(st session.Stats) {
	fmt.Fprintf(t.status, "uprobectl: stats: %d hit(s), lost %d, unknown %d, %d process(es) tracked, %d seen, %d fds, %d goroutines\n",
		st.Hits, st.Lost, st.Unknown, st.Tracked, st.Processes, st.FDs, st.Goroutines)
}

func (t *Text) Summary(st session.Stats, elapsed time.Duration) {
	t.finish() // every hit written before the summary line

	fmt.Fprintf(t.status, "uprobectl: %d hit(s) from %d process(es) on %d probe(s) in %s; lost %d, unknown %d",
		st.Hits, st.Processes, st.Probes, elapsed.Round(time.Millisecond), st.Lost, st.Unknown)
	for _, c := range []struct {
		name string
		n    uint64
	}{{"undecoded", st.Undecoded}, {"unresolved", st.Unresolved}, {"filtered (out of scope)", st.Filtered}, {"missed windows", st.MissedWindows},
		{"side-band records lost", st.LostSideband}, {"processes recorded late", st.Late}, {"groups counted", uint64(st.Groups)}} {
		if c.n > 0 {
			fmt.Fprintf(t.status, ", %s %d", c.name, c.n)
		}
	}
	switch e := st.Exit; {
	case e == nil:
	case e.Signal != 0:
		fmt.Fprintf(t.status, "; the command was killed by signal %d (%s): exit code %d", e.Signal, unix.SignalName(syscall.Signal(e.Signal)), e.Code)
	default:
		fmt.Fprintf(t.status, "; the command exited with code %d", e.Code)
	}
	fmt.Fprintln(t.status)
}

func appendText(b []byte, v perfevent.Value) []byte {
	switch v.Kind {
	case perfevent.Unsigned:
		return strconv.AppendUint(b, v.Uint, 10)
	case perfevent.Signed:
		return strconv.AppendInt(b, v.Int, 10)
	case perfevent.Hex:
		b = append(b, "0x"...)
		return strconv.AppendUint(b, v.Uint, 16)
	case perfevent.Char:
		return strconv.AppendQuoteRune(b, rune(byte(v.Uint)))
	case perfevent.String:
		return strconv.AppendQuote(b, v.Str)
	case perfevent.Array:
		b = append(b, '{')
		for i, e := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendText(b, e)
		}
		return append(b, '}')
	case missingArg:
		return append(b, '-')
	}
	return b
}
