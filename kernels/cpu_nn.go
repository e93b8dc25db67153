package kernels

// Pooling, normalisation, softmax, concat, resize and reductions of the
// CPU backend. Every operation validates its sizes first, then runs in
// parallel (par.For) over channels, pieces of channels or blocks of
// voxels; reductions accumulate in float64.

import (
	"fmt"
	"math"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

// nnPiece is the most elements one task of a streaming loop handles: a
// channel is cut into pieces of about this length so that a few large
// channels still spread over every core.
const nnPiece = 1 << 15

// nnMaxElems bounds the element count of one operand, far above any
// buffer (Alloc stops at 2^40 bytes), so that size sums and products
// cannot overflow.
const nnMaxElems = 1 << 46

// nnPieces cuts a row of size elements into p pieces of plen elements
// (the last shorter), each at most nnPiece.
func nnPieces(size int) (p, plen int) {
	p = (size + nnPiece - 1) / nnPiece
	plen = (size + p - 1) / p
	return p, plen
}

// Pool is MaxPool3d or AveragePool3d with ONNX semantics.
//
// The naive reference: for each output voxel o and axis a the window
// starts at o[a]*stride[a]-padBegin[a] and has taps every dilation[a]
// voxels; max takes the largest tap inside the input (NaN when one is
// NaN, as PyTorch; -Inf when no tap is inside, which PoolSpec.Out allows
// for a dilated window starting in the padding, as PyTorch); average sums the taps inside the input and divides by their
// count, or with CountIncludePad by the window's extent clipped to the
// end of the padded input (In+PadEnd), as PyTorch does in ceil mode.
//
// Both are separable box reductions, so each output slice reduces its
// input slices along W, then H, then D.
func (c *cpuBackend) Pool(dst, src *Buffer, p PoolSpec) error {
	out, err := p.Out()
	if err != nil {
		return err
	}
	d, s, err := c.volumes("pool", dst, src, p.N, p.C, p.C, p.In, out)
	if err != nil {
		return err
	}
	var ax [3]poolAxis
	for a := range 3 {
		ax[a] = newPoolAxis(p, a, out[a])
	}
	isMax := p.Kind == MaxPool
	inPlane, outPlane := p.In[1]*p.In[2], out[1]*out[2]
	inVol, outVol := p.In[0]*inPlane, out[0]*outPlane
	par.For(p.N*p.C*out[0], 1, func(lo, hi int) {
		// rows: the W-reduced rows of one input slice (In H × out W);
		// acc: the output slice being reduced over D.
		rows := make([]float32, p.In[1]*out[2])
		acc := make([]float32, outPlane)
		for u := lo; u < hi; u++ {
			nc, od := u/out[0], u%out[0]
			vol := s[nc*inVol : (nc+1)*inVol]
			o := d[nc*outVol+od*outPlane : nc*outVol+(od+1)*outPlane]
			init := float32(0)
			if isMax {
				init = float32(math.Inf(-1))
			}
			for i := range acc {
				acc[i] = init
			}
			dl := max(p.Dilation[0], 1)
			for j := range ax[0].count[od] {
				id := ax[0].first[od] + j*dl
				slice := vol[id*inPlane : (id+1)*inPlane]
				for ih := range p.In[1] {
					ax[2].reduce(rows[ih*out[2]:(ih+1)*out[2]], slice[ih*p.In[2]:(ih+1)*p.In[2]], isMax)
				}
				ax[1].reduceRows(acc, rows, out[2], isMax)
			}
			if isMax {
				copy(o, acc)
				continue
			}
			for oh := range out[1] {
				dv := ax[0].div[od] * ax[1].div[oh]
				for ow, v := range acc[oh*out[2] : (oh+1)*out[2]] {
					o[oh*out[2]+ow] = v / float32(dv*ax[2].div[ow])
				}
			}
		}
	})
	return nil
}

// poolAxis is one axis of a pooling: for each output index the first
// input index inside the input, the number of taps inside it (every
// dilation voxels) and the average's divisor along this axis.
type poolAxis struct {
	first, count, div []int
	dilation          int
	// pair: every window is the two voxels 2o, 2o+1 (kernel 2, stride
	// 2, no padding or dilation: the U-Net case), which reduce has a
	// loop of its own for.
	pair bool
}

func newPoolAxis(p PoolSpec, a, out int) poolAxis {
	in, k := p.In[a], p.Kernel[a]
	st, dl := max(p.Stride[a], 1), max(p.Dilation[a], 1)
	ax := poolAxis{first: make([]int, out), count: make([]int, out), div: make([]int, out), dilation: dl}
	for o := range out {
		start := o*st - p.PadBegin[a]
		jlo, jhi := 0, k-1
		if start < 0 {
			jlo = (-start + dl - 1) / dl
		}
		if start+jhi*dl > in-1 {
			if start > in-1 {
				jhi = -1
			} else {
				jhi = (in - 1 - start) / dl
			}
		}
		ax.first[o] = start + jlo*dl
		ax.count[o] = max(jhi-jlo+1, 0)
		ax.div[o] = ax.count[o]
		if p.CountIncludePad {
			ax.div[o] = min(start+k, in+p.PadEnd[a]) - start
		}
	}
	ax.pair = k == 2 && st == 2 && dl == 1 && p.PadBegin[a] == 0 && 2*out <= in
	return ax
}

// reduce writes into o (one value per output index) the max or sum of
// the taps of row.
func (ax *poolAxis) reduce(o, row []float32, isMax bool) {
	dl := ax.dilation
	if ax.pair {
		row = row[:2*len(o)]
		if isMax {
			for i := range o {
				o[i] = max(row[2*i], row[2*i+1])
			}
		} else {
			for i := range o {
				o[i] = row[2*i] + row[2*i+1]
			}
		}
		return
	}
	if isMax {
		for i := range o {
			f, n := ax.first[i], ax.count[i]
			m := float32(math.Inf(-1))
			for j := range n {
				m = max(m, row[f+j*dl])
			}
			o[i] = m
		}
		return
	}
	for i := range o {
		f, n := ax.first[i], ax.count[i]
		var sum float32
		for j := range n {
			sum += row[f+j*dl]
		}
		o[i] = sum
	}
}

// reduceRows folds the rows (of length w) of each output row's taps into
// acc (max or sum).
func (ax *poolAxis) reduceRows(acc, rows []float32, w int, isMax bool) {
	dl := ax.dilation
	for oh := range ax.first {
		a := acc[oh*w : (oh+1)*w]
		for j := range ax.count[oh] {
			ih := ax.first[oh] + j*dl
			r := rows[ih*w : (ih+1)*w]
			r = r[:len(a)]
			if isMax {
				for i, v := range r {
					a[i] = max(a[i], v)
				}
			} else {
				for i, v := range r {
					a[i] += v
				}
			}
		}
	}
}

// GlobalAvgPool: dst[i] is the mean of channel i of src (float64 sums).
func (c *cpuBackend) GlobalAvgPool(dst, src *Buffer, n, ch, spatial int) error {
	total, err := channelsSize("global average pool", n, ch, spatial)
	if err != nil {
		return err
	}
	if err := checkDistinct("global average pool", dst, src); err != nil {
		return err
	}
	d, s, err := c.srcDst("global average pool", src, total, dst, n*ch)
	if err != nil {
		return err
	}
	sums := nnRowSums(s, n*ch, spatial)
	for i, v := range sums {
		d[i] = float32(v / float64(spatial))
	}
	return nil
}

// nnRowSums sums each of rows rows of size values of x in float64, in
// parallel over pieces of rows.
func nnRowSums(x []float32, rows, size int) []float64 {
	p, plen := nnPieces(size)
	part := make([]float64, rows*p)
	par.For(rows*p, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			r, k := t/p, t%p
			a, b := min(k*plen, size), min((k+1)*plen, size)
			part[t] = nnSum64(x[r*size+a : r*size+b])
		}
	})
	sums := make([]float64, rows)
	for r := range sums {
		var s float64
		for _, v := range part[r*p : (r+1)*p] {
			s += v
		}
		sums[r] = s
	}
	return sums
}

