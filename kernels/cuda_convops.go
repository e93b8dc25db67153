//go:build cuda

package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"
)

// cudaConv is a prepared convolution on the device: one allocation holding,
// per launch (phase), the weights packed [K][Cout] and the gather table
// ktab[k] = (ci, tD, tH, tW) as int32x4, then the bias.
//
// A convolution is one phase: K = Cin*kD*kH*kW, k = ((ci*kD+kd)*kH+kh)*kW+kw,
// t = kernel index times dilation, the output grid itself.
//
// A transposed convolution is split into sub-pixel phases, as the CPU
// backend does: along each axis the outputs o with (o + padBegin) ≡ r (mod
// stride) are reached only by the taps k with k·dilation ≡ r (mod stride),
// from input i = q - (k·dilation - r)/stride where o = r - padBegin +
// stride·q. Each phase is then an ordinary stride-1 gather over its grid of
// q (t = -(k·dilation - r)/stride) writing every stride-th output voxel:
// no work on the zeros of the dilated input, and no two phases write the
// same voxel. A phase with no taps writes bias (and act) alone.
type cudaConv struct {
	mem     cu.DevicePtr
	bias    cu.DevicePtr
	phases  []cudaConvPhase
	hasBias bool
}

// cudaConvPhase is one launch of a prepared convolution.
type cudaConvPhase struct {
	wt, ktab cu.DevicePtr
	k        int
	grid     [3]int // columns: gD x gH x gW grid points
	oOff     [3]int // output voxel of grid point g: oOff + oSt*g
	oSt      [3]int
	st, pad  [3]int // input base of g: g*st - pad
	// Host copies until uploaded.
	hostW []float32
	hostT []int32
}

// convTaps is one axis of a phase: kernel indices and their offsets t.
type convTaps struct{ k, t []int }

