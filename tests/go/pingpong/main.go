// pingpong bounces a token between two goroutines over unbuffered channels N times (default
// 10000, or the first argument) and prints the number of round trips.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 10000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v >= 0 {
			n = v
		}
	}
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	close(ping)
	<-pong
	fmt.Printf("round trips %d\n", v)
}