// nnSum64 is the float64 sum of x (eight accumulators, so the adds
// overlap).
func nnSum64(x []float32) float64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float64
	for len(x) >= 8 {
		s0 += float64(x[0])
		s1 += float64(x[1])
		s2 += float64(x[2])
		s3 += float64(x[3])
		s4 += float64(x[4])
		s5 += float64(x[5])
		s6 += float64(x[6])
		s7 += float64(x[7])
		x = x[8:]
	}
	for _, v := range x {
		s0 += float64(v)
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// nnSqDev64 is the float64 sum of (x-m)^2.
func nnSqDev64(x []float32, m float64) float64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float64
	for len(x) >= 8 {
		d0, d1, d2, d3 := float64(x[0])-m, float64(x[1])-m, float64(x[2])-m, float64(x[3])-m
		d4, d5, d6, d7 := float64(x[4])-m, float64(x[5])-m, float64(x[6])-m, float64(x[7])-m
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
		s4 += d4 * d4
		s5 += d5 * d5
		s6 += d6 * d6
		s7 += d7 * d7
		x = x[8:]
	}
	for _, v := range x {
		d := float64(v) - m
		s0 += d * d
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// nnMoments is the sum and the sum of squared deviations from its own
// mean of one piece of a channel.
type nnMoments struct{ sum, m2 float64 }

// nnPieceMoments takes two float64 passes over v (at most nnPiece
// values, so the second reads from cache): the sum, then the squared
// deviations from the mean.
func nnPieceMoments(v []float32) nnMoments {
	if len(v) == 0 {
		return nnMoments{}
	}
	sum := nnSum64(v)
	return nnMoments{sum, nnSqDev64(v, sum/float64(len(v)))}
}

// nnCombine joins the pieces (nnPieces(size)) of one channel into its
// mean and biased variance, exactly (Chan et al.):
// M2 = sum of (M2_p + n_p*(mean_p-mean)^2); no step subtracts large sums.
func nnCombine(part []nnMoments, size int) (mean, variance float64) {
	_, plen := nnPieces(size)
	var sum float64
	for _, m := range part {
		sum += m.sum
	}
	mean = sum / float64(size)
	var m2 float64
	for k, m := range part {
		np := float64(min((k+1)*plen, size) - min(k*plen, size))
		if np > 0 {
			d := m.sum/np - mean
			m2 += m.m2 + np*d*d
		}
	}
	return mean, m2 / float64(size)
}

// nnFuseRow is the longest channel an InstanceNorm normalises in one
// task (statistics, then the affine pass while the channel is still in
// the core's cache), so that memory is read once instead of twice.
const nnFuseRow = 1 << 18

// InstanceNorm normalises each channel with its mean and biased variance
// (nnPieceMoments and nnCombine, in float64), then scales, shifts and
// applies act: dst = (src-mean)*(scale/sqrt(var+eps)) + bias. Channels
// of at most nnFuseRow voxels are one task each when there are enough
// of them; longer ones take a parallel pass for the statistics and
// another for the output. Works in place.
func (c *cpuBackend) InstanceNorm(dst, src, scale, bias *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	d, s, prm, err := c.normArgs("instance norm", dst, src, n, ch, spatial, eps, act, scale, bias)
	if err != nil {
		return err
	}
	sc, bi := prm[0], prm[1]
	rows := n * ch
	p, plen := nnPieces(spatial)
	coef := func(r int, part []nnMoments) nnCoef {
		mean, variance := nnCombine(part, spatial)
		a := float64(sc[r%ch]) / math.Sqrt(variance+float64(eps))
		return nnCoef{m: float32(mean), a: float32(a), b: bi[r%ch]}
	}
	if spatial <= nnFuseRow && rows >= 2*par.Workers() {
		par.For(rows, 1, func(lo, hi int) {
			part := make([]nnMoments, p)
			for r := lo; r < hi; r++ {
				row := s[r*spatial : (r+1)*spatial]
				for k := range p {
					part[k] = nnPieceMoments(row[min(k*plen, spatial):min((k+1)*plen, spatial)])
				}
				nnAffineAct(d[r*spatial:(r+1)*spatial], row, coef(r, part), act)
			}
		})
		return nil
	}
	part := make([]nnMoments, rows*p)
	par.For(rows*p, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			r, k := t/p, t%p
			part[t] = nnPieceMoments(s[r*spatial+min(k*plen, spatial) : r*spatial+min((k+1)*plen, spatial)])
		}
	})
	cf := make([]nnCoef, rows)
	for r := range cf {
		cf[r] = coef(r, part[r*p:(r+1)*p])
	}
	nnAffine(d, s, cf, spatial, act)
	return nil
}

