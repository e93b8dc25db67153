package kernels

import (
	"fmt"

	"github.com/radtriage/radtriage/kernels/internal/gemm"
	"github.com/radtriage/radtriage/kernels/internal/par"
)

// Convolutions and GEMM of the CPU backend, on the GEMM core of
// kernels/internal/gemm.
//
// A convolution is an implicit GEMM: C[Cout × output voxels] =
// W[Cout × Cin·taps] · B, where B (the im2col matrix) is never built:
// the core asks for it strip by strip (the micro-kernel's width in
// output voxels by gemm.KC rows), and convPass points at those rows in
// the input where they lie along one input row, or gathers them. To make
// that the common case the run first copies the input with each row
// (W axis) padded with the zeros the borders need and, for a W stride s,
// split into s sub-rows (element s·i+ρ of the padded row is element i of
// sub-row ρ), so a strip of outputs along W reads consecutive values.
//
// A transposed convolution is split into sub-pixel phases: along each
// axis, the outputs o with (o + padBegin) ≡ r (mod stride) are reached
// only by the kernel taps k with k·dilation ≡ r (mod stride), from input
// i = (o + padBegin - k·dilation)/stride. Each phase is then an ordinary
// stride-1 implicit GEMM over its own tap subset, writing every stride-th
// output voxel, so no work is spent on the zeros a dilated input would
// hold and no two phases write the same voxel.

// convDirect lets the GEMM read im2col rows in place from the input where
// it can (tests turn it off to run the gather path on every row).
var convDirect = true

// maxConvDim bounds every size of a spec, so that products of them cannot
// overflow.
const maxConvDim = 1 << 24

// convPhase is one sub-pixel phase (the whole convolution when not
// transposed): output voxel outBase + outStep·q, for q in the nq grid,
// reads input voxel step·q + base + tapIn[t] through tap t, whose kernel
// index is tap[t], per axis.
type convPhase struct {
	a                *gemm.Packed // Cout × Cin·taps
	tap, tapIn       [3][]int
	step, base       [3]int
	nq               [3]int
	outBase, outStep [3]int
	// rows describes each row of the im2col matrix (input channel ci,
	// then tap t) in the run's input layout.
	rows []kRow
}

// kRow is one row of a phase's im2col matrix: output grid voxel (qd, qh,
// qw) reads input row (qd·step + base + d, qh·step + base + h) at element
// qw + w of one of its sub-rows (see rowLayout); off is that element's
// index for q = 0 (ci·D·H·rowLen + (d·H + h)·rowLen + sub-row·subLen + w),
// where base is included in d and h through the run, and in w here.
type kRow struct {
	d, h, w int32
	off     int
}

// rowLayout is how the run lays out each input row: padL zeros, the W
// values, zeros, split into sW sub-rows of subLen.
type rowLayout struct {
	sW, padL, subLen int
}

// rowLen is the length of a laid-out row.
func (l rowLayout) rowLen() int { return l.sW * l.subLen }

// plain says whether the layout is the input itself.
func (l rowLayout) plain(W int) bool { return l.sW == 1 && l.padL == 0 && l.subLen == W }

// layoutFor is the layout that puts every W offset of every phase inside
// its sub-row.
func layoutFor(phases []convPhase, W int) rowLayout {
	l := rowLayout{sW: phases[0].step[2]}
	for _, ph := range phases {
		for _, t := range ph.tapIn[2] {
			l.padL = max(l.padL, -(ph.base[2] + t))
		}
	}
	l.subLen = (l.padL + W + l.sW - 1) / l.sW
	for _, ph := range phases {
		for _, t := range ph.tapIn[2] {
			l.subLen = max(l.subLen, ph.nq[2]+(ph.base[2]+t+l.padL)/l.sW)
		}
	}
	return l
}

// index fills ph.rows for cin channels of D×H rows in layout l.
func (ph *convPhase) index(D, H, cin int, l rowLayout) {
	tD, tH, tW := len(ph.tap[0]), len(ph.tap[1]), len(ph.tap[2])
	ph.rows = make([]kRow, 0, cin*tD*tH*tW)
	rl := l.rowLen()
	for ci := 0; ci < cin; ci++ {
		for _, d := range ph.tapIn[0] {
			for _, h := range ph.tapIn[1] {
				for _, t := range ph.tapIn[2] {
					b := ph.base[2] + t + l.padL // >= 0
					w := b / l.sW
					ph.rows = append(ph.rows, kRow{d: int32(d), h: int32(h), w: int32(w),
						off: ci*D*H*rl + (d*H+h)*rl + (b%l.sW)*l.subLen + w})
				}
			}
		}
	}
}

