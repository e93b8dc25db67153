package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// confDenoise checks Gaussian, Bilateral and NLM against naive loops
// written here (float64), against PyTorch goldens (golden_denoise.py),
// against properties that tie them together, and on bad parameters.
func confDenoise(t *testing.T, b Backend) {
	t.Run("gaussian", func(t *testing.T) { confGaussian(t, b) })
	t.Run("bilateral", func(t *testing.T) { confBilateral(t, b) })
	t.Run("nlm", func(t *testing.T) { confNLM(t, b) })
	t.Run("golden", func(t *testing.T) { confDenoiseGolden(t, b) })
	t.Run("errors", func(t *testing.T) { confDenoiseErrors(t, b) })
}

// denoiseVol is a random volume with an edge (a bright half) so that the
// edge-preserving filters have something to preserve.
func denoiseVol(seed uint64, size [3]int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, size[0]*size[1]*size[2])
	for i := range v {
		x := i % size[2]
		base := float32(0)
		if x >= size[2]/2 {
			base = 100
		}
		v[i] = base + float32(r.NormFloat64()*20)
	}
	return v
}

// refReflect is scipy "reflect" by repeated folding.
func refReflect(i, n int) int {
	for i < 0 || i >= n {
		if i < 0 {
			i = -i - 1
		} else {
			i = 2*n - 1 - i
		}
	}
	return i
}

// refMirror is numpy "reflect" by repeated folding.
func refMirror(i, n int) int {
	if n == 1 {
		return 0
	}
	for i < 0 || i >= n {
		if i < 0 {
			i = -i
		} else {
			i = 2*(n-1) - i
		}
	}
	return i
}

func refAt(v []float32, size [3]int, z, y, x int) float64 {
	return float64(v[(z*size[1]+y)*size[2]+x])
}

// refGaussian is the 3D correlation with the product of scipy's three 1D
// kernels, every tap summed directly.
func refGaussian(v []float32, size [3]int, sigma [3]float64, truncate float64) []float32 {
	var k [3][]float64
	var r [3]int
	for a := range 3 {
		if sigma[a] > 0 {
			r[a] = int(truncate*sigma[a] + 0.5)
		}
		k[a] = make([]float64, 2*r[a]+1)
		sum := 0.0
		for i := range k[a] {
			x := float64(i - r[a])
			if r[a] == 0 {
				k[a][i] = 1
			} else {
				k[a][i] = math.Exp(-x * x / (2 * sigma[a] * sigma[a]))
			}
			sum += k[a][i]
		}
		for i := range k[a] {
			k[a][i] /= sum
		}
	}
	out := make([]float32, len(v))
	for z := 0; z < size[0]; z++ {
		for y := 0; y < size[1]; y++ {
			for x := 0; x < size[2]; x++ {
				acc := 0.0
				for i := -r[0]; i <= r[0]; i++ {
					for j := -r[1]; j <= r[1]; j++ {
						for l := -r[2]; l <= r[2]; l++ {
							w := k[0][i+r[0]] * k[1][j+r[1]] * k[2][l+r[2]]
							acc += w * refAt(v, size, refReflect(z+i, size[0]), refReflect(y+j, size[1]), refReflect(x+l, size[2]))
						}
					}
				}
				out[(z*size[1]+y)*size[2]+x] = float32(acc)
			}
		}
	}
	return out
}

func refBilateral(v []float32, size [3]int, p BilateralParams) []float32 {
	var r [3]int
	for a := range 3 {
		r[a] = p.Radius[a]
		if r[a] == 0 {
			r[a] = int(math.Ceil(3 * p.SigmaSpatial[a]))
		}
	}
	out := make([]float32, len(v))
	for z := 0; z < size[0]; z++ {
		for y := 0; y < size[1]; y++ {
			for x := 0; x < size[2]; x++ {
				c := refAt(v, size, z, y, x)
				num, den := 0.0, 0.0
				for i := -r[0]; i <= r[0]; i++ {
					for j := -r[1]; j <= r[1]; j++ {
						for l := -r[2]; l <= r[2]; l++ {
							e := 0.0
							for a, k := range [3]int{i, j, l} {
								if k != 0 {
									if p.SigmaSpatial[a] == 0 {
										e = math.Inf(1)
									} else {
										e += float64(k*k) / (2 * p.SigmaSpatial[a] * p.SigmaSpatial[a])
									}
								}
							}
							nv := refAt(v, size, refReflect(z+i, size[0]), refReflect(y+j, size[1]), refReflect(x+l, size[2]))
							w := math.Exp(-e - (nv-c)*(nv-c)/(2*p.SigmaRange*p.SigmaRange))
							num += w * nv
							den += w
						}
					}
				}
				out[(z*size[1]+y)*size[2]+x] = float32(num / den)
			}
		}
	}
	return out
}

