package beta

import (
	"testing"

	"example.com/multipkg"
)

// TestSenders starts exactly 7 goroutines that send on a channel (plus the one collecting,
// started through Spawn as well: 8 in all).
func TestSenders(t *testing.T) {
	const senders = 7
	ch := make(chan int)
	got := make(chan int, 1)
	go func() { got <- Collect(ch, senders) }()
	multipkg.Spawn(senders, func(i int) { ch <- i })
	if s := <-got; s != 21 {
		t.Fatalf("sum %d", s)
	}
	if err := multipkg.Report("beta", senders); err != nil {
		t.Fatal(err)
	}
}
