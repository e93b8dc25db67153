package triage

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/kernels"
)

// floodFill is the naive reference for Components: a breadth-first fill
// from each unlabelled mask voxel in raster order.
func floodFill(mask []bool, size [3]int, conn Connectivity) ([]int32, int) {
	D, H, W := size[0], size[1], size[2]
	labels := make([]int32, len(mask))
	var offs [][3]int
	for dd := -1; dd <= 1; dd++ {
		for dh := -1; dh <= 1; dh++ {
			for dw := -1; dw <= 1; dw++ {
				nz := ccAbs(dd) + ccAbs(dh) + ccAbs(dw)
				if nz == 0 || conn == Conn6 && nz > 1 {
					continue
				}
				offs = append(offs, [3]int{dd, dh, dw})
			}
		}
	}
	n := int32(0)
	for v := range mask {
		if !mask[v] || labels[v] != 0 {
			continue
		}
		n++
		labels[v] = n
		queue := []int{v}
		for len(queue) > 0 {
			u := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			d, h, w := u/(H*W), u/W%H, u%W
			for _, o := range offs {
				x, y, z := d+o[0], h+o[1], w+o[2]
				if x < 0 || x >= D || y < 0 || y >= H || z < 0 || z >= W {
					continue
				}
				i := (x*H+y)*W + z
				if mask[i] && labels[i] == 0 {
					labels[i] = n
					queue = append(queue, i)
				}
			}
		}
	}
	return labels, int(n)
}

func ccAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// checkComponents compares Components with the flood fill and with
// statistics measured voxel by voxel from the reference labels.
func checkComponents(t *testing.T, mask []bool, prob []float32, size [3]int, conn Connectivity) {
	t.Helper()
	want, n := floodFill(mask, size, conn)
	var got []int32
	var comps []Component
	if prob != nil {
		got, comps = ComponentsProb(mask, prob, size, conn)
	} else {
		got, comps = Components(mask, size, conn)
	}
	if len(comps) != n {
		t.Fatalf("conn %d: %d components, want %d", conn, len(comps), n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("conn %d: voxel %d labelled %d, want %d", conn, i, got[i], want[i])
		}
	}
	D, H, W := size[0], size[1], size[2]
	type ref struct {
		n        int
		lo, hi   [3]int
		sum      [3]float64
		psum     float64
		pmax     float32
		perSlice []int
	}
	refs := make([]ref, n)
	for i := range refs {
		refs[i] = ref{lo: [3]int{D, H, W}, hi: [3]int{-1, -1, -1}, pmax: float32(math.Inf(-1)), perSlice: make([]int, D)}
	}
	for v, l := range want {
		if l == 0 {
			continue
		}
		r := &refs[l-1]
		p := [3]int{v / (H * W), v / W % H, v % W}
		r.n++
		r.perSlice[p[0]]++
		for a := 0; a < 3; a++ {
			r.lo[a] = min(r.lo[a], p[a])
			r.hi[a] = max(r.hi[a], p[a])
			r.sum[a] += float64(p[a])
		}
		if prob != nil {
			r.psum += float64(prob[v])
			r.pmax = max(r.pmax, prob[v])
		}
	}
	for i, c := range comps {
		r := refs[i]
		if c.Label != int32(i+1) || c.Voxels != r.n || c.Min != r.lo || c.Max != r.hi {
			t.Fatalf("conn %d: component %d = %+v, want %d voxels in %v..%v", conn, i+1, c, r.n, r.lo, r.hi)
		}
		for a := 0; a < 3; a++ {
			if w := r.sum[a] / float64(r.n); math.Abs(c.Centroid[a]-w) > 1e-9 {
				t.Fatalf("conn %d: component %d centroid %v, axis %d want %v", conn, i+1, c.Centroid, a, w)
			}
		}
		key := 0
		for d, k := range r.perSlice {
			if k > r.perSlice[key] {
				key = d
			}
		}
		if c.KeySlice != key || c.KeyArea != r.perSlice[key] {
			t.Fatalf("conn %d: component %d key slice %d (%d voxels), want %d (%d)", conn, i+1, c.KeySlice, c.KeyArea, key, r.perSlice[key])
		}
		if prob != nil && (math.Abs(c.ProbSum-r.psum) > 1e-9*float64(r.n) || c.ProbMax != r.pmax) {
			t.Fatalf("conn %d: component %d prob sum %v max %v, want %v %v", conn, i+1, c.ProbSum, c.ProbMax, r.psum, r.pmax)
		}
		if prob == nil && (c.ProbSum != 0 || c.ProbMax != 0) {
			t.Fatalf("conn %d: component %d has prob stats %v %v without a map", conn, i+1, c.ProbSum, c.ProbMax)
		}
	}
}

func TestComponentsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := [][3]int{{1, 1, 1}, {1, 1, 17}, {1, 13, 1}, {9, 1, 1}, {4, 5, 6}, {7, 9, 11}, {12, 12, 12}, {3, 20, 2}}
	for _, size := range sizes {
		for _, density := range []float64{0, 0.05, 0.2, 0.35, 0.5, 0.7, 0.95, 1} {
			n := size[0] * size[1] * size[2]
			mask := make([]bool, n)
			prob := make([]float32, n)
			for i := range mask {
				mask[i] = rng.Float64() < density
				prob[i] = rng.Float32()
			}
			for _, conn := range []Connectivity{Conn6, Conn26} {
				checkComponents(t, mask, prob, size, conn)
				checkComponents(t, mask, nil, size, conn)
			}
		}
	}
}

func TestComponentsShapes(t *testing.T) {
	size := [3]int{6, 9, 10}
	D, H, W := size[0], size[1], size[2]
	at := func(d, h, w int) int { return (d*H+h)*W + w }
	shapes := map[string]func(d, h, w int) bool{
		// A hollow box: one component touching every face.
		"shell": func(d, h, w int) bool {
			return d == 0 || d == D-1 || h == 0 || h == H-1 || w == 0 || w == W-1
		},
		// Six slabs, one on each face, not touching each other under 6
		// but touching at edges under 26.
		"faces": func(d, h, w int) bool {
			inD, inH, inW := d > 0 && d < D-1, h > 0 && h < H-1, w > 0 && w < W-1
			return (d == 0 || d == D-1) && inH && inW || (h == 0 || h == H-1) && inD && inW || (w == 0 || w == W-1) && inD && inH
		},
		// A serpentine in each slice, its turns alternating sides, and
		// slices joined at alternating corners: runs meet late, so
		// unions join long chains.
		"snake": func(d, h, w int) bool {
			if h%2 == 0 {
				return true
			}
			if (h/2+d)%2 == 0 {
				return w == W-1
			}
			return w == 0
		},
		// Combs whose teeth join only at the far end.
		"comb": func(d, h, w int) bool { return w%2 == 0 || h == H-1 },
		// Diagonal lines: one component under 26, single voxels under 6.
		"diagonal": func(d, h, w int) bool { return d == h && h == w || d == h && w == W-1-h },
		// A checkerboard: all isolated under 6, one under 26.
		"checker": func(d, h, w int) bool { return (d+h+w)%2 == 0 },
	}
	for name, f := range shapes {
		t.Run(name, func(t *testing.T) {
			mask := make([]bool, D*H*W)
			for d := 0; d < D; d++ {
				for h := 0; h < H; h++ {
					for w := 0; w < W; w++ {
						mask[at(d, h, w)] = f(d, h, w)
					}
				}
			}
			for _, conn := range []Connectivity{Conn6, Conn26} {
				checkComponents(t, mask, nil, size, conn)
			}
		})
	}
	// A few spot checks of the partition itself.
	mask := make([]bool, D*H*W)
	for d := 0; d < D; d++ {
		for h := 0; h < H; h++ {
			for w := 0; w < W; w++ {
				mask[at(d, h, w)] = (d+h+w)%2 == 0
			}
		}
	}
	if _, c := Components(mask, size, Conn26); len(c) != 1 {
		t.Errorf("checkerboard, 26: %d components, want 1", len(c))
	}
	if _, c := Components(mask, size, Conn6); len(c) != D*H*W/2 {
		t.Errorf("checkerboard, 6: %d components, want %d", len(c), D*H*W/2)
	}
}

