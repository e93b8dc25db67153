// Package par runs loops of the CPU kernels over the machine's cores.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers is the number of goroutines a loop uses: GOMAXPROCS.
func Workers() int { return runtime.GOMAXPROCS(0) }

// For calls fn on consecutive sub-ranges [lo, hi) that cover [0, n), from
// up to Workers() goroutines, and returns when all are done. Ranges hold
// at least grain items (except the last), and are handed out dynamically
// so uneven work balances. fn must be safe to run concurrently on
// disjoint ranges.
func For(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	w := Workers()
	if w == 1 || n <= grain {
		fn(0, n)
		return
	}
	chunk := max(grain, n/(w*4))
	chunks := (n + chunk - 1) / chunk
	w = min(w, chunks)
	var next atomic.Int64
	work := func() {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			lo := c * chunk
			fn(lo, min(lo+chunk, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 0; i < w-1; i++ {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}