// nnCoef is a per-channel affine map: y = (x-m)*a + b.
type nnCoef struct{ m, a, b float32 }

// nnAffine writes dst = act((src-m)*a + b) for each row of size elements,
// row r with cf[r], in parallel over pieces of rows. dst may be src.
func nnAffine(dst, src []float32, cf []nnCoef, size int, act Activation) {
	p, plen := nnPieces(size)
	par.For(len(cf)*p, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			r, k := t/p, t%p
			a, b := r*size+min(k*plen, size), r*size+min((k+1)*plen, size)
			nnAffineAct(dst[a:b], src[a:b], cf[r], act)
		}
	})
}

// nnAffineAct is one piece of nnAffine, with the usual activations fused
// into the loop. LeakyReLU multiplies by a factor picked with the sign
// bit, which avoids a branch that random data mispredicts; the result is
// exactly Activation.Apply's.
func nnAffineAct(d, s []float32, c nnCoef, act Activation) {
	d = d[:len(s)]
	m, a, b := c.m, c.a, c.b
	switch act.Kind {
	case ActNone:
		for i, x := range s {
			d[i] = (x-m)*a + b
		}
	case ActReLU:
		for i, x := range s {
			d[i] = max((x-m)*a+b, 0)
		}
	case ActLeakyReLU:
		k := [2]float32{1, act.Alpha}
		for i, x := range s {
			y := (x-m)*a + b
			d[i] = y * k[math.Float32bits(y)>>31]
		}
	default:
		for i, x := range s {
			d[i] = act.Apply((x-m)*a + b)
		}
	}
}