// convPlan is the CPU backend's packed form of a convolution (Conv.impl).
type convPlan struct {
	phases []convPhase
	bias   []float32
	// layout of the input rows the phases read.
	layout rowLayout
	// blocks, when set, replaces the phases: a transposed convolution
	// whose kernel equals its stride (no padding, dilation or output
	// padding) maps each input voxel to its own block of output voxels, a
	// plain GEMM (Cout·taps × Cin) · (Cin × input voxels) whose rows
	// Store scatters.
	blocks *gemm.Packed
}

func (c *cpuBackend) PrepareConv(spec ConvSpec, weights, bias []float32) (*Conv, error) {
	out, err := checkConvSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(weights) != spec.WeightLen() {
		return nil, fmt.Errorf("%w: conv weights hold %d values, want %d", ErrShape, len(weights), spec.WeightLen())
	}
	switch {
	case spec.Bias && len(bias) != spec.Cout:
		return nil, fmt.Errorf("%w: conv bias holds %d values, want %d", ErrShape, len(bias), spec.Cout)
	case !spec.Bias && len(bias) != 0:
		return nil, fmt.Errorf("%w: conv bias given (%d values) but spec.Bias false", ErrShape, len(bias))
	}
	pl := &convPlan{}
	if spec.Bias {
		pl.bias = append([]float32(nil), bias...)
	}
	k := spec.Kernel
	kvol := k[0] * k[1] * k[2]
	if isBlockTranspose(spec) {
		pl.blocks = gemm.Pack(spec.Cout*kvol, spec.Cin, func(row, ci int) float32 {
			return weights[ci*spec.Cout*kvol+row] // row = co·kvol + tap
		})
		return &Conv{Spec: spec, Out: out, owner: c, impl: pl}, nil
	}
	if !spec.Transpose {
		var ph convPhase
		for a := 0; a < 3; a++ {
			dl := max(spec.Dilation[a], 1)
			for t := 0; t < k[a]; t++ {
				ph.tap[a] = append(ph.tap[a], t)
				ph.tapIn[a] = append(ph.tapIn[a], t*dl)
			}
			ph.step[a], ph.base[a] = max(spec.Stride[a], 1), -spec.PadBegin[a]
			ph.nq[a], ph.outStep[a] = out[a], 1
		}
		K := spec.Cin * kvol
		ph.a = gemm.Pack(spec.Cout, K, func(co, p int) float32 { return weights[co*K+p] })
		pl.phases = []convPhase{ph}
	} else {
		pl.phases = transposePhases(spec, out, weights)
	}
	pl.layout = layoutFor(pl.phases, spec.In[2])
	for i := range pl.phases {
		pl.phases[i].index(spec.In[0], spec.In[1], spec.Cin, pl.layout)
	}
	return &Conv{Spec: spec, Out: out, owner: c, impl: pl}, nil
}

// isBlockTranspose says whether a transposed convolution maps input
// voxels to disjoint blocks of kernel-size output voxels.
func isBlockTranspose(s ConvSpec) bool {
	if !s.Transpose {
		return false
	}
	for a := 0; a < 3; a++ {
		if s.Kernel[a] != max(s.Stride[a], 1) || max(s.Dilation[a], 1) != 1 || s.PadBegin[a] != 0 || s.PadEnd[a] != 0 || s.OutputPadding[a] != 0 {
			return false
		}
	}
	return true
}

