// fanout starts N worker goroutines (default 100, or the first argument), each of which starts
// one child of its own, waits for all of them and prints how many goroutines it started.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

func child(wg *sync.WaitGroup, out *int64, mu *sync.Mutex) {
	defer wg.Done()
	mu.Lock()
	*out++
	mu.Unlock()
}

func worker(id int, wg *sync.WaitGroup, out *int64, mu *sync.Mutex) {
	defer wg.Done()
	wg.Add(1)
	go child(wg, out, mu)
}

func main() {
	n := 100
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 0 {
			fmt.Fprintln(os.Stderr, "usage: fanout [N]")
			os.Exit(2)
		}
		n = v
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go worker(i, &wg, &done, &mu)
	}
	wg.Wait()
	// wg.Done runs before a goroutine's exit: wait until every one has really exited, so a
	// tracer sees all the exits before the process ends.
	for runtime.NumGoroutine() > 1 {
		runtime.Gosched()
	}
	fmt.Printf("started %d goroutines\n", 2*n)
}