// normArgs checks a normalisation (checkNorm), its float32 source and
// destination, and ch values in each per-channel parameter (normParams'
// order). It returns the destination's, the source's and the parameters'
// elements.
func (c *cpuBackend) normArgs(op string, dst, src *Buffer, n, ch, spatial int, eps float32, act Activation, params ...*Buffer) (d, s []float32, prm [len(normParams)][]float32, err error) {
	total, err := checkNorm(op, n, ch, spatial, eps, act)
	if err != nil {
		return nil, nil, prm, err
	}
	if d, s, err = c.srcDst(op, src, total, dst, total); err != nil {
		return nil, nil, prm, err
	}
	for i, p := range params {
		if prm[i], err = c.f32(p, ch, op+" "+normParams[i]); err != nil {
			return nil, nil, prm, err
		}
	}
	return d, s, prm, nil
}

// BatchNorm is inference batch normalisation:
// dst = (src-mean)*(scale/sqrt(variance+eps)) + bias per channel, then
// act.
func (c *cpuBackend) BatchNorm(dst, src, scale, bias, mean, variance *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	d, s, prm, err := c.normArgs("batch norm", dst, src, n, ch, spatial, eps, act, scale, bias, mean, variance)
	if err != nil {
		return err
	}
	cf := make([]nnCoef, n*ch)
	for r := range cf {
		j := r % ch
		a := float64(prm[0][j]) / math.Sqrt(float64(prm[3][j])+float64(eps))
		cf[r] = nnCoef{m: prm[2][j], a: float32(a), b: prm[1][j]}
	}
	nnAffine(d, s, cf, spatial, act)
	return nil
}

// nnBlock is the number of voxels a channel-axis loop (softmax, argmax)
// handles at once: its per-voxel scratch stays in L1.
const nnBlock = 512

