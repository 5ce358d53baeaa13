package perfevent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	perf "github.com/elastic/go-perf"
	"golang.org/x/sys/unix"
)

// RecordKind says what a Record reports.
type RecordKind uint8

const (
	KindSample RecordKind = iota + 1 // a uprobe hit: Raw holds the trace event payload
	KindLost                         // the kernel dropped Lost records: the ring was full
	KindFork                         // a task was created (needs Options.Task on some event)
	KindExit                         // a task exited
	KindComm                         // a task changed its name (Exec: by execve)
	KindMmap                         // an executable mapping (Mmap: where, which file)
)

// Record is one record of a ring, decoded from the kernel's layout for the
// sample format every event here shares (TID, TIME, CPU, RAW; sample_id_all).
type Record struct {
	Kind RecordKind
	CPU  int // CPU of the ring the record was read from
	// Sideband: the record came from a side-band ring. A KindLost record
	// from a side-band ring counts lost fork/exit/comm/mmap records, one
	// from a hit ring counts lost hits.
	Sideband bool
	PID      uint32 // process (thread group) id
	TID      uint32 // thread id
	Time     uint64 // CLOCK_MONOTONIC nanoseconds

	Raw []byte // KindSample: the trace event payload; valid only during the handler call
	// Callchain: KindSample, when the rings record stacks (EnableStacks):
	// the user call chain as the kernel wrote it, 8-byte little-endian
	// entries, innermost first, PERF_CONTEXT_* markers included (see
	// UserFrames); valid only during the handler call.
	Callchain []byte

	Lost uint64 // KindLost: number of records dropped

	PPID, PTID uint32 // KindFork, KindExit: parent process and thread

	Comm string // KindComm: the new name
	Exec bool   // KindComm: the name changed because of execve

	Mmap *Mmap // KindMmap

	arena int32 // the arena Raw and Callchain point into
}

// Mmap is a PERF_RECORD_MMAP2: an executable mapping of a file.
type Mmap struct {
	Addr, Len, Pgoff uint64
	Major, Minor     uint32
	Ino              uint64
	Filename         string
}

// Kernel record types (include/uapi/linux/perf_event.h).
const (
	recordLost        = 2
	recordComm        = 3
	recordExit        = 4
	recordFork        = 7
	recordSample      = 9
	recordMmap2       = 10
	recordLostSamples = 13

	miscCommExec = 1 << 13
	miscBuildID  = 1 << 14 // mmap2 carries a build id instead of dev/inode
)

// sampleIDSize is the trailer sample_id_all appends to non-sample records:
// pid, tid (TID), time (TIME), cpu, reserved (CPU).
const sampleIDSize = 4 + 4 + 8 + 4 + 4

// pollInterval bounds how long a hit can wait in a ring when the rate is too
// low to reach the wakeup watermark; an idle run pays 100 cheap wakeups a
// second for it.
const pollIntervalMs = 10

// readerNice is the reader thread's nice value. Measured on 2 CPUs with 2
// threads making 1M hits/s (scripts/bench-ingest's nop5 workload, default
// ring): at the traced threads' priority the reader lost 12-20 % of the
// hits; at -10, 0.5-2.4 %; -20 did not do clearly better.
const readerNice = -10

