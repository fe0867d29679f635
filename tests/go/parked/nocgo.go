//go:build !cgo

package main

// startCgoBlock: a build without cgo has no C function to block in.
func startCgoBlock(ready chan<- string) bool { return false }
