// churn creates goroutines and runs GC cycles on command, for `gmp-trace top --with`: every
// goroutine it starts exits at once, so only probes see them (a memory read finds none). With
// RATE=N, main.steady starts N goroutines a second (N/10 every 100ms) from the start. On stdin
// it takes one command a line and answers on stdout once the work is over:
//
//	go N   -> "done N":      N goroutines started by main.burst, all of them exited
//	gc N   -> "gcdone K":    N calls of runtime.GC(); K = runtime.ReadMemStats' NumGC after
//
// It prints "ready" first, after one GC cycle of its own (so the runtime's GC workers exist
// before anyone counts). Run it with GOGC=off so that every cycle is one it was asked for.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:noinline
func work(wg *sync.WaitGroup) {
	wg.Done()
}

//go:noinline
func burst(n int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go work(&wg)
	}
	wg.Wait()
}

//go:noinline
func steady(rate int) {
	per := rate / 10
	for range time.Tick(100 * time.Millisecond) {
		var wg sync.WaitGroup
		wg.Add(per)
		for i := 0; i < per; i++ {
			go work(&wg)
		}
		wg.Wait()
	}
}

func main() {
	runtime.GC()
	if rate, err := strconv.Atoi(os.Getenv("RATE")); err == nil && rate >= 10 {
		go steady(rate)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		switch f[0] {
		case "go":
			burst(n)
			fmt.Println("done", n)
		case "gc":
			for i := 0; i < n; i++ {
				runtime.GC()
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Println("gcdone", m.NumGC)
		}
	}
}
