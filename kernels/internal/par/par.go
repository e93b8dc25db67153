// Package par runs loops of the CPU kernels over the machine's cores.
//
// Loops are handed to a set of long-lived worker goroutines (started on
// first use, one fewer than GOMAXPROCS, grown when GOMAXPROCS grows)
// through pooled job records, so a loop costs no heap allocation of its
// own: a kernel whose loop body is allocated once runs allocation-free in
// steady state.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers is the number of goroutines a loop uses: GOMAXPROCS.
func Workers() int { return runtime.GOMAXPROCS(0) }

// job is one loop being run.
type job struct {
	fn     func(lo, hi int)
	n      int
	chunk  int
	chunks int64
	next   atomic.Int64
	wg     sync.WaitGroup
}

func (j *job) run() {
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		lo := int(c) * j.chunk
		j.fn(lo, min(lo+j.chunk, j.n))
	}
}

var (
	jobs    = make(chan *job)
	jobPool = sync.Pool{New: func() any { return new(job) }}
	started atomic.Int32 // worker goroutines running
	startMu sync.Mutex
)

func worker() {
	for j := range jobs {
		j.run()
		j.wg.Done()
	}
}

// ensureWorkers starts workers until n are running.
func ensureWorkers(n int) {
	if int(started.Load()) >= n {
		return
	}
	startMu.Lock()
	defer startMu.Unlock()
	for int(started.Load()) < n {
		go worker()
		started.Add(1)
	}
}

// For calls fn on consecutive sub-ranges [lo, hi) that cover [0, n), from
// up to Workers() goroutines, and returns when all are done. Ranges hold
// at least grain items (except the last), and are handed out dynamically
// so uneven work balances. fn must be safe to run concurrently on
// disjoint ranges. A For inside a For's body works: workers that are busy
// are not waited for, the caller's goroutine runs whatever is left.
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
	ensureWorkers(w - 1)
	j := jobPool.Get().(*job)
	j.fn, j.n, j.chunk, j.chunks = fn, n, chunk, int64(chunks)
	j.next.Store(0)
	for i := 0; i < w-1; i++ {
		j.wg.Add(1)
		select {
		case jobs <- j:
		default:
			// Every worker is busy (a nested loop, or another caller's):
			// this goroutine does the work instead.
			j.wg.Done()
		}
	}
	j.run()
	j.wg.Wait()
	j.fn = nil
	jobPool.Put(j)
}
