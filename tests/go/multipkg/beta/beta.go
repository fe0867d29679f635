// Package beta passes values over a channel.
package beta

// Collect receives n values from ch and returns their sum.
func Collect(ch <-chan int, n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += <-ch
	}
	return s
}
