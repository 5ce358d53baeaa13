package output

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/session"
)

// CountOptions say what hits are counted by, besides probe and process.
type CountOptions struct {
	// Interval, if set, prints the counts of each interval too.
	Interval time.Duration
	// Stacks: count per call stack as well (the hits carry stacks). Text
	// output is then folded stacks, one line each, for flamegraph.pl and
	// speedscope.
	Stacks bool
	// By names fetch args whose values group the counts too.
	By []string
	// FirstStack: keep only the first stack seen per (probe, process,
	// By values), with exact counts: memory grows with the keys, never
	// with the calls.
	FirstStack bool
	// Pprof, if set, is where the counts are written at exit as a gzipped
	// pprof profile (needs stacks).
	Pprof string
}

// Count aggregates hits per probe and process (and stack, and By values)
// instead of printing them. It prints the counts of each interval (when
// one is set) and the totals at exit, as a table, folded stacks or, with
// JSON, as "count" objects.
type Count struct {
	frame      Writer // prints readiness and the summary; owns the stream
	out        *base  // the frame's stream, shared so lines never interleave
	json       bool
	opts       CountOptions
	lastPrint  time.Time
	total      map[countKey]*countRow
	sincePrint map[countKey]uint64
	scratch    []byte       // the key being looked up
	err        error        // writing the pprof profile
	groups     atomic.Int64 // len(total), for readers on other goroutines (metrics)
}

type countKey struct {
	probe *session.Probe
	pid   int
	key   string // the By values and, with Stacks but not FirstStack, the stack's addresses
}

type countRow struct {
	key    countKey
	comm   string
	hits   uint64
	by     []byValue
	frames []session.Frame // the (first) stack, with Stacks
}

// byValue is one By fetch arg's value, rendered for text and JSON.
type byValue struct {
	name, text, json string
}

// NewCount counts instead of printing hits; frame (a *JSON or *Text)
// prints everything else.
func NewCount(frame interface {
	Writer
	stream() *base
}, opts CountOptions) *Count {
	_, json := frame.(*JSON)
	return &Count{frame: frame, out: frame.stream(), json: json, opts: opts,
		lastPrint: time.Now(), total: map[countKey]*countRow{}, sincePrint: map[countKey]uint64{}}
}

func (c *Count) Process(event string, p *finder.Process) { c.frame.Process(event, p) }

func (c *Count) Ready(probes []*session.Probe, processes int) { c.frame.Ready(probes, processes) }

func (c *Count) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.frame.Err()
}

// Groups is the number of counted groups: (probe, process[, stack][, By
// values]). Safe to call from any goroutine.
func (c *Count) Groups() int { return int(c.groups.Load()) }

func (c *Count) Stats(st session.Stats) {
	st.Groups = len(c.total)
	c.frame.Stats(st)
}

func (c *Count) Rearmed(path string, probes int) { c.frame.Rearmed(path, probes) }

func (c *Count) Progress(stage string, done, total int) { c.frame.Progress(stage, done, total) }

// Hit finds the hit's row without allocating (the key is built in a
// scratch buffer; a map lookup by string(bytes) does not copy) and
// allocates only for a new row.
func (c *Count) Hit(h *session.Hit) {
	b := c.scratch[:0]
	for _, name := range c.opts.By {
		b = appendText(b, argNamed(h, name))
		b = append(b, 0)
	}
	if c.opts.Stacks && !c.opts.FirstStack {
		for _, ip := range h.StackIPs {
			b = binary.LittleEndian.AppendUint64(b, ip)
		}
	}
	c.scratch = b
	k := countKey{h.Probe, h.Process.PID, ""}
	row := c.total[countKey{h.Probe, h.Process.PID, string(b)}]
	if row == nil {
		k.key = string(b)
		row = &countRow{key: k, comm: h.Process.Comm}
		for _, name := range c.opts.By {
			v := argNamed(h, name)
			row.by = append(row.by, byValue{name: name, text: string(appendText(nil, v)), json: string(appendValue(nil, v))})
		}
		if c.opts.Stacks {
			row.frames = slices.Clone(h.Frames())
		}
		c.total[k] = row
		c.groups.Add(1)
	} else {
		k = row.key
	}
	row.hits++
	if c.opts.Interval > 0 {
		c.sincePrint[k]++
	}
}

// missingArg is the kind of a --by value the hit has no fetch arg for:
// JSON null, text "-".
const missingArg perfevent.ValueKind = 255

// argNamed is the hit's fetch arg name.
func argNamed(h *session.Hit, name string) perfevent.Value {
	for _, v := range h.Payload.Args {
		if v.Name == name {
			return v
		}
	}
	return perfevent.Value{Name: name, Kind: missingArg}
}

// Flush prints the interval's counts when the interval has passed.
func (c *Count) Flush() {
	if c.opts.Interval > 0 && time.Since(c.lastPrint) >= c.opts.Interval {
		c.print(c.sincePrint, false)
		clear(c.sincePrint)
		c.lastPrint = time.Now()
	}
	c.frame.Flush()
}

