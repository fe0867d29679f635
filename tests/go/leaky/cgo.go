//go:build cgo

// With cgo on, leaky is a cgo program for real: importing "C" links runtime/cgo, so its threads
// are started by the C library (pthread_create, g in the C library's TLS block) and the runtime
// keeps an extra M for C callers. Without this file, a cgo build only links externally.
package main

// #include <stdlib.h>
import "C"
