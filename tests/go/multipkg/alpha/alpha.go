// Package alpha sums squares.
package alpha

// SumSquares returns 0² + 1² + ... + (n-1)².
func SumSquares(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i
	}
	return s
}
