package perfevent

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	perf "github.com/elastic/go-perf"
	"golang.org/x/sys/unix"
)

// rec builds the body of a perf record (what follows struct
// perf_event_header, as go-perf's RawRecord.Data holds it), byte by byte.
type rec []byte

func (r rec) u32(v uint32) rec    { return le.AppendUint32(r, v) }
func (r rec) u64(v uint64) rec    { return le.AppendUint64(r, v) }
func (r rec) bytes(b ...byte) rec { return append(r, b...) }

// sampleID appends the sample_id_all trailer for sample_type
// TID|TIME|CPU: { u32 pid, tid; u64 time; u32 cpu, res; }.
func (r rec) sampleID(pid, tid uint32, time uint64, cpu uint32) rec {
	return r.u32(pid).u32(tid).u64(time).u32(cpu).u32(0)
}

// comm appends a name as the kernel does: NUL-terminated, padded to 8 bytes.
func (r rec) comm(name string) rec {
	b := append([]byte(name), 0)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return append(r, b...)
}

func rawRecord(typ uint32, misc uint16, body rec) *perf.RawRecord {
	return &perf.RawRecord{
		Header: perf.RecordHeader{Type: perf.RecordType(typ), Misc: misc, Size: uint16(8 + len(body))},
		Data:   body,
	}
}

// sample is a PERF_RECORD_SAMPLE body for sample_type TID|TIME|CPU|RAW:
// pid, tid, time, cpu, res, then the raw size and data (the kernel pads
// size + data to 8 bytes, and the padding counts in size).
func sample(pid, tid uint32, time uint64, cpu uint32, payload []byte) rec {
	return rec{}.u32(pid).u32(tid).u64(time).u32(cpu).u32(0).u32(uint32(len(payload))).bytes(payload...)
}