func (c *cudaBackend) PrepareConv(spec ConvSpec, weights, bias []float32) (*Conv, error) {
	out, err := spec.Out()
	if err != nil {
		return nil, err
	}
	if err := spec.Act.valid(); err != nil {
		return nil, err
	}
	for a := 0; a < 3; a++ {
		if spec.Stride[a] < 0 || spec.Dilation[a] < 0 {
			return nil, fmt.Errorf("%w: conv axis %d: stride %d dilation %d", ErrShape, a, spec.Stride[a], spec.Dilation[a])
		}
		if spec.In[a] > cudaMaxAxis || out[a] > cudaMaxAxis || spec.Kernel[a] > cudaMaxAxis ||
			max(spec.Stride[a], 1) > cudaMaxAxis || max(spec.Dilation[a], 1)*spec.Kernel[a] > cudaMaxAxis ||
			spec.PadBegin[a] > cudaMaxAxis || spec.PadEnd[a] > cudaMaxAxis {
			return nil, fmt.Errorf("%w: conv axis %d too large for the CUDA kernels", ErrShape, a)
		}
	}
	kvol, err := cudaProd("conv", spec.Kernel[0], spec.Kernel[1], spec.Kernel[2])
	if err != nil {
		return nil, err
	}
	kk, err := cudaProd("conv", spec.Cin, kvol)
	if err != nil {
		return nil, err
	}
	nw, err := cudaProd("conv", kk, spec.Cout)
	if err != nil {
		return nil, err
	}
	if _, err := cudaProd("conv", spec.N, spec.Cin, Voxels(spec.In)); err != nil {
		return nil, err
	}
	if _, err := cudaProd("conv", spec.N, spec.Cout, Voxels(out)); err != nil {
		return nil, err
	}
	if kk > math.MaxInt32 || spec.Cout > 65535*64 {
		return nil, fmt.Errorf("%w: conv Cin*kernel %d, Cout %d too large for the CUDA kernels", ErrShape, kk, spec.Cout)
	}
	if len(weights) != nw {
		return nil, fmt.Errorf("%w: conv weights hold %d values, want %d", ErrShape, len(weights), nw)
	}
	if spec.Bias && len(bias) != spec.Cout {
		return nil, fmt.Errorf("%w: conv bias holds %d values, want %d", ErrShape, len(bias), spec.Cout)
	}
	if !spec.Bias && len(bias) != 0 {
		return nil, fmt.Errorf("%w: conv bias given (%d values) but spec.Bias false", ErrShape, len(bias))
	}

	cout, cin := spec.Cout, spec.Cin
	kH, kW := spec.Kernel[1], spec.Kernel[2]
	var st, dl [3]int
	for a := 0; a < 3; a++ {
		st[a], dl[a] = max(spec.Stride[a], 1), max(spec.Dilation[a], 1)
	}
	// weight returns W[co][ci][kd][kh][kw] (transposed: W[ci][co][...]).
	weight := func(co, ci, kd, kh, kw int) float32 {
		t := (kd*kH+kh)*kW + kw
		if spec.Transpose {
			return weights[(ci*cout+co)*kvol+t]
		}
		return weights[(co*cin+ci)*kvol+t]
	}
	// phase packs the taps (per axis) of one launch.
	phase := func(taps [3]convTaps) cudaConvPhase {
		var ph cudaConvPhase
		nt := len(taps[0].k) * len(taps[1].k) * len(taps[2].k)
		ph.k = cin * nt
		ph.hostW = make([]float32, ph.k*cout)
		ph.hostT = make([]int32, 4*ph.k)
		k := 0
		for ci := 0; ci < cin; ci++ {
			for i, kd := range taps[0].k {
				for j, kh := range taps[1].k {
					for l, kw := range taps[2].k {
						for co := 0; co < cout; co++ {
							ph.hostW[k*cout+co] = weight(co, ci, kd, kh, kw)
						}
						ph.hostT[4*k] = int32(ci)
						ph.hostT[4*k+1] = int32(taps[0].t[i])
						ph.hostT[4*k+2] = int32(taps[1].t[j])
						ph.hostT[4*k+3] = int32(taps[2].t[l])
						k++
					}
				}
			}
		}
		return ph
	}
	cv := &cudaConv{hasBias: spec.Bias}
	if !spec.Transpose {
		var taps [3]convTaps
		for a := 0; a < 3; a++ {
			for k := 0; k < spec.Kernel[a]; k++ {
				taps[a].k = append(taps[a].k, k)
				taps[a].t = append(taps[a].t, k*dl[a])
			}
		}
		ph := phase(taps)
		ph.grid, ph.oSt, ph.st, ph.pad = out, [3]int{1, 1, 1}, st, spec.PadBegin
		cv.phases = append(cv.phases, ph)
	} else {
		for rd := 0; rd < st[0]; rd++ {
			for rh := 0; rh < st[1]; rh++ {
				for rw := 0; rw < st[2]; rw++ {
					r := [3]int{rd, rh, rw}
					var taps [3]convTaps
					var grid, off, q0 [3]int
					for a := 0; a < 3; a++ {
						for k := 0; k < spec.Kernel[a]; k++ {
							if (k*dl[a]-r[a])%st[a] == 0 {
								taps[a].k = append(taps[a].k, k)
								taps[a].t = append(taps[a].t, -(k*dl[a]-r[a])/st[a])
							}
						}
						// q0: the first q with o = r - pad + st*q >= 0.
						q0[a] = cudaCeilDiv(spec.PadBegin[a]-r[a], st[a])
						off[a] = r[a] - spec.PadBegin[a] + st[a]*q0[a]
						if off[a] < out[a] {
							grid[a] = (out[a] - off[a] + st[a] - 1) / st[a]
						}
					}
					if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 {
						continue // this phase has no output voxel
					}
					ph := phase(taps)
					ph.grid, ph.oOff, ph.oSt = grid, off, st
					ph.st, ph.pad = [3]int{1, 1, 1}, [3]int{-q0[0], -q0[1], -q0[2]}
					cv.phases = append(cv.phases, ph)
				}
			}
		}
	}

	// One allocation: per phase weights and table (256-byte aligned), then
	// the bias.
	var size int64
	offs := make([][2]int64, len(cv.phases))
	for i, ph := range cv.phases {
		offs[i][0] = size
		size = (size + int64(len(ph.hostW))*4 + 255) &^ 255
		offs[i][1] = size
		size = (size + int64(len(ph.hostT))*4 + 255) &^ 255
	}
	biasOff := size
	size += int64(max(cout, 1)) * 4
	err = c.do(func() error {
		mem, err := cu.MemAlloc(size)
		if err != nil {
			return err
		}
		cv.mem, cv.bias = mem, mem+cu.DevicePtr(biasOff)
		for i := range cv.phases {
			ph := &cv.phases[i]
			ph.wt, ph.ktab = mem+cu.DevicePtr(offs[i][0]), mem+cu.DevicePtr(offs[i][1])
			if len(ph.hostW) > 0 {
				if err := cu.MemcpyHtoD(ph.wt, unsafe.Pointer(&ph.hostW[0]), int64(len(ph.hostW))*4); err != nil {
					return err
				}
				if err := cu.MemcpyHtoD(ph.ktab, unsafe.Pointer(&ph.hostT[0]), int64(len(ph.hostT))*4); err != nil {
					return err
				}
			}
		}
		if spec.Bias {
			return cu.MemcpyHtoD(cv.bias, unsafe.Pointer(&bias[0]), int64(cout)*4)
		}
		return nil
	})
	for i := range cv.phases {
		cv.phases[i].hostW, cv.phases[i].hostT = nil, nil
	}
	if err != nil {
		if cv.mem != 0 {
			_ = c.do(func() error { return cu.MemFree(cv.mem) })
		}
		return nil, cudaErr("prepare conv", err)
	}
	return &Conv{Spec: spec, Out: out, owner: c, impl: cv}, nil
}