// refNLM is NLMParams' definition, naively: the patch offsets are
// [1-P, P] on every axis (scikit-image's fast mode), just 0 when P is 0.
func refNLM(v []float32, size [3]int, p NLMParams) []float32 {
	P, S := p.PatchRadius, p.SearchRadius
	at := func(z, y, x int) float64 {
		return refAt(v, size, refMirror(z, size[0]), refMirror(y, size[1]), refMirror(x, size[2]))
	}
	lo := 1 - P
	if P == 0 {
		lo = 0
	}
	norm := float64((2*P + 1) * (2*P + 1) * (2*P + 1))
	out := make([]float32, len(v))
	for z := 0; z < size[0]; z++ {
		for y := 0; y < size[1]; y++ {
			for x := 0; x < size[2]; x++ {
				num, den := 0.0, 0.0
				for nz := max(0, z-S); nz <= min(size[0]-1, z+S); nz++ {
					for ny := max(0, y-S); ny <= min(size[1]-1, y+S); ny++ {
						for nx := max(0, x-S); nx <= min(size[2]-1, x+S); nx++ {
							d := 0.0
							for i := lo; i <= P; i++ {
								for j := lo; j <= P; j++ {
									for l := lo; l <= P; l++ {
										e := at(z+i, y+j, x+l) - at(nz+i, ny+j, nx+l)
										d += e*e - 2*p.Sigma*p.Sigma
									}
								}
							}
							w := math.Exp(-math.Max(d, 0) / (norm * p.H * p.H))
							num += w * refAt(v, size, nz, ny, nx)
							den += w
						}
					}
				}
				out[(z*size[1]+y)*size[2]+x] = float32(num / den)
			}
		}
	}
	return out
}

func runGaussian(t *testing.T, b Backend, v []float32, size [3]int, sigma [3]float64, truncate float64) []float32 {
	t.Helper()
	src, dst := upload(t, b, v), alloc(t, b, len(v))
	if err := b.Gaussian(dst, src, size, sigma, truncate); err != nil {
		t.Fatal(err)
	}
	return download(t, b, dst, len(v))
}

func runBilateral(t *testing.T, b Backend, v []float32, size [3]int, p BilateralParams) []float32 {
	t.Helper()
	src, dst := upload(t, b, v), alloc(t, b, len(v))
	if err := b.Bilateral(dst, src, size, p); err != nil {
		t.Fatal(err)
	}
	return download(t, b, dst, len(v))
}

func runNLM(t *testing.T, b Backend, v []float32, size [3]int, p NLMParams) []float32 {
	t.Helper()
	src, dst := upload(t, b, v), alloc(t, b, len(v))
	if err := b.NLM(dst, src, size, p); err != nil {
		t.Fatal(err)
	}
	return download(t, b, dst, len(v))
}

