// burn keeps two goroutines burning CPU in distinct functions, burnA and burnB, both through the
// same small frameless leaf. They take turns (one burns while the other waits, so both run under
// the same conditions: no sibling thread slowing only one of them) and burnA does three times
// burnB's work per turn, so their CPU time is 3:1 whatever else the machine runs. Each prints its goid
// ("burnA goid N"), then "ready"; the run lasts the given seconds (default 3).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// unit is burnB's leaf calls per round (a few ms of CPU).
const unit = 40000

var (
	startA, startB = make(chan struct{}), make(chan struct{})
	done           = make(chan uint64, 2)
	hello          sync.WaitGroup
	sink           uint64
)

// leaf has no frame (no calls, no spills): a sample in it must be unwound from the SP-delta
// table, there is no frame pointer of its own to follow.
//
//go:noinline
func leaf(x uint64) uint64 {
	for i := 0; i < 64; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

//go:noinline
func burnA() {
	say("burnA")
	x := uint64(1)
	for range startA {
		for i := 0; i < 3*unit; i++ {
			x = leaf(x)
		}
		done <- x
	}
}

//go:noinline
func burnB() {
	say("burnB")
	x := uint64(2)
	for range startB {
		for i := 0; i < unit; i++ {
			x = leaf(x)
		}
		done <- x
	}
}

// say prints the calling goroutine's goid, from its runtime.Stack header.
func say(name string) {
	buf := make([]byte, 64)
	f := strings.Fields(string(buf[:runtime.Stack(buf, false)]))
	fmt.Printf("%s goid %s\n", name, f[1])
	hello.Done()
}

func main() {
	secs := 3.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	hello.Add(2)
	go burnA()
	go burnB()
	hello.Wait()
	fmt.Println("ready")
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(deadline) {
		startA <- struct{}{}
		sink += <-done
		startB <- struct{}{}
		sink += <-done
	}
	fmt.Println("done", sink != 0)
}
