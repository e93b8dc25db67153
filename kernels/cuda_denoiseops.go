//go:build cuda

package kernels

import (
	"fmt"
	"math"

	"gorgonia.org/cu"
)

// Largest radius of the shared-memory Gaussian kernels (GR_MAX in
// cuda_denoise.cu) and their tile lengths.
const (
	cudaGaussRMax  = 64
	cudaGaussTileW = 256
	cudaGaussTileS = 64
	// The CPU backend's bounds: every window radius, one side of a volume
	// (a NIfTI dim is an int16).
	cudaMaxRadius = 128
	cudaMaxSide   = 1 << 15
)

// denoiseVolume checks the size and buffers of a denoising filter. When
// dst is src (the CPU backend filters in place), it returns a scratch
// copy of src to read from, to be freed by the caller.
func (c *cudaBackend) denoiseVolume(op string, dst, src *Buffer, size [3]int) (n int, in *Buffer, tmp *Buffer, err error) {
	for a, v := range size {
		if v <= 0 || v > cudaMaxSide {
			return 0, nil, nil, fmt.Errorf("%w: %s: size %v (axis %d)", ErrShape, op, size, a)
		}
	}
	n = Voxels(size)
	if err := c.f32(src, n, op+" source"); err != nil {
		return 0, nil, nil, err
	}
	if err := c.f32(dst, n, op+" destination"); err != nil {
		return 0, nil, nil, err
	}
	if dst != src {
		return n, src, nil, nil
	}
	if tmp, err = c.scratch(n); err != nil {
		return 0, nil, nil, err
	}
	if err := c.Copy(tmp, src, n); err != nil {
		c.Free(tmp)
		return 0, nil, nil, err
	}
	return n, tmp, tmp, nil
}

// gaussWeights is scipy.ndimage's 1D Gaussian kernel: exp(-x²/(2σ²)) for
// x in [-r, r], normalised to sum 1 (float64, rounded at the end).
func gaussWeights(sigma float64, r int) []float32 {
	w := make([]float64, 2*r+1)
	sum := 0.0
	for i := range w {
		x := float64(i - r)
		w[i] = math.Exp(-0.5 * x * x / (sigma * sigma))
		sum += w[i]
	}
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = float32(v / sum)
	}
	return out
}

