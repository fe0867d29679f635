// blockspots makes goroutines block, wake, enter a system call and get created at known call
// sites, and prints where each spot is as Go itself sees it, so a trace with --stacks can be
// checked against the program's own runtime.Callers.
//
// Each spot prints, right before the operation on the next line:
//
//	SPOT <name> <goid> <fn>:<line> <fn>:<line> ...
//
// the calling goroutine's frames from the spot's function (whose line is the spot() call; the
// operation is on the line after) outwards. Spots: chanrecv (blocks on a channel receive),
// chansend (wakes the receiver), mutex (blocks on a held sync.Mutex), unlock (wakes it), read
// (a read(2) on an empty pipe), create (a go statement), yield (runtime.Gosched).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return strings.Fields(string(buf))[1]
}

//go:noinline
func spot(name string) {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var out []string
	for {
		f, more := frames.Next()
		out = append(out, fmt.Sprintf("%s:%d", f.Function, f.Line))
		if !more {
			break
		}
	}
	fmt.Printf("SPOT %s %s %s\n", name, goid(), strings.Join(out, " "))
}

//go:noinline
func recvHere(ch chan int) int {
	spot("chanrecv")
	return <-ch
}

//go:noinline
func waitChan(ch chan int, done *sync.WaitGroup) {
	recvHere(ch)
	done.Done()
}

//go:noinline
func sendHere(ch chan int) {
	spot("chansend")
	ch <- 1
}

//go:noinline
func lockHere(mu *sync.Mutex) {
	spot("mutex")
	mu.Lock()
	mu.Unlock()
}

//go:noinline
func waitMutex(mu *sync.Mutex, done *sync.WaitGroup) {
	lockHere(mu)
	done.Done()
}

//go:noinline
func unlockHere(mu *sync.Mutex) {
	spot("unlock")
	mu.Unlock()
}

//go:noinline
func readHere(fd int) {
	buf := make([]byte, 8)
	spot("read")
	syscall.Read(fd, buf)
}

//go:noinline
func waitRead(fd int, done *sync.WaitGroup) {
	readHere(fd)
	done.Done()
}

//go:noinline
func worker(done *sync.WaitGroup) {
	done.Done()
}

//go:noinline
func spawnHere(done *sync.WaitGroup) {
	spot("create")
	go worker(done)
}

//go:noinline
func spawner(done *sync.WaitGroup) {
	spawnHere(done)
}

//go:noinline
func yieldHere() {
	spot("yield")
	runtime.Gosched()
}

func main() {
	var done sync.WaitGroup
	ch := make(chan int)
	done.Add(1)
	go waitChan(ch, &done)

	var mu sync.Mutex
	mu.Lock()
	done.Add(1)
	go waitMutex(&mu, &done)

	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	done.Add(1)
	go waitRead(p[0], &done)

	// Let all three block.
	time.Sleep(200 * time.Millisecond)
	sendHere(ch)
	unlockHere(&mu)
	syscall.Write(p[1], []byte("x"))

	done.Add(1)
	spawner(&done)
	done.Wait()
	yieldHere()
	fmt.Println("blockspots done")
}
