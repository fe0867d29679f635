// Package multipkg is a small module whose packages' tests start goroutines, for tracing
// `go test ./...` with gmp-trace --follow: each test binary is its own process. Each test
// reports how many goroutines it started (to $MULTIPKG_REPORT/<name> when that is set), so the
// tracer's count can be checked against the test's own.
package multipkg

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Spawn starts n goroutines running work and waits for them all.
func Spawn(n int, work func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			work(i)
		}(i)
	}
	wg.Wait()
}

// Report writes n to $MULTIPKG_REPORT/name.
func Report(name string, n int) error {
	dir := os.Getenv("MULTIPKG_REPORT")
	if dir == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(n)), 0o644)
}