// cudaCeilDiv is ceil(a/b) for b > 0 and any a.
func cudaCeilDiv(a, b int) int {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -((-a) / b)
}

func (c *cudaBackend) RunConv(cv *Conv, dst, src *Buffer) error {
	if cv == nil || cv.owner != Backend(c) {
		return fmt.Errorf("%w: conv prepared by another backend", ErrBackend)
	}
	p, ok := cv.impl.(*cudaConv)
	if !ok || p.mem == 0 {
		return fmt.Errorf("%w: conv released", ErrBackend)
	}
	s := cv.Spec
	if _, _, err := c.volumes("conv", dst, src, s.N, s.Cin, s.Cout, s.In, cv.Out); err != nil {
		return err
	}
	// The tile: output channels x voxels, 64 x 64, 32 x 128 or 16 x 256.
	kernel, tm, tn := "conv3d_igemm_m64", 64, 64
	switch {
	case s.Cout <= 16:
		kernel, tm, tn = "conv3d_igemm_m16", 16, 256
	case s.Cout <= 32:
		kernel, tm, tn = "conv3d_igemm_m32", 32, 128
	}
	return c.do(func() error {
		for _, ph := range p.phases {
			ncol := Voxels(ph.grid)
			grid := dim3{(ncol + tn - 1) / tn, (s.Cout + tm - 1) / tm, min(s.N, 65535)}
			if grid[0] > math.MaxInt32 {
				return fmt.Errorf("%w: conv output of %d voxels too large for one launch", ErrShape, ncol)
			}
			err := c.launch(kernel, grid, linBlock, dst, src, ph.wt, ph.ktab, p.bias,
				s.N, s.Cin, s.Cout, ph.k, s.In[0], s.In[1], s.In[2],
				ph.grid[0], ph.grid[1], ph.grid[2], cv.Out[0], cv.Out[1], cv.Out[2],
				ph.oOff[0], ph.oOff[1], ph.oOff[2], ph.oSt[0], ph.oSt[1], ph.oSt[2],
				ph.st[0], ph.st[1], ph.st[2], ph.pad[0], ph.pad[1], ph.pad[2],
				p.hasBias, int(s.Act.Kind), s.Act.Alpha)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *cudaBackend) ReleaseConv(cv *Conv) {
	if cv == nil || cv.owner != Backend(c) {
		return
	}
	p, ok := cv.impl.(*cudaConv)
	if !ok || p.mem == 0 {
		return
	}
	mem := p.mem
	p.mem = 0
	_ = c.do(func() error { return cu.MemFree(mem) })
}

func (c *cudaBackend) Gemm(dst, a, b, cm *Buffer, m, n, k int, transA, transB bool, alpha, beta float32, cLen int) error {
	const lim = 1 << 31
	if m <= 0 || n <= 0 || k <= 0 || m > lim || n > lim || k > lim {
		return fmt.Errorf("%w: gemm m=%d n=%d k=%d", ErrShape, m, n, k)
	}
	na, err := cudaProd("gemm", m, k)
	if err != nil {
		return err
	}
	nb, err := cudaProd("gemm", k, n)
	if err != nil {
		return err
	}
	nd, err := cudaProd("gemm", m, n)
	if err != nil {
		return err
	}
	if (m+63)/64 > 65535 {
		return fmt.Errorf("%w: gemm m=%d too large for the CUDA kernel", ErrShape, m)
	}
	if err := c.f32(a, na, "gemm a"); err != nil {
		return err
	}
	if err := c.f32(b, nb, "gemm b"); err != nil {
		return err
	}
	if err := c.f32(dst, nd, "gemm destination"); err != nil {
		return err
	}
	if err := checkDistinct("gemm", dst, a, b); err != nil {
		return err
	}
	mode := 0
	if cm != nil {
		switch cLen {
		case nd:
			mode = 3
		case n:
			mode = 1
		case m:
			mode = 2
		default:
			return fmt.Errorf("%w: gemm c of %d values (want %d, %d or %d)", ErrShape, cLen, n, m, nd)
		}
		if err := c.f32(cm, cLen, "gemm c"); err != nil {
			return err
		}
		if cm == dst && mode != 3 {
			return fmt.Errorf("%w: gemm in place needs a c of m×n values", ErrShape)
		}
	}
	var cp any = cu.DevicePtr(0)
	if cm != nil {
		cp = cm
	}
	grid := dim3{(n + 63) / 64, (m + 63) / 64, 1}
	return c.run("gemm_tiled", grid, linBlock, dst, a, b, cp, m, n, k, transA, transB, alpha, beta, mode)
}
