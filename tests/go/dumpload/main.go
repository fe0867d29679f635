// dumpload is the target of the goroutine-dump benchmark (cargo xtask bench --only dump): -n N
// goroutines parked in a few different ways, at a few stack depths (so a dump has distinct
// stacks to unwind and group), plus one worker goroutine doing steady CPU work in small units.
// It prints "ready" once all N are parked, then every 20 ms "progress <units> <ns>", the
// worker's count and CLOCK_MONOTONIC, so the bench can see whether the process kept running
// while it was dumped and compare the stamps with its own clock.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// units counts the worker's finished units of work.
var units uint64

// sink keeps the worker's arithmetic from being optimised away.
var sink uint64

// monotonicNs reads CLOCK_MONOTONIC with a raw system call: Go's own monotonic reading
// (runtime.nanotime) is not exported, and a raw syscall builds on every release.
func monotonicNs() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1e9 + ts.Nsec
}

// worker does ~10 µs units of arithmetic forever, never allocating (no GC is triggered).
func worker() {
	x := uint64(88172645463325252)
	for {
		for i := 0; i < 5000; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		atomic.StoreUint64(&sink, x)
		atomic.AddUint64(&units, 1)
	}
}

// What the parked goroutines wait on; nothing ever releases them.
var (
	never   = make(chan int)
	never2  = make(chan int)
	held    sync.Mutex
	cond    = sync.NewCond(&sync.Mutex{})
	started sync.WaitGroup
)

func recvOn() {
	started.Done()
	<-never
}

func selectOn() {
	started.Done()
	select {
	case <-never:
	case <-never2:
	}
}

func lockOn() {
	started.Done()
	held.Lock()
}

func sleepOn() {
	started.Done()
	time.Sleep(1000 * time.Hour)
}

func condOn() {
	cond.L.Lock()
	started.Done()
	cond.Wait()
}

// The same waits a few frames deeper (a request handler's depth rather than a bare loop).
//
//go:noinline
func deep(d int, park func()) {
	if d == 0 {
		park()
		return
	}
	deep(d-1, park)
}

func main() {
	n := flag.Int("n", 10000, "goroutines to park")
	flag.Parse()
	go worker()
	parks := []func(){recvOn, selectOn, lockOn, sleepOn, condOn}
	held.Lock()
	started.Add(*n)
	for i := 0; i < *n; i++ {
		park := parks[i%len(parks)]
		switch (i / len(parks)) % 3 {
		case 0:
			go park()
		case 1:
			go deep(2, park)
		default:
			go deep(5, park)
		}
	}
	started.Wait()
	// Each has signalled just before its wait: give the last ones time to reach it.
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("ready %d\n", *n)
	buf := make([]byte, 0, 64)
	for range time.Tick(20 * time.Millisecond) {
		buf = append(buf[:0], "progress "...)
		buf = strconv.AppendUint(buf, atomic.LoadUint64(&units), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, monotonicNs(), 10)
		buf = append(buf, '\n')
		if _, err := os.Stdout.Write(buf); err != nil {
			os.Exit(0)
		}
	}
}