// Softmax over channels: for each voxel, exp(x-max)/sum over channels of
// exp(x-max) (nnExp). A NaN makes its voxel NaN. Works in place.
func (c *cpuBackend) Softmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := channelsSize("softmax", n, ch, spatial)
	if err != nil {
		return err
	}
	d, s, err := c.srcDst("softmax", src, total, dst, total)
	if err != nil {
		return err
	}
	blocks := (spatial + nnBlock - 1) / nnBlock
	if ch == 2 {
		par.For(n*blocks, 1, func(lo, hi int) {
			for u := lo; u < hi; u++ {
				b, k := u/blocks, u%blocks
				v0, v1 := k*nnBlock, min((k+1)*nnBlock, spatial)
				softmax2(d[b*2*spatial+v0:b*2*spatial+v1], d[(b*2+1)*spatial+v0:(b*2+1)*spatial+v1],
					s[b*2*spatial+v0:b*2*spatial+v1], s[(b*2+1)*spatial+v0:(b*2+1)*spatial+v1])
			}
		})
		return nil
	}
	par.For(n*blocks, 1, func(lo, hi int) {
		var mx, sum [nnBlock]float32
		for u := lo; u < hi; u++ {
			b, k := u/blocks, u%blocks
			v0, v1 := k*nnBlock, min((k+1)*nnBlock, spatial)
			base := b * ch * spatial
			m := mx[:v1-v0]
			copy(m, s[base+v0:base+v1])
			for j := 1; j < ch; j++ {
				for i, x := range s[base+j*spatial+v0 : base+j*spatial+v1] {
					m[i] = max(m[i], x)
				}
			}
			sm := sum[:len(m)]
			for i := range sm {
				sm[i] = 0
			}
			for j := range ch {
				row := base + j*spatial
				o := d[row+v0 : row+v1]
				for i, x := range s[row+v0 : row+v1] {
					e := nnExp(x - m[i])
					o[i] = e
					sm[i] += e
				}
			}
			for i, v := range sm {
				sm[i] = 1 / v
			}
			for j := range ch {
				row := base + j*spatial
				o := d[row+v0 : row+v1]
				for i := range o {
					o[i] *= sm[i]
				}
			}
		}
	})
	return nil
}

// softmax2 is the softmax of two channels (d0, d1 from s0, s1), with
// one exponential per voxel: the larger channel's is 1, the other's
// e = exp(-|s0-s1|), so the two results are 1/(1+e) and e/(1+e), the
// same values as the general loop computes. The sign of s0-s1 picks
// which is which without a branch. Works in place.
func softmax2(d0, d1, s0, s1 []float32) {
	d0, d1, s1 = d0[:len(s0)], d1[:len(s0)], s1[:len(s0)]
	for i, a := range s0 {
		diff := a - s1[i]
		e := nnExp(-abs32(diff))
		inv := 1 / (1 + e)
		t := [2]float32{inv, e * inv}
		sign := math.Float32bits(diff) >> 31
		d0[i], d1[i] = t[sign], t[sign^1]
	}
}

// abs32 is |x| (clearing the sign bit).
func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// nnExp is e^x rounded to float32, within an ulp of the exact value, in
// float64: x = (32m+j)·ln2/32 + r with |r| <= ln2/64, so e^x =
// 2^m · 2^(j/32) · e^r, 2^(j/32) from a table and e^r from its cubic
// Taylor polynomial (truncation below 6e-10 relative). The nearest
// integer 32m+j comes from adding 1.5·2^52, which leaves it in the low
// bits. About twice as fast as math.Exp.
func nnExp(x float32) float32 {
	if !(x > -104) {
		if x != x {
			return x
		}
		return 0 // below the smallest float32 (and -Inf)
	}
	if x > 89 {
		return float32(math.Inf(1))
	}
	const (
		ln2   = 0.693147180559945309417232121458176568
		shift = 0x1.8p52
	)
	v := float64(x)
	t := v*(32/ln2) + shift
	kf := t - shift
	k := int64(math.Float64bits(t)) << 32 >> 32 // the low 32 bits: 32m+j
	r := v - kf*(ln2/32)
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6)))
	return float32(p * nnExp2Table[k&31] * math.Float64frombits(uint64(k>>5+1023)<<52))
}

