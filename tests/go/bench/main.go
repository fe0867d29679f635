// bench runs one scheduler-heavy workload and reports its own elapsed time and CPU time (so a
// tracer's attach and detach are not counted): `bench -work pingpong|spawn|mutex|gc|http|httprate -n N`
// prints `work=... n=... elapsed_ns=... cpu_ns=...`. With -trace FILE it runs under Go's own
// execution tracer, for comparison.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/trace"
	"sort"
	"sync"
	"syscall"
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

func spawn(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
}

func mutex(n int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	counter := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				if i%64 == 0 {
					var inner sync.WaitGroup
					inner.Add(1)
					go func() { inner.Done() }()
					inner.Wait()
				}
			}
		}()
	}
	wg.Wait()
}

var sink [][]byte

func gc(n int) {
	for i := 0; i < n; i++ {
		b := make([]byte, 4096)
		b[0] = byte(i)
		sink = append(sink, b)
		if len(sink) > 4096 {
			sink = sink[:0]
		}
	}
}

// serve starts a loopback HTTP server answering "ok" and returns its URL.
func serve() (string, *http.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/", srv
}

func httpLoad(n int) {
	url, srv := serve()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				resp, err := client.Get(url)
				if err != nil {
					panic(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}

// httpRate is net/http under a bounded load: n requests issued open-loop at a fixed rate, each
// on its own goroutine at its scheduled time (not when the previous one finished), so a slower
// server shows as a longer run (lower throughput) and as latency measured from the schedule.
func httpRate(n int) {
	url, srv := serve()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(*rate))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			resp, err := client.Get(url)
			if err != nil {
				panic(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(due)
		}(i, due)
	}
	wg.Wait()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	extra = fmt.Sprintf(" rate=%d p50_us=%d p99_us=%d", *rate, lat[n/2].Microseconds(), lat[n*99/100].Microseconds())
}

var (
	rate  = flag.Int("rate", 5000, "httprate: requests per second")
	extra string
)

func cpu() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	work := flag.String("work", "pingpong", "pingpong|spawn|mutex|gc|http|httprate")
	n := flag.Int("n", 100000, "iterations")
	out := flag.String("trace", "", "run under Go's execution tracer, writing here")
	flag.Parse()
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		trace.Start(f)
		defer trace.Stop()
	}
	works := map[string]func(int){"pingpong": pingpong, "spawn": spawn, "mutex": mutex, "gc": gc, "http": httpLoad, "httprate": httpRate}
	f, ok := works[*work]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown -work", *work)
		os.Exit(2)
	}
	c0, t0 := cpu(), time.Now()
	f(*n)
	el, c := time.Since(t0), cpu()-c0
	fmt.Printf("work=%s n=%d elapsed_ns=%d cpu_ns=%d%s\n", *work, *n, el.Nanoseconds(), c, extra)
}