func (c *cudaBackend) Gaussian(dst, src *Buffer, size [3]int, sigma [3]float64, truncate float64) error {
	if !(truncate > 0) || math.IsInf(truncate, 0) {
		return fmt.Errorf("%w: gaussian: truncate %v, want a positive number", ErrShape, truncate)
	}
	for a, s := range sigma {
		if !(s >= 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%w: gaussian: sigma %v (axis %d), want a finite number >= 0", ErrShape, sigma, a)
		}
		// Compared as a float: int() of a huge one is undefined.
		if rf := truncate*s + 0.5; !(rf < cudaMaxRadius+1) {
			return fmt.Errorf("%w: gaussian: sigma %v truncated at %v gives radius %.0f (at most %d)", ErrShape, s, truncate, math.Floor(rf), cudaMaxRadius)
		}
	}
	n, src, tmpIn, err := c.denoiseVolume("gaussian", dst, src, size)
	if err != nil {
		return err
	}
	if tmpIn != nil {
		defer c.Free(tmpIn)
	}
	type pass struct{ axis, r, off int }
	var passes []pass
	var wts []float32
	for a := 0; a < 3; a++ {
		s := sigma[a]
		r := int(truncate*s + 0.5)
		if s == 0 || r == 0 { // untouched, or a kernel of one tap: 1
			continue
		}
		passes = append(passes, pass{a, r, len(wts)})
		wts = append(wts, gaussWeights(s, r)...)
	}
	if len(passes) == 0 {
		return c.Copy(dst, src, n)
	}
	wb, err := c.upload32(wts)
	if err != nil {
		return err
	}
	defer c.Free(wb)
	var tmp *Buffer
	if len(passes) > 1 {
		if tmp, err = c.scratch(n); err != nil {
			return err
		}
		defer c.Free(tmp)
	}
	// Buffers per pass, the last writing dst and src never written.
	var io [][2]*Buffer
	switch len(passes) {
	case 1:
		io = [][2]*Buffer{{src, dst}}
	case 2:
		io = [][2]*Buffer{{src, tmp}, {tmp, dst}}
	default:
		io = [][2]*Buffer{{src, dst}, {dst, tmp}, {tmp, dst}}
	}
	D, H, W := size[0], size[1], size[2]
	return c.do(func() error {
		for i, p := range passes {
			in, out := io[i][0], io[i][1]
			w := cu.DevicePtr(wb.ptr) + cu.DevicePtr(4*p.off)
			outer, l, inner := 1, D, H*W
			switch p.axis {
			case 1:
				outer, l, inner = D, H, W
			case 2:
				outer, l, inner = D*H, W, 1
			}
			var err error
			switch {
			case p.r > cudaGaussRMax || (p.axis != 2 && (l+cudaGaussTileS-1)/cudaGaussTileS > 65535):
				err = c.launch("gauss_axis_global", c.linGrid(n), linBlock, out, in, w, outer, l, inner, p.r)
			case p.axis == 2:
				grid := dim3{(W + cudaGaussTileW - 1) / cudaGaussTileW, min(outer, 65535), 1}
				err = c.launch("gauss_w", grid, dim3{cudaGaussTileW, 1, 1}, out, in, w, outer, W, p.r)
			default:
				grid := dim3{(inner + 31) / 32, (l + cudaGaussTileS - 1) / cudaGaussTileS, min(outer, 65535)}
				err = c.launch("gauss_s", grid, rowBlock, out, in, w, outer, l, inner, p.r)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// bilateralWindow returns the radii and the spatial weights of a
// bilateral window, laid out [dD][dH][dW]: the CPU backend's float32
// products (wD*wH)*wW of per-axis weights exp(-d²/(2σ²)), 1 at d = 0 and 0
// elsewhere on an axis of σ = 0.
func bilateralWindow(p BilateralParams) ([3]int, []float32, error) {
	var r [3]int
	var wax [3][]float32
	for a := 0; a < 3; a++ {
		s := p.SigmaSpatial[a]
		if !(s >= 0) || math.IsInf(s, 0) || p.Radius[a] < 0 || s > cudaMaxRadius {
			return r, nil, fmt.Errorf("%w: bilateral: spatial sigma %v radius %v (axis %d)", ErrShape, p.SigmaSpatial, p.Radius, a)
		}
		r[a] = p.Radius[a]
		if r[a] == 0 {
			r[a] = int(math.Ceil(3 * s))
		}
		if r[a] > cudaMaxRadius {
			return r, nil, fmt.Errorf("%w: bilateral: radius %d on axis %d (at most %d)", ErrShape, r[a], a, cudaMaxRadius)
		}
		wax[a] = make([]float32, 2*r[a]+1)
		for i := range wax[a] {
			x := float64(i - r[a])
			switch {
			case x == 0:
				wax[a][i] = 1
			case s > 0:
				wax[a][i] = float32(math.Exp(-0.5 * x * x / (s * s)))
			}
		}
	}
	w := make([]float32, 0, len(wax[0])*len(wax[1])*len(wax[2]))
	for _, wd := range wax[0] {
		for _, wh := range wax[1] {
			wdh := wd * wh
			for _, ww := range wax[2] {
				w = append(w, wdh*ww)
			}
		}
	}
	return r, w, nil
}

func (c *cudaBackend) Bilateral(dst, src *Buffer, size [3]int, p BilateralParams) error {
	if !(p.SigmaRange > 0) || math.IsInf(p.SigmaRange, 0) {
		return fmt.Errorf("%w: bilateral: range sigma %v, want a positive number", ErrShape, p.SigmaRange)
	}
	inv := float32(1 / (2 * p.SigmaRange * p.SigmaRange))
	if math.IsInf(float64(inv), 0) {
		return fmt.Errorf("%w: bilateral: range sigma %v too small", ErrShape, p.SigmaRange)
	}
	r, sw, err := bilateralWindow(p)
	if err != nil {
		return err
	}
	n, src, tmpIn, err := c.denoiseVolume("bilateral", dst, src, size)
	if err != nil {
		return err
	}
	if tmpIn != nil {
		defer c.Free(tmpIn)
	}
	wb, err := c.upload32(sw)
	if err != nil {
		return err
	}
	defer c.Free(wb)
	return c.run("bilateral", c.linGrid(n), linBlock, dst, src, wb, size[0], size[1], size[2], r[0], r[1], r[2], inv)
}

// cudaNLMMirror is how nlm mirrors patch voxels outside the volume: 0 as
// numpy.pad's "reflect" (scikit-image pads so), 1 as scipy's.
const cudaNLMMirror = 0

// cudaNLMHalo is the most PatchRadius+SearchRadius of the shared-memory
// NLM kernel (NLM_HALO in cuda_denoise.cu).
const cudaNLMHalo = 4

func (c *cudaBackend) NLM(dst, src *Buffer, size [3]int, p NLMParams) error {
	if p.PatchRadius < 0 || p.PatchRadius > cudaMaxRadius || p.SearchRadius < 0 || p.SearchRadius > cudaMaxRadius {
		return fmt.Errorf("%w: nlm: patch radius %d search radius %d (each 0 to %d)", ErrShape, p.PatchRadius, p.SearchRadius, cudaMaxRadius)
	}
	if !(p.H > 0) || math.IsInf(p.H, 0) || !(p.Sigma >= 0) || math.IsInf(p.Sigma, 0) {
		return fmt.Errorf("%w: nlm: h %v sigma %v (h > 0, sigma >= 0)", ErrShape, p.H, p.Sigma)
	}
	n, src, tmpIn, err := c.denoiseVolume("nlm", dst, src, size)
	if err != nil {
		return err
	}
	if tmpIn != nil {
		defer c.Free(tmpIn)
	}
	// The CPU backend's bound (on its mirrored copy of the volume): a
	// patch radius far beyond a thin volume's size.
	P := p.PatchRadius
	if (size[0]+2*P)*(size[1]+2*P)*(size[2]+2*P) > 8*n+(1<<24) {
		return fmt.Errorf("%w: nlm: patch radius %d too large for a volume of %v", ErrShape, P, size)
	}
	// The kernels divide the patch sum by (2P+1)³ before subtracting
	// twoVar: 2σ² for each of the patch's span³ voxels, over (2P+1)³.
	side := float64(2*P + 1)
	_, span := nlmPatchSpan(P)
	twoVar := 2 * p.Sigma * p.Sigma * float64(span*span*span) / (side * side * side)
	args := []any{dst, src, size[0], size[1], size[2],
		p.PatchRadius, p.SearchRadius, float32(twoVar), float32(1 / (p.H * p.H)), cudaNLMMirror}
	if p.PatchRadius+p.SearchRadius <= cudaNLMHalo {
		// Shared-memory tiles of 8^3 voxels (NLM_T) with their halo.
		grid := dim3{(size[2] + 7) / 8, (size[1] + 7) / 8, (size[0] + 7) / 8}
		return c.run("nlm_tiled", grid, dim3{8, 8, 8}, args...)
	}
	return c.run("nlm", c.linGrid(n), linBlock, args...)
}
