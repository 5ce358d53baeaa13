package session

import (
	"testing"

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
