package session

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
)

// TestFramesUnreliableBelowUnknown: a frame outside any known mapping (no
// symbol, so no frame pointer known) makes every frame below it
// unreliable; frame 0 at a function's entry does not.
func TestFramesUnreliableBelowUnknown(t *testing.T) {
	z := newSymbolizer("")
	p := &finder.Process{PID: 1}
	for _, c := range []struct {
		atEntry bool
		want    []bool
	}{
		{false, []bool{false, true, true}},
		{true, []bool{false, false, true}},
	} {
		frames := z.frames(p, []uint64{0x1000, 0x2000, 0x3000}, c.atEntry, nil)
		for i, f := range frames {
			if f.Unreliable != c.want[i] || f.Binary != "" || f.Addr != uint64(0x1000*(i+1)) {
				t.Errorf("atEntry %v: frame %d = %+v, want unreliable %v", c.atEntry, i, f, c.want[i])
			}
		}
	}
}

// TestFramesAllocateNothing: symbolizing a frame of a loaded file
// allocates nothing (frames runs on the hit path).
func TestFramesAllocateNothing(t *testing.T) {
	const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	var st unix.Stat_t
	if err := unix.Stat(libc, &st); err != nil {
		t.Skipf("%s: %v", libc, err)
	}
	z := newSymbolizer("")
	p := &finder.Process{PID: os.Getpid(), Images: finder.Images{{Start: 0x100000, End: 0x100000 + uint64(st.Size), File: finder.FileID{Dev: st.Dev, Ino: st.Ino}, Path: libc}}}
	ips := []uint64{0x100000 + 0x30000, 0x100000 + 0x40000}
	dst := z.frames(p, ips, true, nil)
	if dst[0].Binary != libc || dst[0].Symbol == "" {
		t.Fatalf("frame %+v: want a libc function", dst[0])
	}
	if n := testing.AllocsPerRun(100, func() { dst = z.frames(p, ips, true, dst[:0]) }); n != 0 {
		t.Errorf("%v allocations per symbolized stack, want 0", n)
	}
}
