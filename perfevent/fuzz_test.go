package perfevent

import (
	"os"
	"testing"
	"unicode/utf8"

	perf "github.com/elastic/go-perf"

	"github.com/uprobectl/uprobectl/tracefs"
)

// FuzzDecodeRecord feeds arbitrary ring records to the record decoder: the
// kernel writes them, but a decoder that trusts their sizes would read past
// a record on a kernel (or a go-perf) that lays them out differently.
func FuzzDecodeRecord(f *testing.F) {
	sample := make([]byte, 28+16)
	le.PutUint32(sample[24:], 16)
	f.Add(uint32(recordSample), uint16(0), sample)
	f.Add(uint32(recordLost), uint16(0), make([]byte, 16+sampleIDSize))
	f.Add(uint32(recordLostSamples), uint16(0), make([]byte, 8+sampleIDSize))
	f.Add(uint32(recordFork), uint16(0), make([]byte, 24+sampleIDSize))
	f.Add(uint32(recordExit), uint16(0), make([]byte, 24+sampleIDSize))
	f.Add(uint32(recordComm), uint16(miscCommExec), append([]byte("\x01\x00\x00\x00\x01\x00\x00\x00bash\x00\x00\x00\x00"), make([]byte, sampleIDSize)...))
	f.Add(uint32(recordMmap2), uint16(0), append(make([]byte, 64), append([]byte("/usr/lib/libc.so.6\x00\x00"), make([]byte, sampleIDSize)...)...))
	f.Fuzz(func(t *testing.T, typ uint32, misc uint16, data []byte) {
		var arena []byte
		raw := perf.RawRecord{Header: perf.RecordHeader{Type: perf.RecordType(typ), Misc: misc, Size: uint16(8 + len(data))}, Data: data}
		if rec, ok := decodeRecord(3, &raw, &arena, true); ok && rec.Kind == KindSample && len(rec.Raw)+len(rec.Callchain) > len(data) {
			t.Fatalf("payload of %d bytes and chain of %d from a record of %d", len(rec.Raw), len(rec.Callchain), len(data))
		}
		arena = arena[:0]
		rec, ok := decodeRecord(3, &raw, &arena, false)
		if !ok {
			return
		}
		if rec.CPU != 3 || rec.Kind < KindSample || rec.Kind > KindMmap {
			t.Fatalf("decoded %+v", rec)
		}
		switch rec.Kind {
		case KindSample:
			if len(rec.Raw) > len(data) {
				t.Fatalf("payload of %d bytes from a record of %d", len(rec.Raw), len(data))
			}
		case KindMmap:
			if rec.Mmap == nil || len(rec.Mmap.Filename) > len(data) {
				t.Fatalf("mmap %+v", rec.Mmap)
			}
			for _, c := range []byte(rec.Mmap.Filename) {
				if c == 0 {
					t.Fatalf("file name %q holds a NUL", rec.Mmap.Filename)
				}
			}
		case KindComm:
			if len(rec.Comm) > len(data) {
				t.Fatalf("comm %q", rec.Comm)
			}
		}
		_ = utf8.ValidString(rec.Comm) // any bytes are a valid comm; output escapes them
	})
}

// FuzzDecodePayload decodes arbitrary payloads with a real format that has
// a string and a string array: __data_loc words point anywhere.
func FuzzDecodePayload(f *testing.F) {
	d := newDecoderF(f, "testdata/format_misc_6.18.txt")
	f.Add(newRaw(40, 1, 42).b)
	f.Add(make([]byte, 0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := d.Decode(payload)
		if err != nil {
			return
		}
		for _, a := range p.Args {
			if len(a.Str) > len(payload) {
				t.Fatalf("string of %d bytes from a payload of %d", len(a.Str), len(payload))
			}
		}
	})
}

func newDecoderF(f *testing.F, file string) *Decoder {
	r, err := os.Open(file)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	format, err := tracefs.ParseFormat(r)
	if err != nil {
		f.Fatal(err)
	}
	d, err := NewDecoder(format, nil)
	if err != nil {
		f.Fatal(err)
	}
	return d
}
