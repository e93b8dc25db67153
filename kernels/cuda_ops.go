//go:build cuda

package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"
)

// Operations of the CUDA backend: host-side checks (the CPU backend's
// rules), then kernel launches (cuda_elem.cu, cuda_conv.cu,
// cuda_denoise.cu).

// cudaMaxElems bounds every element count (as the pool's allocations).
const cudaMaxElems = 1 << 40

// cudaMaxAxis bounds one axis: the kernels index axes with 32-bit ints and
// the sampling tables hold indices as float32 (exact to 2^24).
const cudaMaxAxis = 1 << 24

// cudaProd multiplies sizes, each >= 0, refusing overflow.
func cudaProd(op string, xs ...int) (int, error) {
	p := 1
	for _, x := range xs {
		if x < 0 {
			return 0, fmt.Errorf("%w: %s: negative size %d", ErrShape, op, x)
		}
		if x != 0 && p > cudaMaxElems/x {
			return 0, fmt.Errorf("%w: %s: sizes %v too large", ErrShape, op, xs)
		}
		p *= x
	}
	return p, nil
}

// cudaSize checks a volume size (every axis in 1..cudaMaxAxis) and returns
// its voxel count.
func cudaSize(op string, s [3]int) (int, error) {
	for a, x := range s {
		if x <= 0 || x > cudaMaxAxis {
			return 0, fmt.Errorf("%w: %s: size %v (axis %d)", ErrShape, op, s, a)
		}
	}
	return cudaProd(op, s[0], s[1], s[2])
}

// cudaDistinct refuses a destination that is also a source of an
// operation that does not work in place.
func cudaDistinct(op string, dst *Buffer, srcs ...*Buffer) error {
	for _, s := range srcs {
		if dst != nil && dst == s {
			return fmt.Errorf("%w: %s does not work in place", ErrShape, op)
		}
	}
	return nil
}

// ---- copy, fill, rescale, activate ----

func (c *cudaBackend) Copy(dst, src *Buffer, n int) error {
	if src == nil || dst == nil {
		return fmt.Errorf("%w: copy of nil", ErrBackend)
	}
	if err := c.check(src, src.dtype, n, "copy source"); err != nil {
		return err
	}
	if err := c.check(dst, src.dtype, n, "copy destination"); err != nil {
		return err
	}
	if n == 0 || dst == src {
		return nil
	}
	bytes := int64(n * src.dtype.Size())
	return c.do(func() error {
		return cudaErr("copy", cu.MemcpyDtoDAsync(cu.DevicePtr(dst.ptr), cu.DevicePtr(src.ptr), bytes, cu.NoStream))
	})
}

func (c *cudaBackend) Fill(dst *Buffer, n int, v float32) error {
	if err := c.f32(dst, n, "fill destination"); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return c.run("fill_f32", c.linGrid(n), linBlock, dst, n, v)
}

func (c *cudaBackend) Rescale(dst, src *Buffer, n int, slope, intercept float32, w Window) error {
	if n < 0 {
		return fmt.Errorf("%w: rescale of %d values", ErrShape, n)
	}
	if !finite32(slope) || !finite32(intercept) || !finite32(w.Center) || !finite32(w.Width) || w.Width < 0 {
		return fmt.Errorf("%w: rescale slope %v intercept %v window %v/%v", ErrShape, slope, intercept, w.Center, w.Width)
	}
	if err := c.f32(dst, n, "rescale destination"); err != nil {
		return err
	}
	kernel := "rescale_f32"
	if src != nil && src.dtype == Int16 {
		kernel = "rescale_i16"
		if err := c.check(src, Int16, n, "rescale source"); err != nil {
			return err
		}
	} else if err := c.f32(src, n, "rescale source"); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	// The CPU's float32 constants: lo = Center - Width/2, invW = 1/Width.
	var lo, invW float32
	if w.Width != 0 {
		lo, invW = w.Center-w.Width/2, 1/w.Width
	}
	return c.run(kernel, c.linGrid(n), linBlock, dst, src, n, slope, intercept, lo, invW, w.Width != 0, w.Clip)
}

