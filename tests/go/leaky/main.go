// leaky has two creation sites of a known shape, for `gmp-trace top`: a steady pool of
// POOL goroutines (main.startPool) parked on one channel for good, and a leak (main.leak) that
// starts one more goroutine blocked forever on its own channel every LEAK_EVERY (default
// 100ms), from the moment it prints "ready". It prints, on stdout:
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
package main

import (
	"fmt"
	"os"
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

var sink uint64

//go:noinline
func chatter(every time.Duration) {
	for i := 0; ; i++ {
		fmt.Printf("out %d\n", i)
		fmt.Fprintf(os.Stderr, "err %d\n", i)
		time.Sleep(every)
	}
}

//go:noinline
func spin() {
	for i := uint64(0); ; i++ {
		sink += i * i
	}
}

func main() {
	pool := env("POOL", 8)
	every := time.Duration(env("LEAK_EVERY_MS", 100)) * time.Millisecond
	startPool(pool)
	if os.Getenv("SPIN") != "" {
		go spin()
	}
	fmt.Printf("ready %d\n", pool)
	for i := 0; i < env("RUNNABLE", 0); i++ {
		go spin()
	}
	if ms := env("PRINT_EVERY_MS", 0); ms > 0 {
		go chatter(time.Duration(ms) * time.Millisecond)
	}
	go leak(every)
	select {}
}
