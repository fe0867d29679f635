// Package gamma's init sleeps 5 ms; it does not depend on alpha or beta.
package gamma

import "time"

var Started time.Time

func init() {
	Started = time.Now()
	time.Sleep(5 * time.Millisecond)
}