// nnExp2Table holds 2^(j/32), j = 0..31.
var nnExp2Table = func() (t [32]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 32)
	}
	return t
}()

// Concat copies, for each of outer blocks, each source's inner[i]
// elements in turn. Copies are cut into pieces so that a few large
// sources spread over every core.
func (c *cpuBackend) Concat(dst *Buffer, srcs []*Buffer, outer int, inner []int) error {
	if len(srcs) == 0 || len(srcs) != len(inner) || outer <= 0 {
		return fmt.Errorf("%w: concat of %d sources with %d sizes, outer %d", ErrShape, len(srcs), len(inner), outer)
	}
	width := 0
	for i, w := range inner {
		if w < 0 || w > nnMaxElems/outer-width {
			return fmt.Errorf("%w: concat source %d: inner size %d", ErrShape, i, w)
		}
		width += w
	}
	if width == 0 {
		return fmt.Errorf("%w: concat of empty sources", ErrShape)
	}
	if err := checkDistinct("concat", dst, srcs...); err != nil {
		return err
	}
	d, err := c.f32(dst, outer*width, "concat destination")
	if err != nil {
		return err
	}
	ss := make([][]float32, len(srcs))
	for i, b := range srcs {
		if ss[i], err = c.f32(b, outer*inner[i], fmt.Sprintf("concat source %d", i)); err != nil {
			return err
		}
	}
	if outer >= 4*par.Workers() {
		// Many blocks: each task copies whole blocks.
		par.For(outer, max(1, nnPiece/width), func(lo, hi int) {
			for o := lo; o < hi; o++ {
				off := o * width
				for i, w := range inner {
					copy(d[off:off+w], ss[i][o*w:(o+1)*w])
					off += w
				}
			}
		})
		return nil
	}
	// Few blocks: cut each copy into pieces.
	type piece struct {
		dst, src []float32
	}
	var pieces []piece
	for o := range outer {
		off := o * width
		for i, w := range inner {
			for a := 0; a < w; a += nnPiece {
				e := min(a+nnPiece, w)
				pieces = append(pieces, piece{d[off+a : off+e], ss[i][o*w+a : o*w+e]})
			}
			off += w
		}
	}
	par.For(len(pieces), 1, func(lo, hi int) {
		for _, p := range pieces[lo:hi] {
			copy(p.dst, p.src)
		}
	})
	return nil
}

