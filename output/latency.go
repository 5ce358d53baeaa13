package output

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/latency"
	"github.com/uprobectl/uprobectl/session"
)

// LatencySPArg is the fetch arg --latency adds to a function's entry and
// return probes: the stack pointer, by which a return is paired with its
// entry (see package latency).
const LatencySPArg = "lat_sp"

// Latency times function calls instead of printing hits: it pairs each
// function's entry and return hits per thread (package latency) and prints,
// at exit, a log2 histogram per function (and per --by values) with
// count, min, avg and max; as text, or as JSON "latency" lines.
type Latency struct {
	frame   Writer
	out     *base
	json    bool
	by      []string
	tracker *latency.Tracker
	funcs   map[funcKey]int  // (file, symbol) → latency.Key.Func
	probes  []*session.Probe // by Func: the entry probe (or the first seen)
	threads map[int]map[int]bool
	group   []byte
}

type funcKey struct {
	file   any
	symbol string
}

// NewLatency times calls; frame (a *JSON or *Text) prints everything
// else. by names entry fetch args whose values split the histograms.
func NewLatency(frame interface {
	Writer
	stream() *base
}, by []string) *Latency {
	_, json := frame.(*JSON)
	return &Latency{frame: frame, out: frame.stream(), json: json, by: by, tracker: latency.New(),
		funcs: map[funcKey]int{}, threads: map[int]map[int]bool{}}
}

// Process forgets the threads of an exited process: their open calls
// are counted unfinished.
func (l *Latency) Process(event string, p *finder.Process) {
	if event == "exit" || event == "exec" {
		for tid := range l.threads[p.PID] {
			l.tracker.ThreadExit(tid)
		}
		delete(l.threads, p.PID)
	}
	l.frame.Process(event, p)
}

func (l *Latency) Ready(probes []*session.Probe, processes int) { l.frame.Ready(probes, processes) }
func (l *Latency) Err() error                                   { return l.frame.Err() }
func (l *Latency) Stats(st session.Stats)                       { l.frame.Stats(st) }
func (l *Latency) Rearmed(path string, probes int)              { l.frame.Rearmed(path, probes) }
func (l *Latency) Progress(stage string, done, total int)       { l.frame.Progress(stage, done, total) }
func (l *Latency) Flush()                                       { l.frame.Flush() }

func (l *Latency) Hit(h *session.Hit) {
	t := &h.Probe.Target
	fk := funcKey{t.File, t.Symbol}
	fn, ok := l.funcs[fk]
	if !ok {
		fn = len(l.probes)
		l.funcs[fk] = fn
		l.probes = append(l.probes, h.Probe)
	}
	if !t.Return {
		l.probes[fn] = h.Probe // name the histogram after the entry probe
	}
	threads := l.threads[h.Process.PID]
	if threads == nil {
		threads = map[int]bool{}
		l.threads[h.Process.PID] = threads
	}
	threads[h.TID] = true
	sp := argNamed(h, LatencySPArg).Uint
	if t.Return {
		l.tracker.Return(latency.Key{Func: fn}, h.TID, h.TimeNS, sp)
		return
	}
	g := l.group[:0]
	for i, name := range l.by {
		if i > 0 {
			g = append(g, ',')
		}
		g = appendText(g, argNamed(h, name))
	}
	l.group = g
	l.tracker.Entry(latency.Key{Func: fn, Group: string(g)}, h.TID, h.TimeNS, sp)
}

func (l *Latency) Summary(st session.Stats, elapsed time.Duration) {
	ls := l.tracker.Stats()
	for _, r := range l.tracker.Results() {
		p := l.probes[r.Key.Func]
		if l.json {
			l.out.write(l.latencyJSON(p, r))
			continue
		}
		var b bytes.Buffer
		b.WriteString("latency of ")
		b.Write(appendName(nil, p.Binary()))
		b.WriteByte(':')
		b.Write(appendProbeName(nil, p))
		if len(l.by) > 0 {
			fmt.Fprintf(&b, " %s=%s", string(appendName(nil, strings.Join(l.by, ","))), r.Key.Group)
		}
		b.WriteString(", ")
		r.Format(&b)
		b.WriteByte('\n')
		l.out.write(b.Bytes())
	}
	if l.json {
		b := fmt.Appendf(nil, `{"type":"latency_stats","paired":%d,"unmatched":%d,"skipped":%d,"unfinished":%d}`+"\n",
			ls.Paired, ls.Unmatched, ls.Skipped, ls.Unfinished)
		l.out.write(b)
	} else if ls.Unmatched+ls.Skipped+ls.Unfinished > 0 {
		l.out.write(fmt.Appendf(nil, "calls timed %d; not timed: %d returns without their entry (calls running when tracing began), %d entries without their return (longjmp, exceptions), %d calls running at the end\n",
			ls.Paired, ls.Unmatched, ls.Skipped, ls.Unfinished))
	}
	l.frame.Summary(st, elapsed)
}

// latencyJSON is one "latency" line: the probe, the --by values, count,
// min/avg/max and the non-empty bucket range.
func (l *Latency) latencyJSON(p *session.Probe, r latency.Result) []byte {
	b := []byte(`{"type":"latency","probe":`)
	b = appendString(b, p.Name())
	b = append(b, `,"binary":`...)
	b = appendString(b, p.Binary())
	b = appendSymbol(b, &p.Target)
	if len(l.by) > 0 {
		// {"NAME":"value"}; with several --by, names and values joined by ','.
		b = append(b, `,"by":{`...)
		b = appendString(b, strings.Join(l.by, ","))
		b = append(b, ':')
		b = appendString(b, r.Key.Group)
		b = append(b, '}')
	}
	avg := uint64(0)
	if r.Count > 0 {
		avg = r.SumNS / r.Count
	}
	b = fmt.Appendf(b, `,"count":%d,"min_ns":%d,"avg_ns":%d,"max_ns":%d,"buckets":[`, r.Count, r.MinNS, avg, r.MaxNS)
	for i, bk := range r.Buckets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"low_ns":`...)
		b = strconv.AppendUint(b, bk.LowNS, 10)
		b = append(b, `,"high_ns":`...)
		b = strconv.AppendUint(b, bk.HighNS, 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, bk.Count, 10)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}
