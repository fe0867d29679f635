// stealer makes the Go scheduler steal work: with GOMAXPROCS=2 the main goroutine creates
// bursts of short CPU-bound goroutines, all queued on its own P, then waits; the runtime wakes
// a spinning M on the other P, which takes half of the queue (runqsteal). Between bursts both
// Ps go idle, so every burst starts a new spinning spell. Prints how many goroutines it started.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var sink uint64

// spin burns about `iters` loop iterations of CPU without blocking.
func spin(iters int, wg *sync.WaitGroup) {
	defer wg.Done()
	x := uint64(iters)
	for i := 0; i < iters; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	if x == 42 {
		sink++
	}
}

func main() {
	bursts := 20
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 {
			fmt.Fprintln(os.Stderr, "usage: stealer [BURSTS]")
			os.Exit(2)
		}
		bursts = v
	}
	runtime.GOMAXPROCS(2)
	const perBurst = 32
	var wg sync.WaitGroup
	for b := 0; b < bursts; b++ {
		wg.Add(perBurst)
		for i := 0; i < perBurst; i++ {
			go spin(20000, &wg)
		}
		wg.Wait()
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("started %d goroutines\n", bursts*perBurst)
}
