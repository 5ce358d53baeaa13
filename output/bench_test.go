package output

import (
	"encoding/binary"
	"io"
	"os"
	"testing"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
	"github.com/uprobectl/uprobectl/tracefs"
)

// BenchmarkDecodeAndFormat is the hit path after the ring: decode a real
// 6.18 payload (an s32, an x64, a string, a char, a u8[4]) by its format
// file and write it as a JSON line or a text line. It must report 0
// allocs/op: at hundreds of thousands of hits a second, garbage is time.
func BenchmarkDecodeAndFormat(b *testing.B) {
	f, err := os.Open("../perfevent/testdata/format_entry_6.18.txt")
	if err != nil {
		b.Fatal(err)
	}
	format, err := tracefs.ParseFormat(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	dec, err := perfevent.NewDecoder(format, perfevent.Display{"h": perfevent.Hex, "c": perfevent.Char})
	if err != nil {
		b.Fatal(err)
	}
	raw := make([]byte, 40, 64)
	le := binary.LittleEndian
	le.PutUint16(raw, uint16(format.ID))
	le.PutUint32(raw[4:], 4242)
	le.PutUint64(raw[8:], 0x401136)
	le.PutUint32(raw[16:], uint32(0xffffff85)) // -123
	le.PutUint64(raw[20:], 0xdeadbeef)
	raw = append(raw, "hello, world\x00"...)
	le.PutUint32(raw[28:], uint32(13<<16|40))
	raw[32] = 'x'
	copy(raw[33:], []byte{1, 2, 3, 4})

	pr := &session.Probe{Target: probe.Target{Path: "/usr/bin/server", Symbol: "handle", Event: "handle"}}
	proc := &finder.Process{PID: 4242, Comm: "server"}
	for _, w := range []struct {
		name string
		out  session.Sink
	}{{"json", NewJSON(io.Discard, nil)}, {"text", NewText(io.Discard, io.Discard, nil)}} {
		b.Run(w.name, func(b *testing.B) {
			var p perfevent.Payload
			var h session.Hit
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := dec.DecodeInto(raw, &p); err != nil {
					b.Fatal(err)
				}
				h = session.Hit{Probe: pr, Process: proc, TID: 4243, CPU: 1, TimeNS: uint64(i), Payload: p}
				w.out.Hit(&h)
			}
			w.out.Flush()
		})
	}
}

// TestCountHitAllocatesNothing: counting a hit of a known group, by stack
// and by a fetch arg's value, allocates nothing (the key is looked up from
// a scratch buffer).
func TestCountHitAllocatesNothing(t *testing.T) {
	c := NewCount(NewJSON(io.Discard, nil), CountOptions{Stacks: true, By: []string{"m"}})
	h := &session.Hit{Probe: &session.Probe{}, Process: &finder.Process{PID: 1}, StackIPs: []uint64{1, 2, 3},
		Payload: perfevent.Payload{Args: []perfevent.Value{{Name: "m", Kind: perfevent.Hex, Uint: 0x1234}}}}
	c.Hit(h)
	if n := testing.AllocsPerRun(100, func() { c.Hit(h) }); n != 0 {
		t.Errorf("%v allocations per counted hit, want 0", n)
	}
	if c.Groups() != 1 {
		t.Errorf("%d groups, want 1", c.Groups())
	}
}
