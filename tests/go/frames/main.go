// frames prints call stacks of itself as Go's runtime sees them: for each stack, the raw
// return PCs from runtime.Callers and the frames runtime.CallersFrames makes of them (inlined
// calls expanded, file:line), one JSON object a line. A symbolizer that reads .gopclntab must
// turn the same PCs into the same frames. The stacks cover inlined helpers (mid-stack
// inlining), closures, generics, methods, deep recursion and a goroutine.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
)

type frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}

type stack struct {
	Name   string    `json:"name"`
	PCs    []uintptr `json:"pcs"`
	Frames []frame   `json:"frames"`
}

var out = json.NewEncoder(os.Stdout)

//go:noinline
func record(name string) {
	pcs := make([]uintptr, 512)
	n := runtime.Callers(1, pcs)
	s := stack{Name: name, PCs: pcs[:n]}
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		s.Frames = append(s.Frames, frame{f.Function, f.File, f.Line})
		if !more {
			break
		}
	}
	if err := out.Encode(s); err != nil {
		panic(err)
	}
}

// Small enough to be inlined into their callers, which the stacks then show as inlined frames.
func inner(name string) { record(name) }
func middle(name string) { inner(name) }

//go:noinline
func outer() { middle("inlined") }

type counter struct{ n int }

//go:noinline
func (c *counter) bump() { c.n++; record("method") }

//go:noinline
func generic[T any](v T) { _ = v; record(fmt.Sprintf("generic %T", v)) }

//go:noinline
func recurse(depth int) {
	if depth == 0 {
		record("recursion")
		return
	}
	recurse(depth - 1)
}

func main() {
	// The load address of a known function, for position-independent builds.
	fmt.Printf("{\"main_main\": %d}\n", runtime.FuncForPC(mainPC()).Entry())
	outer()
	new(counter).bump()
	generic(42)
	generic("s")
	func() { record("closure") }()
	recurse(200)
	done := make(chan bool)
	go func() {
		middle("goroutine")
		done <- true
	}()
	<-done
}

//go:noinline
func mainPC() uintptr {
	pc, _, _, _ := runtime.Caller(1)
	return pc
}
