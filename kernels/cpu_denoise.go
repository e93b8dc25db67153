package kernels

import (
	"fmt"
	"math"
	"sync"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

// Denoising filters of the CPU backend: a separable Gaussian, a 3D
// bilateral filter and non-local means, all of one float32 volume of
// size (D, H, W), parallel over cores.
//
// Borders. Gaussian and Bilateral read neighbours outside the volume from
// its mirror image as scipy.ndimage's "reflect" (d c b a | a b c d), so
// that a bilateral filter with a huge range sigma is exactly the Gaussian
// with the same sigmas and radius. NLM (scikit-image's fast-mode
// denoise_nl_means, NLMParams): the search window holds only voxels
// inside the volume, and patches that reach outside it read the volume
// mirrored as numpy.pad(mode="reflect") (c b | a b c, the edge voxel not
// repeated).

// maxDenoiseRadius bounds every window radius (Gaussian, bilateral, NLM
// patch and search), so that a parameter cannot ask for absurd work.
const maxDenoiseRadius = 128

// denoiseVolume checks the size and both buffers of a denoise operation
// and returns the voxel slices.
func (c *cpuBackend) denoiseVolume(op string, dst, src *Buffer, size [3]int) (d, s []float32, err error) {
	n := 1
	for a, v := range size {
		if v <= 0 || v > maxNIfTISide {
			return nil, nil, fmt.Errorf("%w: %s: size %v (axis %d)", ErrShape, op, size, a)
		}
		n *= v
	}
	if s, err = c.f32(src, n, op+" source"); err != nil {
		return nil, nil, err
	}
	if d, err = c.f32(dst, n, op+" destination"); err != nil {
		return nil, nil, err
	}
	return d, s, nil
}

// maxNIfTISide bounds one side of a volume (a NIfTI dim is an int16).
const maxNIfTISide = 1 << 15

// reflectIndex maps i to [0, n) by mirroring as scipy.ndimage "reflect"
// (the edge repeated), periodically when i is far outside.
func reflectIndex(i, n int) int {
	p := 2 * n
	m := i % p
	if m < 0 {
		m += p
	}
	if m >= n {
		m = p - 1 - m
	}
	return m
}

// mirrorIndex maps i to [0, n) by mirroring as numpy.pad "reflect" (the
// edge not repeated).
func mirrorIndex(i, n int) int {
	if n == 1 {
		return 0
	}
	p := 2 * (n - 1)
	m := i % p
	if m < 0 {
		m += p
	}
	if m >= n {
		m = p - m
	}
	return m
}

// gaussianKernel1D is scipy.ndimage's _gaussian_kernel1d of order 0:
// exp(-x²/(2σ²)) for x in [-radius, radius], normalised to sum 1.
func gaussianKernel1D(sigma float64, radius int) []float64 {
	k := make([]float64, 2*radius+1)
	sum := 0.0
	for i := range k {
		x := float64(i - radius)
		k[i] = math.Exp(-0.5 * x * x / (sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// GaussianRadius is the half-width of scipy's truncated Gaussian kernel:
// int(truncate*sigma + 0.5).
func GaussianRadius(sigma, truncate float64) int {
	return int(truncate*sigma + 0.5)
}

func (c *cpuBackend) Gaussian(dst, src *Buffer, size [3]int, sigma [3]float64, truncate float64) error {
	d, s, err := c.denoiseVolume("gaussian", dst, src, size)
	if err != nil {
		return err
	}
	if !(truncate > 0) || math.IsInf(truncate, 0) {
		return fmt.Errorf("%w: gaussian: truncate %v, want a positive number", ErrShape, truncate)
	}
	var kernels [3][]float32
	active := 0
	for a, sg := range sigma {
		if !(sg >= 0) || math.IsInf(sg, 0) {
			return fmt.Errorf("%w: gaussian: sigma %v (axis %d), want a finite number >= 0", ErrShape, sigma, a)
		}
		if sg == 0 {
			continue
		}
		if truncate*sg >= maxDenoiseRadius {
			return fmt.Errorf("%w: gaussian: sigma %v truncated at %v gives radius %v (at most %d)", ErrShape, sg, truncate, truncate*sg, maxDenoiseRadius)
		}
		r := GaussianRadius(sg, truncate)
		if r > maxDenoiseRadius {
			return fmt.Errorf("%w: gaussian: sigma %v truncated at %v gives radius %d (at most %d)", ErrShape, sg, truncate, r, maxDenoiseRadius)
		}
		if r == 0 {
			continue // a kernel of one tap, 1: the identity
		}
		k64 := gaussianKernel1D(sg, r)
		kernels[a] = make([]float32, len(k64))
		for i, v := range k64 {
			kernels[a][i] = float32(v)
		}
		active++
	}
	if active == 0 {
		copy(d, s)
		return nil
	}
	D, H, W := size[0], size[1], size[2]
	plane := H * W
	in := s
	if k := kernels[0]; k != nil {
		// Along D first, whole rows at once, into dst unless the plane
		// passes follow or dst is src: then into a pooled scratch volume.
		out := d
		if kernels[1] != nil || kernels[2] != nil || &d[0] == &s[0] {
			tb, err := c.Alloc(Float32, len(s))
			if err != nil {
				return err
			}
			defer c.Free(tb)
			out = tb.f32[:len(s)]
		}
		gaussRows(out, s, size, 0, k, 0, D*H)
		in = out
		if kernels[1] == nil && kernels[2] == nil {
			if &out[0] != &d[0] {
				copy(d, out)
			}
			return nil
		}
	}
	// Then each plane: along W into a scratch plane, along H from it into
	// dst, the plane staying in cache.
	kh, kw := kernels[1], kernels[2]
	par.For(D, 1, func(lo, hi int) {
		scratch := make([]float32, plane)
		pad := make([]float32, W+2*len(kw)/2)
		for z := lo; z < hi; z++ {
			pin, pout := in[z*plane:(z+1)*plane], d[z*plane:(z+1)*plane]
			switch {
			case kw != nil && kh != nil:
				gaussW(scratch, pin, W, kw, pad)
				gaussRows(pout, scratch, [3]int{1, H, W}, 1, kh, 0, H)
			case kw != nil:
				gaussW(pout, pin, W, kw, pad)
			default:
				copy(scratch, pin) // pin may be pout
				gaussRows(pout, scratch, [3]int{1, H, W}, 1, kh, 0, H)
			}
		}
	})
	return nil
}

// gaussW correlates every line of W voxels of in with the symmetric
// kernel k, borders reflected, into out (which may be in: each line is
// copied to pad first).
func gaussW(out, in []float32, W int, k, pad []float32) {
	r := len(k) / 2
	pad = pad[:W+2*r]
	kc := k[r]
	for line := 0; line+W <= len(in); line += W {
		row := in[line : line+W]
		copy(pad[r:], row)
		for i := 0; i < r; i++ {
			pad[i] = row[reflectIndex(i-r, W)]
			pad[r+W+i] = row[reflectIndex(W+i, W)]
		}
		o := out[line : line+W]
		if r == 4 { // sigma 1 truncated at 4: the usual case, unrolled
			k0, k1, k2, k3 := k[0], k[1], k[2], k[3]
			for x := range o {
				p := pad[x : x+9]
				o[x] = kc*p[4] + k3*(p[3]+p[5]) + k2*(p[2]+p[6]) + k1*(p[1]+p[7]) + k0*(p[0]+p[8])
			}
			continue
		}
		for x := range o {
			p := pad[x : x+2*r+1]
			acc := kc * p[r]
			for j := 0; j < r; j++ {
				acc += k[j] * (p[j] + p[2*r-j])
			}
			o[x] = acc
		}
	}
}

// gaussRows correlates along axis a (0: D, 1: H) with the symmetric
// kernel k, borders reflected, whole rows of W voxels at once: the rows
// [lo, hi) of the D×H rows of out (split between workers when a is 0).
func gaussRows(out, in []float32, size [3]int, a int, k []float32, lo, hi int) {
	D, H, W := size[0], size[1], size[2]
	r := len(k) / 2
	do := func(lo, hi int) {
		for line := lo; line < hi; line++ {
			dd, hh := line/H, line%H
			src := func(j int) []float32 {
				var idx int
				if a == 1 {
					idx = dd*H + reflectIndex(hh+j, H)
				} else {
					idx = reflectIndex(dd+j, D)*H + hh
				}
				return in[idx*W : (idx+1)*W]
			}
			o := out[line*W : (line+1)*W]
			c := src(0)
			c = c[:len(o)]
			kc := k[r]
			// The centre and the nearest pair first, then two pairs per
			// sweep over the row.
			l1, h1 := src(-1)[:len(o)], src(1)[:len(o)]
			k1 := k[r-1]
			for x := range o {
				o[x] = kc*c[x] + k1*(l1[x]+h1[x])
			}
			j := 0
			for ; j+1 < r-1; j += 2 {
				la, ha := src(j - r)[:len(o)], src(r - j)[:len(o)]
				lb, hb := src(j + 1 - r)[:len(o)], src(r - j - 1)[:len(o)]
				ka, kb := k[j], k[j+1]
				for x := range o {
					o[x] += ka*(la[x]+ha[x]) + kb*(lb[x]+hb[x])
				}
			}
			for ; j < r-1; j++ {
				la, ha := src(j - r)[:len(o)], src(r - j)[:len(o)]
				ka := k[j]
				for x := range o {
					o[x] += ka * (la[x] + ha[x])
				}
			}
		}
	}
	if a == 0 {
		par.For(hi-lo, max(1, 4096/W), func(l, h int) { do(lo+l, lo+h) })
		return
	}
	do(lo, hi)
}

// expNeg returns exp(-x) for x >= 0 to about 1e-7 relative (0 from x =
// 80 on, where exp(-x) < 2e-35): a table of exp(-i/256) times the
// second-order Taylor series of exp(-d) for the remainder d < 1/256
// (error below d³/6 < 1e-8). It is the range and patch weight of
// Bilateral and NLM, several times faster than math.Exp.
func expNeg(x float32) float32 {
	if !(x < expTabMax) {
		return 0
	}
	i := int32(x * expTabScale)
	d := x - float32(i)*(1.0/expTabScale)
	return expTab[i] * (1 - d*(1-0.5*d))
}

const (
	expTabScale = 256
	expTabMax   = 80
)

var expTab = func() *[expTabMax*expTabScale + 1]float32 {
	var t [expTabMax*expTabScale + 1]float32
	for i := range t {
		t[i] = float32(math.Exp(-float64(i) / expTabScale))
	}
	return &t
}()

// BilateralRadius is the window half-width Bilateral uses on one axis:
// r when it is given (r > 0), else ceil(3*sigma).
func BilateralRadius(sigma float64, r int) int {
	if r > 0 {
		return r
	}
	return int(math.Ceil(3 * sigma))
}

// Bilateral: out(x) = Σ w(y) v(y) / Σ w(y) over the box window of
// (2R+1) voxels per axis around x, with w(y) = exp(-Σ_a (y_a-x_a)²/(2σ_a²))
// · exp(-(v(y)-v(x))²/(2σr²)), neighbours outside the volume read from
// its reflection (scipy "reflect", as Gaussian). An axis of sigma 0 gets
// weight only at offset 0.
func (c *cpuBackend) Bilateral(dst, src *Buffer, size [3]int, p BilateralParams) error {
	d, s, err := c.denoiseVolume("bilateral", dst, src, size)
	if err != nil {
		return err
	}
	if !(p.SigmaRange > 0) || math.IsInf(p.SigmaRange, 0) {
		return fmt.Errorf("%w: bilateral: range sigma %v, want a positive number", ErrShape, p.SigmaRange)
	}
	var rad [3]int
	var wax [3][]float32
	for a := range 3 {
		sg := p.SigmaSpatial[a]
		if !(sg >= 0) || math.IsInf(sg, 0) || p.Radius[a] < 0 || sg > maxDenoiseRadius {
			return fmt.Errorf("%w: bilateral: spatial sigma %v radius %v (axis %d)", ErrShape, p.SigmaSpatial, p.Radius, a)
		}
		rad[a] = BilateralRadius(sg, p.Radius[a])
		if rad[a] > maxDenoiseRadius {
			return fmt.Errorf("%w: bilateral: radius %d on axis %d (at most %d)", ErrShape, rad[a], a, maxDenoiseRadius)
		}
		wax[a] = make([]float32, 2*rad[a]+1)
		for i := range wax[a] {
			x := float64(i - rad[a])
			switch {
			case x == 0:
				wax[a][i] = 1
			case sg > 0:
				wax[a][i] = float32(math.Exp(-0.5 * x * x / (sg * sg)))
			}
		}
	}
	// Work from a copy when filtering in place.
	if &d[0] == &s[0] {
		s = append([]float32(nil), s...)
	}
	D, H, W := size[0], size[1], size[2]
	rd, rh, rw := rad[0], rad[1], rad[2]
	inv := float32(1 / (2 * p.SigmaRange * p.SigmaRange))
	if math.IsInf(float64(inv), 0) {
		return fmt.Errorf("%w: bilateral: range sigma %v too small", ErrShape, p.SigmaRange)
	}
	par.For(D*H, max(1, 2048/W), func(lo, hi int) {
		pad := make([]float32, W+2*rw)
		num := make([]float32, W)
		den := make([]float32, W)
		for line := lo; line < hi; line++ {
			z, y := line/H, line%H
			cen := s[line*W : (line+1)*W]
			clear(num)
			clear(den)
			for kd := -rd; kd <= rd; kd++ {
				wd := wax[0][kd+rd]
				if wd == 0 {
					continue
				}
				zz := reflectIndex(z+kd, D)
				for kh := -rh; kh <= rh; kh++ {
					wdh := wd * wax[1][kh+rh]
					if wdh == 0 {
						continue
					}
					yy := reflectIndex(y+kh, H)
					row := s[(zz*H+yy)*W : (zz*H+yy+1)*W]
					copy(pad[rw:], row)
					for i := 0; i < rw; i++ {
						pad[i] = row[reflectIndex(i-rw, W)]
						pad[rw+W+i] = row[reflectIndex(W+i, W)]
					}
					for kw := 0; kw <= 2*rw; kw++ {
						ws := wdh * wax[2][kw]
						if ws == 0 {
							continue
						}
						nb := pad[kw : kw+W]
						nb = nb[:len(cen)]
						num := num[:len(cen)]
						den := den[:len(cen)]
						for x, cv := range cen {
							v := nb[x]
							dv := v - cv
							w := ws * expNeg(dv*dv*inv)
							num[x] += w * v
							den[x] += w
						}
					}
				}
			}
			o := d[line*W : (line+1)*W]
			for x := range o {
				o[x] = num[x] / den[x]
			}
		}
	})
	return nil
}

// NLM: for each voxel x, out(x) = Σ_y w(x,y) v(y) / Σ_y w(x,y) over the
// voxels y of the volume within SearchRadius of x along every axis, with
// w = exp(-max(Σ_u ((v(x+u) - v(y+u))² - 2σ²), 0) / ((2P+1)³ h²)) and u
// the patch offsets of NLMParams (scikit-image's fast mode: [1-P, P]³,
// just 0 when P is 0; patches mirrored at the borders as numpy
// "reflect").
//
// The algorithm runs over search offsets t rather than voxels: for each t
// the squared differences of the volume and its shift by t are box-summed
// over the patch, separably (rows, then columns, then a ring of planes),
// which is the naive definition's sum for every voxel at once in
// O(patch side) instead of O(patch volume) work. The sum is symmetric,
// so only half the offsets are computed, each weight counted for both
// voxels of the pair. The planes are split between workers; a worker adds
// the pairs that reach past its last plane to a spill buffer, merged at
// the end.
func (c *cpuBackend) NLM(dst, src *Buffer, size [3]int, p NLMParams) error {
	d, s, err := c.denoiseVolume("nlm", dst, src, size)
	if err != nil {
		return err
	}
	if p.PatchRadius < 0 || p.PatchRadius > maxDenoiseRadius || p.SearchRadius < 0 || p.SearchRadius > maxDenoiseRadius {
		return fmt.Errorf("%w: nlm: patch radius %d search radius %d (each 0 to %d)", ErrShape, p.PatchRadius, p.SearchRadius, maxDenoiseRadius)
	}
	if !(p.H > 0) || math.IsInf(p.H, 0) || !(p.Sigma >= 0) || math.IsInf(p.Sigma, 0) {
		return fmt.Errorf("%w: nlm: h %v sigma %v (h > 0, sigma >= 0)", ErrShape, p.H, p.Sigma)
	}
	D, H, W := size[0], size[1], size[2]
	P, S := p.PatchRadius, p.SearchRadius
	// The volume mirrored by P on every side (bounded: a patch radius far
	// beyond a thin volume's size would ask for a huge copy).
	PD, PH, PW := D+2*P, H+2*P, W+2*P
	if PD*PH*PW > 8*D*H*W+(1<<24) {
		return fmt.Errorf("%w: nlm: patch radius %d too large for a volume of %v", ErrShape, P, size)
	}
	q := make([]float32, PD*PH*PW)
	par.For(PD*PH, max(1, 4096/PW), func(lo, hi int) {
		for line := lo; line < hi; line++ {
			z, y := mirrorIndex(line/PH-P, D), mirrorIndex(line%PH-P, H)
			row := s[(z*H+y)*W : (z*H+y+1)*W]
			o := q[line*PW : (line+1)*PW]
			for x := range o {
				o[x] = row[mirrorIndex(x-P, W)]
			}
		}
	})
	n := D * H * W
	// The offset 0 has d2 = 0 and weight 1 for every voxel.
	num := append([]float32(nil), s...)
	den := make([]float32, n)
	for i := range den {
		den[i] = 1
	}
	side := 2*P + 1
	lo, span := nlmPatchSpan(P)
	k := nlmConst{
		invPatch: float32(1 / float64(side*side*side)),
		bias:     float32(2 * p.Sigma * p.Sigma * float64(span*span*span) / float64(side*side*side)),
		invH2:    float32(1 / (p.H * p.H)),
		lo:       lo,
		span:     span,
	}
	if math.IsInf(float64(k.invH2), 0) {
		k.invH2 = math.MaxFloat32
	}
	type spill struct {
		z        int // first plane
		num, den []float32
	}
	var (
		mu     sync.Mutex
		spills []spill
	)
	w := par.Workers()
	par.For(D, (D+w-1)/w, func(zlo, zhi int) {
		ws := &nlmWork{
			diff:   make([]float32, PH*PW),
			hsum:   make([]float32, PH*W),
			wrow:   make([]float32, W),
			ring:   make([][]float32, side),
			rows:   make([][]float32, side),
			own:    [2][]float32{num, den},
			zhi:    zhi,
			planes: H * W,
		}
		for i := range ws.ring {
			ws.ring[i] = make([]float32, H*W)
		}
		ns := min(S, D-zhi) // planes past zhi that pairs reach
		ws.spill = [2][]float32{make([]float32, ns*H*W), make([]float32, ns*H*W)}
		// Bands of rows, every offset for one band before the next: the
		// band's scratch rows and accumulators stay in cache.
		for yb := 0; yb < H; yb += nlmBand {
			yb1 := min(yb+nlmBand, H)
			for td := 0; td <= S; td++ {
				ze := min(zhi, D-td)
				if zlo >= ze {
					continue
				}
				for th := -S; th <= S; th++ {
					if td == 0 && th < 0 {
						continue
					}
					ys, ye := max(yb, -th), min(yb1, H-th)
					if ys >= ye {
						continue
					}
					for tw := -S; tw <= S; tw++ {
						if td == 0 && th == 0 && tw <= 0 {
							continue
						}
						xs, xe := max(0, -tw), min(W, W-tw)
						if xs >= xe {
							continue
						}
						ws.offset(q, size, P, [3]int{td, th, tw}, [2]int{zlo, ze}, [2]int{ys, ye}, [2]int{xs, xe}, k)
					}
				}
			}
		}
		if ns > 0 {
			mu.Lock()
			spills = append(spills, spill{zhi, ws.spill[0], ws.spill[1]})
			mu.Unlock()
		}
	})
	for _, sp := range spills {
		o := sp.z * H * W
		for i, v := range sp.num {
			num[o+i] += v
			den[o+i] += sp.den[i]
		}
	}
	par.For(n, 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d[i] = num[i] / den[i]
		}
	})
	return nil
}

// nlmBand is the rows of one band of the CPU NLM's loop.
const nlmBand = 32

// nlmConst are the constants of the NLM weight exp(-max(d2sum*invPatch -
// bias, 0)*invH2), d2sum over the patch offsets lo..lo+span-1 on every
// axis.
type nlmConst struct {
	invPatch, bias, invH2 float32
	lo, span              int
}

// nlmPatchSpan gives the patch offsets of NLMParams on one axis, lo to
// lo+span-1: [1-P, P] as scikit-image's fast mode (its integral-image box
// excludes the face at -P), and the voxel itself when P is 0.
func nlmPatchSpan(P int) (lo, span int) {
	span = max(2*P, 1)
	return P + 1 - span, span
}

// nlmWork is one worker's scratch and accumulators: planes before zhi
// go to own (the whole volume's num and den), the ones from zhi on to
// spill.
type nlmWork struct {
	diff, hsum, wrow []float32
	ring, rows       [][]float32
	own, spill       [2][]float32
	zhi, planes      int
}

// acc returns num and den from voxel index i (of plane z), n values.
func (ws *nlmWork) acc(z, i, n int) (num, den []float32) {
	a := ws.own
	if z >= ws.zhi {
		a = ws.spill
		i -= ws.zhi * ws.planes
	}
	return a[0][i : i+n], a[1][i : i+n]
}

// offset adds, for the search offset t, the pairs (x, x+t) of the voxels
// x in the ranges given (those whose x+t lies in the volume): each
// weight times v(x+t) to x and times v(x) to x+t.
func (ws *nlmWork) offset(q []float32, size [3]int, P int, t [3]int, zr, yr, xr [2]int, k nlmConst) {
	H, W := size[1], size[2]
	PH, PW := H+2*P, W+2*P
	side := 2*P + 1
	ys, ye, xs, xe := yr[0], yr[1], xr[0], xr[1]
	nx := xe - xs
	diff, hsum, ring := ws.diff, ws.hsum, ws.ring
	rows := ws.rows
	// Padded-plane coordinates: voxel (y, x) is at (y+P, x+P); the rows
	// and columns needed are those of the range widened by P.
	for zp := zr[0] - P; zp < zr[1]+P; zp++ {
		a := q[(zp+P)*PH*PW:]
		b := q[(zp+t[0]+P)*PH*PW:]
		// Squared differences over rows ys-P..ye+P-1, columns
		// xs-P..xe+P-1, at padded coordinates; summed along W into hsum.
		for yp := ys; yp < ye+2*P; yp++ {
			ra := a[yp*PW+xs : yp*PW+xe+2*P]
			rb := b[(yp+t[1])*PW+xs+t[2] : (yp+t[1])*PW+xe+2*P+t[2]]
			rd := diff[:len(ra)]
			rb = rb[:len(ra)]
			for i, va := range ra {
				e := va - rb[i]
				rd[i] = e * e
			}
			boxRow(hsum[yp*W+xs:yp*W+xe], rd[k.lo+P:], k.span)
		}
		// Along H into the ring slot of plane zp.
		e := ring[(zp-(zr[0]-P))%side]
		for y := ys; y < ye; y++ {
			for i := range k.span {
				r := y + k.lo + P + i // padded row of voxel row y+lo+i
				rows[i] = hsum[r*W+xs : r*W+xe]
			}
			sumRows(e[y*W+xs:y*W+xe], k.span, rows)
		}
		z := zp - P // the plane whose patch planes are now all in the ring
		if z < zr[0] {
			continue
		}
		vPlane := q[(z+P)*PH*PW:]
		nbPlane := q[(z+t[0]+P)*PH*PW:]
		for y := ys; y < ye; y++ {
			wr := ws.wrow[:nx]
			for i := range k.span {
				// Plane z+lo+i, padded zp-P+lo+i (zp-2P up to zp are in the ring).
				rows[i] = ring[(zp-P+k.lo+i-(zr[0]-P))%side][y*W+xs : y*W+xe]
			}
			sumRows(wr, k.span, rows)
			// x gets w·v(x+t), x+t gets w·v(x) (the same row when t is
			// along W: the additions are then merely reordered).
			nb := nbPlane[(y+t[1]+P)*PW+xs+t[2]+P:]
			nb = nb[:nx]
			vr := vPlane[(y+P)*PW+xs+P:]
			vr = vr[:nx]
			nr, dr := ws.acc(z, (z*H+y)*W+xs, nx)
			nt, dt := ws.acc(z+t[0], ((z+t[0])*H+y+t[1])*W+xs+t[2], nx)
			for x, s := range wr {
				wt := expNeg(max((s*k.invPatch-k.bias)*k.invH2, 0))
				nr[x] += wt * nb[x]
				dr[x] += wt
				nt[x] += wt * vr[x]
				dt[x] += wt
			}
		}
	}
}

// boxRow sets dst[x] to the sum of src[x : x+side].
func boxRow(dst, src []float32, side int) {
	switch side {
	case 1:
		copy(dst, src)
	case 2:
		src = src[:len(dst)+1]
		for x := range dst {
			dst[x] = src[x] + src[x+1]
		}
	case 3:
		src = src[:len(dst)+2]
		for x := range dst {
			dst[x] = src[x] + src[x+1] + src[x+2]
		}
	case 4:
		src = src[:len(dst)+3]
		for x := range dst {
			dst[x] = (src[x] + src[x+1]) + (src[x+2] + src[x+3])
		}
	case 5:
		src = src[:len(dst)+4]
		for x := range dst {
			dst[x] = (src[x] + src[x+1]) + (src[x+2] + src[x+3]) + src[x+4]
		}
	default:
		for x := range dst {
			acc := float32(0)
			for _, v := range src[x : x+side] {
				acc += v
			}
			dst[x] = acc
		}
	}
}

// sumRows sets dst to the element-wise sum of rows[0:side].
func sumRows(dst []float32, side int, rows [][]float32) {
	n := len(dst)
	switch side {
	case 1:
		copy(dst, rows[0][:n])
	case 2:
		r0, r1 := rows[0][:n], rows[1][:n]
		for x := range dst {
			dst[x] = r0[x] + r1[x]
		}
	case 3:
		r0, r1, r2 := rows[0][:n], rows[1][:n], rows[2][:n]
		for x := range dst {
			dst[x] = r0[x] + r1[x] + r2[x]
		}
	case 4:
		r0, r1, r2, r3 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n]
		for x := range dst {
			dst[x] = (r0[x] + r1[x]) + (r2[x] + r3[x])
		}
	case 5:
		r0, r1, r2, r3, r4 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n], rows[4][:n]
		for x := range dst {
			dst[x] = (r0[x] + r1[x]) + (r2[x] + r3[x]) + r4[x]
		}
	default:
		copy(dst, rows[0][:n])
		for r := 1; r < side; r++ {
			row := rows[r][:n]
			for x := range dst {
				dst[x] += row[x]
			}
		}
	}
}
