package kernels

import (
	"fmt"
	"math"
	"sync"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

// Preprocessing and element-wise operations of the CPU backend.
//
// Every parallel loop body here is a pooled task (runTask): its arguments
// live in a recycled struct and the loop function is bound once, so that a
// steady stream of calls allocates nothing of its own.

// task is a parallel loop body with its arguments.
type task[A any] struct {
	a  A
	fn func(lo, hi int)
}

// newTaskPool returns a pool of tasks running body.
func newTaskPool[A any](body func(a *A, lo, hi int)) *sync.Pool {
	return &sync.Pool{New: func() any {
		t := new(task[A])
		t.fn = func(lo, hi int) { body(&t.a, lo, hi) }
		return t
	}}
}

// runTask runs a task from p over [0, n) with arguments a.
func runTask[A any](p *sync.Pool, n, grain int, a A) {
	t := p.Get().(*task[A])
	t.a = a
	par.For(n, grain, t.fn)
	var zero A
	t.a = zero // drop the references to the buffers
	p.Put(t)
}

// elemGrain is the number of elements of a cheap element-wise loop worth
// handing to one goroutine.
const elemGrain = 1 << 15

// ---- Rescale ----

type rescaleArgs struct {
	dst      []float32
	srcF     []float32
	srcI     []int16
	slope    float32
	icept    float32
	lo, invW float32
	win      bool
	clip     bool
	lut      *[1 << 16]float32 // int16 source: the result of every value
}

// lutMin is the least number of int16 values worth a lookup table (65536
// entries, a fraction of a millisecond to fill): beyond it one load per
// value beats the arithmetic of the window.
const lutMin = 1 << 20

var lutPool = sync.Pool{New: func() any { return new([1 << 16]float32) }}

var rescalePool = newTaskPool(rescaleRange)

func rescaleRange(a *rescaleArgs, lo, hi int) {
	d := a.dst[lo:hi]
	// One pass, the window fused; min and max rather than branches, which
	// CT data (air, tissue and bone around the window) would mispredict.
	sl, ic, l, iw := a.slope, a.icept, a.lo, a.invW
	if a.lut != nil {
		s := a.srcI[lo:hi]
		s = s[:len(d)]
		lut := a.lut
		for i, v := range s {
			d[i] = lut[uint16(v)]
		}
		return
	}
	if a.srcI != nil {
		s := a.srcI[lo:hi]
		s = s[:len(d)]
		switch {
		case a.clip:
			for i, v := range s {
				d[i] = min(max((float32(v)*sl+ic-l)*iw, 0), 1)
			}
		case a.win:
			for i, v := range s {
				d[i] = (float32(v)*sl + ic - l) * iw
			}
		default:
			for i, v := range s {
				d[i] = float32(v)*sl + ic
			}
		}
		return
	}
	s := a.srcF[lo:hi]
	s = s[:len(d)]
	switch {
	case a.clip:
		for i, v := range s {
			d[i] = min(max((v*sl+ic-l)*iw, 0), 1)
		}
	case a.win:
		for i, v := range s {
			d[i] = (v*sl + ic - l) * iw
		}
	case sl != 1 || ic != 0:
		for i, v := range s {
			d[i] = v*sl + ic
		}
	case &s[0] != &d[0]:
		copy(d, s)
	}
}

// allInt16 is every int16, indexed by its bits as a uint16.
var allInt16 = sync.OnceValue(func() *[1 << 16]int16 {
	v := new([1 << 16]int16)
	for i := range v {
		v[i] = int16(uint16(i))
	}
	return v
})

// Rescale computes, for each of n values (int16 or float32),
//
//	x := float32(src[i])*slope + intercept
//	if w.Width != 0 { x = (x - (w.Center - w.Width/2)) * (1/w.Width) }
//	if w.Clip { x = min(max(x, 0), 1) }
//	dst[i] = x
//
// in float32 (the window multiplies by the reciprocal of the width, so
// results may differ from a division in the last bit). A NaN stays NaN
// under Clip. A negative or non-finite width is an error. An int16
// source of at least lutMin values is mapped through a table of that
// expression over all 65536 values, which gives the same results.
func (c *cpuBackend) Rescale(dst, src *Buffer, n int, slope, intercept float32, w Window) error {
	if n < 0 {
		return fmt.Errorf("%w: rescale of %d values", ErrShape, n)
	}
	if !finite32(slope) || !finite32(intercept) || !finite32(w.Center) || !finite32(w.Width) || w.Width < 0 {
		return fmt.Errorf("%w: rescale slope %v intercept %v window %v/%v", ErrShape, slope, intercept, w.Center, w.Width)
	}
	d, err := c.f32(dst, n, "rescale destination")
	if err != nil {
		return err
	}
	a := rescaleArgs{dst: d, slope: slope, icept: intercept}
	if src != nil && src.dtype == Int16 {
		if a.srcI, err = c.i16(src, n, "rescale source"); err != nil {
			return err
		}
	} else if a.srcF, err = c.f32(src, n, "rescale source"); err != nil {
		return err
	}
	if w.Width != 0 {
		a.win, a.clip = true, w.Clip
		a.lo, a.invW = w.Center-w.Width/2, 1/w.Width
	}
	if n == 0 {
		return nil
	}
	if a.srcI != nil && n >= lutMin {
		// The table holds exactly what the loop would compute.
		lut := lutPool.Get().(*[1 << 16]float32)
		t := a
		t.srcI, t.dst = allInt16()[:], lut[:]
		rescaleRange(&t, 0, len(lut))
		a.lut = lut
		runTask(rescalePool, n, elemGrain, a)
		lutPool.Put(lut)
		return nil
	}
	runTask(rescalePool, n, elemGrain, a)
	return nil
}

func finite32(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// ---- Resample ----

// ResampleEdge is how far, in voxels, a linear Resample coordinate may
// lie outside [0, size-1] on an axis and still count as inside (it is
// then clamped to the edge), so that a grid whose border voxels land on
// the source's border by arithmetic does not lose them to rounding. Every
// backend follows it, with the coordinates Offset + Scale*p computed in
// float64 (the CPU tabulates them per axis on the host).
const ResampleEdge = 1e-4

// axisTaps is one axis of a separable resampling: for each destination
// index the source offsets (index times the axis stride) and the weight of
// the second one; i0 < 0 marks a point outside (fill).
type axisTaps struct {
	i0, i1 []int32
	w      []float32
}

// resampleTaps computes one axis's taps into t (slices of length dst).
func resampleTaps(t *axisTaps, dst, src, stride int, scale, offset float64, mode Interp) {
	for d := 0; d < dst; d++ {
		i0, i1, w, ok := resampleTap(d, src, scale, offset, mode)
		if !ok {
			t.i0[d], t.i1[d], t.w[d] = -1, -1, 0
			continue
		}
		t.i0[d], t.i1[d], t.w[d] = int32(i0*stride), int32(i1*stride), float32(w)
	}
}

// resampleTap is where destination index d reads along one axis of src
// voxels (both backends build their tables with it), at x = offset +
// scale*d: the source voxels i0 and i1 and the weight w of i1, ok false
// for a point outside (fill). Nearest: the voxel floor(x+0.5), w = 0.
// Linear: x within ResampleEdge of [0, src-1], clamped to it, between
// voxel min(floor(x), src-2) and the next.
func resampleTap(d, src int, scale, offset float64, mode Interp) (i0, i1 int, w float64, ok bool) {
	x := offset + scale*float64(d)
	if mode == Nearest {
		f := math.Floor(x + 0.5)
		if !(f >= 0 && f <= float64(src-1)) {
			return 0, 0, 0, false
		}
		return int(f), int(f), 0, true
	}
	if !(x >= -ResampleEdge && x <= float64(src-1)+ResampleEdge) {
		return 0, 0, 0, false
	}
	x = min(max(x, 0), float64(src-1))
	i := min(int(x), max(src-2, 0))
	return i, min(i+1, src-1), x - float64(i), true
}

type resampleArgs struct {
	dst, src   []float32
	dstSize    [3]int
	taps       *[3]axisTaps
	fill       float32
	nearest    bool
	srcSliceHW int
}

// resampleScratch holds the tap tables of one call, reused.
type resampleScratch struct {
	taps [3]axisTaps
	mem  []int32
	wmem []float32
}

var resampleScratchPool = sync.Pool{New: func() any { return new(resampleScratch) }}

func (s *resampleScratch) size(dst [3]int) {
	n := dst[0] + dst[1] + dst[2]
	if cap(s.mem) < 2*n {
		s.mem = make([]int32, 2*n)
		s.wmem = make([]float32, n)
	}
	off := 0
	for a := 0; a < 3; a++ {
		s.taps[a].i0 = s.mem[off : off+dst[a]]
		s.taps[a].i1 = s.mem[n+off : n+off+dst[a]]
		s.taps[a].w = s.wmem[off : off+dst[a]]
		off += dst[a]
	}
}

var resamplePool = newTaskPool(func(a *resampleArgs, lo, hi int) {
	H, W := a.dstSize[1], a.dstSize[2]
	tz, ty, tx := &a.taps[0], &a.taps[1], &a.taps[2]
	xi0, xi1, xw := tx.i0[:W], tx.i1[:W], tx.w[:W]
	for z := lo; z < hi; z++ {
		for y := 0; y < H; y++ {
			row := a.dst[(z*H+y)*W : (z*H+y+1)*W]
			if tz.i0[z] < 0 || ty.i0[y] < 0 {
				for x := range row {
					row[x] = a.fill
				}
				continue
			}
			if a.nearest {
				s := a.src[int(tz.i0[z])+int(ty.i0[y]):]
				for x := range row {
					if i := xi0[x]; i >= 0 {
						row[x] = s[i]
					} else {
						row[x] = a.fill
					}
				}
				continue
			}
			wz, wy := tz.w[z], ty.w[y]
			z0, z1 := int(tz.i0[z]), int(tz.i1[z])
			y0, y1 := int(ty.i0[y]), int(ty.i1[y])
			if wz == 0 && wy == 0 {
				// On a source row: linear in x only.
				s := a.src[z0+y0:]
				for x := range row {
					i0 := xi0[x]
					if i0 < 0 {
						row[x] = a.fill
						continue
					}
					wx := xw[x]
					row[x] = s[i0]*(1-wx) + s[xi1[x]]*wx
				}
				continue
			}
			c00, c01 := (1-wz)*(1-wy), (1-wz)*wy
			c10, c11 := wz*(1-wy), wz*wy
			s00, s01 := a.src[z0+y0:], a.src[z0+y1:]
			s10, s11 := a.src[z1+y0:], a.src[z1+y1:]
			for x := range row {
				i0 := xi0[x]
				if i0 < 0 {
					row[x] = a.fill
					continue
				}
				i1 := xi1[x]
				wx := xw[x]
				v0 := s00[i0]*c00 + s01[i0]*c01 + s10[i0]*c10 + s11[i0]*c11
				v1 := s00[i1]*c00 + s01[i1]*c01 + s10[i1]*c10 + s11[i1]*c11
				row[x] = v0*(1-wx) + v1*wx
			}
		}
	}
})

// Resample samples src at m(p) for every destination voxel p. The map is
// separable, so each axis's source coordinate x = Offset + Scale*p is
// computed once into a table (in float64).
//
// Linear: a point is inside when, on every axis, -ResampleEdge <= x <=
// size-1+ResampleEdge; x is then clamped to [0, size-1] and the value
// interpolated trilinearly from the in-volume voxels floor(x) and
// floor(x)+1 (weights 1-f and f, in float32; at x = size-1 the second
// voxel has weight 0, an axis of size 1 takes its only voxel). Any other
// point takes fill: unlike a zero-padded grid sample, no value is blended
// with the fill.
//
// Nearest: the voxel floor(x+0.5) on each axis; fill when that index is
// outside [0, size-1] on any axis.
//
// Parallel over destination slices (D). dst and src must be distinct.
func (c *cpuBackend) Resample(dst, src *Buffer, dstSize, srcSize [3]int, m AxisMap, mode Interp, fill float32) error {
	if err := checkResample(m, mode); err != nil {
		return err
	}
	d, s, err := c.volumes("resample", dst, src, 1, 1, 1, srcSize, dstSize)
	if err != nil {
		return err
	}
	if len(s) > math.MaxInt32 {
		return fmt.Errorf("%w: resample from %v voxels", ErrShape, srcSize)
	}
	sc := resampleScratchPool.Get().(*resampleScratch)
	sc.size(dstSize)
	strides := [3]int{srcSize[1] * srcSize[2], srcSize[2], 1}
	for a := 0; a < 3; a++ {
		resampleTaps(&sc.taps[a], dstSize[a], srcSize[a], strides[a], m.Scale[a], m.Offset[a], mode)
	}
	grain := max(1, elemGrain/(dstSize[1]*dstSize[2]))
	runTask(resamplePool, dstSize[0], grain, resampleArgs{
		dst: d, src: s, dstSize: dstSize, taps: &sc.taps, fill: fill, nearest: mode == Nearest,
	})
	resampleScratchPool.Put(sc)
	return nil
}

// ---- Flip ----

type flipArgs struct {
	dst, src []float32
	size     [3]int
	axes     [3]bool
}

var flipPool = newTaskPool(func(a *flipArgs, lo, hi int) {
	D, H, W := a.size[0], a.size[1], a.size[2]
	for p := lo; p < hi; p++ { // p = volume*D + z
		v, z := p/D, p%D
		sz := z
		if a.axes[0] {
			sz = D - 1 - z
		}
		for y := 0; y < H; y++ {
			sy := y
			if a.axes[1] {
				sy = H - 1 - y
			}
			d := a.dst[((v*D+z)*H+y)*W:][:W]
			s := a.src[((v*D+sz)*H+sy)*W:][:W]
			if !a.axes[2] {
				copy(d, s)
				continue
			}
			for x := range d {
				d[x] = s[W-1-x]
			}
		}
	}
})

// Flip writes each of n×ch volumes reversed along the marked axes: dst
// voxel (z, y, x) is src voxel (D-1-z, y, x) when axes[0], and so on.
// dst and src must be distinct.
func (c *cpuBackend) Flip(dst, src *Buffer, n, ch int, size [3]int, axes [3]bool) error {
	d, s, err := c.volumes("flip", dst, src, n, ch, ch, size, size)
	if err != nil {
		return err
	}
	grain := max(1, elemGrain/(size[1]*size[2]))
	runTask(flipPool, n*ch*size[0], grain, flipArgs{dst: d, src: s, size: size, axes: axes})
	return nil
}

// ---- CropPad ----

type cropPadArgs struct {
	dst, src         []float32
	srcSize, dstSize [3]int
	off              [3]int
	fill             float32
}

var cropPadPool = newTaskPool(func(a *cropPadArgs, lo, hi int) {
	D, H, W := a.dstSize[0], a.dstSize[1], a.dstSize[2]
	SD, SH, SW := a.srcSize[0], a.srcSize[1], a.srcSize[2]
	// The destination x range that has a source voxel: 0 <= x+off < SW.
	xlo := min(max(0, -a.off[2]), W)
	xhi := max(min(W, SW-a.off[2]), xlo)
	for p := lo; p < hi; p++ { // p = volume*D + z
		v, z := p/D, p%D
		sz := z + a.off[0]
		for y := 0; y < H; y++ {
			d := a.dst[((v*D+z)*H+y)*W:][:W]
			sy := y + a.off[1]
			if sz < 0 || sz >= SD || sy < 0 || sy >= SH || xlo == xhi {
				for x := range d {
					d[x] = a.fill
				}
				continue
			}
			for x := 0; x < xlo; x++ {
				d[x] = a.fill
			}
			s := a.src[((v*SD+sz)*SH+sy)*SW:][:SW]
			copy(d[xlo:xhi], s[xlo+a.off[2]:xhi+a.off[2]])
			for x := xhi; x < W; x++ {
				d[x] = a.fill
			}
		}
	}
})

// CropPad copies n×ch volumes: dst voxel p is src voxel p+offset, or fill
// when that lies outside src (a negative offset pads before, a positive
// one crops). dst and src must be distinct.
func (c *cpuBackend) CropPad(dst, src *Buffer, n, ch int, srcSize, dstSize [3]int, offset [3]int, fill float32) error {
	for a := 0; a < 3; a++ {
		if offset[a] < -1<<40 || offset[a] > 1<<40 {
			return fmt.Errorf("%w: crop/pad offset %v", ErrShape, offset)
		}
	}
	d, s, err := c.volumes("crop/pad", dst, src, n, ch, ch, srcSize, dstSize)
	if err != nil {
		return err
	}
	grain := max(1, elemGrain/(dstSize[1]*dstSize[2]))
	runTask(cropPadPool, n*ch*dstSize[0], grain, cropPadArgs{
		dst: d, src: s, srcSize: srcSize, dstSize: dstSize, off: offset, fill: fill,
	})
	return nil
}

// ---- Activate ----

type activateArgs struct {
	dst, src []float32
	act      Activation
}

var activatePool = newTaskPool(func(a *activateArgs, lo, hi int) {
	d := a.dst[lo:hi]
	if a.src != nil {
		copy(d, a.src[lo:hi])
	}
	a.act.applyAll(d)
})

// Activate applies act (Activation.Apply) to n values; in place when dst
// is src.
func (c *cpuBackend) Activate(dst, src *Buffer, n int, act Activation) error {
	if err := act.valid(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: activate %d values", ErrShape, n)
	}
	d, s, err := c.srcDst("activate", src, n, dst, n)
	if err != nil {
		return err
	}
	if n == 0 || (dst == src && act.Kind == ActNone) {
		return nil
	}
	a := activateArgs{dst: d, act: act}
	if dst != src {
		a.src = s
	}
	runTask(activatePool, n, elemGrain, a)
	return nil
}

// ---- Binary ----

// maxBinDims is the most dimensions a Binary shape may have.
const maxBinDims = 6

// binPlan is a broadcast collapsed to its fewest dimensions: dims of
// size 1 in the output dropped, neighbours that broadcast alike merged.
// A stride is 0 where the operand is broadcast.
type binPlan struct {
	rank           int
	size           [maxBinDims]int
	aStr, bStr     [maxBinDims]int
	na, nb, nOut   int
	innerA, innerB int // innermost stride (0 or 1)
}

// planBinary validates the shapes and collapses them.
func planBinary(outShape, aShape, bShape []int) (binPlan, error) {
	var p binPlan
	if len(outShape) > maxBinDims || len(aShape) > maxBinDims || len(bShape) > maxBinDims {
		return p, fmt.Errorf("%w: binary shapes %v, %v → %v: more than %d dims", ErrShape, aShape, bShape, outShape, maxBinDims)
	}
	pad := func(s []int) (r [maxBinDims]int, n int, ok bool) {
		n = 1
		for i := range r {
			r[i] = 1
		}
		for i, v := range s {
			if v <= 0 || v > 1<<40/n {
				return r, 0, false
			}
			r[maxBinDims-len(s)+i] = v
			n *= v
		}
		return r, n, true
	}
	o, no, ok1 := pad(outShape)
	a, na, ok2 := pad(aShape)
	b, nb, ok3 := pad(bShape)
	if !ok1 || !ok2 || !ok3 {
		return p, fmt.Errorf("%w: binary shapes %v, %v → %v", ErrShape, aShape, bShape, outShape)
	}
	p.na, p.nb, p.nOut = na, nb, no
	type dim struct {
		n            int
		aFull, bFull bool
	}
	var dims [maxBinDims]dim
	nd := 0
	for i := 0; i < maxBinDims; i++ {
		if (a[i] != o[i] && a[i] != 1) || (b[i] != o[i] && b[i] != 1) || (o[i] != a[i] && o[i] != b[i]) {
			return p, fmt.Errorf("%w: binary shapes %v and %v do not broadcast to %v", ErrShape, aShape, bShape, outShape)
		}
		if o[i] == 1 {
			continue
		}
		af, bf := a[i] != 1, b[i] != 1
		if nd > 0 && dims[nd-1].aFull == af && dims[nd-1].bFull == bf {
			dims[nd-1].n *= o[i]
			continue
		}
		dims[nd] = dim{o[i], af, bf}
		nd++
	}
	if nd == 0 {
		dims[0] = dim{1, true, true}
		nd = 1
	}
	p.rank = nd
	as, bs := 1, 1
	for i := nd - 1; i >= 0; i-- {
		p.size[i] = dims[i].n
		if dims[i].aFull {
			p.aStr[i] = as
			as *= dims[i].n
		}
		if dims[i].bFull {
			p.bStr[i] = bs
			bs *= dims[i].n
		}
	}
	p.innerA, p.innerB = p.aStr[nd-1], p.bStr[nd-1]
	return p, nil
}

type binaryArgs struct {
	op        BinOp
	dst, a, b []float32
	plan      binPlan
}

var binaryPool = newTaskPool(func(a *binaryArgs, lo, hi int) {
	p := &a.plan
	r := p.rank
	inner := p.size[r-1]
	// The multi-index of lo and the operands' offsets there.
	var idx [maxBinDims]int
	rem := lo
	ao, bo := 0, 0
	for i := r - 1; i >= 0; i-- {
		idx[i] = rem % p.size[i]
		rem /= p.size[i]
		ao += idx[i] * p.aStr[i]
		bo += idx[i] * p.bStr[i]
	}
	for pos := lo; pos < hi; {
		k := min(inner-idx[r-1], hi-pos)
		d := a.dst[pos : pos+k]
		switch {
		case p.innerA == 1 && p.innerB == 1:
			binVV(a.op, d, a.a[ao:ao+k], a.b[bo:bo+k])
		case p.innerA == 1:
			binVS(a.op, d, a.a[ao:ao+k], a.b[bo])
		default:
			binSV(a.op, d, a.a[ao], a.b[bo:bo+k])
		}
		pos += k
		// Advance the odometer by k (the innermost dim wraps at most once).
		idx[r-1] += k
		ao += k * p.innerA
		bo += k * p.innerB
		for i := r - 1; i > 0 && idx[i] == p.size[i]; i-- {
			idx[i] = 0
			ao -= p.size[i] * p.aStr[i]
			bo -= p.size[i] * p.bStr[i]
			idx[i-1]++
			ao += p.aStr[i-1]
			bo += p.bStr[i-1]
		}
	}
})

func binVV(op BinOp, d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	switch op {
	case OpAdd:
		for i := range d {
			d[i] = a[i] + b[i]
		}
	case OpSub:
		for i := range d {
			d[i] = a[i] - b[i]
		}
	case OpMul:
		for i := range d {
			d[i] = a[i] * b[i]
		}
	case OpDiv:
		for i := range d {
			d[i] = a[i] / b[i]
		}
	}
}

func binVS(op BinOp, d, a []float32, b float32) {
	a = a[:len(d)]
	switch op {
	case OpAdd:
		for i := range d {
			d[i] = a[i] + b
		}
	case OpSub:
		for i := range d {
			d[i] = a[i] - b
		}
	case OpMul:
		for i := range d {
			d[i] = a[i] * b
		}
	case OpDiv:
		for i := range d {
			d[i] = a[i] / b
		}
	}
}

func binSV(op BinOp, d []float32, a float32, b []float32) {
	b = b[:len(d)]
	switch op {
	case OpAdd:
		for i := range d {
			d[i] = a + b[i]
		}
	case OpSub:
		for i := range d {
			d[i] = a - b[i]
		}
	case OpMul:
		for i := range d {
			d[i] = a * b[i]
		}
	case OpDiv:
		for i := range d {
			d[i] = a / b[i]
		}
	}
}

// Binary computes dst = a op b under NumPy broadcasting, element by
// element in float32 (division by zero gives ±Inf or NaN, as IEEE). The
// naive loop it follows, over every output multi-index p:
//
//	dst[p] = a[p with broadcast dims at 0] op b[p with broadcast dims at 0]
//
// The shapes are collapsed first (output dims of 1 dropped, neighbours
// that broadcast alike merged), so a same-shape operation, a scalar
// operand or a per-channel vector ([C,1,1,1] against [N,C,D,H,W]) runs as
// long contiguous rows. dst may be a when aShape holds as many elements as
// outShape, and likewise b.
func (c *cpuBackend) Binary(op BinOp, dst, a, b *Buffer, outShape, aShape, bShape []int) error {
	if op < OpAdd || op > OpDiv {
		return fmt.Errorf("%w: binary op %d", ErrShape, op)
	}
	p, err := planBinary(outShape, aShape, bShape)
	if err != nil {
		return err
	}
	d, err := c.f32(dst, p.nOut, "binary destination")
	if err != nil {
		return err
	}
	x, err := c.f32(a, p.na, "binary operand a")
	if err != nil {
		return err
	}
	y, err := c.f32(b, p.nb, "binary operand b")
	if err != nil {
		return err
	}
	if (dst == a && p.na != p.nOut) || (dst == b && p.nb != p.nOut) {
		return fmt.Errorf("%w: binary in place into a broadcast operand (%v, %v → %v)", ErrShape, aShape, bShape, outShape)
	}
	runTask(binaryPool, p.nOut, elemGrain, binaryArgs{op: op, dst: d, a: x, b: y, plan: p})
	return nil
}
