package worker

import "testing"

func TestProcess(t *testing.T) {
	got := Process([]int{1, 2, 3, 4}, 2)
	for i, want := range []int{1, 4, 9, 16} {
		if got[i] != want {
			t.Fatalf("Process()[%d] = %d, want %d", i, got[i], want)
		}
	}
}

func TestProcessMany(t *testing.T) {
	jobs := make([]int, 1000)
	for i := range jobs {
		jobs[i] = i
	}
	for _, workers := range []int{1, 4, 16} {
		got := Process(jobs, workers)
		if got[999] != 999*999 {
			t.Fatalf("%d workers: last result %d", workers, got[999])
		}
	}
}
