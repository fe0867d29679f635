// cgofan is fanout with a real cgo call: the binary links runtime/cgo and libc through the
// external linker, so its layout (C start-up code before runtime.text, a PLT, a GNU build id)
// is what cgo programs look like.
package main

/*
static int cgofan_add(int a, int b) { return a + b; }
*/
import "C"

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
			fmt.Fprintln(os.Stderr, "usage: cgofan [N]")
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
	fmt.Printf("started %d goroutines (cgo says %d)\n", 2*n, int(C.cgofan_add(C.int(n), C.int(n))))
}