func (c *cudaBackend) Activate(dst, src *Buffer, n int, act Activation) error {
	if err := act.valid(); err != nil {
		return err
	}
	if err := c.f32(src, n, "activate source"); err != nil {
		return err
	}
	if err := c.f32(dst, n, "activate destination"); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return c.run("activate", c.linGrid(n), linBlock, dst, src, n, int(act.Kind), act.Alpha)
}

// ---- binary ----

func (c *cudaBackend) Binary(op BinOp, dst, a, b *Buffer, outShape, aShape, bShape []int) error {
	if op < OpAdd || op > OpDiv {
		return fmt.Errorf("%w: binary op %d", ErrShape, op)
	}
	const dims = 6
	if len(outShape) > dims || len(aShape) > dims || len(bShape) > dims {
		return fmt.Errorf("%w: binary: more than %d dims (%v, %v, %v)", ErrShape, dims, outShape, aShape, bShape)
	}
	if len(aShape) > len(outShape) || len(bShape) > len(outShape) {
		return fmt.Errorf("%w: binary: operand shapes %v, %v longer than output %v", ErrShape, aShape, bShape, outShape)
	}
	// Right-align into 6 dims.
	var od, ad, bd [dims]int
	for i := range od {
		od[i], ad[i], bd[i] = 1, 1, 1
	}
	copy(od[dims-len(outShape):], outShape)
	copy(ad[dims-len(aShape):], aShape)
	copy(bd[dims-len(bShape):], bShape)
	for i := 0; i < dims; i++ {
		if od[i] <= 0 || ad[i] <= 0 || bd[i] <= 0 {
			return fmt.Errorf("%w: binary: dims must be positive in %v, %v, %v", ErrShape, outShape, aShape, bShape)
		}
		want := ad[i]
		if want == 1 {
			want = bd[i]
		} else if bd[i] != 1 && bd[i] != ad[i] {
			return fmt.Errorf("%w: binary: shapes %v and %v do not broadcast", ErrShape, aShape, bShape)
		}
		if od[i] != want {
			return fmt.Errorf("%w: binary: output shape %v is not the broadcast of %v and %v", ErrShape, outShape, aShape, bShape)
		}
	}
	n, err := cudaProd("binary", od[:]...)
	if err != nil {
		return err
	}
	na, _ := cudaProd("binary", ad[:]...)
	nb, _ := cudaProd("binary", bd[:]...)
	if err := c.f32(a, na, "binary operand a"); err != nil {
		return err
	}
	if err := c.f32(b, nb, "binary operand b"); err != nil {
		return err
	}
	if err := c.f32(dst, n, "binary destination"); err != nil {
		return err
	}
	if (dst == a && ad != od) || (dst == b && bd != od) {
		return fmt.Errorf("%w: binary in place needs the operand of the output's shape", ErrShape)
	}
	if n == 0 {
		return nil
	}
	if ad == od && bd == od {
		return c.run("binary_same", c.linGrid(n), linBlock, dst, a, b, n, int(op))
	}
	var as, bs [dims]int
	sa, sb := 1, 1
	for i := dims - 1; i >= 0; i-- {
		if ad[i] != 1 {
			as[i] = sa
		}
		if bd[i] != 1 {
			bs[i] = sb
		}
		sa *= ad[i]
		sb *= bd[i]
	}
	args := []any{dst, a, b, n, int(op)}
	for _, v := range od {
		args = append(args, v)
	}
	for _, v := range as {
		args = append(args, v)
	}
	for _, v := range bs {
		args = append(args, v)
	}
	return c.run("binary_bcast", c.linGrid(n), linBlock, args...)
}

// ---- layout ----

