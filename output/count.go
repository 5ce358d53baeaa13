package output

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/session"
)

// Count aggregates hits per probe and process instead of printing them. It
// prints the counts of each interval (when one is set) and the totals at
// exit, as a table or, with JSON, as "count" objects.
type Count struct {
	frame      Writer // prints readiness and the summary; owns the stream
	out        *base  // the frame's stream, shared so lines never interleave
	json       bool
	interval   time.Duration
	lastPrint  time.Time
	total      map[countKey]*countRow
	sincePrint map[countKey]uint64
}

type countKey struct {
	probe *session.Probe
	pid   int
}

type countRow struct {
	key  countKey
	comm string
	hits uint64
}

// NewCount counts instead of printing hits; frame (a *JSON or *Text)
// prints everything else. interval 0 prints only the totals.
func NewCount(frame interface {
	Writer
	stream() *base
}, interval time.Duration) *Count {
	_, json := frame.(*JSON)
	return &Count{frame: frame, out: frame.stream(), json: json, interval: interval,
		lastPrint: time.Now(), total: map[countKey]*countRow{}, sincePrint: map[countKey]uint64{}}
}

func (c *Count) Process(event string, p *finder.Process) { c.frame.Process(event, p) }

func (c *Count) Ready(probes []*session.Probe, processes int) { c.frame.Ready(probes, processes) }

func (c *Count) Err() error { return c.frame.Err() }

func (c *Count) Stats(st session.Stats) { c.frame.Stats(st) }

func (c *Count) Rearmed(path string, probes int) { c.frame.Rearmed(path, probes) }

func (c *Count) Progress(stage string, done, total int) { c.frame.Progress(stage, done, total) }

func (c *Count) Hit(h *session.Hit) {
	k := countKey{h.Probe, h.Process.PID}
	row := c.total[k]
	if row == nil {
		row = &countRow{key: k, comm: h.Process.Comm}
		c.total[k] = row
	}
	row.hits++
	c.sincePrint[k]++
}

// Flush prints the interval's counts when the interval has passed.
func (c *Count) Flush() {
	if c.interval > 0 && time.Since(c.lastPrint) >= c.interval {
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
	c.frame.Summary(st, elapsed)
}

func (c *Count) print(counts map[countKey]uint64, final bool) {
	rows := make([]*countRow, 0, len(counts))
	for k := range counts {
		rows = append(rows, c.total[k])
	}
	slices.SortFunc(rows, func(a, b *countRow) int {
		return cmp.Or(cmp.Compare(counts[b.key], counts[a.key]),
			cmp.Compare(a.key.probe.Name(), b.key.probe.Name()), cmp.Compare(a.key.pid, b.key.pid))
	})
	if !c.json {
		c.out.write([]byte(fmt.Sprintf("%-32s %8s %-16s %12s\n", "PROBE", "PID", "COMM", "HITS")))
		for _, r := range rows {
			c.out.write([]byte(fmt.Sprintf("%-32s %8d %-16s %12d\n", string(appendProbeName(nil, r.key.probe)), r.key.pid, escapeName(r.comm), counts[r.key])))
		}
		if !final {
			c.out.write([]byte("\n"))
		}
		return
	}
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
		b = append(b, `,"hits":`...)
		b = strconv.AppendUint(b, counts[r.key], 10)
		b = append(b, `,"final":`...)
		b = strconv.AppendBool(b, final)
		b = append(b, "}\n"...)
		c.out.buf = b
		c.out.write(b)
	}
}