func TestDecodeRecord(t *testing.T) {
	payload := []byte{0x19, 0x09, 0, 0, 0x92, 0x10, 0, 0, 1, 2, 3, 4} // 12 bytes: 4 + 12 = 16, aligned
	const ringCPU = 3
	tests := []struct {
		name   string
		raw    *perf.RawRecord
		want   Record
		wantOK bool
	}{
		{
			name:   "sample",
			raw:    rawRecord(unix.PERF_RECORD_SAMPLE, 0, sample(4242, 4243, 1_000_000_007, ringCPU, payload)),
			want:   Record{Kind: KindSample, CPU: ringCPU, PID: 4242, TID: 4243, Time: 1_000_000_007, Raw: payload},
			wantOK: true,
		},
		{
			name:   "sample with an empty raw payload",
			raw:    rawRecord(unix.PERF_RECORD_SAMPLE, 0, sample(1, 2, 3, ringCPU, nil)),
			want:   Record{Kind: KindSample, CPU: ringCPU, PID: 1, TID: 2, Time: 3, Raw: []byte{}},
			wantOK: true,
		},
		{
			name: "sample whose raw size runs past the record",
			raw:  rawRecord(unix.PERF_RECORD_SAMPLE, 0, sample(1, 2, 3, ringCPU, payload)[:28+len(payload)-1]),
		},
		{
			name: "sample without the raw size",
			raw:  rawRecord(unix.PERF_RECORD_SAMPLE, 0, sample(1, 2, 3, ringCPU, nil)[:27]),
		},
		{
			name: "lost: id, lost, sample_id",
			raw: rawRecord(unix.PERF_RECORD_LOST, 0,
				rec{}.u64(77).u64(17).sampleID(4242, 4244, 2_000_000_000, ringCPU)),
			want:   Record{Kind: KindLost, CPU: ringCPU, PID: 4242, TID: 4244, Time: 2_000_000_000, Lost: 17},
			wantOK: true,
		},
		{
			name: "lost without the trailer",
			raw:  rawRecord(unix.PERF_RECORD_LOST, 0, rec{}.u64(77).u64(17)),
			want: Record{Kind: KindLost, CPU: ringCPU, Lost: 17}, wantOK: true,
		},
		{name: "lost, truncated", raw: rawRecord(unix.PERF_RECORD_LOST, 0, rec{}.u64(77))},
		{
			name: "lost samples: lost, sample_id",
			raw: rawRecord(unix.PERF_RECORD_LOST_SAMPLES, 0,
				rec{}.u64(5).sampleID(4242, 4242, 3_000_000_000, ringCPU)),
			want:   Record{Kind: KindLost, CPU: ringCPU, PID: 4242, TID: 4242, Time: 3_000_000_000, Lost: 5},
			wantOK: true,
		},
		{name: "lost samples, truncated", raw: rawRecord(unix.PERF_RECORD_LOST_SAMPLES, 0, rec{}.u32(5))},
		{
			name: "fork: pid, ppid, tid, ptid, time, sample_id",
			raw: rawRecord(unix.PERF_RECORD_FORK, 0,
				rec{}.u32(5000).u32(4242).u32(5000).u32(4243).u64(4_000_000_000).sampleID(5000, 5000, 4_000_000_000, ringCPU)),
			want:   Record{Kind: KindFork, CPU: ringCPU, PID: 5000, PPID: 4242, TID: 5000, PTID: 4243, Time: 4_000_000_000},
			wantOK: true,
		},
		{
			name: "fork of a thread",
			raw: rawRecord(unix.PERF_RECORD_FORK, 0,
				rec{}.u32(4242).u32(4242).u32(4250).u32(4242).u64(5).sampleID(4242, 4250, 5, ringCPU)),
			want:   Record{Kind: KindFork, CPU: ringCPU, PID: 4242, PPID: 4242, TID: 4250, PTID: 4242, Time: 5},
			wantOK: true,
		},
		{
			name: "exit",
			raw: rawRecord(unix.PERF_RECORD_EXIT, 0,
				rec{}.u32(4242).u32(1).u32(4243).u32(1).u64(6_000_000_000).sampleID(4242, 4243, 6_000_000_000, ringCPU)),
			want:   Record{Kind: KindExit, CPU: ringCPU, PID: 4242, PPID: 1, TID: 4243, PTID: 1, Time: 6_000_000_000},
			wantOK: true,
		},
		{name: "exit, truncated", raw: rawRecord(unix.PERF_RECORD_EXIT, 0, rec{}.u32(4242).u32(1).u32(4243).u32(1).u32(0))},
		{
			name: "comm: prctl(PR_SET_NAME)",
			raw: rawRecord(unix.PERF_RECORD_COMM, 0,
				rec{}.u32(4242).u32(4250).comm("worker").sampleID(4242, 4250, 7, ringCPU)),
			want:   Record{Kind: KindComm, CPU: ringCPU, PID: 4242, TID: 4250, Time: 7, Comm: "worker"},
			wantOK: true,
		},
		{
			name: "comm by execve (misc COMM_EXEC)",
			raw: rawRecord(unix.PERF_RECORD_COMM, unix.PERF_RECORD_MISC_COMM_EXEC,
				rec{}.u32(4242).u32(4242).comm("target").sampleID(4242, 4242, 8, ringCPU)),
			want:   Record{Kind: KindComm, CPU: ringCPU, PID: 4242, TID: 4242, Time: 8, Comm: "target", Exec: true},
			wantOK: true,
		},
		{
			name: "comm of 15 bytes, the longest",
			raw: rawRecord(unix.PERF_RECORD_COMM, unix.PERF_RECORD_MISC_COMM_EXEC,
				rec{}.u32(1).u32(1).comm("0123456789abcde").sampleID(1, 1, 9, ringCPU)),
			want:   Record{Kind: KindComm, CPU: ringCPU, PID: 1, TID: 1, Time: 9, Comm: "0123456789abcde", Exec: true},
			wantOK: true,
		},
		{
			name: "comm with a space",
			raw: rawRecord(unix.PERF_RECORD_COMM, 0,
				rec{}.u32(1).u32(2).comm("tmux: server").sampleID(1, 2, 10, ringCPU)),
			want:   Record{Kind: KindComm, CPU: ringCPU, PID: 1, TID: 2, Time: 10, Comm: "tmux: server"},
			wantOK: true,
		},
		{name: "comm, truncated", raw: rawRecord(unix.PERF_RECORD_COMM, 0, rec{}.u32(1).u32(2).comm("x"))},
		{
			name: "other misc bits do not mean exec",
			raw: rawRecord(unix.PERF_RECORD_COMM, unix.PERF_RECORD_MISC_USER,
				rec{}.u32(1).u32(2).comm("x").sampleID(1, 2, 11, ringCPU)),
			want:   Record{Kind: KindComm, CPU: ringCPU, PID: 1, TID: 2, Time: 11, Comm: "x"},
			wantOK: true,
		},
		{
			name: "mmap is not decoded",
			raw:  rawRecord(unix.PERF_RECORD_MMAP, 0, rec{}.u32(1).u32(2).u64(0).u64(0).u64(0).comm("/x").sampleID(1, 2, 3, 0)),
		},
		{name: "throttle is not decoded", raw: rawRecord(unix.PERF_RECORD_THROTTLE, 0, rec{}.u64(1).u64(2).u64(3).sampleID(1, 2, 3, 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arena []byte
			got, ok := decodeRecord(ringCPU, tt.raw, &arena, false)
			if ok != tt.wantOK {
				t.Fatalf("decodeRecord ok = %v, want %v (%+v)", ok, tt.wantOK, got)
			}
			if !ok {
				return
			}
			if !bytes.Equal(got.Raw, tt.want.Raw) {
				t.Errorf("Raw = %x, want %x", got.Raw, tt.want.Raw)
			}
			got.Raw, tt.want.Raw = nil, nil // an empty Raw may be nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeRecord =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestDecodeRecordCopiesRaw: go-perf reuses the record buffer, so a
// sample's Raw must be a copy, and two samples of a round must not share
// bytes (appending to one cannot reach the next).
func TestDecodeRecordCopiesRaw(t *testing.T) {
	var arena []byte
	buf := sample(1, 1, 1, 0, []byte("first payload!!!"))
	first, ok := decodeRecord(0, rawRecord(unix.PERF_RECORD_SAMPLE, 0, buf), &arena, false)
	if !ok {
		t.Fatal("first sample not decoded")
	}
	copy(buf[28:], "XXXXXXXXXXXXXXXX")
	second, ok := decodeRecord(0, rawRecord(unix.PERF_RECORD_SAMPLE, 0, sample(2, 2, 2, 0, []byte("second"))), &arena, false)
	if !ok {
		t.Fatal("second sample not decoded")
	}
	_ = append(first.Raw, "overwrite"...)
	if string(first.Raw) != "first payload!!!" || string(second.Raw) != "second" {
		t.Errorf("Raw = %q, %q; want the payloads as read", first.Raw, second.Raw)
	}
}

// queuesOf builds ring queues; a record's PID is its ring, TID its index.
func queuesOf(rings ...[]uint64) []queue {
	qs := make([]queue, len(rings))
	for i, times := range rings {
		for j, tm := range times {
			qs[i].recs = append(qs[i].recs, Record{Kind: KindSample, Time: tm, PID: uint32(i), TID: uint32(j)})
		}
	}
	return qs
}

func TestDeliver(t *testing.T) {
	type key struct {
		Time     uint64
		Ring, At uint32
	}
	tests := []struct {
		name        string
		rings       [][]uint64 // each ring in time order, as the kernel writes it
		before      uint64
		want        []key
		wantPending []key
	}{
		{name: "nothing pending", before: 100},
		{
			name:        "merged by time, only those before",
			rings:       [][]uint64{{10, 30}, {20, 40}},
			before:      25,
			want:        []key{{10, 0, 0}, {20, 1, 0}},
			wantPending: []key{{30, 0, 1}, {40, 1, 1}},
		},
		{
			name:   "equal times: the lower ring first, each ring in its order",
			rings:  [][]uint64{{10, 20}, {10, 20}},
			before: 21,
			want:   []key{{10, 0, 0}, {10, 1, 0}, {20, 0, 1}, {20, 1, 1}},
		},
		{
			name:        "a record at exactly before is held back",
			rings:       [][]uint64{{25}, {24}},
			before:      25,
			want:        []key{{24, 1, 0}},
			wantPending: []key{{25, 0, 0}},
		},
		{
			name:        "before 0 delivers nothing (the first round)",
			rings:       [][]uint64{{1}, {0}},
			before:      0,
			wantPending: []key{{1, 0, 0}, {0, 1, 0}},
		},
		{
			name:   "drain delivers everything",
			rings:  [][]uint64{{1, 3}, {2, 1 << 63}, {}, {0}},
			before: ^uint64(0),
			want:   []key{{0, 3, 0}, {1, 0, 0}, {2, 1, 0}, {3, 0, 1}, {1 << 63, 1, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rings{queues: queuesOf(tt.rings...)}
			var got []key
			r.deliver(func(rec *Record) { got = append(got, key{rec.Time, rec.PID, rec.TID}) }, tt.before)
			if !slices.Equal(got, tt.want) {
				t.Errorf("delivered %v, want %v", got, tt.want)
			}
			var pending []key
			for _, q := range r.queues {
				for _, rec := range q.recs[q.head:] {
					pending = append(pending, key{rec.Time, rec.PID, rec.TID})
				}
			}
			if !slices.Equal(pending, tt.wantPending) {
				t.Errorf("pending %v, want %v", pending, tt.wantPending)
			}
		})
	}
}

// TestDeliverRounds: records held back in one round come out, in order,
// with those of the next.
func TestDeliverRounds(t *testing.T) {
	r := &Rings{queues: make([]queue, 2)}
	var got []uint64
	handle := func(rec *Record) { got = append(got, rec.Time) }
	rounds := []struct {
		read   [2][]uint64 // times of the records read this round, per ring
		before uint64
		want   []uint64 // everything delivered so far
	}{
		{read: [2][]uint64{{5, 9}, {2, 7}}, before: 0, want: nil},
		{read: [2][]uint64{{12}, {8, 15}}, before: 8, want: []uint64{2, 5, 7}},
		{read: [2][]uint64{{}, {}}, before: 13, want: []uint64{2, 5, 7, 8, 9, 12}},
		{read: [2][]uint64{{16}, {}}, before: ^uint64(0), want: []uint64{2, 5, 7, 8, 9, 12, 15, 16}},
	}
	for i, round := range rounds {
		for ring, times := range round.read {
			for _, tm := range times {
				r.queues[ring].recs = append(r.queues[ring].recs, Record{Kind: KindSample, Time: tm})
			}
		}
		r.deliver(handle, round.before)
		if !slices.Equal(got, round.want) {
			t.Fatalf("round %d: delivered %v, want %v", i, got, round.want)
		}
	}
	for _, q := range r.queues {
		if q.head != len(q.recs) {
			t.Errorf("pending after the drain: %v", q.recs[q.head:])
		}
	}
}

// BenchmarkDeliver: the merge of 4 rings (2 CPUs) of 10,000 records each.
func BenchmarkDeliver(b *testing.B) {
	r := &Rings{queues: make([]queue, 4)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for q := range r.queues {
			for j := 0; j < 10000; j++ {
				r.queues[q].recs = append(r.queues[q].recs, Record{Kind: KindSample, Time: uint64(j*4 + q)})
			}
		}
		n := 0
		r.deliver(func(*Record) { n++ }, ^uint64(0))
	}
}

// TestDecodeCallchain: with stacks, the chain sits between CPU and RAW;
// UserFrames drops the context markers.
func TestDecodeCallchain(t *testing.T) {
	var d []byte
	d = le.AppendUint32(d, 7)
	d = le.AppendUint32(d, 8)
	d = le.AppendUint64(d, 99)
	d = le.AppendUint64(d, 1) // cpu, res
	chain := []uint64{^uint64(0) - 511, 0x401000, 0x401234}
	d = le.AppendUint64(d, uint64(len(chain)))
	for _, ip := range chain {
		d = le.AppendUint64(d, ip)
	}
	d = le.AppendUint32(d, 3)
	d = append(d, "abc"...)
	var arena []byte
	rec, ok := decodeRecord(1, rawRecord(unix.PERF_RECORD_SAMPLE, 0, d), &arena, true)
	if !ok || string(rec.Raw) != "abc" || rec.PID != 7 || rec.TID != 8 || rec.Time != 99 {
		t.Fatalf("%+v %v", rec, ok)
	}
	if got := rec.UserFrames(nil); len(got) != 2 || got[0] != 0x401000 || got[1] != 0x401234 {
		t.Errorf("frames %x", got)
	}
	d[24] = 200 // a chain longer than the record
	if _, ok := decodeRecord(1, rawRecord(unix.PERF_RECORD_SAMPLE, 0, d), &arena, true); ok {
		t.Errorf("truncated chain accepted")
	}
}