func confGaussian(t *testing.T, b Backend) {
	cases := []struct {
		size     [3]int
		sigma    [3]float64
		truncate float64
	}{
		{[3]int{7, 9, 11}, [3]float64{1, 1, 1}, 4},
		{[3]int{5, 13, 3}, [3]float64{0.7, 2, 1.3}, 4},
		{[3]int{9, 7, 5}, [3]float64{0, 1.5, 0}, 4},      // one axis
		{[3]int{3, 4, 5}, [3]float64{2, 3, 4}, 4},        // radius beyond the volume: folded again
		{[3]int{1, 1, 9}, [3]float64{1, 1, 1}, 2.5},      // single-voxel axes
		{[3]int{6, 6, 6}, [3]float64{0.1, 0.1, 1}, 4},    // radius 0 on two axes
		{[3]int{4, 5, 6}, [3]float64{1, 0.8, 1.2}, 1e-3}, // truncated to nothing
	}
	for _, tc := range cases {
		v := denoiseVol(uint64(tc.size[0]*100+tc.size[2]), tc.size)
		got := runGaussian(t, b, v, tc.size, tc.sigma, tc.truncate)
		closeTo(t, "gaussian", got, refGaussian(v, tc.size, tc.sigma, tc.truncate), 1e-4, 1e-5)
	}
	// sigma 0 is the identity, exactly.
	size := [3]int{5, 6, 7}
	v := denoiseVol(3, size)
	closeTo(t, "gaussian sigma 0", runGaussian(t, b, v, size, [3]float64{}, 4), v, 0, 0)
	// In place.
	src := upload(t, b, v)
	if err := b.Gaussian(src, src, size, [3]float64{1, 2, 1}, 4); err != nil {
		t.Fatal(err)
	}
	closeTo(t, "gaussian in place", download(t, b, src, len(v)), refGaussian(v, size, [3]float64{1, 2, 1}, 4), 1e-4, 1e-5)
	// A constant stays constant.
	c := make([]float32, 4*5*6)
	for i := range c {
		c[i] = -1000
	}
	closeTo(t, "gaussian of a constant", runGaussian(t, b, c, [3]int{4, 5, 6}, [3]float64{1, 1, 1}, 4), c, 0, 1e-6)
}

func confBilateral(t *testing.T, b Backend) {
	cases := []struct {
		size [3]int
		p    BilateralParams
	}{
		{[3]int{5, 7, 9}, BilateralParams{SigmaSpatial: [3]float64{1, 1, 1}, SigmaRange: 30}},
		{[3]int{3, 9, 8}, BilateralParams{SigmaSpatial: [3]float64{0, 1.2, 0.8}, SigmaRange: 15}},
		{[3]int{4, 3, 5}, BilateralParams{SigmaSpatial: [3]float64{0.5, 2, 1}, SigmaRange: 50, Radius: [3]int{1, 4, 6}}},
		{[3]int{1, 6, 7}, BilateralParams{SigmaSpatial: [3]float64{1, 1, 1}, SigmaRange: 5}},
	}
	for _, tc := range cases {
		v := denoiseVol(uint64(tc.size[1]*10+tc.size[2]), tc.size)
		got := runBilateral(t, b, v, tc.size, tc.p)
		closeTo(t, "bilateral", got, refBilateral(v, tc.size, tc.p), 1e-3, 1e-5)
	}
	// A huge range sigma makes it the Gaussian with the same sigmas, its
	// radius int(truncate*sigma+0.5).
	size := [3]int{7, 8, 9}
	v := denoiseVol(5, size)
	sigma := [3]float64{1.3, 0.9, 2}
	var rad [3]int
	for a := range 3 {
		rad[a] = int(3*sigma[a] + 0.5)
	}
	got := runBilateral(t, b, v, size, BilateralParams{SigmaSpatial: sigma, SigmaRange: 1e9, Radius: rad})
	closeTo(t, "bilateral with range sigma 1e9 vs gaussian", got, runGaussian(t, b, v, size, sigma, 3), 1e-4, 1e-5)
	// A tiny range sigma keeps every voxel (random values differ; the
	// reflected copies of a border voxel are equal to it).
	got = runBilateral(t, b, v, size, BilateralParams{SigmaSpatial: [3]float64{1, 1, 1}, SigmaRange: 1e-6})
	closeTo(t, "bilateral with range sigma 1e-6", got, v, 0, 1e-6) // edge voxels meet their reflection: 1 ulp
}

