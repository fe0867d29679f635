// traced runs a mixed scheduler workload (channel ping-pong, fan-out, mutex contention,
// sleeps, syscalls; optionally a different GOMAXPROCS each round) with Go's execution tracer on, writing the trace to the file given by
// -trace, so gmp-trace's view of the same run can be compared with Go's own.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"time"
)

func pingpong(n int) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	close(ping)
	<-pong
}

func fanout(n int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mu.Lock()
			total += i
			mu.Unlock()
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}(i)
	}
	wg.Wait()
}

func syscalls(n int) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		f.Read(buf)
	}
}

func main() {
	out := flag.String("trace", "", "write Go's execution trace here")
	rounds := flag.Int("rounds", 20, "workload rounds")
	procs := flag.String("procs", "", "GOMAXPROCS values to cycle through, one per round (e.g. 2,4,1,3): Ps made and destroyed mid-run")
	flag.Parse()
	var cycle []int
	for _, f := range strings.Split(*procs, ",") {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			cycle = append(cycle, n)
		}
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer trace.Stop()
	}
	for r := 0; r < *rounds; r++ {
		if len(cycle) > 0 {
			runtime.GOMAXPROCS(cycle[r%len(cycle)])
		}
		pingpong(200)
		fanout(50)
		syscalls(20)
	}
	fmt.Println("traced done")
}
