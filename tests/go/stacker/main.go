// stacker spends its CPU time on the system stack, for a goroutine of its own: main.stacker
// calls runtime.Stack(buf, true) in a loop while 2,000 other goroutines are parked, and Go runs
// the traceback of all goroutines on the thread's system stack (a systemstack call made for
// main.stacker's goroutine, with the world stopped). A CPU profile that follows the stack
// switch, as Go's own does, charges that work to main.stacker; one that does not sees runtime
// frames on g0 with no Go caller.
//
// Usage: stacker [-d 2s] [-cpuprofile FILE]. Prints `ready` once the goroutines are parked;
// exits 0 when the duration ends. -cpuprofile writes Go's own CPU profile of the run.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

const parked = 2000

var dumped int

//go:noinline
func park(ch chan struct{}, depth int) {
	if depth > 0 {
		park(ch, depth-1)
		return
	}
	<-ch
}

// stacker is started with `go stacker()` (no arguments, so no wrapper): the goroutine's start
// function is main.stacker itself.
//
//go:noinline
func stacker() {
	buf := make([]byte, 8<<20)
	for {
		dumped += runtime.Stack(buf, true)
	}
}

func main() {
	d := flag.Duration("d", 2*time.Second, "how long to run")
	cpuprofile := flag.String("cpuprofile", "", "write Go's own CPU profile here")
	flag.Parse()
	ch := make(chan struct{})
	for i := 0; i < parked; i++ {
		go park(ch, i%8)
	}
	for runtime.NumGoroutine() < parked+1 {
		time.Sleep(time.Millisecond)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	go stacker()
	time.Sleep(*d)
}