func TestComponentsMisuse(t *testing.T) {
	for name, f := range map[string]func(){
		"length": func() { Components(make([]bool, 5), [3]int{1, 2, 3}, Conn6) },
		"conn":   func() { Components(make([]bool, 6), [3]int{1, 2, 3}, 8) },
		"prob":   func() { ComponentsProb(make([]bool, 6), make([]float32, 5), [3]int{1, 2, 3}, Conn6) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func identityGeometry(size [3]int, spacing [3]float64, origin [3]float64) kernels.Geometry {
	return kernels.Geometry{Size: size, Spacing: spacing, Origin: origin, Axes: [3][3]float64{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}}}
}

func TestFindingsSphere(t *testing.T) {
	size := [3]int{24, 48, 48}
	g := identityGeometry(size, [3]float64{2, 0.75, 0.8}, [3]float64{-20, 30, 5})
	const r = 12.0                            // mm
	centreIdx := [3]float64{11.3, 23.6, 24.2} // (D, H, W)
	centre := g.IndexToLPS(centreIdx)         // LPS
	prob := make([]float32, size[0]*size[1]*size[2])
	for d := 0; d < size[0]; d++ {
		for h := 0; h < size[1]; h++ {
			for w := 0; w < size[2]; w++ {
				x := g.IndexToLPS([3]float64{float64(d), float64(h), float64(w)})
				dist := math.Sqrt((x[0]-centre[0])*(x[0]-centre[0]) + (x[1]-centre[1])*(x[1]-centre[1]) + (x[2]-centre[2])*(x[2]-centre[2]))
				// 0.5 on the sphere, rising to 1 inside.
				prob[(d*size[1]+h)*size[2]+w] = float32(min(1, max(0, 0.5+(r-dist)/8)))
			}
		}
	}
	// A second, small blob far from the sphere: 2 voxels = 0.0024 mL.
	prob[(22*size[1]+2)*size[2]+2] = 0.9
	prob[(22*size[1]+2)*size[2]+3] = 0.7

	ls, err := Findings(prob, size, g, PostSpec{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 {
		t.Fatalf("%d lesions, want 2", len(ls))
	}
	l := ls[0]
	want := 4.0 / 3 * math.Pi * r * r * r / 1000
	if math.Abs(l.VolumeML-want) > 0.05*want {
		t.Errorf("volume %.4f mL, want %.4f within 5%%", l.VolumeML, want)
	}
	if v := float64(l.Voxels) * 2 * 0.75 * 0.8 / 1000; math.Abs(v-l.VolumeML) > 1e-12 {
		t.Errorf("volume %v mL for %d voxels, want %v", l.VolumeML, l.Voxels, v)
	}
	// Axes are LPS-aligned: D is S, H is P, W is L.
	for a, lps := range [3]int{2, 1, 0} {
		if e := math.Abs(l.CentroidLPS[lps] - centre[lps]); e > g.Spacing[a]/2 {
			t.Errorf("centroid %v, want %v within half a voxel (axis %d off by %v mm)", l.CentroidLPS, centre, lps, e)
		}
		// The box reaches the outer faces of the outermost voxels: it
		// holds the sphere and overshoots by less than one voxel.
		lo, hi := l.BBoxLPS[0][lps], l.BBoxLPS[1][lps]
		if lo > centre[lps]-r+g.Spacing[a]/2 || lo < centre[lps]-r-g.Spacing[a] ||
			hi < centre[lps]+r-g.Spacing[a]/2 || hi > centre[lps]+r+g.Spacing[a] {
			t.Errorf("bbox axis %d [%v, %v], want about [%v, %v]", lps, lo, hi, centre[lps]-r, centre[lps]+r)
		}
		if got := hi - lo; math.Abs(got-float64(l.Max[a]-l.Min[a]+1)*g.Spacing[a]) > 1e-9 {
			t.Errorf("bbox axis %d is %v mm for voxels %d..%d", lps, got, l.Min[a], l.Max[a])
		}
	}
	if k := l.KeySlice; math.Abs(float64(k)-centreIdx[0]) > 1 {
		t.Errorf("key slice %d, want next to %v", k, centreIdx[0])
	}
	if l.MaxProb != 1 || !(l.MeanProb > 0.5 && l.MeanProb < 1) {
		t.Errorf("probability mean %v max %v", l.MeanProb, l.MaxProb)
	}
	small := ls[1]
	if small.Voxels != 2 || math.Abs(small.MeanProb-0.8) > 1e-6 || math.Abs(small.MaxProb-0.9) > 1e-6 || small.KeySlice != 22 {
		t.Errorf("small lesion %+v", small)
	}

	// The smallest-lesion filter drops the blob (0.0024 mL) and keeps
	// the sphere.
	ls, err = Findings(prob, size, g, PostSpec{Threshold: 0.5, MinVolumeML: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Voxels != l.Voxels {
		t.Fatalf("with min volume: %d lesions, want the sphere only", len(ls))
	}
	ls, err = Findings(prob, size, g, PostSpec{Threshold: 0.5, MinVolumeML: 2 * want})
	if err != nil || len(ls) != 0 {
		t.Fatalf("min volume above the sphere: %d lesions, %v", len(ls), err)
	}

	mask, ls, err := MaskOf(prob, size, g, PostSpec{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	count := map[uint8]int{}
	for i, m := range mask {
		count[m]++
		if m != 0 && prob[i] < 0.5 || m == 0 && prob[i] >= 0.5 {
			t.Fatalf("mask voxel %d = %d for probability %v", i, m, prob[i])
		}
	}
	if count[1] != ls[0].Voxels || count[2] != ls[1].Voxels || len(count) != 3 {
		t.Errorf("mask values %v, lesions of %d and %d voxels", count, ls[0].Voxels, ls[1].Voxels)
	}
}

func TestFindingsThreshold(t *testing.T) {
	for _, th := range []float64{0.5, 0.3, 0.7, 0.1, 1} {
		t32 := float32(th)
		values := []float32{
			math.Nextafter32(t32, 0), t32, math.Nextafter32(t32, 2),
			float32(math.NaN()), 0, 1,
		}
		size := [3]int{1, 1, 2 * len(values)}
		prob := make([]float32, size[2])
		for i, v := range values {
			prob[2*i] = v // isolated by zeros
		}
		g := identityGeometry(size, [3]float64{1, 1, 1}, [3]float64{})
		mask, _, err := MaskOf(prob, size, g, PostSpec{Threshold: th, Connectivity: Conn6})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range prob {
			// The rule is prob >= Threshold, compared as float64.
			if in := float64(v) >= th; in != (mask[i] != 0) {
				t.Errorf("threshold %v: probability %v (%v) kept %v, want %v", th, v, float64(v), mask[i] != 0, in)
			}
		}
	}
	// Exactly at threshold counts.
	g := identityGeometry([3]int{1, 1, 1}, [3]float64{1, 1, 1}, [3]float64{})
	ls, err := Findings([]float32{0.5}, g.Size, g, PostSpec{Threshold: 0.5})
	if err != nil || len(ls) != 1 {
		t.Errorf("probability at the threshold: %d lesions, %v", len(ls), err)
	}
}

func TestFindingsRotated(t *testing.T) {
	// D along S; H and W rotated 30 degrees about S.
	c, s := math.Cos(math.Pi/6), math.Sin(math.Pi/6)
	size := [3]int{3, 5, 7}
	g := kernels.Geometry{
		Size:    size,
		Spacing: [3]float64{3, 1, 2},
		Origin:  [3]float64{10, -4, 7},
		Axes:    [3][3]float64{{0, 0, 1}, {-s, c, 0}, {c, s, 0}},
	}
	prob := make([]float32, 3*5*7)
	// A 1 x 2 x 3 block at D 1, H 2..3, W 3..5.
	for h := 2; h <= 3; h++ {
		for w := 3; w <= 5; w++ {
			prob[(1*5+h)*7+w] = 1
		}
	}
	ls, err := Findings(prob, size, g, PostSpec{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 {
		t.Fatalf("%d lesions, want 1", len(ls))
	}
	l := ls[0]
	// Centroid index (1, 2.5, 4).
	want := [3]float64{
		10 + 2.5*1*(-s) + 4*2*c,
		-4 + 2.5*1*c + 4*2*s,
		7 + 1*3,
	}
	for r := 0; r < 3; r++ {
		if math.Abs(l.CentroidLPS[r]-want[r]) > 1e-9 {
			t.Fatalf("centroid %v, want %v", l.CentroidLPS, want)
		}
	}
	// The box: H from 1.5 to 3.5 (2 mm), W from 2.5 to 5.5 (6 mm), D
	// from 0.5 to 1.5 (3 mm). In the rotated plane, x = -s*hmm + c*wmm,
	// y = c*hmm + s*wmm, extremes at the corners.
	var lo, hi [3]float64
	lo, hi = [3]float64{math.Inf(1), math.Inf(1), 7 + 0.5*3}, [3]float64{math.Inf(-1), math.Inf(-1), 7 + 1.5*3}
	for _, hm := range []float64{1.5, 3.5} {
		for _, wm := range []float64{2.5 * 2, 5.5 * 2} {
			x, y := 10-s*hm+c*wm, -4+c*hm+s*wm
			lo[0], hi[0] = min(lo[0], x), max(hi[0], x)
			lo[1], hi[1] = min(lo[1], y), max(hi[1], y)
		}
	}
	for r := 0; r < 3; r++ {
		if math.Abs(l.BBoxLPS[0][r]-lo[r]) > 1e-9 || math.Abs(l.BBoxLPS[1][r]-hi[r]) > 1e-9 {
			t.Fatalf("bbox %v, want %v %v", l.BBoxLPS, lo, hi)
		}
	}
	if math.Abs(l.VolumeML-6*6.0/1000) > 1e-12 {
		t.Errorf("volume %v mL, want %v", l.VolumeML, 6*6.0/1000)
	}
}

func TestFindingsOrder(t *testing.T) {
	// Blobs of 1, 3 and 2 voxels along W, and a second 2-voxel blob:
	// largest first, ties in raster order.
	prob := []float32{1, 0, 1, 1, 1, 0, 0.9, 0.9, 0, 0.6, 0.6}
	size := [3]int{1, 1, len(prob)}
	g := identityGeometry(size, [3]float64{1, 1, 1}, [3]float64{})
	ls, err := Findings(prob, size, g, PostSpec{Threshold: 0.5, Connectivity: Conn6})
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]int
	for _, l := range ls {
		got = append(got, [2]int{l.Voxels, l.Min[2]})
	}
	want := [][2]int{{3, 2}, {2, 6}, {2, 9}, {1, 0}}
	if len(got) != len(want) {
		t.Fatalf("lesions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lesions (voxels, first W) %v, want %v", got, want)
		}
	}
}

func TestFindingsErrors(t *testing.T) {
	size := [3]int{2, 2, 2}
	g := identityGeometry(size, [3]float64{1, 1, 1}, [3]float64{})
	prob := make([]float32, 8)
	ok := PostSpec{Threshold: 0.5}
	tests := []struct {
		name string
		prob []float32
		size [3]int
		geom kernels.Geometry
		spec PostSpec
	}{
		{"short map", prob[:7], size, g, ok},
		{"size differs from geometry", prob, [3]int{1, 2, 4}, g, ok},
		{"negative size", prob, [3]int{-2, -2, 2}, identityGeometry([3]int{-2, -2, 2}, [3]float64{1, 1, 1}, [3]float64{}), ok},
		{"zero spacing", prob, size, identityGeometry(size, [3]float64{1, 0, 1}, [3]float64{}), ok},
		{"threshold 0", prob, size, g, PostSpec{}},
		{"threshold above 1", prob, size, g, PostSpec{Threshold: 1.5}},
		{"threshold NaN", prob, size, g, PostSpec{Threshold: math.NaN()}},
		{"negative min volume", prob, size, g, PostSpec{Threshold: 0.5, MinVolumeML: -1}},
		{"infinite min volume", prob, size, g, PostSpec{Threshold: 0.5, MinVolumeML: math.Inf(1)}},
		{"connectivity 18", prob, size, g, PostSpec{Threshold: 0.5, Connectivity: 18}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Findings(tc.prob, tc.size, tc.geom, tc.spec)
			if !errors.Is(err, ErrPostSpec) {
				t.Errorf("error %v, want ErrPostSpec", err)
			}
			if _, _, err := MaskOf(tc.prob, tc.size, tc.geom, tc.spec); !errors.Is(err, ErrPostSpec) {
				t.Errorf("MaskOf error %v, want ErrPostSpec", err)
			}
		})
	}
	if ls, err := Findings(prob, size, g, ok); err != nil || len(ls) != 0 {
		t.Errorf("empty map: %d lesions, %v", len(ls), err)
	}
}

func BenchmarkComponents(b *testing.B) {
	size := [3]int{32, 256, 256}
	rng := rand.New(rand.NewPCG(3, 4))
	mask := make([]bool, size[0]*size[1]*size[2])
	noise := make([]bool, len(mask))
	for i := range noise {
		noise[i] = rng.Float64() < 0.3
	}
	// 400 balls of radius 1 to 6 voxels, some overlapping.
	for range 400 {
		c := [3]int{rng.IntN(size[0]), rng.IntN(size[1]), rng.IntN(size[2])}
		r := 1 + rng.IntN(6)
		for d := max(0, c[0]-r); d <= min(size[0]-1, c[0]+r); d++ {
			for h := max(0, c[1]-r); h <= min(size[1]-1, c[1]+r); h++ {
				for w := max(0, c[2]-r); w <= min(size[2]-1, c[2]+r); w++ {
					if (d-c[0])*(d-c[0])+(h-c[1])*(h-c[1])+(w-c[2])*(w-c[2]) <= r*r {
						mask[(d*size[1]+h)*size[2]+w] = true
					}
				}
			}
		}
	}
	for _, bc := range []struct {
		name string
		mask []bool
		conn Connectivity
	}{{"balls/6", mask, Conn6}, {"balls/26", mask, Conn26}, {"noise30/6", noise, Conn6}, {"noise30/26", noise, Conn26}} {
		mask, conn := bc.mask, bc.conn
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(mask)))
			for b.Loop() {
				Components(mask, size, conn)
			}
		})
	}
}

func TestCombineFinding(t *testing.T) {
	big := Lesion{Voxels: 300, VolumeML: 3, CentroidLPS: [3]float64{10, 0, 0}, BBoxLPS: [2][3]float64{{5, -5, -5}, {15, 5, 5}}, KeySlice: 7}
	small := Lesion{Voxels: 100, VolumeML: 1, CentroidLPS: [3]float64{-10, 4, 8}, BBoxLPS: [2][3]float64{{-12, 2, 6}, {-8, 6, 20}}, KeySlice: 3}
	base := Evidence{Code: "ICH", Label: "Intracranial hemorrhage", Tier: "critical", ModelVersions: []string{"seg@1", "cls@2"}}
	tests := []struct {
		name     string
		edit     func(e *Evidence)
		prob     float64
		positive bool
		located  bool
	}{
		{"both agree", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.Lesions = true, 0.9, []Lesion{big, small}
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.7, 0.5
		}, 0.8, true, true},
		{"a confident segmentation outweighs a doubtful classifier", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.Lesions = true, 0.9, []Lesion{big}
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.3, 0.5
		}, 0.6, true, true},
		{"a marginal segmentation needs the classifier", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.Lesions = true, 0.6, []Lesion{big}
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.3, 0.5
		}, 0.45, false, true},
		{"the mean of the thresholds", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.SegThreshold, e.Lesions = true, 0.6, 0.3, []Lesion{big}
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.3, 0.5
		}, 0.45, true, true},
		{"classifier at threshold", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.Lesions = true, 0.9, []Lesion{big}
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.5, 0.5
		}, 0.7, true, true},
		{"no lesion", func(e *Evidence) {
			e.HasSeg, e.SegScore = true, 0.4
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.95, 0.5
		}, 0.675, false, false},
		{"segmentation only", func(e *Evidence) {
			e.HasSeg, e.SegScore, e.Lesions = true, 0.6, []Lesion{small}
		}, 0.6, true, true},
		{"classifier only", func(e *Evidence) {
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.55, 0.5
		}, 0.55, true, false},
		{"classifier only, negative", func(e *Evidence) {
			e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.1, 0.5
		}, 0.1, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.edit(&e)
			f, pos, err := CombineFinding(e)
			if err != nil {
				t.Fatal(err)
			}
			if pos != tc.positive || math.Abs(f.Probability-tc.prob) > 1e-12 {
				t.Errorf("positive %v probability %v, want %v %v", pos, f.Probability, tc.positive, tc.prob)
			}
			if f.Code != "ICH" || f.Tier != "critical" || f.Label != base.Label || len(f.ModelVersions) != 2 {
				t.Errorf("finding %+v", f)
			}
			verdict := "; not reported: the rule wants"
			if tc.positive {
				verdict = "; reported: the rule wants"
			}
			if !strings.Contains(f.Explanation, verdict) ||
				e.HasCls != strings.Contains(f.Explanation, "classifier") || e.HasSeg != strings.Contains(f.Explanation, "segmentation") {
				t.Errorf("explanation %q", f.Explanation)
			}
			if (f.CentroidLPS != nil) != tc.located || (f.BBoxLPS != nil) != tc.located || (f.KeySlice != nil) != tc.located {
				t.Errorf("location present %v %v %v, want %v", f.CentroidLPS != nil, f.BBoxLPS != nil, f.KeySlice != nil, tc.located)
			}
		})
	}

	// Two lesions: total volume, centre of mass, the union of the boxes,
	// the largest one's key slice.
	e := base
	e.HasSeg, e.SegScore, e.Lesions = true, 0.9, []Lesion{small, big}
	f, _, err := CombineFinding(e)
	if err != nil {
		t.Fatal(err)
	}
	if f.VolumeML != 4 || f.Lesions != 2 || *f.KeySlice != 7 {
		t.Errorf("volume %v, %d lesions, key slice %d", f.VolumeML, f.Lesions, *f.KeySlice)
	}
	if want := [3]float64{5, 1, 2}; *f.CentroidLPS != want {
		t.Errorf("centroid %v, want %v", *f.CentroidLPS, want)
	}
	if want := [2][3]float64{{-12, -5, -5}, {15, 6, 20}}; *f.BBoxLPS != want {
		t.Errorf("bbox %v, want %v", *f.BBoxLPS, want)
	}
	// The versions are copied.
	e.ModelVersions[0] = "changed"
	if f.ModelVersions[0] != "seg@1" {
		t.Error("ModelVersions shares the evidence's slice")
	}
	e.ModelVersions[0] = "seg@1"

	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"code", "label", "probability", "tier", "volume_ml", "centroid_lps", "bbox_lps", "key_slice", "model_versions"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}

	bad := []func(e *Evidence){
		func(e *Evidence) {},
		func(e *Evidence) { e.HasSeg, e.SegScore = true, 1.5 },
		func(e *Evidence) { e.HasSeg, e.SegScore = true, math.NaN() },
		func(e *Evidence) { e.HasCls, e.ClsScore, e.ClsThreshold = true, -0.1, 0.5 },
		func(e *Evidence) { e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.5, 0 },
		func(e *Evidence) { e.HasCls, e.ClsScore, e.ClsThreshold = true, 0.5, 1 },
		func(e *Evidence) { e.HasSeg, e.SegScore, e.Lesions = true, 0.5, []Lesion{{}} },
	}
	for i, edit := range bad {
		e := base
		edit(&e)
		if _, _, err := CombineFinding(e); !errors.Is(err, ErrPostSpec) {
			t.Errorf("bad evidence %d: error %v, want ErrPostSpec", i, err)
		}
	}
}
