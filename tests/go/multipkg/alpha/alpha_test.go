package alpha

import (
	"testing"
	"time"

	"example.com/multipkg"
)

// TestSleepers starts exactly 5 goroutines that sleep.
func TestSleepers(t *testing.T) {
	const n = 5
	multipkg.Spawn(n, func(i int) { time.Sleep(time.Duration(i) * time.Millisecond) })
	if SumSquares(4) != 14 {
		t.Fatal("SumSquares")
	}
	if err := multipkg.Report("alpha", n); err != nil {
		t.Fatal(err)
	}
}
