// Package worker is the Go test suite docs/ci.md's CI jobs run under gmp-trace (the
// assertions test runs the doc's exact commands on it): a worker pool that squares numbers,
// every goroutine it starts gone before Process returns.
package worker

import "sync"

// Process squares every job on `workers` goroutines and returns the results in job order.
func Process(jobs []int, workers int) []int {
	out := make([]int, len(jobs))
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				out[i] = jobs[i] * jobs[i]
			}
		}()
	}
	for i := range jobs {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return out
}
