package output

import (
	"io"
	"sync"
)

// asyncWriter hands the writes of the hit path to a goroutine of its own,
// so that the reader of the rings never waits on the output: a file's
// write(2) can block for hundreds of milliseconds when the kernel throttles
// dirty pages (measured: --json -o FILE at ~900k hits/s, 2 GB written,
// stalls that overflowed 4-8 MiB rings: 0.9 % lost). Up to maxQueued bytes
// wait in memory; beyond that Write blocks, as a plain write would.
type asyncWriter struct {
	w      io.Writer
	queue  chan []byte // filled chunks, in order
	free   chan []byte // chunks to reuse
	done   chan struct{}
	mu     sync.Mutex
	err    error // the first write error
	closed bool
}

const (
	asyncChunk = 64 << 10
	// maxQueued bounds the output held in memory: 4 MiB, ~20k JSON hit
	// lines, ~25 ms of the fastest hits there are (8 MiB lost no fewer
	// hits in the nop5 runs, and took more memory).
	maxQueued = 4 << 20
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	n := maxQueued / asyncChunk
	a := &asyncWriter{w: w, queue: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for chunk := range a.queue {
		if a.Err() == nil {
			if _, err := a.w.Write(chunk); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		select {
		case a.free <- chunk[:0]:
		default:
		}
	}
}

// Err is the first error of the writes done so far.
func (a *asyncWriter) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write queues a copy of p; it returns the first error of an earlier
// write, if any.
func (a *asyncWriter) Write(p []byte) (int, error) {
	if err := a.Err(); err != nil {
		return 0, err
	}
	if a.closed {
		return 0, io.ErrClosedPipe
	}
	var chunk []byte
	select {
	case chunk = <-a.free:
	default:
		chunk = make([]byte, 0, max(asyncChunk, len(p)))
	}
	a.queue <- append(chunk, p...)
	return len(p), nil
}

// Wait writes out everything queued and stops the goroutine; it returns
// the first write error. Write must not be called after it.
func (a *asyncWriter) Wait() error {
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	<-a.done
	return a.Err()
}