func (c *cudaBackend) Flip(dst, src *Buffer, n, ch int, size [3]int, axes [3]bool) error {
	vox, err := cudaSize("flip", size)
	if err != nil {
		return err
	}
	if n <= 0 || ch <= 0 {
		return fmt.Errorf("%w: flip of %d×%d volumes of %v", ErrShape, n, ch, size)
	}
	total, err := cudaProd("flip", n, ch, vox)
	if err != nil {
		return err
	}
	if err := c.f32(src, total, "flip source"); err != nil {
		return err
	}
	if err := c.f32(dst, total, "flip destination"); err != nil {
		return err
	}
	if err := cudaDistinct("flip", dst, src); err != nil {
		return err
	}
	if total == 0 {
		return nil
	}
	rows := n * ch * size[0] * size[1]
	return c.run("flip", rowGrid(rows), rowBlock, dst, src, n*ch, size[0], size[1], size[2], axes[0], axes[1], axes[2])
}

func (c *cudaBackend) CropPad(dst, src *Buffer, n, ch int, srcSize, dstSize [3]int, offset [3]int, fill float32) error {
	sv, err := cudaSize("croppad", srcSize)
	if err != nil {
		return err
	}
	if n <= 0 || ch <= 0 {
		return fmt.Errorf("%w: crop/pad of %d×%d volumes", ErrShape, n, ch)
	}
	dv, err := cudaSize("croppad", dstSize)
	if err != nil {
		return err
	}
	ns, err := cudaProd("croppad", n, ch, sv)
	if err != nil {
		return err
	}
	nd, err := cudaProd("croppad", n, ch, dv)
	if err != nil {
		return err
	}
	for a, o := range offset {
		if o < -cudaMaxElems || o > cudaMaxElems {
			return fmt.Errorf("%w: croppad offset %d on axis %d", ErrShape, o, a)
		}
	}
	if err := c.f32(src, ns, "croppad source"); err != nil {
		return err
	}
	if err := c.f32(dst, nd, "croppad destination"); err != nil {
		return err
	}
	if err := cudaDistinct("croppad", dst, src); err != nil {
		return err
	}
	if nd == 0 {
		return nil
	}
	rows := n * ch * dstSize[0] * dstSize[1]
	return c.run("croppad", rowGrid(rows), rowBlock, dst, src, n*ch,
		srcSize[0], srcSize[1], srcSize[2], dstSize[0], dstSize[1], dstSize[2],
		offset[0], offset[1], offset[2], fill)
}

func (c *cudaBackend) Concat(dst *Buffer, srcs []*Buffer, outer int, inner []int) error {
	if len(srcs) == 0 || len(srcs) != len(inner) || outer <= 0 {
		return fmt.Errorf("%w: concat of %d sources with %d sizes, outer %d", ErrShape, len(srcs), len(inner), outer)
	}
	total := 0
	for i, in := range inner {
		n, err := cudaProd("concat", outer, in)
		if err != nil {
			return err
		}
		if err := c.f32(srcs[i], n, fmt.Sprintf("concat source %d", i)); err != nil {
			return err
		}
		if err := cudaDistinct("concat", dst, srcs[i]); err != nil {
			return err
		}
		total += in
		if total > cudaMaxElems {
			return fmt.Errorf("%w: concat sizes %v too large", ErrShape, inner)
		}
	}
	if total == 0 {
		return fmt.Errorf("%w: concat of empty sources", ErrShape)
	}
	nd, err := cudaProd("concat", outer, total)
	if err != nil {
		return err
	}
	if err := c.f32(dst, nd, "concat destination"); err != nil {
		return err
	}
	if nd == 0 {
		return nil
	}
	return c.do(func() error {
		off := 0
		gy := min(outer, 65535)
		for i, in := range inner {
			if in > 0 {
				gx := min((in+cudaThreads-1)/cudaThreads, max(1, c.sms*32/gy))
				if err := c.launch("concat_part", dim3{gx, gy, 1}, linBlock, dst, srcs[i], outer, in, total, off); err != nil {
					return err
				}
			}
			off += in
		}
		return nil
	})
}