// transposePhases splits a transposed convolution into its sub-pixel
// phases (see the top of the file) and packs each one's weights.
func transposePhases(spec ConvSpec, out [3]int, weights []float32) []convPhase {
	// Per axis, the phases r = 0..stride-1 that hold outputs.
	type axisPhase struct {
		tap, tapIn []int
		nq, o0     int
	}
	var axes [3][]axisPhase
	for a := 0; a < 3; a++ {
		st, dl, pad := max(spec.Stride[a], 1), max(spec.Dilation[a], 1), spec.PadBegin[a]
		for r := 0; r < st; r++ {
			o0 := ((r-pad)%st + st) % st // first o ≥ 0 with (o+pad) mod st == r
			if o0 >= out[a] {
				continue
			}
			ap := axisPhase{nq: (out[a] - o0 + st - 1) / st, o0: o0}
			for t := 0; t < spec.Kernel[a]; t++ {
				if (t*dl)%st == r {
					ap.tap = append(ap.tap, t)
					ap.tapIn = append(ap.tapIn, (o0+pad-t*dl)/st)
				}
			}
			axes[a] = append(axes[a], ap)
		}
	}
	k := spec.Kernel
	var phases []convPhase
	for _, pd := range axes[0] {
		for _, ph := range axes[1] {
			for _, pw := range axes[2] {
				var c convPhase
				for a, ap := range [3]axisPhase{pd, ph, pw} {
					c.tap[a], c.tapIn[a] = ap.tap, ap.tapIn
					c.step[a], c.base[a] = 1, 0
					c.nq[a] = ap.nq
					c.outBase[a], c.outStep[a] = ap.o0, max(spec.Stride[a], 1)
				}
				tD, tH, tW := len(c.tap[0]), len(c.tap[1]), len(c.tap[2])
				T := tD * tH * tW
				c.a = gemm.Pack(spec.Cout, spec.Cin*T, func(co, p int) float32 {
					ci, t := p/T, p%T
					kd, kh, kw := c.tap[0][t/(tH*tW)], c.tap[1][(t/tW)%tH], c.tap[2][t%tW]
					return weights[(((ci*spec.Cout+co)*k[0]+kd)*k[1]+kh)*k[2]+kw]
				})
				phases = append(phases, c)
			}
		}
	}
	return phases
}

// checkConvSpec validates a spec beyond ConvSpec.Out: sizes bounded,
// strides and dilations not negative, a known activation.
func checkConvSpec(s ConvSpec) ([3]int, error) {
	if s.N > maxConvDim || s.Cin > maxConvDim || s.Cout > maxConvDim {
		return [3]int{}, fmt.Errorf("%w: conv N=%d Cin=%d Cout=%d too large", ErrShape, s.N, s.Cin, s.Cout)
	}
	for a := 0; a < 3; a++ {
		for _, v := range []int{s.In[a], s.Kernel[a], s.Stride[a], s.Dilation[a], s.PadBegin[a], s.PadEnd[a], s.OutputPadding[a]} {
			if v < 0 || v > maxConvDim {
				return [3]int{}, fmt.Errorf("%w: conv axis %d: value %d out of range", ErrShape, a, v)
			}
		}
	}
	if err := s.Act.valid(); err != nil {
		return [3]int{}, err
	}
	out, err := s.Out()
	if err != nil {
		return out, err
	}
	// Every tensor of the call must be addressable.
	const maxElems = 1 << 40
	if int64(s.N)*int64(s.Cin)*int64(Voxels(s.In)) > maxElems || int64(s.N)*int64(s.Cout)*int64(Voxels(out)) > maxElems ||
		int64(s.Cout)*int64(s.Cin)*int64(Voxels(s.Kernel)) > maxElems {
		return out, fmt.Errorf("%w: conv tensors too large", ErrShape)
	}
	return out, nil
}

func (c *cpuBackend) RunConv(cv *Conv, dst, src *Buffer) error {
	if cv == nil || cv.owner != Backend(c) {
		return fmt.Errorf("%w: conv prepared by another backend", ErrBackend)
	}
	pl, ok := cv.impl.(*convPlan)
	if !ok || pl == nil {
		return fmt.Errorf("%w: conv released", ErrBackend)
	}
	s := cv.Spec
	inVox, outVox := Voxels(s.In), Voxels(cv.Out)
	y, x, err := c.srcDst("conv", src, s.N*s.Cin*inVox, dst, s.N*s.Cout*outVox)
	if err != nil {
		return err
	}
	if err := checkDistinct("conv", dst, src); err != nil {
		return err
	}
	if pl.blocks != nil {
		for n := 0; n < s.N; n++ {
			gemm.Run(pl.blocks, inVox, &blockPass{
				src: x[n*s.Cin*inVox : (n+1)*s.Cin*inVox], dst: y[n*s.Cout*outVox : (n+1)*s.Cout*outVox],
				in: s.In, out: cv.Out, k: s.Kernel, cout: s.Cout, bias: pl.bias, act: s.Act,
			})
		}
		return nil
	}
	in := s.In
	in[2] = pl.layout.rowLen()
	var xp []float32
	if !pl.layout.plain(s.In[2]) {
		buf, err := c.Alloc(Float32, s.Cin*Voxels(in))
		if err != nil {
			return err
		}
		defer c.Free(buf)
		xp = buf.f32[:s.Cin*Voxels(in)]
	}
	for n := 0; n < s.N; n++ {
		xn := x[n*s.Cin*inVox : (n+1)*s.Cin*inVox]
		if xp != nil {
			layRows(xp, xn, s.In[2], pl.layout)
			xn = xp
		}
		for i := range pl.phases {
			ph := &pl.phases[i]
			p := &convPass{
				ph: ph, src: xn, dst: y[n*s.Cout*outVox : (n+1)*s.Cout*outVox],
				in: in, subLen: pl.layout.subLen, out: cv.Out, cout: s.Cout, bias: pl.bias, act: s.Act,
			}
			p.pitch = ph.nq[2]
			if pl.layout.sW == 1 && ph.step[1] == 1 {
				p.pitch, p.linear = pl.layout.subLen, true
			}
			p.contig = ph.nq == cv.Out && p.pitch == ph.nq[2]
			gemm.Run(ph.a, ph.nq[0]*ph.nq[1]*p.pitch, p)
		}
	}
	return nil
}

