package output

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/session"
)

// Text writes one readable line per hit to stdout and the rest (processes,
// readiness, summary) to stderr, so stdout holds only hits:
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
	fmt.Fprintf(t.status, "uprobectl: process %s: %d (%s) %s\n", event, p.PID, p.Comm, p.Exe)
}

func (t *Text) Ready(probes []*session.Probe, processes int) {
	fmt.Fprintf(t.status, "uprobectl: %d probe(s) armed in %d process(es); Ctrl-C to stop\n", len(probes), processes)
}

func (t *Text) Rearmed(path string, probes int) {
	fmt.Fprintf(t.status, "uprobectl: %s was replaced: %d probe(s) armed on the new file too\n", path, probes)
}

func (t *Text) Hit(h *session.Hit) {
	b := t.buf[:0]
	b = time.Unix(0, t.wallTime(h.TimeNS)).AppendFormat(b, "15:04:05.000000")
	b = append(b, ' ')
	b = append(b, h.Process.Comm...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(h.Process.PID), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(h.TID), 10)
	b = append(b, " ["...)
	b = strconv.AppendInt(b, int64(h.CPU), 10)
	b = append(b, "] "...)
	b = append(b, h.Probe.Name()...)
	for _, v := range h.Payload.Args {
		b = append(b, ' ')
		b = append(b, v.Name...)
		b = append(b, '=')
		b = appendText(b, v)
	}
	b = append(b, '\n')
	t.buf = b
	t.write(b)
}

func (t *Text) Stats(st session.Stats) {
	fmt.Fprintf(t.status, "uprobectl: stats: %d hit(s), lost %d, unknown %d, %d process(es) tracked, %d seen, %d fds, %d goroutines\n",
		st.Hits, st.Lost, st.Unknown, st.Tracked, st.Processes, st.FDs, st.Goroutines)
}

func (t *Text) Summary(st session.Stats, elapsed time.Duration) {
	t.Flush()
	fmt.Fprintf(t.status, "uprobectl: %d hit(s) from %d process(es) on %d probe(s) in %s; lost %d, unknown %d",
		st.Hits, st.Processes, st.Probes, elapsed.Round(time.Millisecond), st.Lost, st.Unknown)
	for _, c := range []struct {
		name string
		n    uint64
	}{{"undecoded", st.Undecoded}, {"unresolved", st.Unresolved}, {"filtered (out of scope)", st.Filtered}, {"missed windows", st.MissedWindows},
		{"side-band records lost", st.LostSideband}, {"processes recorded late", st.Late}} {
		if c.n > 0 {
			fmt.Fprintf(t.status, ", %s %d", c.name, c.n)
		}
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
	}
	return b
}
