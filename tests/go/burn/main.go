// burn spends CPU in two functions at a known ratio, for CPU profilers to be checked against:
// main.burnA does 3 units of work for every 1 unit main.burnB does, so a correct profile puts
// 75% of the CPU time under burnA and 25% under burnB (both through the shared leaf main.spin).
//
// The ratio must hold on a loaded 2-vCPU machine, where two goroutines spinning side by side
// get whatever CPU time the host scheduler hands each thread. So the two never run at once:
// they pass a token back and forth (A: 3 units, B: 1 unit, ...) on a single P (GOMAXPROCS 1,
// so no idle P spins looking for work between handoffs). CPU time then splits by the work
// done, whatever else the machine runs. A unit is a couple of milliseconds, so the handoffs
// cost well under 1% of the time.
//
// Usage: burn [-d 3s] [-cpuprofile FILE]. Prints `burnA <goid>` and `burnB <goid>` first, then burns until the
// duration ends and exits 0. -cpuprofile writes Go's own CPU profile of the run, the reference
// a profiler's output is compared with.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

// unit is the number of spin iterations in one unit of work (a few milliseconds).
const unit = 2_000_000

var (
	toA   = make(chan struct{})
	toB   = make(chan struct{})
	goids = make(chan uint64, 2)
	sink  uint64
)

// spin is the leaf both burners share: the profile's flat time sits here, the split between
// burnA and burnB shows in the cumulative time.
//
//go:noinline
func spin(n int) {
	x := sink | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	sink = x
}

// burnA and burnB are started with `go f()` (no arguments), so no wrapper is generated and the
// goroutine's start function is the burner itself.
//
//go:noinline
func burnA() {
	goids <- goid()
	for range toA {
		spin(3 * unit)
		toB <- struct{}{}
	}
}

//go:noinline
func burnB() {
	goids <- goid()
	for range toB {
		spin(unit)
		toA <- struct{}{}
	}
}

// goid reads the calling goroutine's id from the header of its own traceback.
func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	if i := bytes.IndexByte(buf, ' '); i > 0 {
		buf = buf[:i]
	}
	id, err := strconv.ParseUint(string(buf), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "burn: cannot read the goroutine id:", err)
		os.Exit(2)
	}
	return id
}

func main() {
	d := flag.Duration("d", 3*time.Second, "how long to burn")
	cpuprofile := flag.String("cpuprofile", "", "write Go's own CPU profile to this file")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "burn:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}

	go burnA()
	a := <-goids
	go burnB()
	b := <-goids
	fmt.Printf("burnA %d\nburnB %d\n", a, b)

	toA <- struct{}{}
	time.Sleep(*d)
}
