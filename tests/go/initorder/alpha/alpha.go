// Package alpha's init sleeps 20 ms and starts a goroutine that outlives it.
package alpha

import "time"

var Ready = make(chan struct{})

func init() {
	time.Sleep(20 * time.Millisecond)
	go func() {
		close(Ready)
	}()
}