// Resize is ONNX Resize of N×C volumes. Each axis maps an output index x
// to a source coordinate by the coordinate mode (scale is Out/In unless
// the spec sets it):
//
//	half_pixel:         (x+0.5)/scale - 0.5
//	pytorch_half_pixel: the same, or 0 when the output length is 1
//	align_corners:      x*(in-1)/(out-1), or 0 when the output length is 1
//	asymmetric:         x/scale
//
// Nearest rounds it by the nearest mode and clamps the index to the
// input. Linear clamps the coordinate to [0, in-1] (as onnxruntime does)
// and interpolates between its floor and the next voxel; it runs
// separably: two source slices blend into one, its rows blend into one,
// and that row is sampled along W.
func (c *cpuBackend) Resize(dst, src *Buffer, r ResizeSpec) error {
	if err := checkResize(r); err != nil {
		return err
	}
	d, s, err := c.volumes("resize", dst, src, r.N, r.C, r.C, r.In, r.Out)
	if err != nil {
		return err
	}
	var ax [3]resizeAxis
	for a := range 3 {
		ax[a] = newResizeAxis(r, a)
	}
	in, out := r.In, r.Out
	inPlane, outPlane := in[1]*in[2], out[1]*out[2]
	inVol, outVol := in[0]*inPlane, out[0]*outPlane
	par.For(r.N*r.C*out[0], 1, func(lo, hi int) {
		var plane, row []float32
		if r.Mode == Linear {
			plane = make([]float32, inPlane)
			row = make([]float32, in[2]+1)
		}
		for u := lo; u < hi; u++ {
			nc, od := u/out[0], u%out[0]
			vol := s[nc*inVol : (nc+1)*inVol]
			o := d[nc*outVol+od*outPlane : nc*outVol+(od+1)*outPlane]
			if r.Mode == Nearest {
				sl := vol[ax[0].i0[od]*inPlane:]
				for oh := range out[1] {
					sr := sl[ax[1].i0[oh]*in[2] : (ax[1].i0[oh]+1)*in[2]]
					or := o[oh*out[2] : (oh+1)*out[2]]
					for ow, iw := range ax[2].i0 {
						or[ow] = sr[iw]
					}
				}
				continue
			}
			p := ax[0].blend(plane, vol, od, inPlane)
			for oh := range out[1] {
				// The row blended along H, then its last voxel repeated,
				// so that every output takes voxels j and j+1.
				rw := ax[1].blend(row[:in[2]], p, oh, in[2])
				if &rw[0] != &row[0] {
					copy(row, rw)
				}
				row[in[2]] = row[in[2]-1]
				or := o[oh*out[2] : (oh+1)*out[2]]
				i0, w0, w1 := ax[2].i0, ax[2].w0, ax[2].w1
				w0, w1 = w0[:len(i0)], w1[:len(i0)]
				for ow, j := range i0 {
					or[ow] = row[j]*w0[ow] + row[j+1]*w1[ow]
				}
			}
		}
	})
	return nil
}

// resizeAxis is one axis of a Resize: for each output index the source
// index (nearest), or the two source indices and the weight of the
// second (linear).
type resizeAxis struct {
	i0, i1 []int
	w0, w1 []float32
}

func newResizeAxis(r ResizeSpec, a int) resizeAxis {
	out := r.Out[a]
	ax := resizeAxis{i0: make([]int, out), i1: make([]int, out), w0: make([]float32, out), w1: make([]float32, out)}
	for o := range out {
		i0, i1, w := resizeTap(r, a, o)
		ax.i0[o], ax.i1[o] = i0, i1
		if r.Mode != Nearest {
			ax.w1[o] = float32(w)
			ax.w0[o] = 1 - ax.w1[o]
		}
	}
	return ax
}

// resizeTap is where output index o of axis a of a Resize reads (both
// backends build their tables with it): the source voxels i0 and i1 and
// the weight w of i1. Nearest: i0 = i1, the coordinate rounded by the
// nearest mode and clamped to the input, w = 0. Linear: the coordinate
// clamped to [0, in-1], between its floor and the next voxel.
func resizeTap(r ResizeSpec, a, o int) (i0, i1 int, w float64) {
	in, out := r.In[a], r.Out[a]
	// inv maps output to input lengths: 1/scale, or in/out exactly
	// when the spec gives no scale.
	inv := func(x float64) float64 { return x * float64(in) / float64(out) }
	if sc := r.Scale[a]; sc != 0 {
		inv = func(x float64) float64 { return x / sc }
	}
	var x float64
	switch r.Coord {
	case CoordHalfPixel:
		x = inv(float64(o)+0.5) - 0.5
	case CoordPyTorchHalfPixel:
		if out > 1 {
			x = inv(float64(o)+0.5) - 0.5
		}
	case CoordAlignCorners:
		if out > 1 {
			x = float64(o) * float64(in-1) / float64(out-1)
		}
	case CoordAsymmetric:
		x = inv(float64(o))
	}
	if r.Mode == Nearest {
		var f float64
		switch r.Nearest {
		case NearestRoundPreferFloor:
			f = math.Ceil(x - 0.5)
		case NearestRoundPreferCeil:
			f = math.Floor(x + 0.5)
		case NearestFloor:
			f = math.Floor(x)
		case NearestCeil:
			f = math.Ceil(x)
		}
		i := int(max(0, min(f, float64(in-1))))
		return i, i, 0
	}
	x = max(0, min(x, float64(in-1)))
	i := int(x)
	return i, min(i+1, in-1), x - float64(i)
}

