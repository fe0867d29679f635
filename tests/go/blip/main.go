// blip is a short-lived Go program for `--all`'s tests: it starts a goroutine every 500µs for
// -ms milliseconds (default 100), waits for them, prints "blip N PID" (N = how many it
// started) and exits. A tracer that attached late sees fewer than N of them created: the shortfall times
// 500µs is about how much of the program's start it missed.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

//go:noinline
func tick(wg *sync.WaitGroup) {
	wg.Done()
}

func main() {
	ms := flag.Int("ms", 100, "how long to run, in milliseconds")
	flag.Parse()
	t0 := time.Now()
	n := 0
	var wg sync.WaitGroup
	for time.Since(t0) < time.Duration(*ms)*time.Millisecond {
		wg.Add(1)
		go tick(&wg)
		n++
		time.Sleep(500 * time.Microsecond)
	}
	wg.Wait()
	fmt.Println("blip", n, os.Getpid())
}