// layRows copies rows of w values from src into dst in layout l.
func layRows(dst, src []float32, w int, l rowLayout) {
	rl := l.rowLen()
	rows := len(src) / w
	par.For(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			d, sr := dst[r*rl:r*rl+rl], src[r*w:r*w+w]
			if l.sW == 1 {
				clear(d[:l.padL])
				copy(d[l.padL:l.padL+w], sr)
				clear(d[l.padL+w:])
				continue
			}
			for rho := 0; rho < l.sW; rho++ {
				sub := d[rho*l.subLen : rho*l.subLen+l.subLen]
				for i := range sub {
					if x := rho + l.sW*i - l.padL; uint(x) < uint(w) {
						sub[i] = sr[x]
					} else {
						sub[i] = 0
					}
				}
			}
		}
	})
}

func (c *cpuBackend) ReleaseConv(cv *Conv) {
	if cv != nil && cv.owner == Backend(c) {
		cv.impl = nil
	}
}

// convPass is one phase of a convolution over one volume of the batch, as
// the gemm.Source of its implicit GEMM: row p is (input channel, tap);
// column j is voxel j of the phase's output grid (nq), its rows pitch
// columns apart. With a W stride of 1, the pitch is the input sub-row's
// length (the columns past nq[2] are computed and dropped): then, with an
// H stride of 1 too, consecutive columns read consecutive input values
// across rows as well (linear), so almost every strip reads its im2col
// rows in place.
type convPass struct {
	ph       *convPhase
	src, dst []float32 // this volume: Cin×In (rows laid out) and Cout×Out
	in, out  [3]int    // in[2] is the laid-out row length
	subLen   int
	cout     int
	bias     []float32
	act      Activation
	pitch    int
	linear   bool
	contig   bool // the phase covers the whole output: column j is output voxel j
}

// segment is a run of columns along one row of the grid: n columns, the
// first v of them output voxels (the rest past nq[2]).
type segment struct {
	j, n, v    int // first column (relative to the strip), counts
	qd, qh, qw int
}

// segments cuts columns j0..j0+nr-1 into runs along rows of the grid.
func (p *convPass) segments(seg *[gemm.MaxNR]segment, j0, nr int) []segment {
	nqH, nqW, pw := p.ph.nq[1], p.ph.nq[2], p.pitch
	out := seg[:0]
	for j := 0; j < nr; {
		c := j0 + j
		qw, qh, qd := c%pw, (c/pw)%nqH, c/(pw*nqH)
		n := min(nr-j, pw-qw)
		out = append(out, segment{j: j, n: n, v: max(min(n, nqW-qw), 0), qd: qd, qh: qh, qw: qw})
		j += n
	}
	return out
}

