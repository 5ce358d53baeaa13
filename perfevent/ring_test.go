package perfevent

import (
	"encoding/binary"
	"testing"
	"unsafe"

	perf "github.com/elastic/go-perf"
	"golang.org/x/sys/unix"
)

// fakeRing lays out a metadata page and size bytes of data in memory, as
// the kernel maps them.
func fakeRing(size int) *ring {
	mem := make([]byte, 4096+size)
	meta := (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))
	return &ring{mem: nil, meta: meta, data: mem[4096:]}
}

// write appends a record of type typ with body to the ring at head, as the
// kernel does (wrapping around), and returns the new head.
func (rg *ring) write(typ uint32, body []byte) {
	rec := make([]byte, 8, 8+len(body))
	binary.LittleEndian.PutUint32(rec, typ)
	binary.LittleEndian.PutUint16(rec[6:], uint16(8+len(body)))
	rec = append(rec, body...)
	head := rg.meta.Data_head
	for i, b := range rec {
		rg.data[(head+uint64(i))%uint64(len(rg.data))] = b
	}
	rg.meta.Data_head = head + uint64(len(rec))
}

func TestRingRead(t *testing.T) {
	rg := fakeRing(64)
	// Start near the end so that the second record wraps.
	rg.meta.Data_head, rg.meta.Data_tail = 40, 40
	rg.write(1, []byte("aaaaaaaa"))         // 16 bytes at 40..56
	rg.write(2, []byte("bbbbbbbbbbbbbbbb")) // 24 bytes at 56..80: the body wraps
	rg.write(3, []byte("cccccccc"))         // 16 bytes at 80..96 (16..32)
	var got []string
	read := func(max int) bool {
		return rg.read(max, func(raw *perf.RawRecord) {
			got = append(got, string(rune('0'+raw.Header.Type))+":"+string(raw.Data))
		})
	}
	if toEnd := read(2); toEnd || len(got) != 2 || got[0] != "1:aaaaaaaa" || got[1] != "2:bbbbbbbbbbbbbbbb" {
		t.Fatalf("first pass (max 2): %q, toEnd %v", got, toEnd)
	}
	if rg.meta.Data_tail != 80 {
		t.Errorf("tail %d after two records, want 80", rg.meta.Data_tail)
	}
	if toEnd := read(10); !toEnd || len(got) != 3 || got[2] != "3:cccccccc" {
		t.Fatalf("second pass: %q, toEnd %v", got, toEnd)
	}
	if rg.meta.Data_tail != rg.meta.Data_head {
		t.Errorf("tail %d, head %d: the space was not given back", rg.meta.Data_tail, rg.meta.Data_head)
	}
	// A header that ends the data: its body is at the start.
	rg.meta.Data_head, rg.meta.Data_tail = 120, 120
	rg.write(4, []byte("dddddddd")) // header at 56..64, body at 0..8
	if toEnd := read(10); !toEnd || len(got) != 4 || got[3] != "4:dddddddd" {
		t.Fatalf("body after the end: %q, toEnd %v", got, toEnd)
	}
	// A size beyond what was written is corruption: the ring is emptied.
	rg.meta.Data_head += 8
	binary.LittleEndian.PutUint16(rg.data[(rg.meta.Data_tail+6)%64:], 200)
	if toEnd := read(10); !toEnd || len(got) != 4 || rg.meta.Data_tail != rg.meta.Data_head {
		t.Errorf("corrupt record: %q, toEnd %v, tail %d head %d", got, toEnd, rg.meta.Data_tail, rg.meta.Data_head)
	}
}
