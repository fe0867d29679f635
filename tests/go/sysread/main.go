// sysread spends its CPU time in the kernel, in system calls made by one known Go function:
// main.readZero reads /dev/zero a MiB at a time (the kernel clears each MiB into the buffer;
// the Go side only loops), so a CPU profile that charges a system call to the Go code that made
// it puts nearly all samples under main.readZero, with the kernel's part as their leaf.
//
// Usage: sysread [-d 2s]. Prints `ready` once reading, and exits 0 when the duration ends.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

var total int64

// readZero is started with `go readZero()` (no arguments, so no wrapper): the goroutine's
// start function is main.readZero itself.
//
//go:noinline
func readZero() {
	f, err := os.Open("/dev/zero")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<20)
	fmt.Println("ready")
	for {
		n, err := f.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		total += int64(n)
	}
}

func main() {
	d := flag.Duration("d", 2*time.Second, "how long to run")
	flag.Parse()
	go readZero()
	time.Sleep(*d)
}
