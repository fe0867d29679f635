// flood generates scheduler events as fast as the machine allows, for the streaming and daemon
// benchmarks of gmp-trace:
//
//	flood -pairs P -duration D   P pairs of goroutines bounce a token over unbuffered channels
//	                             for D; every hand-off blocks one goroutine and wakes the other
//	                             (casgstatus, schedule, execute, ...: ~10 probe hits per round
//	                             trip). Prints `round_trips=N elapsed_ns=T`.
//	flood -hold N -for D         starts N goroutines that all block on one channel, keeps them
//	                             alive for D, then releases them and waits for them to exit
//	                             (memory per live goroutine). Prints `held=N`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

func bounce(pairs int, d time.Duration) {
	var trips atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < pairs; i++ {
		ping, pong := make(chan struct{}), make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range ping {
				pong <- struct{}{}
			}
			close(pong)
		}()
		go func() {
			defer wg.Done()
			n := int64(0)
			for !stop.Load() {
				// A batch between clock checks keeps the loop to channel operations.
				for j := 0; j < 64; j++ {
					ping <- struct{}{}
					<-pong
				}
				n += 64
			}
			close(ping)
			<-pong
			trips.Add(n)
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	fmt.Printf("pairs=%d gomaxprocs=%d round_trips=%d elapsed_ns=%d\n",
		pairs, runtime.GOMAXPROCS(0), trips.Load(), time.Since(t0).Nanoseconds())
}

func hold(n int, d time.Duration) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	fmt.Printf("held=%d\n", n)
	time.Sleep(d)
	close(release)
	wg.Wait()
}

func main() {
	pairs := flag.Int("pairs", runtime.GOMAXPROCS(0), "ping-pong pairs")
	d := flag.Duration("duration", time.Second, "how long to bounce")
	held := flag.Int("hold", 0, "goroutines to hold blocked (instead of bouncing)")
	holdFor := flag.Duration("for", 100*time.Millisecond, "how long to hold them")
	flag.Parse()
	if *held > 0 {
		hold(*held, *holdFor)
		return
	}
	if *pairs < 1 {
		fmt.Fprintln(os.Stderr, "-pairs must be at least 1")
		os.Exit(2)
	}
	bounce(*pairs, *d)
}
