// execer replaces its own image mid-run, as a Go program that re-execs itself or hands over
// to another program does (syscall.Exec: the pid stays, the image changes).
//
//	execer [-wait] [-workers N] -exec PATH [ARGS...]
//
// It runs N goroutines to completion (so a tracer has a known count for the first image),
// prints "execer ready" and, with -wait, waits for a line on stdin (time to attach), then
// execs PATH with ARGS. With -child it is the new image instead: it waits -pause, runs -workers
// goroutines, sleeps -sleep, and exits with code -code.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

func main() {
	wait := flag.Bool("wait", false, "wait for a line on stdin before the exec")
	workers := flag.Int("workers", 10, "goroutines to run before the exec (or, -child, after it)")
	exe := flag.String("exec", "", "the program to exec")
	child := flag.Bool("child", false, "be the new image: run goroutines, sleep, exit")
	sleep := flag.Duration("sleep", 0, "-child: how long to run before exiting")
	pause := flag.Duration("pause", 0, "-child: how long to wait before the goroutines")
	code := flag.Int("code", 0, "-child: exit code")
	flag.Parse()

	if *child {
		time.Sleep(*pause)
	}
	run(*workers)
	if *child {
		fmt.Printf("execer child ran %d goroutines\n", *workers)
		time.Sleep(*sleep)
		os.Exit(*code)
	}
	fmt.Println("execer ready")
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	argv := append([]string{*exe}, flag.Args()...)
	err := syscall.Exec(*exe, argv, os.Environ())
	fmt.Fprintln(os.Stderr, "execer: exec failed:", err)
	os.Exit(1)
}

// run starts n goroutines that each do a little work, and waits for all of them.
func run(n int) {
	var wg sync.WaitGroup
	sum := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				sum[i] += j
			}
		}(i)
	}
	wg.Wait()
}
