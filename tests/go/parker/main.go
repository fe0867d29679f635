// parker exercises the ways a goroutine leaves the CPU: it parks on channels, sleeps, waits on a
// mutex and makes blocking syscalls (reads from a pipe). With -loop it repeats forever, starting
// new goroutines every round, so that a tracer can attach to it while it runs.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

func round(r int) {
	var wg sync.WaitGroup
	ch := make(chan int)
	// Parks on a channel receive until main sends.
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ch
	}()
	// Sleeps.
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(2 * time.Millisecond)
	}()
	// Blocks in read(2) on a pipe until main writes.
	rd, wr, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1)
		rd.Read(buf)
	}()
	// Contends on a mutex.
	var mu sync.Mutex
	mu.Lock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		mu.Lock()
		mu.Unlock()
	}()
	time.Sleep(5 * time.Millisecond)
	mu.Unlock()
	ch <- r
	wr.Write([]byte{1})
	wg.Wait()
	rd.Close()
	wr.Close()
}

func main() {
	loop := flag.Bool("loop", false, "repeat forever (until killed)")
	rounds := flag.Int("rounds", 3, "rounds to run without -loop")
	flag.Parse()
	fmt.Printf("parker pid %d\n", os.Getpid())
	os.Stdout.Sync()
	for r := 0; *loop || r < *rounds; r++ {
		round(r)
	}
	fmt.Println("parker done")
}
