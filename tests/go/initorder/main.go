// initorder has packages whose inits take known time (sleeps, allocations) and start
// goroutines, to check the startup timeline against GODEBUG=inittrace=1.
package main

import (
	"fmt"

	"example.com/initorder/beta"
	"example.com/initorder/gamma"
)

func init() {
	go func() {}()
}

func main() {
	fmt.Println("buffers", len(beta.Buf), "gamma", !gamma.Started.IsZero())
}