// Rows gives the rows of the im2col matrix for a strip: a pointer into
// the input itself where the strip's w values lie there in order (one run
// along a grid row inside its input sub-row or, when linear, grid rows of
// one D plane whose input rows all exist); a row entirely in the D or H
// padding, Zero; anything else gathered into buf.
func (p *convPass) Rows(rows []*float32, buf []float32, k0, kc, j0, nr, w int) {
	var segBuf [gemm.MaxNR]segment
	segs := p.segments(&segBuf, j0, nr)
	ph := p.ph
	D, H, RL, SL := p.in[0], p.in[1], p.in[2], p.subLen
	s0, sl := segs[0], segs[len(segs)-1]
	single := len(segs) == 1
	direct := convDirect && (single || p.linear && s0.qd == sl.qd)
	sd := s0.qd*ph.step[0] + ph.base[0]
	sh := s0.qh*ph.step[1] + ph.base[1]
	shl := sl.qh*ph.step[1] + ph.base[1] // the last segment's (same D plane when direct)
	base := (sd*H+sh)*RL + s0.qw
	for r, kr := range ph.rows[k0 : k0+kc] {
		if direct {
			if uint(sd+int(kr.d)) >= uint(D) || single && uint(sh+int(kr.h)) >= uint(H) {
				rows[r] = &gemm.Zero[0]
				continue
			}
			// Columns past nr read whatever follows: they are dropped.
			if at := base + kr.off; uint(sh+int(kr.h)) < uint(H) && uint(shl+int(kr.h)) < uint(H) && at+w <= len(p.src) {
				rows[r] = &p.src[at]
				continue
			}
		}
		row := buf[r*w : r*w+w]
		rows[r] = &row[0]
		clear(row[nr:])
		// The sub-row of this tap in input row (0, 0).
		sub := kr.off - int(kr.w) - (int(kr.d)*H+int(kr.h))*RL
		for _, s := range segs {
			o := row[s.j : s.j+s.n]
			id := s.qd*ph.step[0] + ph.base[0] + int(kr.d)
			ih := s.qh*ph.step[1] + ph.base[1] + int(kr.h)
			if uint(id) >= uint(D) || uint(ih) >= uint(H) {
				clear(o)
				continue
			}
			line := p.src[sub+(id*H+ih)*RL : sub+(id*H+ih)*RL+SL]
			iw0 := s.qw + int(kr.w) // >= 0: the layout pads the front
			hi := max(min(SL-iw0, s.v), 0)
			copy(o[:hi], line[iw0:iw0+hi])
			clear(o[hi:])
		}
	}
}

func (p *convPass) Store(acc []float32, j0, nr, w int) {
	outVox := p.out[0] * p.out[1] * p.out[2]
	if p.contig {
		for co := 0; co < p.cout; co++ {
			row := p.dst[co*outVox+j0 : co*outVox+j0+nr]
			a := acc[co*w : co*w+nr]
			var b float32
			if p.bias != nil {
				b = p.bias[co]
			}
			for j := range row {
				row[j] = a[j] + b
			}
			p.act.applyAll(row)
		}
		return
	}
	var segBuf [gemm.MaxNR]segment
	segs := p.segments(&segBuf, j0, nr)
	ph := p.ph
	H, W := p.out[1], p.out[2]
	var tmp [gemm.MaxNR]float32
	for co := 0; co < p.cout; co++ {
		var b float32
		if p.bias != nil {
			b = p.bias[co]
		}
		t := tmp[:nr]
		for j := range t {
			t[j] = acc[co*w+j] + b
		}
		p.act.applyAll(t)
		plane := p.dst[co*outVox : co*outVox+outVox]
		for _, s := range segs {
			od := ph.outBase[0] + ph.outStep[0]*s.qd
			oh := ph.outBase[1] + ph.outStep[1]*s.qh
			line := plane[(od*H+oh)*W : (od*H+oh)*W+W]
			ow := ph.outBase[2] + ph.outStep[2]*s.qw
			for x, v := range t[s.j : s.j+s.v] {
				line[ow+x*ph.outStep[2]] = v
			}
		}
	}
}

// blockPass is the gemm.Source of a block transposed convolution (see
// convPlan.blocks) over one volume: column j is input voxel j, row
// co·taps + t the output voxel at tap t of its block in channel co.
type blockPass struct {
	src, dst   []float32
	in, out, k [3]int
	cout       int
	bias       []float32
	act        Activation
}

func (p *blockPass) Rows(rows []*float32, buf []float32, k0, kc, j0, nr, w int) {
	inVox := p.in[0] * p.in[1] * p.in[2]
	for r := 0; r < kc; r++ {
		ch := p.src[(k0+r)*inVox : (k0+r+1)*inVox]
		if j0+w <= inVox {
			rows[r] = &ch[j0]
			continue
		}
		row := buf[r*w : r*w+w]
		copy(row, ch[j0:j0+nr])
		clear(row[nr:])
		rows[r] = &row[0]
	}
}