func confNLM(t *testing.T, b Backend) {
	cases := []struct {
		size [3]int
		p    NLMParams
	}{
		{[3]int{5, 6, 7}, NLMParams{PatchRadius: 1, SearchRadius: 2, H: 15, Sigma: 10}},
		{[3]int{7, 5, 3}, NLMParams{PatchRadius: 2, SearchRadius: 1, H: 25, Sigma: 0}},
		{[3]int{3, 8, 9}, NLMParams{PatchRadius: 0, SearchRadius: 3, H: 20, Sigma: 5}},
		{[3]int{2, 3, 11}, NLMParams{PatchRadius: 3, SearchRadius: 2, H: 30, Sigma: 20}}, // patch beyond the volume
		{[3]int{1, 1, 7}, NLMParams{PatchRadius: 1, SearchRadius: 2, H: 20, Sigma: 0}},
		{[3]int{9, 9, 9}, NLMParams{PatchRadius: 1, SearchRadius: 0, H: 20, Sigma: 0}},
		{[3]int{2, 3, 3}, NLMParams{PatchRadius: 9, SearchRadius: 1, H: 40, Sigma: 5}},   // a patch of 19³
		{[3]int{11, 4, 5}, NLMParams{PatchRadius: 1, SearchRadius: 4, H: 20, Sigma: 10}}, // pairs across worker planes
		{[3]int{3, 37, 6}, NLMParams{PatchRadius: 2, SearchRadius: 2, H: 25, Sigma: 10}}, // pairs across the CPU's row bands
	}
	for _, tc := range cases {
		v := denoiseVol(uint64(tc.size[0]*7+tc.size[2]), tc.size)
		got := runNLM(t, b, v, tc.size, tc.p)
		closeTo(t, "nlm", got, refNLM(v, tc.size, tc.p), 1e-3, 1e-5)
	}
	// A tiny h keeps every voxel (no two random patches are alike).
	size := [3]int{5, 7, 9}
	v := denoiseVol(11, size)
	got := runNLM(t, b, v, size, NLMParams{PatchRadius: 1, SearchRadius: 2, H: 1e-6})
	closeTo(t, "nlm with h 1e-6", got, v, 0, 0)
	// A huge h averages the whole search window.
	got = runNLM(t, b, v, size, NLMParams{PatchRadius: 1, SearchRadius: 1, H: 1e12})
	want := refGaussianBox(v, size, 1)
	closeTo(t, "nlm with h 1e12 vs box mean", got, want, 1e-3, 1e-5)
}

// refGaussianBox is the mean over the in-volume voxels of the box of
// radius r around each voxel.
func refGaussianBox(v []float32, size [3]int, r int) []float32 {
	out := make([]float32, len(v))
	for z := 0; z < size[0]; z++ {
		for y := 0; y < size[1]; y++ {
			for x := 0; x < size[2]; x++ {
				s, n := 0.0, 0
				for i := max(0, z-r); i <= min(size[0]-1, z+r); i++ {
					for j := max(0, y-r); j <= min(size[1]-1, y+r); j++ {
						for l := max(0, x-r); l <= min(size[2]-1, x+r); l++ {
							s += refAt(v, size, i, j, l)
							n++
						}
					}
				}
				out[(z*size[1]+y)*size[2]+x] = float32(s / float64(n))
			}
		}
	}
	return out
}

func confDenoiseGolden(t *testing.T, b Backend) {
	for name, g := range readGoldens(t, "denoise") {
		t.Run(name, func(t *testing.T) {
			var size [3]int
			g.param(t, "size", &size)
			x, y := g.tensor(t, "x").Data, g.tensor(t, "y").Data
			var got []float32
			switch g.Op {
			case "gaussian":
				var sigma [3]float64
				var trunc float64
				g.param(t, "sigma", &sigma)
				g.param(t, "truncate", &trunc)
				got = runGaussian(t, b, x, size, sigma, trunc)
				closeTo(t, name, got, y, 1e-4, 1e-5)
			case "bilateral":
				var p BilateralParams
				g.param(t, "sigma_spatial", &p.SigmaSpatial)
				g.param(t, "sigma_range", &p.SigmaRange)
				g.param(t, "radius", &p.Radius)
				got = runBilateral(t, b, x, size, p)
				closeTo(t, name, got, y, 1e-3, 1e-5)
			case "nlm":
				var p NLMParams
				g.param(t, "patch_radius", &p.PatchRadius)
				g.param(t, "search_radius", &p.SearchRadius)
				g.param(t, "h", &p.H)
				g.param(t, "sigma", &p.Sigma)
				got = runNLM(t, b, x, size, p)
				closeTo(t, name, got, y, 1e-3, 1e-5)
			default:
				t.Fatalf("unknown op %q", g.Op)
			}
		})
	}
}

