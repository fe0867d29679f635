// soakserver is a steady server load for the soak test: an HTTP server and its own load
// generator in one process. Each client worker sends one request per new TCP connection
// (keep-alives off), so every request creates and ends a client goroutine, a server connection
// goroutine and the runtime's helpers: goroutines are created and exit all the time, at a
// steady pace, for as long as the program runs. Each response is checked (status and a body
// that must echo the request's number squared); wrong ones are counted.
//
// It prints "soakserver pid N" first, then every -report interval one line
//
//	stats <seconds> <requests ok> <errors> <goroutines now>
//
// (cumulative counts). With -rate R the workers together aim at R requests a second (0: as
// fast as they go). -client ADDR runs only the load generator against a server elsewhere;
// -serve-only only the server (it prints "listening ADDR").
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

var ok, errs atomic.Int64

//go:noinline
func handle(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil {
		http.Error(w, "bad n", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d", n*n)
}

// request sends request n on a connection of its own and checks the answer.
//
//go:noinline
func request(c *http.Client, addr string, n int64) bool {
	resp, err := c.Get(fmt.Sprintf("http://%s/sq?n=%d", addr, n))
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK && string(body) == strconv.FormatInt(n*n, 10)
}

// dial connects with SO_LINGER 0, so the client's close resets the connection instead of
// leaving it in TIME_WAIT: thousands of connections a second for minutes would otherwise use
// up the ephemeral ports.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return conn, err
}

//go:noinline
func worker(addr string, id int64, every time.Duration) {
	c := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial},
		Timeout:   10 * time.Second,
	}
	next := time.Now()
	for i := int64(0); ; i++ {
		if every > 0 {
			next = next.Add(every)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		if request(c, addr, id*1_000_000_007+i) {
			ok.Add(1)
		} else {
			errs.Add(1)
		}
	}
}

func serve() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/sq", handle)
	go http.Serve(ln, mux)
	return ln.Addr().String()
}

func main() {
	workers := flag.Int("workers", 4, "client workers (concurrent requests)")
	rate := flag.Int("rate", 0, "requests per second in all, 0 for as fast as possible")
	report := flag.Duration("report", time.Second, "how often to print the stats line")
	client := flag.String("client", "", "only generate load against this server address")
	serveOnly := flag.Bool("serve-only", false, "only serve")
	flag.Parse()

	fmt.Printf("soakserver pid %d\n", os.Getpid())
	addr := *client
	if addr == "" {
		addr = serve()
	}
	if *serveOnly {
		fmt.Printf("listening %s\n", addr)
		select {}
	}
	var every time.Duration
	if *rate > 0 {
		every = time.Duration(int64(time.Second) * int64(*workers) / int64(*rate))
	}
	for i := 0; i < *workers; i++ {
		go worker(addr, int64(i), every)
	}
	start := time.Now()
	for range time.Tick(*report) {
		fmt.Printf("stats %.1f %d %d %d\n", time.Since(start).Seconds(), ok.Load(), errs.Load(), runtime.NumGoroutine())
	}
}
