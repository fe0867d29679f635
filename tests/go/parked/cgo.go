//go:build cgo

package main

/*
#include <unistd.h>

// Never returns: the calling goroutine stays in a cgo call (state "syscall") for good.
static void parked_block_in_c(void) {
	for (;;) sleep(3600);
}
*/
import "C"

// cgoBlock parks its goroutine inside a C function.
//
//go:noinline
func cgoBlock() {
	C.parked_block_in_c()
}

// startCgoBlock starts the goroutine blocked in C; it reports whether this build has cgo.
func startCgoBlock(ready chan<- string) bool {
	go func() { ready <- "cgo"; cgoBlock() }()
	return true
}