// ---- sampling: Resample and Resize through per-axis tables ----

// sampleTable is sample3's table: per axis (D, H, W) of output length L,
// L first indices, L second indices, L weights (float32). A first index of
// -1 marks outside.
type sampleTable []float32

func (t *sampleTable) axis(l int, f func(x int) (i0, i1 int, w float64, ok bool)) {
	base := len(*t)
	*t = append(*t, make([]float32, 3*l)...)
	s := (*t)[base:]
	for x := 0; x < l; x++ {
		i0, i1, w, ok := f(x)
		if !ok {
			s[x], s[l+x], s[2*l+x] = -1, -1, 0
			continue
		}
		s[x], s[l+x], s[2*l+x] = float32(i0), float32(i1), float32(w)
	}
}

// sample runs sample3 over nc volumes with the table.
// Modes of sample3.
const (
	sampleNearest  = 0
	sampleResample = 1 // Resample's trilinear arithmetic
	sampleResize   = 2 // Resize's separable blends
)

func (c *cudaBackend) sample(dst, src *Buffer, tab sampleTable, nc int, in, out [3]int, mode int, fill float32) error {
	tb, err := c.upload32(tab)
	if err != nil {
		return err
	}
	defer c.Free(tb)
	rows := nc * out[0] * out[1]
	return c.run("sample3", rowGrid(rows), rowBlock, dst, src, tb, nc,
		in[0], in[1], in[2], out[0], out[1], out[2], mode, fill)
}

func (c *cudaBackend) Resample(dst, src *Buffer, dstSize, srcSize [3]int, m AxisMap, mode Interp, fill float32) error {
	if mode != Linear && mode != Nearest {
		return fmt.Errorf("%w: resample mode %d", ErrShape, mode)
	}
	nd, err := cudaSize("resample", dstSize)
	if err != nil {
		return err
	}
	ns, err := cudaSize("resample", srcSize)
	if err != nil {
		return err
	}
	if ns > math.MaxInt32 {
		return fmt.Errorf("%w: resample from %v voxels", ErrShape, srcSize)
	}
	for a := 0; a < 3; a++ {
		if math.IsNaN(m.Scale[a]) || math.IsInf(m.Scale[a], 0) || math.IsNaN(m.Offset[a]) || math.IsInf(m.Offset[a], 0) {
			return fmt.Errorf("%w: resample map scale %v offset %v", ErrShape, m.Scale, m.Offset)
		}
	}
	if err := c.f32(src, ns, "resample source"); err != nil {
		return err
	}
	if err := c.f32(dst, nd, "resample destination"); err != nil {
		return err
	}
	if err := cudaDistinct("resample", dst, src); err != nil {
		return err
	}
	var tab sampleTable
	for a := 0; a < 3; a++ {
		n, sc, off := srcSize[a], m.Scale[a], m.Offset[a]
		tab.axis(dstSize[a], func(x int) (int, int, float64, bool) {
			s := off + sc*float64(x)
			if mode == Nearest {
				f := math.Floor(s + 0.5)
				if !(f >= 0 && f <= float64(n-1)) {
					return 0, 0, 0, false
				}
				return int(f), int(f), 0, true
			}
			// The CPU's taps (ResampleEdge tolerance, clamped).
			if !(s >= -ResampleEdge && s <= float64(n-1)+ResampleEdge) {
				return 0, 0, 0, false
			}
			s = min(max(s, 0), float64(n-1))
			i0 := min(int(s), max(n-2, 0))
			return i0, min(i0+1, n-1), s - float64(i0), true
		})
	}
	mode3 := sampleNearest
	if mode == Linear {
		mode3 = sampleResample
	}
	return c.sample(dst, src, tab, 1, srcSize, dstSize, mode3, fill)
}

