// cgothreads calls into Go from C threads: one after another, each pinned to the same CPU, each
// C thread makes a few callbacks and exits. Go lends every such thread an extra M (and its g0)
// from a shared list, so consecutive threads get the same M: a tracer that remembered "this
// g0 is that thread" would put the later threads' events on the first one. Each callback
// prints the thread id it runs on, for the test to compare with the events.
package main

/*
#cgo CFLAGS: -D_GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

extern void goCallback(int thread, int call);

struct job { int thread; int calls; };

static void *run(void *arg) {
	struct job *j = arg;
	for (int i = 0; i < j->calls; i++) goCallback(j->thread, i);
	return 0;
}

// Runs `threads` C threads one after another on CPU 0, each making `calls` callbacks.
static int cgothreads_run(int threads, int calls) {
	for (int t = 0; t < threads; t++) {
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		CPU_SET(0, &cpus);
		pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
		pthread_t th;
		struct job j = { t, calls };
		if (pthread_create(&th, &attr, run, &j) != 0) return -1;
		pthread_join(th, 0);
		pthread_attr_destroy(&attr);
	}
	return 0;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

//export goCallback
func goCallback(thread, call C.int) {
	fmt.Printf("callback thread %d call %d tid %d\n", int(thread), int(call), syscall.Gettid())
}

func main() {
	threads, calls := 6, 3
	if len(os.Args) > 2 {
		t, err1 := strconv.Atoi(os.Args[1])
		c, err2 := strconv.Atoi(os.Args[2])
		if err1 != nil || err2 != nil || t < 1 || c < 1 {
			fmt.Fprintln(os.Stderr, "usage: cgothreads [THREADS CALLS]")
			os.Exit(2)
		}
		threads, calls = t, c
	}
	if C.cgothreads_run(C.int(threads), C.int(calls)) != 0 {
		fmt.Fprintln(os.Stderr, "cgothreads: pthread_create failed")
		os.Exit(1)
	}
	fmt.Printf("done: %d threads x %d callbacks\n", threads, calls)
}