// Read delivers the records of every ring, in time order across rings, until
// ctx is done. After each round it calls afterRound with the time before
// which every record has now been delivered. It returns without draining:
// close the perf events and call Drain, so no record written before the
// close is left unread.
//
// Ordering: a ring is ordered by itself; across rings a record is delivered
// only once every ring has been read past its timestamp. Each round notes
// the clock before reading; records older than the previous round's start
// are safe to deliver, because every ring has since been read completely.
func (r *Rings) Read(ctx context.Context, handle func(*Record), afterRound func(deliveredBefore uint64)) error {
	anchors := append(slices.Clone(r.hits), r.sideband...)
	pollFDs := make([]unix.PollFd, len(anchors))
	for i, a := range anchors {
		fd, err := a.FD()
		if err != nil {
			return err
		}
		pollFDs[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	// The reader competes for the CPUs with the very threads it traces;
	// when they run flat out, a reader at their priority gets its turn too
	// late and the rings overflow. Its own OS thread, at a higher priority
	// (root may; otherwise it stays as it is), keeps it ahead.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), readerNice)
	var previousRoundStart uint64
	for ctx.Err() == nil {
		roundStart := MonotonicNow()
		before := min(previousRoundStart, r.readRound())
		r.deliver(handle, before)
		afterRound(before)
		previousRoundStart = roundStart
		if _, err := unix.Poll(pollFDs, pollIntervalMs); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
	return nil
}

// Drain delivers every record left in the rings and held back by the merge.
func (r *Rings) Drain(handle func(*Record)) {
	// A ring read short of its end holds back what is newer than its last
	// record read: an exit record must not overtake that process's hits.
	for {
		readUpTo := r.readRound()
		r.deliver(handle, readUpTo)
		if readUpTo == ^uint64(0) {
			return
		}
	}
}

// FlushLost makes the kernel write out the records it dropped but has not
// reported yet: a ring that overflowed reports its lost count only with the
// next record written to it, and once the traced processes are gone nothing
// more may come. A thread pinned to each CPU renames itself: the side-band
// anchor sees every task's comm, and a dummy event opened on that thread
// alone, routed into the CPU's hit ring, writes the same comm record there
// (the reader drops it). Each record is preceded by the ring's pending lost
// count. Call it after Drain, when the rings have room, and Drain again.
// It returns the first error; a failure leaves that ring's pending count
// unreported.
func (r *Rings) FlushLost() error {
	errs := make([]error, len(r.cpus))
	var wg sync.WaitGroup
	for i, cpu := range r.cpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the thread exits with the goroutine: its pinning goes with it
			errs[i] = r.flushCPU(i, cpu)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// flushCPU runs on a locked OS thread that exits afterwards.
func (r *Rings) flushCPU(i, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("flush lost counts of cpu %d: pin: %w", cpu, err)
	}
	attr := &perf.Attr{
		Type:         perf.SoftwareEvent,
		Config:       uint64(unix.PERF_COUNT_SW_DUMMY),
		Options:      perf.Options{Comm: true, SampleIDAll: true, UseClockID: true},
		ClockID:      unix.CLOCK_MONOTONIC,
		SampleFormat: sampleFormat,
	}
	ev, err := perf.Open(attr, perf.CallingThread, cpu, nil)
	if err != nil {
		return fmt.Errorf("flush lost counts of cpu %d: %w", cpu, translateOpenError(err))
	}
	defer ev.Close()
	if err := ev.SetOutput(r.hits[i]); err != nil {
		return fmt.Errorf("flush lost counts of cpu %d: route to the hit ring: %w", cpu, err)
	}
	name := []byte("uprobectl-flush\x00")
	return unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
}

// deliver hands out, in time order, the read records older than before.
// Each ring is in time order by itself, so this is a k-way merge of the
// ring queues (a handful: two per CPU), not a sort.
func (r *Rings) deliver(handle func(*Record), before uint64) {
	for {
		best := -1
		var bestTime uint64
		for i := range r.queues {
			q := &r.queues[i]
			if q.head < len(q.recs) {
				if t := q.recs[q.head].Time; t < before && (best < 0 || t < bestTime) {
					best, bestTime = i, t
				}
			}
		}
		if best < 0 {
			break
		}
		q := &r.queues[best]
		handle(&q.recs[q.head])
		if a := int(q.recs[q.head].arena); a < len(r.arenas) { // queued by readRing
			r.arenas[a].live--
		}
		q.recs[q.head] = Record{} // drop references into arenas and strings
		q.head++
	}
	for i := range r.queues {
		q := &r.queues[i]
		if q.head == len(q.recs) {
			q.recs, q.head = q.recs[:0], 0
		} else if q.head > len(q.recs)/2 {
			n := copy(q.recs, q.recs[q.head:])
			q.recs, q.head = q.recs[:n], 0
		}
	}
}

// maxRecordsPerRound bounds what one round reads from a ring. A ring
// written at full speed would otherwise be chased: the reader keeps
// finding new records, the round grows, the delivery after it takes as
// long, and meanwhile the other rings overflow (measured: 2 threads making
// 900k hits/s, rounds of 100k+ records, 1.6-2.1 % lost and 60 MB of
// queued records). 8192 records are ~18 ms of one CPU's hits at that rate.
const maxRecordsPerRound = 8192

// readRound appends up to maxRecordsPerRound records of each ring to its
// queue. It returns the time up to which the rings it stopped short in
// were read (every record of such a ring stamped before it is queued), or
// ^0 when every ring was read to its end.
func (r *Rings) readRound() uint64 {
	if r.queues == nil {
		r.queues = make([]queue, len(r.hits)+len(r.sideband))
		// A hit queue holds up to a round's records plus what the merge
		// held back: sized once, so that the busiest seconds do not also
		// grow it (the garbage collector's assists slowed rounds then).
		for i := range r.hits {
			r.queues[i].recs = make([]Record, 0, 2*maxRecordsPerRound)
		}
	}
	ai := slices.IndexFunc(r.arenas, func(a arena) bool { return a.live == 0 })
	if ai < 0 {
		ai = len(r.arenas)
		r.arenas = append(r.arenas, arena{})
	}
	ar := &r.arenas[ai]
	ar.buf = ar.buf[:0]
	readUpTo := ^uint64(0)
	for i, cpu := range r.cpus {
		if last, full := r.readRing(r.hitRings[i], &r.queues[i], cpu, false, ai); !full {
			readUpTo = min(readUpTo, last)
		}
		if last, full := r.readRing(r.sidebandRings[i], &r.queues[len(r.hits)+i], cpu, true, ai); !full {
			readUpTo = min(readUpTo, last)
		}
	}
	return readUpTo
}

// readRing queues the records of one ring, at most maxRecordsPerRound. It
// reports whether it read the ring to its end, and otherwise the time of
// the last record it queued.
func (r *Rings) readRing(rg *ring, q *queue, cpu int, sideband bool, ai int) (last uint64, toEnd bool) {
	ar := &r.arenas[ai]
	toEnd = rg.read(maxRecordsPerRound, func(raw *perf.RawRecord) {
		rec, ok := decodeRecord(cpu, raw, &ar.buf, r.stackDepth > 0)
		// A hit ring holds samples and lost counts; anything else in it
		// is FlushLost's comm record.
		if !ok || (!sideband && rec.Kind != KindSample && rec.Kind != KindLost) {
			return
		}
		rec.Sideband = sideband
		rec.arena = int32(ai)
		ar.live++
		q.recs = append(q.recs, rec)
		if rec.Time > last {
			last = rec.Time
		}
	})
	return last, toEnd
}

var le = binary.LittleEndian

// decodeRecord decodes one raw record. Not go-perf's SampleRecord.DecodeFrom:
// it decodes by the *Event given, and a ring here receives the samples of
// hundreds of perf events (SET_OUTPUT), which it could tell apart only
// with StreamID in every sample and a group of those events (ReadRecord
// refuses otherwise); and it allocates a Callchain and a Raw per sample.
// Every event here shares one sample layout (sampleFormat, plus the chain
// with stacks), so the layout is decoded directly, into reused storage.
//
// decodeRecord: a sample's payload (and call
// chain) is copied to the end of arena (raw.Data is go-perf's buffer,
// reused for the next record). callchain: samples carry
// PERF_SAMPLE_CALLCHAIN, which the kernel writes between CPU and RAW.
func decodeRecord(cpu int, raw *perf.RawRecord, arena *[]byte, callchain bool) (Record, bool) {
	d := raw.Data
	rec := Record{CPU: cpu}
	switch raw.Header.Type {
	case recordSample:
		// pid, tid, time, cpu, res, [nr, ips[nr]], raw size, raw data.
		if len(d) < 28 {
			return rec, false
		}
		rec.Kind = KindSample
		rec.PID, rec.TID, rec.Time = le.Uint32(d[0:]), le.Uint32(d[4:]), le.Uint64(d[8:])
		at := 24
		var chain []byte
		if callchain {
			nr := le.Uint64(d[24:])
			if nr > uint64(len(d)-32)/8 {
				return rec, false
			}
			chain = d[32 : 32+8*nr]
			at = 32 + 8*int(nr)
		}
		if at+4 > len(d) {
			return rec, false
		}
		size := int(le.Uint32(d[at:]))
		if at+4+size > len(d) {
			return rec, false
		}
		start := len(*arena)
		*arena = append(*arena, d[at+4:at+4+size]...)
		*arena = append(*arena, chain...)
		rec.Raw = (*arena)[start : start+size : start+size]
		if callchain {
			rec.Callchain = (*arena)[start+size : len(*arena) : len(*arena)]
		}
		return rec, true
	case recordLost:
		if len(d) < 16 {
			return rec, false
		}
		rec.Kind, rec.Lost = KindLost, le.Uint64(d[8:])
	case recordLostSamples:
		if len(d) < 8 {
			return rec, false
		}
		rec.Kind, rec.Lost = KindLost, le.Uint64(d[0:])
	case recordFork, recordExit:
		if len(d) < 24 {
			return rec, false
		}
		rec.Kind = KindFork
		if raw.Header.Type == recordExit {
			rec.Kind = KindExit
		}
		rec.PID, rec.PPID, rec.TID, rec.PTID = le.Uint32(d[0:]), le.Uint32(d[4:]), le.Uint32(d[8:]), le.Uint32(d[12:])
		rec.Time = le.Uint64(d[16:])
		return rec, true
	case recordComm:
		if len(d) < 8+sampleIDSize {
			return rec, false
		}
		rec.Kind = KindComm
		rec.PID, rec.TID = le.Uint32(d[0:]), le.Uint32(d[4:])
		name := d[8 : len(d)-sampleIDSize]
		if i := slices.Index(name, 0); i >= 0 {
			name = name[:i]
		}
		rec.Comm = string(name)
		rec.Exec = raw.Header.Misc&miscCommExec != 0
	case recordMmap2:
		// pid, tid, addr, len, pgoff, maj, min, ino, ino_generation, prot,
		// flags, filename (NUL-padded to 8 bytes), sample_id.
		const fixed = 4 + 4 + 8 + 8 + 8 + 4 + 4 + 8 + 8 + 4 + 4
		if len(d) < fixed+sampleIDSize || raw.Header.Misc&miscBuildID != 0 {
			return rec, false
		}
		rec.Kind = KindMmap
		rec.PID, rec.TID = le.Uint32(d[0:]), le.Uint32(d[4:])
		m := &Mmap{Addr: le.Uint64(d[8:]), Len: le.Uint64(d[16:]), Pgoff: le.Uint64(d[24:]),
			Major: le.Uint32(d[32:]), Minor: le.Uint32(d[36:]), Ino: le.Uint64(d[40:])}
		name := d[fixed : len(d)-sampleIDSize]
		if i := slices.Index(name, 0); i >= 0 {
			name = name[:i]
		}
		m.Filename = string(name)
		rec.Mmap = m
	default:
		return rec, false
	}
	// Non-sample records end with the sample_id trailer.
	if len(d) >= sampleIDSize {
		t := d[len(d)-sampleIDSize:]
		if rec.Kind == KindLost {
			rec.PID, rec.TID = le.Uint32(t[0:]), le.Uint32(t[4:])
		}
		rec.Time = le.Uint64(t[8:])
	}
	return rec, true
}

// contextMax is PERF_CONTEXT_MAX: call chain entries from it up are
// markers (PERF_CONTEXT_USER, _KERNEL, ...), not addresses.
const contextMax = ^uint64(0) - 4095 + 1

// UserFrames appends the user addresses of the record's call chain to dst,
// innermost first, skipping the kernel's context markers, and returns it.
func (r *Record) UserFrames(dst []uint64) []uint64 {
	for i := 0; i+8 <= len(r.Callchain); i += 8 {
		if ip := le.Uint64(r.Callchain[i:]); ip < contextMax && ip != 0 {
			dst = append(dst, ip)
		}
	}
	return dst
}

// MonotonicNow reads the clock every record is stamped with.
func MonotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
