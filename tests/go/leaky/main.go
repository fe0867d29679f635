// leaky has two creation sites of a known shape, for `gmp-trace top`: a steady pool of
// POOL goroutines (main.startPool) parked on one channel for good, and a leak (main.leak) that
// starts one more goroutine blocked forever on its own channel every LEAK_EVERY_MS (default
// 100; 0: no leak at all), from the moment it prints "ready". It prints, on stdout:
//
//	ready POOL
//
// once the pool is parked. Every goroutine it starts stays alive: counts only grow. With SPIN=1
// one more goroutine (main.spin, created in main.main) burns a CPU for the CPU panel. With
// PRINT_EVERY_MS=N it also writes "out N" on stdout and "err N" on stderr every N ms, for the
// test that a launched program's output does not land on top's full-screen view. With
// RUNNABLE=N it starts N more main.spin goroutines after "ready": under GOMAXPROCS=1 most of
// them wait in the global run queue (a P's own queue holds 256, a preempted goroutine goes
// to the global one).
//
// With LEAK_EVERY_MS=0 the count is steady from then on, and two more lines follow:
//
//	spin GOID       (with SPIN=1 only: the spinner's goroutine id)
//	goroutines N
//
// N being runtime.NumGoroutine(): every goroutine but the runtime's own (main, the pool, the
// spinner), which stay as they are until the process is killed. (With the leak on, "ready" is
// the only line: a reader may stop reading after it, and a write to the closed pipe would end
// the program.)
package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var poolCh = make(chan int)

func env(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

//go:noinline
func poolWorker(ready chan<- struct{}) {
	ready <- struct{}{}
	<-poolCh
}

//go:noinline
func startPool(n int) {
	ready := make(chan struct{})
	for i := 0; i < n; i++ {
		go poolWorker(ready)
	}
	for i := 0; i < n; i++ {
		<-ready
	}
}

//go:noinline
func leaked(ch chan int) {
	<-ch
}

//go:noinline
func leak(every time.Duration) {
	for {
		ch := make(chan int)
		go leaked(ch)
		time.Sleep(every)
	}
}

var (
	sink     uint64
	spinGoid = make(chan uint64, 1)
)

//go:noinline
func chatter(every time.Duration) {
	for i := 0; ; i++ {
		fmt.Printf("out %d\n", i)
		fmt.Fprintf(os.Stderr, "err %d\n", i)
		time.Sleep(every)
	}
}

// spin is started with `go spin()` (no arguments), so no wrapper is generated and the
// goroutine's start function is spin itself. The first one says its goid; the RUNNABLE ones
// find the channel full and just spin.
//
//go:noinline
func spin() {
	select {
	case spinGoid <- goid():
	default:
	}
	for i := uint64(0); ; i++ {
		sink += i * i
	}
}

// goid reads the calling goroutine's id from the header of its own traceback.
func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	if i := bytes.IndexByte(buf, ' '); i > 0 {
		buf = buf[:i]
	}
	id, err := strconv.ParseUint(string(buf), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaky: cannot read the goroutine id:", err)
		os.Exit(2)
	}
	return id
}

func main() {
	pool := env("POOL", 8)
	every := time.Duration(env("LEAK_EVERY_MS", 100)) * time.Millisecond
	startPool(pool)
	spinning := os.Getenv("SPIN") != ""
	if spinning {
		go spin()
	}
	fmt.Printf("ready %d\n", pool)
	for i := 0; i < env("RUNNABLE", 0); i++ {
		go spin()
	}
	if ms := env("PRINT_EVERY_MS", 0); ms > 0 {
		go chatter(time.Duration(ms) * time.Millisecond)
	}
	if every > 0 {
		go leak(every)
		select {}
	}
	if spinning {
		fmt.Printf("spin %d\n", <-spinGoid)
	}
	fmt.Printf("goroutines %d\n", runtime.NumGoroutine())
	// A sleep, not select{}: with every other goroutine parked for good, the runtime would
	// call that a deadlock and end the program.
	for {
		time.Sleep(time.Hour)
	}
}
