// checksum checks its own results while a tracer comes and goes: every round, workers started
// for that round square numbers received over a channel and send them back, and main compares
// the sum with the closed form. It prints "round N OK" (or "round N FAIL got X want Y" and exits
// 1), so a tracer that corrupts the program (a probe left in, a register clobbered) shows as a
// FAIL or a crash. -rounds N runs N rounds and prints "checksum done N"; -loop runs until killed;
// -until-stdin runs until stdin gives a line or closes, then prints "checksum done N" (a target
// that outlives its tracer and still ends cleanly); -wait waits for a line on stdin before the
// first round, so tracers can attach first.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"
)

func round(r, workers, items int) {
	jobs := make(chan uint64)
	results := make(chan uint64)
	for w := 0; w < workers; w++ {
		go func() {
			for n := range jobs {
				results <- n * n
			}
		}()
	}
	go func() {
		for i := 1; i <= items; i++ {
			jobs <- uint64(i)
		}
		close(jobs)
	}()
	var got uint64
	for i := 0; i < items; i++ {
		got += <-results
	}
	n := uint64(items)
	want := n * (n + 1) * (2*n + 1) / 6
	if got != want {
		fmt.Printf("round %d FAIL got %d want %d\n", r, got, want)
		os.Exit(1)
	}
	fmt.Printf("round %d OK\n", r)
}

func main() {
	loop := flag.Bool("loop", false, "repeat until killed")
	rounds := flag.Int("rounds", 10, "rounds to run without -loop")
	workers := flag.Int("workers", 4, "goroutines started per round")
	items := flag.Int("items", 200, "numbers squared per round")
	pause := flag.Duration("pause", 2*time.Millisecond, "sleep between rounds")
	wait := flag.Bool("wait", false, "wait for a line on stdin before the first round")
	untilStdin := flag.Bool("until-stdin", false, "run until stdin gives a line or closes")
	flag.Parse()
	fmt.Printf("checksum pid %d\n", os.Getpid())
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	stop := make(chan struct{})
	if *untilStdin {
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			close(stop)
		}()
	}
	r := 0
	for ; *loop || *untilStdin || r < *rounds; r++ {
		select {
		case <-stop:
			fmt.Printf("checksum done %d\n", r)
			return
		default:
		}
		round(r, *workers, *items)
		time.Sleep(*pause)
	}
	fmt.Printf("checksum done %d\n", r)
}
