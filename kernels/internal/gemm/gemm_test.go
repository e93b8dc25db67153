package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// matSource is B as a row-major K×N matrix, C stored row-major M×N.
type matSource struct {
	b       []float32
	k, n, m int
	c       []float32
	zero    bool // b is all zeros
}

// Rows points into b where w columns are readable, copies into buf
// otherwise, and points at Zero for every third row of a zero matrix.
func (s *matSource) Rows(rows []*float32, buf []float32, k0, kc, j0, nr, w int) {
	for p := 0; p < kc; p++ {
		off := (k0+p)*s.n + j0
		if s.zero && p%3 == 0 {
			rows[p] = &Zero[0]
			continue
		}
		if off+w <= len(s.b) {
			rows[p] = &s.b[off]
			continue
		}
		row := buf[p*w : p*w+w]
		copy(row, s.b[off:off+nr])
		clear(row[nr:])
		rows[p] = &row[0]
	}
}

func (s *matSource) Store(acc []float32, j0, nr, w int) {
	for i := 0; i < s.m; i++ {
		copy(s.c[i*s.n+j0:i*s.n+j0+nr], acc[i*w:i*w+nr])
	}
}

// eachKernel runs f once with each micro-kernel that can run here.
func eachKernel(t *testing.T, f func(t *testing.T)) {
	defer SetKernel(SetKernel(KernelGo))
	for _, k := range Kernels() {
		SetKernel(k)
		if Kernel() != k {
			t.Fatalf("SetKernel(%q) left %q", k, Kernel())
		}
		t.Run(k, f)
	}
	if len(Kernels()) == 1 {
		t.Log("no assembly micro-kernel can run here")
	}
}

func TestRun(t *testing.T) {
	eachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		shapes := [][3]int{{1, 1, 1}, {4, 24, 1}, {5, 25, 3}, {3, 7, 300}, {16, 100, 27}, {33, 49, 513}, {64, 24, 256}, {8, 48, 257}, {2, 500, 16}, {6, 30, 40}}
		for si, sh := range shapes {
			zero := si == len(shapes)-1 // B all zeros, some rows pointed at Zero
			m, n, k := sh[0], sh[1], sh[2]
			a := make([]float32, m*k)
			b := make([]float32, k*n)
			for i := range a {
				a[i] = rng.Float32()*2 - 1
			}
			for i := range b {
				if !zero {
					b[i] = rng.Float32()*2 - 1
				}
			}
			src := &matSource{b: b, k: k, n: n, m: m, c: make([]float32, m*n), zero: zero}
			Run(Pack(m, k, func(i, p int) float32 { return a[i*k+p] }), n, src)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var want float64
					for p := 0; p < k; p++ {
						want += float64(a[i*k+p]) * float64(b[p*n+j])
					}
					got := float64(src.c[i*n+j])
					// Each product is below 1: float32 accumulation error
					// stays under k ulps of 1.
					if math.Abs(got-want) > 1e-6*float64(k)+1e-6 {
						t.Fatalf("m=%d n=%d k=%d: C[%d,%d] = %v, want %v", m, n, k, i, j, got, want)
					}
				}
			}
		}
	})
}

// TestKernelsAgree checks every micro-kernel against the Go one on values
// whose products and sums are exact in float32 (small integers), so they
// must agree bit for bit.
func TestKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tl := range tiles {
		if !tl.ok || tl.asm == nil {
			continue
		}
		for _, kc := range []int{1, 2, 3, 4, 5, 8, 13, 256} {
			a := make([]float32, kc*tl.mr)
			b := make([]float32, kc*tl.nr)
			for i := range a {
				a[i] = float32(rng.IntN(9) - 4)
			}
			for i := range b {
				b[i] = float32(rng.IntN(9) - 4)
			}
			rows := make([]*float32, kc)
			for p := range rows {
				rows[p] = &b[p*tl.nr]
			}
			c1 := make([]float32, tl.mr*tl.nr)
			for i := range c1 {
				c1[i] = float32(i)
			}
			c2 := append([]float32(nil), c1...)
			kernelGo(tl.mr, tl.nr, kc, a, rows, c1)
			tl.run(kc, a, rows, c2)
			for i := range c1 {
				if c1[i] != c2[i] {
					t.Fatalf("%s kc=%d: element %d: go %v, asm %v", tl.name, kc, i, c1[i], c2[i])
				}
			}
		}
	}
}

func TestSetKernel(t *testing.T) {
	prev := SetKernel("no such kernel")
	if Kernel() != prev {
		t.Fatalf("unknown kernel changed the choice to %q", Kernel())
	}
}

func BenchmarkKernel(b *testing.B) {
	for _, tl := range tiles {
		b.Run(tl.name, func(b *testing.B) {
			if !tl.ok {
				b.Skip("cannot run here")
			}
			kc := KC
			a := make([]float32, kc*tl.mr)
			bb := make([]float32, kc*tl.nr)
			rows := make([]*float32, kc)
			for p := range rows {
				rows[p] = &bb[p*tl.nr]
			}
			c := make([]float32, tl.mr*tl.nr)
			for i := 0; i < b.N; i++ {
				tl.run(kc, a, rows, c)
			}
			b.ReportMetric(float64(2*tl.mr*tl.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkRun(b *testing.B) {
	defer SetKernel(SetKernel(KernelGo))
	for _, name := range Kernels() {
		b.Run(name, func(b *testing.B) {
			SetKernel(name)
			m, n, k := 32, 13824*2, 432
			a := make([]float32, m*k)
			bb := make([]float32, k*n)
			src := &matSource{b: bb, k: k, n: n, m: m, c: make([]float32, m*n)}
			pk := Pack(m, k, func(i, p int) float32 { return a[i*k+p] })
			for i := 0; i < b.N; i++ {
				Run(pk, n, src)
			}
			b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
