package gamma

import (
	"os"
	"testing"

	"example.com/multipkg"
)

// TestAdders starts exactly 3 goroutines that add to a counter.
func TestAdders(t *testing.T) {
	const n = 3
	var c Counter
	multipkg.Spawn(n, func(i int) {
		for k := 0; k < 1000; k++ {
			c.Add(1)
		}
	})
	if c.N() != 3000 {
		t.Fatalf("count %d", c.N())
	}
	if err := multipkg.Report("gamma", n); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("MULTIPKG_FAIL") != "" {
		t.Fatal("failing as MULTIPKG_FAIL asks (to check the exit code)")
	}
}
