// Package beta imports alpha, so alpha's init runs first; beta's init allocates ~8 MB.
package beta

import (
	"example.com/initorder/alpha"
)

var Buf [][]byte

func init() {
	<-alpha.Ready
	for i := 0; i < 128; i++ {
		Buf = append(Buf, make([]byte, 64<<10))
	}
}