// resizeSource is the input coordinate of output index x along one axis
// (ONNX coordinate_transformation_mode), with the CPU's arithmetic: x/scale
// when the spec sets a scale, else x*in/out.
func resizeSource(x, in, out int, scale float64, mode ResizeCoord) float64 {
	inv := func(v float64) float64 { return v * float64(in) / float64(out) }
	if scale != 0 {
		inv = func(v float64) float64 { return v / scale }
	}
	xf := float64(x)
	switch mode {
	case CoordPyTorchHalfPixel:
		if out == 1 {
			return 0
		}
		return inv(xf+0.5) - 0.5
	case CoordAlignCorners:
		if out == 1 {
			return 0
		}
		return xf * float64(in-1) / float64(out-1)
	case CoordAsymmetric:
		return inv(xf)
	}
	return inv(xf+0.5) - 0.5
}

func (c *cudaBackend) Resize(dst, src *Buffer, r ResizeSpec) error {
	if r.Mode != Linear && r.Mode != Nearest {
		return fmt.Errorf("%w: resize mode %d", ErrShape, r.Mode)
	}
	if r.Coord > CoordAsymmetric || r.Nearest > NearestCeil {
		return fmt.Errorf("%w: resize coordinate mode %d, nearest mode %d", ErrShape, r.Coord, r.Nearest)
	}
	if r.N <= 0 || r.C <= 0 {
		return fmt.Errorf("%w: resize N=%d C=%d", ErrShape, r.N, r.C)
	}
	vi, err := cudaSize("resize", r.In)
	if err != nil {
		return err
	}
	vo, err := cudaSize("resize", r.Out)
	if err != nil {
		return err
	}
	ni, err := cudaProd("resize", r.N, r.C, vi)
	if err != nil {
		return err
	}
	no, err := cudaProd("resize", r.N, r.C, vo)
	if err != nil {
		return err
	}
	if err := c.f32(src, ni, "resize source"); err != nil {
		return err
	}
	if err := c.f32(dst, no, "resize destination"); err != nil {
		return err
	}
	if err := cudaDistinct("resize", dst, src); err != nil {
		return err
	}
	var tab sampleTable
	for a := 0; a < 3; a++ {
		in, out, scale := r.In[a], r.Out[a], r.Scale[a]
		if !(scale >= 0) || math.IsInf(scale, 0) {
			return fmt.Errorf("%w: resize scale %v on axis %d", ErrShape, scale, a)
		}
		tab.axis(out, func(x int) (int, int, float64, bool) {
			s := resizeSource(x, in, out, scale, r.Coord)
			if r.Mode == Nearest {
				var f float64
				switch r.Nearest {
				case NearestRoundPreferFloor:
					f = math.Ceil(s - 0.5)
				case NearestRoundPreferCeil:
					f = math.Floor(s + 0.5)
				case NearestFloor:
					f = math.Floor(s)
				default:
					f = math.Ceil(s)
				}
				i := int(min(max(f, 0), float64(in-1)))
				return i, i, 0, true
			}
			s = min(max(s, 0), float64(in-1))
			i0 := int(s)
			return i0, min(i0+1, in-1), s - float64(i0), true
		})
	}
	mode := sampleNearest
	if r.Mode == Linear {
		mode = sampleResize
	}
	return c.sample(dst, src, tab, r.N*r.C, r.In, r.Out, mode, 0)
}

// ---- channel operations ----

// cudaNCS checks n, c, spatial > 0 and returns n*c*spatial.
func cudaNCS(op string, n, ch, spatial int) (int, error) {
	if n <= 0 || ch <= 0 || spatial <= 0 {
		return 0, fmt.Errorf("%w: %s n=%d c=%d spatial=%d", ErrShape, op, n, ch, spatial)
	}
	return cudaProd(op, n, ch, spatial)
}

func (c *cudaBackend) Softmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := cudaNCS("softmax", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := c.f32(src, total, "softmax source"); err != nil {
		return err
	}
	if err := c.f32(dst, total, "softmax destination"); err != nil {
		return err
	}
	return c.run("softmax_c", c.linGrid(n*spatial), linBlock, dst, src, n, ch, spatial)
}

