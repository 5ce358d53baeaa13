// Package output renders what a session produces: readable lines for a
// person, JSON lines for scripts (the contract documented in the README),
// and per-probe, per-process counts.
package output

import (
	"bufio"
	"io"
	"os"
	"time"

	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/session"
)

// Writer is a session.Sink that also prints the end-of-run summary.
type Writer interface {
	session.Sink
	Summary(st session.Stats, elapsed time.Duration)
	// Err is the first write error (EPIPE when the reader went away).
	Err() error
}

// base holds what every writer shares: a buffered stream whose first error
// is kept, and the offset that turns the kernel's CLOCK_MONOTONIC stamps
// into wall-clock time (measured once, so differences stay exact).
type base struct {
	w          *bufio.Writer
	async      *asyncWriter // under w for a file: the writes happen on a goroutine of their own; nil otherwise
	err        error
	onError    func()
	wallOffset int64
	buf        []byte
}

func newBase(w io.Writer, onError func()) base {
	// A file or pipe is written from a goroutine of its own (asyncWriter);
	// an in-memory writer (tests) directly.
	var async *asyncWriter
	if _, ok := w.(*os.File); ok {
		async = newAsyncWriter(w)
		w = async
	}
	return base{
		w:          bufio.NewWriterSize(w, asyncChunk),
		async:      async,
		onError:    onError,
		wallOffset: time.Now().UnixNano() - int64(perfevent.MonotonicNow()),
	}
}

func (b *base) write(p []byte) {
	if b.err != nil {
		return
	}
	if _, err := b.w.Write(p); err != nil {
		b.fail(err)
	}
}

func (b *base) fail(err error) {
	if b.err == nil {
		b.err = err
		if b.onError != nil {
			b.onError()
		}
	}
}

// Flush writes out what is buffered.
func (b *base) Flush() {
	if b.err == nil {
		if err := b.w.Flush(); err != nil {
			b.fail(err)
		}
	}
}

// finish writes out everything and waits until it is written: the end of
// the output (Summary).
func (b *base) finish() {
	b.Flush()
	if b.async == nil {
		return
	}
	if err := b.async.Wait(); err != nil {
		b.fail(err)
	}
}

func (b *base) Err() error { return b.err }

func (b *base) stream() *base { return b }

// wallTime converts a CLOCK_MONOTONIC stamp to Unix nanoseconds.
func (b *base) wallTime(mono uint64) int64 { return int64(mono) + b.wallOffset }
