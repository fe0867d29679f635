// phases changes shape over time, for live views to be checked against: it runs two phases of
// PHASE (default 1.5s) each and prints `phase N` as each begins.
//
//	phase 1: 40 goroutines started by main.startReceivers wait on a channel receive, and one
//	         goroutine burns CPU in main.burnFirst;
//	phase 2: those 40 exit, 40 goroutines started by main.startSleepers sleep, and the burner
//	         moves to main.burnSecond.
//
// Then it exits 0. GOMAXPROCS is left alone; the burners are the only CPU users.
package main

import (
	"fmt"
	"os"
	"time"
)

const waiters = 40

var sink uint64

// burnFirst and burnSecond each spin in a loop of their own (no shared leaf), so a profile by
// function tells the phases apart; each runs on a goroutine it starts with, so does one by
// start function.
//
//go:noinline
func burnFirst(d time.Duration, done chan struct{}) {
	x := sink | 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 10000; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	sink = x
	close(done)
}

//go:noinline
func burnSecond(d time.Duration, done chan struct{}) {
	x := sink | 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 10000; i++ {
			x ^= x << 17
			x ^= x >> 7
			x ^= x << 13
		}
	}
	sink = x
	close(done)
}

//go:noinline
func receiver(ch chan struct{}) { <-ch }

//go:noinline
func sleeper() { time.Sleep(time.Hour) }

//go:noinline
func startReceivers(ch chan struct{}) {
	for i := 0; i < waiters; i++ {
		go receiver(ch)
	}
}

//go:noinline
func startSleepers() {
	for i := 0; i < waiters; i++ {
		go sleeper()
	}
}

func main() {
	d := 1500 * time.Millisecond
	if v := os.Getenv("PHASE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	ch := make(chan struct{})
	startReceivers(ch)
	fmt.Println("phase 1")
	done := make(chan struct{})
	go burnFirst(d, done)
	<-done
	close(ch)
	startSleepers()
	fmt.Println("phase 2")
	done = make(chan struct{})
	go burnSecond(d, done)
	<-done
}
