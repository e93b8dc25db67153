package benchstat

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Second
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", s(7), 0.95, 7 * time.Second},
		{"median of 4 is the 2nd", s(4, 1, 3, 2), 0.5, 2 * time.Second},
		{"median of 5 is the 3rd", s(5, 1, 4, 2, 3), 0.5, 3 * time.Second},
		{"p95 of 8 is the largest", s(8, 1, 7, 2, 6, 3, 5, 4), 0.95, 8 * time.Second},
		{"p95 of 10 is the largest", s(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), 0.95, 10 * time.Second},
		{"p95 of 20 is the 19th", s(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.95, 19 * time.Second},
		{"p100", s(3, 9, 1), 1, 9 * time.Second},
		{"negative values sort too", []time.Duration{-2, 5, -7}, 0.5, -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.samples...)
			if got := Percentile(tt.samples, tt.q); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.samples, tt.q, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.samples[i] {
					t.Fatalf("Percentile reordered its input: %v, was %v", tt.samples, in)
				}
			}
		})
	}
}

// TestPercentileSorted checks the nearest-rank percentile against its
// definition: the smallest sample with at least q of all samples at or
// below it.
func TestPercentileSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 10, 99, 100, 101, 1000} {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(r.IntN(50))
		}
		slices.Sort(s)
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
			var want time.Duration
			for _, v := range s {
				atOrBelow := 0
				for _, u := range s {
					if u <= v {
						atOrBelow++
					}
				}
				if float64(atOrBelow) >= q*float64(n) {
					want = v
					break
				}
			}
			if got := PercentileSorted(s, q); got != want {
				t.Errorf("n=%d q=%v: got %v, want %v", n, q, got, want)
			}
		}
	}
	if got := PercentileSorted(nil, 0.5); got != 0 {
		t.Errorf("empty: got %v, want 0", got)
	}
}