// blend returns the linear blend of the two source rows (of length w, in
// src) for output index o: scratch holds it, unless one row alone is the
// answer.
func (ax *resizeAxis) blend(scratch, src []float32, o, w int) []float32 {
	a := src[ax.i0[o]*w : (ax.i0[o]+1)*w]
	wt := ax.w1[o]
	if wt == 0 || ax.i0[o] == ax.i1[o] {
		return a
	}
	b := src[ax.i1[o]*w : (ax.i1[o]+1)*w]
	b = b[:len(a)]
	scratch = scratch[:len(a)]
	w0 := ax.w0[o]
	for i, x := range a {
		scratch[i] = x*w0 + b[i]*wt
	}
	return scratch
}

// Sum is the float64 sum of n elements (partial sums per piece, added in
// order, so the result does not depend on the number of cores).
func (c *cpuBackend) Sum(src *Buffer, n int) (float64, error) {
	if n < 0 {
		return 0, fmt.Errorf("%w: sum of %d elements", ErrShape, n)
	}
	s, err := c.f32(src, n, "sum source")
	if err != nil || n == 0 {
		return 0, err
	}
	return nnRowSums(s, 1, n)[0], nil
}

// Max is the largest of n elements (NaN if one is, as in PyTorch).
func (c *cpuBackend) Max(src *Buffer, n int) (float32, error) {
	if n <= 0 {
		return 0, fmt.Errorf("%w: max of %d elements", ErrShape, n)
	}
	s, err := c.f32(src, n, "max source")
	if err != nil {
		return 0, err
	}
	p, plen := nnPieces(n)
	part := make([]float32, p)
	par.For(p, 1, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			m := float32(math.Inf(-1))
			for _, v := range s[k*plen : min((k+1)*plen, n)] {
				m = max(m, v)
			}
			part[k] = m
		}
	})
	m := part[0]
	for _, v := range part[1:] {
		m = max(m, v)
	}
	return m, nil
}

// Argmax writes each voxel's first largest channel (NaNs never win
// unless channel 0 holds one).
func (c *cpuBackend) Argmax(dst, src *Buffer, n, ch, spatial int) error {
	total, err := channelsSize("argmax", n, ch, spatial)
	if err != nil {
		return err
	}
	if ch > 256 {
		return fmt.Errorf("%w: argmax over %d channels (at most 256)", ErrShape, ch)
	}
	s, err := c.f32(src, total, "argmax source")
	if err != nil {
		return err
	}
	d, err := c.u8(dst, n*spatial, "argmax destination")
	if err != nil {
		return err
	}
	blocks := (spatial + nnBlock - 1) / nnBlock
	par.For(n*blocks, 1, func(lo, hi int) {
		var best [nnBlock]float32
		for u := lo; u < hi; u++ {
			b, k := u/blocks, u%blocks
			v0, v1 := k*nnBlock, min((k+1)*nnBlock, spatial)
			base := b * ch * spatial
			m := best[:v1-v0]
			copy(m, s[base+v0:base+v1])
			idx := d[b*spatial+v0 : b*spatial+v1]
			for i := range idx {
				idx[i] = 0
			}
			for j := 1; j < ch; j++ {
				for i, x := range s[base+j*spatial+v0 : base+j*spatial+v1] {
					if x > m[i] {
						m[i] = x
						idx[i] = uint8(j)
					}
				}
			}
		}
	})
	return nil
}

// CountAbove counts the elements greater than threshold.
func (c *cpuBackend) CountAbove(src *Buffer, n int, threshold float32) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("%w: count of %d elements", ErrShape, n)
	}
	s, err := c.f32(src, n, "count source")
	if err != nil || n == 0 {
		return 0, err
	}
	p, plen := nnPieces(n)
	part := make([]int64, p)
	par.For(p, 1, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			var cnt int64
			for _, v := range s[k*plen : min((k+1)*plen, n)] {
				if v > threshold {
					cnt++
				}
			}
			part[k] = cnt
		}
	})
	var total int64
	for _, v := range part {
		total += v
	}
	return total, nil
}