func (c *cudaBackend) Argmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := cudaNCS("argmax", n, ch, spatial)
	if err != nil {
		return err
	}
	if ch > 256 {
		return fmt.Errorf("%w: argmax over %d channels (at most 256)", ErrShape, ch)
	}
	if err := c.f32(src, total, "argmax source"); err != nil {
		return err
	}
	if err := c.check(dst, Uint8, n*spatial, "argmax destination"); err != nil {
		return err
	}
	return c.run("argmax_c", c.linGrid(n*spatial), linBlock, dst, src, n, ch, spatial)
}

// affine launches chan_affine over nc rows of spatial values.
func (c *cudaBackend) affine(dst, src, coef *Buffer, nc, ch, spatial int, perRow bool, act Activation) error {
	gy := min(nc, 65535)
	gx := min((spatial+cudaThreads-1)/cudaThreads, max(1, c.sms*32/gy))
	return c.launch("chan_affine", dim3{gx, gy, 1}, linBlock, dst, src, coef, nc, ch, spatial, perRow, int(act.Kind), act.Alpha)
}

func (c *cudaBackend) InstanceNorm(dst, src, scale, bias *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	total, err := cudaNCS("instancenorm", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := act.valid(); err != nil {
		return err
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("%w: normalisation epsilon %v", ErrShape, eps)
	}
	for _, x := range []struct {
		b    *Buffer
		n    int
		what string
	}{{src, total, "instancenorm source"}, {dst, total, "instancenorm destination"}, {scale, ch, "instancenorm scale"}, {bias, ch, "instancenorm bias"}} {
		if err := c.f32(x.b, x.n, x.what); err != nil {
			return err
		}
	}
	nc := n * ch
	// Chunks of at least 4096 values, at most 1024 per channel.
	chunk := max(4096, (spatial+1023)/1024)
	chunks := (spatial + chunk - 1) / chunk
	part, err := c.scratch(nc * chunks * 4) // (mean, m2) as float64
	if err != nil {
		return err
	}
	defer c.Free(part)
	coef, err := c.scratch(3 * nc)
	if err != nil {
		return err
	}
	defer c.Free(coef)
	return c.do(func() error {
		if err := c.launch("in_partial", dim3{chunks, min(nc, 65535), 1}, linBlock, part, src, nc, spatial, chunk, chunks); err != nil {
			return err
		}
		if err := c.launch("in_coef", c.linGrid(nc), linBlock, coef, part, scale, bias, nc, ch, spatial, chunk, chunks, eps); err != nil {
			return err
		}
		return c.affine(dst, src, coef, nc, ch, spatial, true, act)
	})
}

func (c *cudaBackend) BatchNorm(dst, src, scale, bias, mean, variance *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	total, err := cudaNCS("batchnorm", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := act.valid(); err != nil {
		return err
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("%w: normalisation epsilon %v", ErrShape, eps)
	}
	for _, x := range []struct {
		b    *Buffer
		n    int
		what string
	}{{src, total, "batchnorm source"}, {dst, total, "batchnorm destination"}, {scale, ch, "batchnorm scale"},
		{bias, ch, "batchnorm bias"}, {mean, ch, "batchnorm mean"}, {variance, ch, "batchnorm variance"}} {
		if err := c.f32(x.b, x.n, x.what); err != nil {
			return err
		}
	}
	coef, err := c.scratch(3 * ch)
	if err != nil {
		return err
	}
	defer c.Free(coef)
	return c.do(func() error {
		if err := c.launch("bn_coef", c.linGrid(ch), linBlock, coef, scale, bias, mean, variance, ch, eps); err != nil {
			return err
		}
		return c.affine(dst, src, coef, n*ch, ch, spatial, false, act)
	})
}

func (c *cudaBackend) GlobalAvgPool(dst, src *Buffer, n, ch, spatial int) error {
	total, err := cudaNCS("globalavgpool", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := c.f32(src, total, "globalavgpool source"); err != nil {
		return err
	}
	if err := c.f32(dst, n*ch, "globalavgpool destination"); err != nil {
		return err
	}
	if err := cudaDistinct("globalavgpool", dst, src); err != nil {
		return err
	}
	return c.run("gap", dim3{min(n*ch, 65535), 1, 1}, linBlock, dst, src, n*ch, spatial)
}

func (c *cudaBackend) Pool(dst, src *Buffer, p PoolSpec) error {
	out, err := p.Out()
	if err != nil {
		return err
	}
	vi, err := cudaSize("pool", p.In)
	if err != nil {
		return err
	}
	vo, err := cudaSize("pool", out)
	if err != nil {
		return err
	}
	ni, err := cudaProd("pool", p.N, p.C, vi)
	if err != nil {
		return err
	}
	no, err := cudaProd("pool", p.N, p.C, vo)
	if err != nil {
		return err
	}
	if err := c.f32(src, ni, "pool source"); err != nil {
		return err
	}
	if err := c.f32(dst, no, "pool destination"); err != nil {
		return err
	}
	if err := cudaDistinct("pool", dst, src); err != nil {
		return err
	}
	args := []any{dst, src, p.N * p.C, p.In[0], p.In[1], p.In[2], out[0], out[1], out[2]}
	for _, v := range [][3]int{p.Kernel, p.Stride, p.Dilation} {
		for a := 0; a < 3; a++ {
			args = append(args, max(v[a], 1))
		}
	}
	for _, v := range [][3]int{p.PadBegin, p.PadEnd} {
		for a := 0; a < 3; a++ {
			args = append(args, v[a])
		}
	}
	args = append(args, int(p.Kind), p.CountIncludePad)
	return c.run("pool3d", c.linGrid(no), linBlock, args...)
}

// ---- reductions ----

// reduce runs a reduction kernel into the partials and copies them back.
func (c *cudaBackend) reduce(kernel string, src *Buffer, n int, out unsafe.Pointer, extra ...any) (int, error) {
	parts := min(max((n+cudaThreads*4-1)/(cudaThreads*4), 1), cudaMaxParts)
	args := append([]any{c.part, src, n}, extra...)
	err := c.do(func() error {
		if err := c.launch(kernel, dim3{parts, 1, 1}, linBlock, args...); err != nil {
			return err
		}
		return cudaErr(kernel, cu.MemcpyDtoH(out, c.part, int64(parts*8)))
	})
	return parts, err
}

func (c *cudaBackend) Sum(src *Buffer, n int) (float64, error) {
	if err := c.f32(src, n, "sum source"); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var part [cudaMaxParts]float64
	k, err := c.reduce("reduce_sum", src, n, unsafe.Pointer(&part[0]))
	if err != nil {
		return 0, err
	}
	s := 0.0
	for _, v := range part[:k] {
		s += v
	}
	return s, nil
}

func (c *cudaBackend) Max(src *Buffer, n int) (float32, error) {
	if err := c.f32(src, n, "max source"); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: max of no elements", ErrShape)
	}
	// Partials are float32 in the first half of the scratch.
	var part [cudaMaxParts * 2]float32
	k, err := c.reduce("reduce_max", src, n, unsafe.Pointer(&part[0]))
	if err != nil {
		return 0, err
	}
	m := float32(math.Inf(-1))
	for _, v := range part[:k] {
		if v != v {
			return v, nil
		}
		m = max(m, v)
	}
	return m, nil
}

func (c *cudaBackend) CountAbove(src *Buffer, n int, threshold float32) (int64, error) {
	if err := c.f32(src, n, "countabove source"); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var part [cudaMaxParts]uint64
	k, err := c.reduce("reduce_count", src, n, unsafe.Pointer(&part[0]), threshold)
	if err != nil {
		return 0, err
	}
	var s int64
	for _, v := range part[:k] {
		s += int64(v)
	}
	return s, nil
}