func (c *Count) Summary(st session.Stats, elapsed time.Duration) {
	totals := map[countKey]uint64{}
	for k, r := range c.total {
		totals[k] = r.hits
	}
	c.print(totals, true)
	if c.opts.Pprof != "" {
		if err := writePprof(c.opts.Pprof, c.rows(totals), totals); err != nil {
			c.err = fmt.Errorf("--pprof %s: %w", c.opts.Pprof, err)
		}
	}
	st.Groups = len(c.total)
	c.frame.Summary(st, elapsed)
}

// rows are the rows of counts, most hits first.
func (c *Count) rows(counts map[countKey]uint64) []*countRow {
	rows := make([]*countRow, 0, len(counts))
	for k := range counts {
		rows = append(rows, c.total[k])
	}
	slices.SortFunc(rows, func(a, b *countRow) int {
		return cmp.Or(cmp.Compare(counts[b.key], counts[a.key]),
			cmp.Compare(a.key.probe.Name(), b.key.probe.Name()), cmp.Compare(a.key.pid, b.key.pid),
			cmp.Compare(a.key.key, b.key.key))
	})
	return rows
}

func (c *Count) print(counts map[countKey]uint64, final bool) {
	rows := c.rows(counts)
	switch {
	case c.json:
		c.printJSON(rows, counts, final)
	case c.opts.Stacks && !c.opts.FirstStack:
		c.printFolded(rows, counts)
	default:
		c.printTable(rows, counts)
	}
	if !c.json && !final {
		c.out.write([]byte("\n"))
	}
}

func (c *Count) printTable(rows []*countRow, counts map[countKey]uint64) {
	b := fmt.Appendf(nil, "%-32s %8s %-16s", "PROBE", "PID", "COMM")
	for _, name := range c.opts.By {
		b = fmt.Appendf(b, " %-16s", strings.ToUpper(string(appendName(nil, name))))
	}
	b = fmt.Appendf(b, " %12s\n", "HITS")
	c.out.write(b)
	for _, r := range rows {
		b = fmt.Appendf(b[:0], "%-32s %8d %-16s", string(appendProbeName(nil, r.key.probe)), r.key.pid, escapeName(r.comm))
		for _, v := range r.by {
			b = fmt.Appendf(b, " %-16s", v.text)
		}
		b = fmt.Appendf(b, " %12d\n", counts[r.key])
		if r.frames != nil {
			b = appendFrames(b, r.frames)
		}
		c.out.write(b)
	}
}

// printFolded prints one line per distinct stack, root first:
// "comm;main;a;b;leaf COUNT", the folded format of flamegraph.pl and
// speedscope. Stacks that fold to the same line are summed.
func (c *Count) printFolded(rows []*countRow, counts map[countKey]uint64) {
	sums := map[string]uint64{}
	var order []string
	for _, r := range rows {
		line := foldedStack(r)
		if _, ok := sums[line]; !ok {
			order = append(order, line)
		}
		sums[line] += counts[r.key]
	}
	for _, line := range order {
		c.out.write([]byte(line + " " + strconv.FormatUint(sums[line], 10) + "\n"))
	}
}

// foldedStack is "comm;root;...;leaf" for a row's stack. Names are
// functions without offsets; a frame without a symbol is its binary's
// name in brackets, or [unknown]. ';' and spaces cannot appear in a name
// (they would split it).
func foldedStack(r *countRow) string {
	parts := make([]string, 0, len(r.frames)+1)
	parts = append(parts, foldName(escapeName(r.comm)))
	for i := len(r.frames) - 1; i >= 0; i-- {
		parts = append(parts, foldName(frameFunction(r.frames[i])))
	}
	return strings.Join(parts, ";")
}

// frameFunction names a frame's function, for folded stacks and pprof.
func frameFunction(f session.Frame) string {
	switch {
	case f.Symbol != "":
		return string(appendName(nil, f.Symbol))
	case f.Binary != "":
		return "[" + path.Base(f.Binary) + "]"
	}
	return "[unknown]"
}

func foldName(s string) string {
	return strings.NewReplacer(";", ":", " ", "_", "\t", "_").Replace(s)
}

func (c *Count) printJSON(rows []*countRow, counts map[countKey]uint64, final bool) {
	for _, r := range rows {
		b := c.out.buf[:0]
		b = append(b, `{"type":"count","probe":`...)
		b = appendString(b, r.key.probe.Name())
		b = append(b, `,"binary":`...)
		b = appendString(b, r.key.probe.Binary())
		b = appendSymbol(b, &r.key.probe.Target)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(r.key.pid), 10)
		b = append(b, `,"comm":`...)
		b = appendString(b, r.comm)
		if len(r.by) > 0 {
			b = append(b, `,"by":{`...)
			for i, v := range r.by {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, v.name)
				b = append(b, ':')
				b = append(b, v.json...)
			}
			b = append(b, '}')
		}
		if r.frames != nil {
			b = append(b, `,"stack":`...)
			b = appendStack(b, r.frames)
		}
		b = append(b, `,"hits":`...)
		b = strconv.AppendUint(b, counts[r.key], 10)
		b = append(b, `,"final":`...)
		b = strconv.AppendBool(b, final)
		b = append(b, "}\n"...)
		c.out.buf = b
		c.out.write(b)
	}
}
