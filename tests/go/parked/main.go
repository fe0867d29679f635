// parked parks goroutines in every way a goroutine dump has to show (channels, select, locks,
// timers, network, a raw system call, a locked thread, a deep stack, inlined calls, closures,
// generics, methods and, with cgo, a C call), then writes Go's own dump of them
// (runtime.Stack(buf, true)) to the file named by its first argument and stays parked for good:
// the ground truth a dump taken later from the outside must agree with.
//
// Usage: parked DUMPFILE. With PARKED_EXTRA=N it also parks N identical goroutines on one
// channel receive (a group of that size). Once the dump is written, it prints "writer GOID"
// (the goroutine that wrote it, which exits right after) on stdout.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Everything the parked goroutines hold or wait on, kept reachable for the life of the process.
var (
	never      = make(chan int)
	sendTo     = make(chan int)
	selectA    = make(chan int)
	selectB    = make(chan string)
	extraCh    = make(chan int)
	mu         sync.Mutex
	rw         sync.RWMutex
	wg         sync.WaitGroup
	cond       = sync.NewCond(&sync.Mutex{})
	keep       []interface{}
	deepFrames = 200
)

// ready receives one name per goroutine, sent just before it blocks.
var ready = make(chan string, 1024)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: parked DUMPFILE")
		os.Exit(2)
	}
	want := startAll()
	for i := 0; i < want; i++ {
		<-ready
	}
	go writer(os.Args[1])
	// Parked for good, the same way in Go's dump and in any later one.
	<-never
}

// startAll starts every parked goroutine and returns how many it started. Each way of parking
// has a function of its own, so a test finds it by name whatever the release calls closures.
func startAll() int {
	ways := []func(){
		parkChanSend, parkChanReceive, parkSelect, parkNilChan, parkSelectNoCases,
		parkSleep, parkTimeAfter, parkTimer, pipeRead, lockedThread, parkDeep,
		inlinedPark, closures, parkGeneric, parkMethod,
	}
	for _, f := range ways {
		go f()
	}
	n := len(ways) + startLocks() + startNet()
	if startCgoBlock(ready) {
		n++
	}
	extra, _ := strconv.Atoi(os.Getenv("PARKED_EXTRA"))
	for i := 0; i < extra; i++ {
		go extraWaiter()
	}
	return n + extra
}

func parkChanSend()    { ready <- "chan send"; sendTo <- 1 }
func parkChanReceive() { ready <- "chan receive"; <-never }

func parkSelect() {
	ready <- "select"
	select {
	case <-selectA:
	case s := <-selectB:
		keep = append(keep, s)
	}
}

func parkNilChan() {
	var c chan int
	ready <- "nil chan"
	<-c
}

func parkSelectNoCases() { ready <- "select no cases"; select {} }
func parkSleep()         { ready <- "sleep"; time.Sleep(1000 * time.Hour) }
func parkTimeAfter()     { ready <- "time.After"; <-time.After(1000 * time.Hour) }

func parkTimer() {
	t := time.NewTimer(1000 * time.Hour)
	ready <- "timer"
	<-t.C
}

func parkDeep() { ready <- "deep"; recurse(deepFrames - 1) }

func parkGeneric() { ready <- "generic"; keep = append(keep, parkOn(selectB)) }

func parkMethod() {
	p := &parker{ch: make(chan int)}
	ready <- "method"
	p.wait()
}

// startLocks parks goroutines on sync.Mutex, sync.RWMutex (a writer, then a reader queued
// behind it), sync.WaitGroup and sync.Cond; it returns how many.
func startLocks() int {
	mu.Lock() // held for good
	go parkMutex()
	rw.RLock() // held for good: the writer below waits for it
	go parkRWMutexWriter()
	// A reader blocks only once the writer is pending, which makes TryRLock fail.
	for rw.TryRLock() {
		rw.RUnlock()
		time.Sleep(time.Millisecond)
	}
	go parkRWMutexReader()
	wg.Add(1)
	go parkWaitGroup()
	go parkCond()
	return 5
}

func parkMutex()         { ready <- "mutex"; mu.Lock() }
func parkRWMutexWriter() { ready <- "rwmutex writer"; rw.Lock() }
func parkRWMutexReader() { ready <- "rwmutex reader"; rw.RLock() }
func parkWaitGroup()     { ready <- "waitgroup"; wg.Wait() }

