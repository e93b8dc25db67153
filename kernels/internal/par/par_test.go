package par

import (
	"runtime"
	"sync/atomic"
	"testing"
)

func TestForCovers(t *testing.T) {
	for _, procs := range []int{1, 2, 5} {
		old := runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 7, 100, 1001} {
			for _, grain := range []int{0, 1, 3, 64, 5000} {
				hits := make([]atomic.Int32, n)
				For(n, grain, func(lo, hi int) {
					if lo >= hi || lo < 0 || hi > n {
						t.Errorf("range [%d,%d) of %d", lo, hi, n)
						return
					}
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				})
				for i := range hits {
					if h := hits[i].Load(); h != 1 {
						t.Fatalf("procs %d n %d grain %d: item %d run %d times", procs, n, grain, i, h)
					}
				}
			}
		}
		runtime.GOMAXPROCS(old)
	}
}

// A loop inside a loop's body finishes even when every worker is busy.
func TestForNested(t *testing.T) {
	old := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(old)
	var total atomic.Int64
	For(16, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			For(100, 1, func(a, b int) { total.Add(int64(b - a)) })
		}
	})
	if total.Load() != 1600 {
		t.Fatalf("nested loops covered %d items, want 1600", total.Load())
	}
}

func TestForAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	var sum atomic.Int64
	body := func(lo, hi int) { sum.Add(int64(hi - lo)) }
	For(1000, 1, body) // start the workers
	// testing.AllocsPerRun would set GOMAXPROCS to 1, where For runs the
	// body inline: count by hand with two workers.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 200
	for i := 0; i < runs; i++ {
		For(1000, 1, body)
	}
	runtime.ReadMemStats(&after)
	// A pooled job can be dropped by a GC during the runs; allow that,
	// not one allocation per call.
	if n := after.Mallocs - before.Mallocs; n > runs/10 {
		t.Fatalf("For made %d allocations in %d calls, want about 0", n, runs)
	}
}
