// gotarget: a Go program whose functions the kernel tests probe, counting
// its own calls as ground truth (see ../counter.c for the conventions).
//
// It prints "ready <pid>" and waits for a line on stdin. Then:
//   - 4 goroutines call main.work(i) for i = 0..1999 between them; it
//     prints "work <calls> <sum of i> <sum of the results>";
//   - 51 new goroutines each recurse main.deep from 999 down to 0 with
//     256-byte frames, so every one grows its stack several times
//     (morestack runs and re-enters deep): "deep <calls>";
//   - the generic main.Sum on ints and on float64s: "generic <calls>";
//   - the method (*main.Counter).Add: "method <calls> <total>";
//   - main.classify (a switch compiled into a jump table), main.huge (a
//     frame over 4 KiB), main.spin (no RET), main.Value.Get through its
//     wrapper (*main.Value).Get; the wrapper (*main.Outer).Add jumps to
//     (*main.Counter).Add (a tail call): "other <calls>";
//
// and last "calls <work calls>". It exits 0.
//
// It is a package of its own under testdata/, so the module's go vet and
// go test never compile it; internal/targets builds it with go build.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

var workCalls, deepCalls, genericCalls, methodCalls, otherCalls atomic.Int64

//go:noinline
func work(i int) int {
	workCalls.Add(1)
	return 3*i + 1
}

// deep has a 256-byte frame (buf), which the compiler cannot drop: the
// index depends on n.
//
//go:noinline
func deep(n int) int {
	deepCalls.Add(1)
	var buf [32]int64
	buf[n%32] = int64(n)
	if n == 0 {
		return int(buf[0])
	}
	return deep(n-1) + int(buf[(n+7)%32]&1)
}

type number interface{ ~int | ~float64 }

//go:noinline
func Sum[T number](xs []T) T {
	genericCalls.Add(1)
	var s T
	for _, x := range xs {
		s += x
	}
	return s
}

type Counter struct{ n int }

//go:noinline
func (c *Counter) Add(d int) int {
	methodCalls.Add(1)
	c.n += d
	return c.n
}

type Value struct{ v int }

// Get has a value receiver: the compiler makes a (*Value).Get wrapper
// that jumps to it (a tail call) for calls through an interface.
//
//go:noinline
func (v Value) Get() int {
	otherCalls.Add(1)
	return v.v
}

type getter interface{ Get() int }

// Outer embeds a *Counter: the compiler's wrapper for the promoted method,
// (*main.Outer).Add, jumps to (*Counter).Add (a tail call) for calls
// through an interface.
type Outer struct{ *Counter }

type adder interface{ Add(int) int }

var getters = []getter{&Value{v: 7}}
var adders = []adder{&Outer{&Counter{}}}

//go:noinline
func classify(n int) string {
	otherCalls.Add(1)
	switch n {
	case 0:
		return "zero"
	case 1:
		return "one"
	case 2:
		return "two"
	case 3:
		return "three"
	case 4:
		return "four"
	case 5:
		return "five"
	case 6:
		return "six"
	case 7:
		return "seven"
	case 8:
		return "eight"
	case 9:
		return "nine"
	}
	return "many"
}

// huge has a frame larger than the runtime's StackBig (4 KiB): its
// stack check first guards against SP-frame wrapping around.
//
//go:noinline
func huge(n int) int {
	otherCalls.Add(1)
	var buf [1024]int64
	buf[n%1024] = int64(n)
	return int(buf[(n+1)%1024]) + int(buf[n%1024])
}

// spin never returns: it has no RET.
//
//go:noinline
func spin(stop *atomic.Bool) {
	otherCalls.Add(1)
	for !stop.Load() {
	}
	panic("stop")
}

func main() {
	fmt.Printf("ready %d\n", os.Getpid())
	bufio.NewReader(os.Stdin).ReadString('\n')

	var wg sync.WaitGroup
	var iSum, resSum atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g * 500; i < (g+1)*500; i++ {
				iSum.Add(int64(i))
				resSum.Add(int64(work(i)))
			}
		}()
	}
	wg.Wait()
	for k := 0; k < 51; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deep(999)
		}()
		wg.Wait()
	}
	ints := []int{1, 2, 3}
	floats := []float64{0.5, 1.5}
	for k := 0; k < 50; k++ {
		Sum(ints)
		Sum(floats)
	}
	c := &Counter{}
	total := 0
	for k := 0; k < 300; k++ {
		total = c.Add(k)
	}
	for k := 0; k < 20; k++ {
		getters[0].Get()
		adders[0].Add(1)
		classify(k)
		huge(k)
	}
	var stop atomic.Bool
	stop.Store(true)
	func() {
		defer func() { recover() }()
		spin(&stop)
	}()
	fmt.Printf("work %d %d %d\n", workCalls.Load(), iSum.Load(), resSum.Load())
	fmt.Printf("deep %d\n", deepCalls.Load())
	fmt.Printf("generic %d\n", genericCalls.Load())
	fmt.Printf("method %d %d\n", methodCalls.Load(), total)
	fmt.Printf("other %d\n", otherCalls.Load())
	fmt.Printf("calls %d\n", workCalls.Load())
}
