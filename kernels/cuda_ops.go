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

// srcDst checks an operation's float32 source of ns elements and its
// destination of nd.
func (c *cudaBackend) srcDst(op string, src *Buffer, ns int, dst *Buffer, nd int) error {
	if err := checkBufferOf(c, src, Float32, ns, op, "source"); err != nil {
		return err
	}
	return checkBufferOf(c, dst, Float32, nd, op, "destination")
}

// volumes checks an operation from n volumes of cin channels and size in
// (src) to n volumes of cout channels and size out (dst): positive counts,
// every axis in range, float32 buffers that hold them, dst not src. It
// returns the source's and the destination's element counts.
func (c *cudaBackend) volumes(op string, dst, src *Buffer, n, cin, cout int, in, out [3]int) (ns, nd int, err error) {
	if n <= 0 || cin <= 0 || cout <= 0 {
		return 0, 0, fmt.Errorf("%w: %s of %d volumes of %d channels into %d", ErrShape, op, n, cin, cout)
	}
	vi, err := cudaSize(op, in)
	if err != nil {
		return 0, 0, err
	}
	vo, err := cudaSize(op, out)
	if err != nil {
		return 0, 0, err
	}
	if ns, err = cudaProd(op, n, cin, vi); err != nil {
		return 0, 0, err
	}
	if nd, err = cudaProd(op, n, cout, vo); err != nil {
		return 0, 0, err
	}
	if err := c.srcDst(op, src, ns, dst, nd); err != nil {
		return 0, 0, err
	}
	if err := checkDistinct(op, dst, src); err != nil {
		return 0, 0, err
	}
	return ns, nd, nil
}

// ---- copy, fill, rescale, activate ----

func (c *cudaBackend) Copy(dst, src *Buffer, n int) error {
	if err := checkCopy(c, dst, src, n); err != nil {
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
	if err := c.srcDst("activate", src, n, dst, n); err != nil {
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
	if _, _, err := c.volumes("flip", dst, src, n, ch, ch, size, size); err != nil {
		return err
	}
	rows := n * ch * size[0] * size[1]
	return c.run("flip", rowGrid(rows), rowBlock, dst, src, n*ch, size[0], size[1], size[2], axes[0], axes[1], axes[2])
}

func (c *cudaBackend) CropPad(dst, src *Buffer, n, ch int, srcSize, dstSize [3]int, offset [3]int, fill float32) error {
	for a, o := range offset {
		if o < -cudaMaxElems || o > cudaMaxElems {
			return fmt.Errorf("%w: croppad offset %d on axis %d", ErrShape, o, a)
		}
	}
	if _, _, err := c.volumes("croppad", dst, src, n, ch, ch, srcSize, dstSize); err != nil {
		return err
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
		if err := checkDistinct("concat", dst, srcs[i]); err != nil {
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
	if err := checkResample(m, mode); err != nil {
		return err
	}
	ns, _, err := c.volumes("resample", dst, src, 1, 1, 1, srcSize, dstSize)
	if err != nil {
		return err
	}
	if ns > math.MaxInt32 {
		return fmt.Errorf("%w: resample from %v voxels", ErrShape, srcSize)
	}
	var tab sampleTable
	for a := 0; a < 3; a++ {
		tab.axis(dstSize[a], func(x int) (int, int, float64, bool) {
			return resampleTap(x, srcSize[a], m.Scale[a], m.Offset[a], mode)
		})
	}
	mode3 := sampleNearest
	if mode == Linear {
		mode3 = sampleResample
	}
	return c.sample(dst, src, tab, 1, srcSize, dstSize, mode3, fill)
}

func (c *cudaBackend) Resize(dst, src *Buffer, r ResizeSpec) error {
	if err := checkResize(r); err != nil {
		return err
	}
	if _, _, err := c.volumes("resize", dst, src, r.N, r.C, r.C, r.In, r.Out); err != nil {
		return err
	}
	var tab sampleTable
	for a := 0; a < 3; a++ {
		tab.axis(r.Out[a], func(x int) (int, int, float64, bool) {
			i0, i1, w := resizeTap(r, a, x)
			return i0, i1, w, true
		})
	}
	mode := sampleNearest
	if r.Mode == Linear {
		mode = sampleResize
	}
	return c.sample(dst, src, tab, r.N*r.C, r.In, r.Out, mode, 0)
}

// ---- channel operations ----

func (c *cudaBackend) Softmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := channelsSize("softmax", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := c.srcDst("softmax", src, total, dst, total); err != nil {
		return err
	}
	return c.run("softmax_c", c.linGrid(n*spatial), linBlock, dst, src, n, ch, spatial)
}

func (c *cudaBackend) Argmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := channelsSize("argmax", n, ch, spatial)
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

// normArgs checks a normalisation (checkNorm), its float32 source and
// destination, and ch values in each per-channel parameter (normParams'
// order).
func (c *cudaBackend) normArgs(op string, dst, src *Buffer, n, ch, spatial int, eps float32, act Activation, params ...*Buffer) error {
	total, err := checkNorm(op, n, ch, spatial, eps, act)
	if err != nil {
		return err
	}
	if err := c.srcDst(op, src, total, dst, total); err != nil {
		return err
	}
	for i, p := range params {
		if err := c.f32(p, ch, op+" "+normParams[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *cudaBackend) InstanceNorm(dst, src, scale, bias *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	if err := c.normArgs("instancenorm", dst, src, n, ch, spatial, eps, act, scale, bias); err != nil {
		return err
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
	if err := c.normArgs("batchnorm", dst, src, n, ch, spatial, eps, act, scale, bias, mean, variance); err != nil {
		return err
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
	total, err := channelsSize("globalavgpool", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := c.srcDst("globalavgpool", src, total, dst, n*ch); err != nil {
		return err
	}
	if err := checkDistinct("globalavgpool", dst, src); err != nil {
		return err
	}
	return c.run("gap", dim3{min(n*ch, 65535), 1, 1}, linBlock, dst, src, n*ch, spatial)
}

func (c *cudaBackend) Pool(dst, src *Buffer, p PoolSpec) error {
	out, err := p.Out()
	if err != nil {
		return err
	}
	_, no, err := c.volumes("pool", dst, src, p.N, p.C, p.C, p.In, out)
	if err != nil {
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