func (p *blockPass) Store(acc []float32, j0, nr, w int) {
	H, W := p.in[1], p.in[2]
	OH, OW := p.out[1], p.out[2]
	kD, kH, kW := p.k[0], p.k[1], p.k[2]
	kvol := kD * kH * kW
	outVox := p.out[0] * OH * OW
	var tmp [gemm.MaxNR]float32
	for j := 0; j < nr; {
		c := j0 + j
		iw, ih, id := c%W, (c/W)%H, c/(W*H)
		n := min(nr-j, W-iw)
		for co := 0; co < p.cout; co++ {
			var b float32
			if p.bias != nil {
				b = p.bias[co]
			}
			plane := p.dst[co*outVox : (co+1)*outVox]
			for t := 0; t < kvol; t++ {
				kd, kh, kw := t/(kH*kW), (t/kW)%kH, t%kW
				v := tmp[:n]
				a := acc[(co*kvol+t)*w+j : (co*kvol+t)*w+j+n]
				for x := range v {
					v[x] = a[x] + b
				}
				p.act.applyAll(v)
				line := plane[((id*kD+kd)*OH+ih*kH+kh)*OW:]
				for x, y := range v {
					line[(iw+x)*kW+kw] = y
				}
			}
		}
		j += n
	}
}

// gemmPass is the gemm.Source of Backend.Gemm.
type gemmPass struct {
	b       []float32
	m, n, k int
	transB  bool
	dst, c  []float32
	cMode   int // 0 none, 1 full m×n, 2 row of n, 3 column of m
	beta    float32
}

func (g *gemmPass) Rows(rows []*float32, buf []float32, k0, kc, j0, nr, w int) {
	for r := 0; r < kc; r++ {
		p := k0 + r
		if !g.transB && j0+w <= g.n {
			rows[r] = &g.b[p*g.n+j0]
			continue
		}
		row := buf[r*w : r*w+w]
		rows[r] = &row[0]
		if !g.transB {
			copy(row[:nr], g.b[p*g.n+j0:p*g.n+j0+nr])
		} else {
			for j := 0; j < nr; j++ {
				row[j] = g.b[(j0+j)*g.k+p]
			}
		}
		clear(row[nr:])
	}
}

func (g *gemmPass) Store(acc []float32, j0, nr, w int) {
	for i := 0; i < g.m; i++ {
		row := g.dst[i*g.n+j0 : i*g.n+j0+nr]
		a := acc[i*w : i*w+nr]
		switch g.cMode {
		case 0:
			copy(row, a)
		case 1:
			c := g.c[i*g.n+j0 : i*g.n+j0+nr]
			for j := range row {
				row[j] = a[j] + g.beta*c[j]
			}
		case 2:
			c := g.c[j0 : j0+nr]
			for j := range row {
				row[j] = a[j] + g.beta*c[j]
			}
		case 3:
			bc := g.beta * g.c[i]
			for j := range row {
				row[j] = a[j] + bc
			}
		}
	}
}

// Gemm: c is read as m×n when cLen == m·n, else as a row of n values
// when cLen == n (so when m == n a vector is a row, as ONNX broadcasts a
// 1-D C), else as a column of m values when cLen == m.
func (c *cpuBackend) Gemm(dst, a, b, cm *Buffer, m, n, k int, transA, transB bool, alpha, beta float32, cLen int) error {
	const lim = 1 << 30
	if m <= 0 || n <= 0 || k <= 0 || m > lim || n > lim || k > lim {
		return fmt.Errorf("%w: gemm m=%d n=%d k=%d", ErrShape, m, n, k)
	}
	av, err := c.f32(a, m*k, "gemm a")
	if err != nil {
		return err
	}
	bv, err := c.f32(b, k*n, "gemm b")
	if err != nil {
		return err
	}
	d, err := c.f32(dst, m*n, "gemm destination")
	if err != nil {
		return err
	}
	g := &gemmPass{b: bv, m: m, n: n, k: k, transB: transB, dst: d, beta: beta}
	if cm != nil {
		switch cLen {
		case m * n:
			g.cMode = 1
		case n:
			g.cMode = 2
		case m:
			g.cMode = 3
		default:
			return fmt.Errorf("%w: gemm c of %d values for m=%d n=%d", ErrShape, cLen, m, n)
		}
		if g.c, err = c.f32(cm, cLen, "gemm c"); err != nil {
			return err
		}
	}
	var pk *gemm.Packed
	if transA {
		pk = gemm.Pack(m, k, func(i, p int) float32 { return alpha * av[p*m+i] })
	} else {
		pk = gemm.Pack(m, k, func(i, p int) float32 { return alpha * av[i*k+p] })
	}
	gemm.Run(pk, n, g)
	return nil
}