func parkCond() {
	cond.L.Lock()
	ready <- "cond"
	for {
		cond.Wait()
	}
}

// startNet parks one goroutine in Accept and one in Read on a loopback connection.
func startNet() int {
	idle, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	keep = append(keep, idle, busy)
	go parkAccept(idle)
	go parkConnRead(busy)
	client, err := net.Dial("tcp", busy.Addr().String())
	check(err)
	keep = append(keep, client)
	return 2
}

func parkAccept(l net.Listener) {
	ready <- "accept"
	_, err := l.Accept()
	check(err)
}

func parkConnRead(l net.Listener) {
	c, err := l.Accept()
	check(err)
	ready <- "conn read"
	buf := make([]byte, 1)
	_, err = c.Read(buf)
	check(err)
}

// pipeRead blocks in a raw read(2) on a pipe nobody writes to: state "syscall", not "IO wait"
// (syscall.Pipe's descriptors stay blocking and outside the netpoller).
func pipeRead() {
	var fds [2]int
	check(syscall.Pipe(fds[:]))
	ready <- "syscall"
	buf := make([]byte, 1)
	_, err := syscall.Read(fds[0], buf)
	check(err)
}

// lockedThread blocks while wired to its OS thread: "locked to thread" in the dump.
func lockedThread() {
	runtime.LockOSThread()
	ready <- "locked"
	<-never
}

// recurse goes n frames deeper, then blocks: deep enough for Go to elide frames.
//
//go:noinline
func recurse(n int) int {
	if n == 0 {
		<-never
		return 0
	}
	return recurse(n-1) + 1
}

// recvInner and recvOuter are small enough to be inlined into inlinedPark: the dump shows them
// as frames without a +0x offset.
func recvInner(ch chan int) int { return <-ch }
func recvOuter(ch chan int) int { return recvInner(ch) + 1 }

func inlinedPark() {
	ready <- "inlined"
	keep = append(keep, recvOuter(never))
}

// closures parks in a closure called from a closure.
func closures() {
	ch := make(chan int)
	outer := func() int {
		inner := func() int { return <-ch }
		ready <- "closure"
		return inner() + 1
	}
	keep = append(keep, outer())
}

// parkOn is generic: the dump names it main.parkOn[...].
//
//go:noinline
func parkOn[T any](ch chan T) T {
	return <-ch
}

type parker struct{ ch chan int }

// wait is a method: the dump names it main.(*parker).wait.
//
//go:noinline
func (p *parker) wait() {
	<-p.ch
}

// extraWaiter is the PARKED_EXTRA goroutine: all of them identical.
func extraWaiter() {
	ready <- "extra"
	<-extraCh
}

// writer waits until every other goroutine is parked, writes Go's dump of all goroutines
// (write then rename, so a reader never sees half a file), says who it is, and exits.
func writer(path string) {
	self := goid()
	time.Sleep(100 * time.Millisecond)
	var dump []byte
	for i := 0; i < 200; i++ {
		dump = stackAll()
		if allParked(dump, self) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(os.WriteFile(path+".tmp", dump, 0o644))
	check(os.Rename(path+".tmp", path))
	fmt.Printf("writer %d\n", self)
}

// stackAll is runtime.Stack(buf, true) with a buffer grown until the dump fits.
func stackAll() []byte {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// allParked: no goroutine but self is running or runnable in dump.
func allParked(dump []byte, self int64) bool {
	for _, line := range bytes.Split(dump, []byte("\n")) {
		var id int64
		var state string
		if _, err := fmt.Sscanf(string(line), "goroutine %d [%s", &id, &state); err != nil || id == self {
			continue
		}
		if bytes.HasPrefix([]byte(state), []byte("running")) || bytes.HasPrefix([]byte(state), []byte("runnable")) {
			return false
		}
	}
	return true
}

// goid reads the calling goroutine's id from the first line of its own stack.
func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	var id int64
	_, err := fmt.Sscanf(string(buf), "goroutine %d ", &id)
	check(err)
	return id
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "parked:", err)
		os.Exit(1)
	}
}
