// Package gemm is the float32 matrix-multiply core of the CPU backend:
// C = A·B with A packed once (convolution weights) and B supplied row by
// row for one strip of columns at a time from any source (a matrix, or an
// implicit im2col of a volume), so no full B is ever built.
//
// The micro-kernel computes an mr×nr tile of C. Three exist: Go assembly
// for AVX-512 (8×48) and for AVX2 with FMA (4×24), chosen at run time by
// what the CPU has, and plain Go (any tile), used when neither can run,
// when built with the purego tag, or when asked for (SetKernel, or the
// environment variable RADTRIAGE_GEMM=go|avx2|avx512).
package gemm

import (
	"os"
	"sync"
	"unsafe"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

// Sizes: MaxMR and MaxNR bound every tile; K is cut into blocks of KC rows
// so that the rows of B a kernel call reads stay in L1.
const (
	MaxMR = 8
	MaxNR = 48
	KC    = 256
)

// asmKernel adds to the mr×nr tile c (rows of nr) the product of an
// mr×kc panel of A, packed as kc groups of mr, and kc rows of B, row p at
// rows[p] (nr floats).
type asmKernel func(kc int, a *float32, rows **float32, c *float32)

// Kernel names.
const (
	KernelGo     = "go"
	KernelAVX2   = "avx2"
	KernelAVX512 = "avx512"
)

// tile is one micro-kernel: its shape and, for assembly, the function.
type tile struct {
	name   string
	mr, nr int
	asm    asmKernel // nil: plain Go
	ok     bool      // it can run here
}

var (
	tileGo  = &tile{name: KernelGo, mr: 4, nr: 24, ok: true}
	tiles   = append(asmTiles(), tileGo) // best first
	current = tileGo
)

func init() {
	pick := ""
	switch os.Getenv("RADTRIAGE_GEMM") {
	case "go", "purego":
		pick = KernelGo
	case KernelAVX2:
		pick = KernelAVX2
	case KernelAVX512:
		pick = KernelAVX512
	}
	for _, t := range tiles {
		if t.ok && (pick == "" || t.name == pick) {
			current = t
			break
		}
	}
}

// Kernels lists the micro-kernels that can run here, best first.
func Kernels() []string {
	var out []string
	for _, t := range tiles {
		if t.ok {
			out = append(out, t.name)
		}
	}
	return out
}

// Kernel is the micro-kernel Pack chooses for new matrices.
func Kernel() string { return current.name }

// SetKernel makes Pack choose the named micro-kernel from now on, when it
// can run here (else it changes nothing), and returns the previous
// choice. Matrices packed before keep the kernel they were packed for.
// Tests use it to run every path; it must not race with Pack.
func SetKernel(name string) (prev string) {
	prev = current.name
	for _, t := range tiles {
		if t.ok && t.name == name {
			current = t
		}
	}
	return prev
}

// kernelGo is the plain-Go micro-kernel, for any tile shape.
func kernelGo(mr, nr, kc int, a []float32, rows []*float32, c []float32) {
	a = a[:kc*mr]
	rows = rows[:kc]
	c = c[:mr*nr]
	var accBuf [MaxMR * MaxNR]float32
	acc := accBuf[:mr*nr]
	for p, bp := range rows {
		b := unsafe.Slice(bp, nr)
		for r, x := range a[p*mr : p*mr+mr] {
			row := acc[r*nr : r*nr+nr]
			for j, y := range b {
				row[j] += x * y
			}
		}
	}
	for i := range acc {
		c[i] += acc[i]
	}
}

// run calls the tile's kernel, checking once the bounds the assembly
// relies on.
func (t *tile) run(kc int, a []float32, rows []*float32, c []float32) {
	if kc <= 0 {
		return
	}
	if t.asm == nil {
		kernelGo(t.mr, t.nr, kc, a, rows, c)
		return
	}
	_ = a[kc*t.mr-1]
	_ = rows[kc-1]
	_ = c[t.mr*t.nr-1]
	t.asm(kc, &a[0], &rows[0], &c[0])
}

// Packed is a matrix A (M×K) packed for one micro-kernel: K in blocks of
// KC; within a block, the M rows in panels of mr (the last one padded
// with zero rows), each panel kc groups of mr values.
type Packed struct {
	M, K int
	t    *tile
	mp   int // M rounded up to mr
	data []float32
}

// Pack packs the M×K matrix whose element (i, p) is at(i, p), for the
// current micro-kernel.
func Pack(m, k int, at func(i, p int) float32) *Packed {
	t := current
	mp := (m + t.mr - 1) / t.mr * t.mr
	pk := &Packed{M: m, K: k, t: t, mp: mp, data: make([]float32, mp*k)}
	for k0 := 0; k0 < k; k0 += KC {
		kc := min(KC, k-k0)
		blk := pk.data[k0*mp : k0*mp+kc*mp]
		for i := 0; i < m; i++ {
			pan := blk[(i/t.mr)*kc*t.mr:]
			r := i % t.mr
			for p := 0; p < kc; p++ {
				pan[p*t.mr+r] = at(i, k0+p)
			}
		}
	}
	return pk
}

// Width is the strip width (the kernel's nr) Run will ask a Source for.
func (a *Packed) Width() int { return a.t.nr }

// Zero is a row of zeros a Source may point rows at; it must never be
// written.
var Zero [MaxNR]float32

// Source supplies the rows of B and takes the columns of C, for strips
// of w columns (the Packed's Width). Both methods are called concurrently
// for disjoint column ranges.
type Source interface {
	// Rows sets rows[p], p < kc, to row k0+p of B over columns j0..j0+nr-1
	// (nr <= w): a pointer to w readable values whose first nr are B's
	// (the others are ignored). It may point into the source itself, at
	// Zero, or at buf[p*w:], which it then fills.
	Rows(rows []*float32, buf []float32, k0, kc, j0, nr, w int)
	// Store takes columns j0..j0+nr-1 of C = A·B: acc holds row i at
	// acc[i*w:], i < M (rows beyond are scratch).
	Store(acc []float32, j0, nr, w int)
}

type scratch struct {
	b, acc []float32
	rows   []*float32
}

var scratchPool sync.Pool

// Run computes C = A·B for the n columns of src (B has a.K rows), strip
// of a.Width() columns by strip, in parallel over the cores.
func Run(a *Packed, n int, src Source) {
	t := a.t
	w := t.nr
	strips := (n + w - 1) / w
	par.For(strips, 1, func(lo, hi int) {
		s, _ := scratchPool.Get().(*scratch)
		if s == nil {
			s = &scratch{b: make([]float32, KC*MaxNR), rows: make([]*float32, KC)}
		}
		if len(s.acc) < a.mp*w {
			s.acc = make([]float32, a.mp*w)
		}
		acc := s.acc[:a.mp*w]
		for st := lo; st < hi; st++ {
			j0 := st * w
			nr := min(w, n-j0)
			clear(acc)
			for k0 := 0; k0 < a.K; k0 += KC {
				kc := min(KC, a.K-k0)
				src.Rows(s.rows[:kc], s.b, k0, kc, j0, nr, w)
				blk := a.data[k0*a.mp : k0*a.mp+kc*a.mp]
				for i := 0; i < a.mp; i += t.mr {
					t.run(kc, blk[i*kc:(i+t.mr)*kc], s.rows[:kc], acc[i*w:(i+t.mr)*w])
				}
			}
			src.Store(acc, j0, nr, w)
		}
		clear(s.rows) // drop the references into the source
		scratchPool.Put(s)
	})
}