func confDenoiseErrors(t *testing.T, b Backend) {
	size := [3]int{3, 4, 5}
	n := 60
	src, dst := alloc(t, b, n), alloc(t, b, n)
	small := alloc(t, b, n-1)
	i16, err := b.Alloc(Int16, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Free(i16) })
	sig := [3]float64{1, 1, 1}
	bp := BilateralParams{SigmaSpatial: sig, SigmaRange: 10}
	np := NLMParams{PatchRadius: 1, SearchRadius: 1, H: 10}
	cases := []struct {
		what string
		err  error
	}{
		{"gaussian zero size", b.Gaussian(dst, src, [3]int{0, 4, 5}, sig, 4)},
		{"gaussian negative size", b.Gaussian(dst, src, [3]int{-3, -4, 5}, sig, 4)},
		{"gaussian small dst", b.Gaussian(small, src, size, sig, 4)},
		{"gaussian small src", b.Gaussian(dst, small, size, sig, 4)},
		{"gaussian int16", b.Gaussian(dst, i16, size, sig, 4)},
		{"gaussian negative sigma", b.Gaussian(dst, src, size, [3]float64{1, -1, 1}, 4)},
		{"gaussian NaN sigma", b.Gaussian(dst, src, size, [3]float64{math.NaN(), 1, 1}, 4)},
		{"gaussian huge sigma", b.Gaussian(dst, src, size, [3]float64{1e6, 1, 1}, 4)},
		{"gaussian zero truncate", b.Gaussian(dst, src, size, sig, 0)},
		{"gaussian huge truncate", b.Gaussian(dst, src, size, sig, 1e300)},
		{"gaussian Inf truncate", b.Gaussian(dst, src, size, sig, math.Inf(1))},
		{"bilateral small dst", b.Bilateral(small, src, size, bp)},
		{"bilateral zero range", b.Bilateral(dst, src, size, BilateralParams{SigmaSpatial: sig})},
		{"bilateral negative radius", b.Bilateral(dst, src, size, BilateralParams{SigmaSpatial: sig, SigmaRange: 1, Radius: [3]int{-1, 0, 0}})},
		{"bilateral huge radius", b.Bilateral(dst, src, size, BilateralParams{SigmaSpatial: sig, SigmaRange: 1, Radius: [3]int{1 << 20, 0, 0}})},
		{"bilateral Inf sigma", b.Bilateral(dst, src, size, BilateralParams{SigmaSpatial: [3]float64{math.Inf(1), 1, 1}, SigmaRange: 1})},
		{"nlm small src", b.NLM(dst, small, size, np)},
		{"nlm zero h", b.NLM(dst, src, size, NLMParams{PatchRadius: 1, SearchRadius: 1})},
		{"nlm negative sigma", b.NLM(dst, src, size, NLMParams{PatchRadius: 1, SearchRadius: 1, H: 1, Sigma: -1})},
		{"nlm negative patch", b.NLM(dst, src, size, NLMParams{PatchRadius: -1, SearchRadius: 1, H: 1})},
		{"nlm huge search", b.NLM(dst, src, size, NLMParams{PatchRadius: 1, SearchRadius: 1 << 20, H: 1})},
		{"nlm patch beyond a thin volume", b.NLM(dst, src, [3]int{1, 1, 60}, NLMParams{PatchRadius: 128, SearchRadius: 1, H: 1})},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, ErrShape) {
			t.Errorf("%s: got %v, want ErrShape", tc.what, tc.err)
		}
	}
	other := NewCPU()
	defer other.Close()
	foreign, err := other.Alloc(Float32, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Gaussian(dst, foreign, size, sig, 4); !errors.Is(err, ErrBackend) {
		t.Errorf("gaussian of a foreign buffer: got %v, want ErrBackend", err)
	}
	if err := b.NLM(foreign, src, size, np); !errors.Is(err, ErrBackend) {
		t.Errorf("nlm into a foreign buffer: got %v, want ErrBackend", err)
	}
}

// TestExpNeg checks the CPU filters' exp(-x) against math.Exp: 2e-7
// relative below the cut-off at 80, 0 from there on.
func TestExpNeg(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		x := float32(r.Float64() * 85)
		if i < 1000 {
			x = float32(i) / 256 // the table's own points
		}
		got, want := float64(expNeg(x)), math.Exp(-float64(x))
		if x >= 80 {
			want = 0
		}
		if math.Abs(got-want) > 2e-7*want {
			t.Fatalf("expNeg(%v) = %v, want %v", x, got, want)
		}
	}
	for _, x := range []float32{float32(math.Inf(1)), float32(math.NaN()), 1e30} {
		if got := expNeg(x); got != 0 {
			t.Errorf("expNeg(%v) = %v, want 0", x, got)
		}
	}
}
