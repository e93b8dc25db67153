package volume

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"testing"
)

// renderGrid is a small volume whose values vary along every axis
// (nonlinearly, so that interpolation shows), with the given spacing and
// axes; the origin is away from zero.
func renderGrid(size [3]int, spacing [3]float64, axes [3][3]float64) *Volume {
	v := &Volume{Size: [4]int{size[0], size[1], size[2], 1}, Spacing: spacing, Axes: axes,
		Origin: [3]float64{-40, 25, 110}}
	v.Data = make([]float32, v.Voxels())
	for k := range size[2] {
		for j := range size[1] {
			for i := range size[0] {
				v.Data[i+size[0]*(j+size[1]*k)] = float32(i*7 + j*13 + k*101 + (i*j*k)%5)
			}
		}
	}
	return v
}

// trilinear is the naive reference: v's value at continuous grid
// coordinates c, clamped to the grid.
func trilinear(v *Volume, c [3]float64) float64 {
	var lo, hi [3]int
	var f [3]float64
	for a := range 3 {
		x := math.Min(math.Max(c[a], 0), float64(v.Size[a]-1))
		lo[a] = int(math.Floor(x))
		hi[a] = min(lo[a]+1, v.Size[a]-1)
		f[a] = x - float64(lo[a])
	}
	at := func(i, j, k int) float64 { return float64(v.Data[i+v.Size[0]*(j+v.Size[1]*k)]) }
	var sum float64
	for corner := range 8 {
		w := 1.0
		var idx [3]int
		for a := range 3 {
			if corner>>a&1 == 1 {
				idx[a], w = hi[a], w*f[a]
			} else {
				idx[a], w = lo[a], w*(1-f[a])
			}
		}
		if w != 0 {
			sum += w * at(idx[0], idx[1], idx[2])
		}
	}
	return sum
}

// screen returns the LPS directions of a section's pixel rows (right)
// and columns (down) as a radiologist reads the plane: stored slices as
// stored; coronal with the patient's left (+x) to the right and the head
// (+z) up; sagittal with posterior (+y) to the right and the head up.
func screen(v *Volume, p Plane) (right, down [3]float64) {
	switch p {
	case Axial:
		return v.Axes[0], v.Axes[1]
	case Coronal:
		return [3]float64{1, 0, 0}, [3]float64{0, 0, -1}
	}
	return [3]float64{0, 1, 0}, [3]float64{0, 0, -1}
}

// TestReformatAgainstNaive checks every pixel of sections of several
// grids against the naive reference: the pixel's LPS position, from the
// plane's top-left voxel centre and the screen directions, mapped back to
// the grid (VoxelIndex) and sampled trilinearly.
func TestReformatAgainstNaive(t *testing.T) {
	ident := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	// Rows to the patient's right, columns anterior, slices downwards.
	flipped := [3][3]float64{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}
	footFirst := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, -1}}
	for _, tc := range []struct {
		name          string
		size          [3]int
		spacing       [3]float64
		axes          [3][3]float64
		plane         Plane
		index         int
		wantW, wantH  int
		wantPixelSize float64
	}{
		{"axial", [3]int{6, 5, 4}, [3]float64{0.8, 0.8, 3}, ident, Axial, 2, 6, 5, 0.8},
		{"axial non-square pixels", [3]int{6, 5, 4}, [3]float64{0.5, 1, 3}, ident, Axial, 1, 6, 9, 0.5},
		{"coronal", [3]int{6, 5, 4}, [3]float64{1, 1, 3}, ident, Coronal, 3, 6, 10, 1},
		{"coronal flipped rows", [3]int{6, 5, 4}, [3]float64{1, 1, 2.5}, flipped, Coronal, 0, 6, 9, 1},
		{"coronal feet first", [3]int{6, 5, 4}, [3]float64{1, 1, 3}, footFirst, Coronal, 4, 6, 10, 1},
		{"sagittal", [3]int{6, 5, 4}, [3]float64{1, 0.5, 2}, ident, Sagittal, 5, 5, 13, 0.5},
		{"sagittal flipped columns", [3]int{6, 5, 4}, [3]float64{1, 1, 3}, flipped, Sagittal, 2, 5, 10, 1},
		{"sagittal thin slices", [3]int{6, 5, 7}, [3]float64{1, 1, 0.5}, ident, Sagittal, 1, 9, 7, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := renderGrid(tc.size, tc.spacing, tc.axes)
			s, err := Reformat(v, tc.plane, tc.index)
			if err != nil {
				t.Fatal(err)
			}
			if s.Width != tc.wantW || s.Height != tc.wantH || s.PixelMM != tc.wantPixelSize {
				t.Fatalf("%d×%d pixels of %g mm, want %d×%d of %g mm", s.Width, s.Height, s.PixelMM, tc.wantW, tc.wantH, tc.wantPixelSize)
			}
			// The plane's voxel centre nearest the top left of the screen.
			right, down := screen(v, tc.plane)
			a, b, c, _ := planeAxes(tc.plane)
			var corner [3]float64
			best := math.Inf(1)
			for _, ea := range []int{0, v.Size[a] - 1} {
				for _, eb := range []int{0, v.Size[b] - 1} {
					var idx [4]float64
					idx[a], idx[b], idx[c], idx[3] = float64(ea), float64(eb), float64(tc.index), 1
					pos := mul(v.Affine(), idx)
					if d := dot(pos, right) + dot(pos, down); d < best {
						best, corner = d, pos
					}
				}
			}
			for y := range s.Height {
				for x := range s.Width {
					var pos [3]float64
					for r := range 3 {
						pos[r] = corner[r] + s.PixelMM*(float64(x)*right[r]+float64(y)*down[r])
					}
					want := trilinear(v, v.VoxelIndex(pos))
					if got := float64(s.Pix[y*s.Width+x]); math.Abs(got-want) > 1e-3*(1+math.Abs(want)) {
						t.Fatalf("pixel (%d, %d) at %v: %g, want %g", x, y, pos, got, want)
					}
				}
			}
		})
	}
}

// mul applies an affine to (i, j, k, 1).
func mul(m [4][4]float64, x [4]float64) [3]float64 {
	var out [3]float64
	for r := range 3 {
		for c := range 4 {
			out[r] += m[r][c] * x[c]
		}
	}
	return out
}

// TestReformatStoredMatchesValues checks that a volume of stored integers
// renders as its values do, to the last bit on voxel centres, without
// filling Data.
func TestReformatStoredMatchesValues(t *testing.T) {
	v := renderGrid([3]int{7, 6, 5}, [3]float64{0.7, 0.7, 2.1}, [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}})
	stored := &Volume{Size: v.Size, Spacing: v.Spacing, Axes: v.Axes, Origin: v.Origin,
		Stored: make([]int16, v.Voxels()), Slope: 0.5, Intercept: -1024.25, StoredBits: 16, StoredSigned: true}
	for i, x := range v.Data {
		stored.Stored[i] = int16(x) - 300
	}
	vals := *stored
	vals.Stored = nil
	vals.Data = (&Volume{Stored: stored.Stored, Slope: stored.Slope, Intercept: stored.Intercept}).Values()
	for _, p := range []Plane{Axial, Coronal, Sagittal} {
		for idx := range SectionCount(v, p) {
			a, err := Reformat(stored, p, idx)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Reformat(&vals, p, idx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a.Pix {
				tol := 1e-4 * (1 + math.Abs(float64(b.Pix[i])))
				if p == Axial {
					tol = 0 // every pixel is a voxel centre
				}
				if math.Abs(float64(a.Pix[i]-b.Pix[i])) > tol {
					t.Fatalf("%s %d pixel %d: stored gives %g, values %g", p, idx, i, a.Pix[i], b.Pix[i])
				}
			}
		}
	}
	if stored.Data != nil {
		t.Error("Reformat filled Data of a stored volume")
	}
}

func TestGray(t *testing.T) {
	for _, tc := range []struct {
		center, width float64
		x             float32
		want          uint8
	}{
		{40, 80, -1000, 0},
		{40, 80, 0, 0}, // center-0.5-(width-1)/2
		{40, 80, 0.1, 0},
		{40, 80, 20, 65},  // (20/79)*255 = 64.56
		{40, 80, 40, 129}, // 129.1
		{40, 80, 78.9, 255},
		{40, 80, 79.5, 255},
		{40, 80, float32(math.NaN()), 0},
		{600, 2800, -800, 0},
		{600, 2800, 600, 128}, // (1400/2799)*255 = 127.55
		{600, 2800, 1999.5, 255},
		{40, 1, 39.5, 0},
		{40, 1, 39.6, 255},
		{40, 0, 39.6, 255}, // a width below 1 is 1
	} {
		s := &Section{Width: 1, Height: 1, Pix: []float32{tc.x}}
		img := s.Gray(tc.center, tc.width)
		if got := img.RGBAAt(0, 0); got != (color.RGBA{tc.want, tc.want, tc.want, 255}) {
			t.Errorf("window %g/%g of %g: %v, want grey %d", tc.center, tc.width, tc.x, got, tc.want)
		}
	}
}

// TestRenderOutline draws labels 1, 2 and 3 on an axial slice and a
// coronal reformat and checks every pixel: each label's boundary (a
// 4-neighbour of another label, or the image edge) in its colour,
// everything else the windowed grey.
func TestRenderOutline(t *testing.T) {
	ident := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	v := renderGrid([3]int{12, 10, 4}, [3]float64{1, 1, 2}, ident)
	labels := &Volume{Size: v.Size, Spacing: v.Spacing, Axes: v.Axes, Origin: v.Origin,
		Stored: make([]int16, v.Voxels()), Slope: 1}
	set := func(l int16, i0, i1, j0, j1, k0, k1 int) {
		for k := k0; k <= k1; k++ {
			for j := j0; j <= j1; j++ {
				for i := i0; i <= i1; i++ {
					labels.Stored[i+12*(j+10*k)] = l
				}
			}
		}
	}
	set(1, 1, 5, 1, 4, 1, 2)
	set(2, 6, 8, 5, 8, 1, 1) // touches label 1 at (5|6, 4|5)? no: diagonal only
	set(3, 11, 11, 0, 0, 1, 1)
	set(3, 0, 1, 9, 9, 0, 3)
	for _, tc := range []struct {
		plane Plane
		index int
	}{{Axial, 1}, {Axial, 0}, {Coronal, 3}, {Sagittal, 1}} {
		t.Run(fmt.Sprintf("%s %d", tc.plane, tc.index), func(t *testing.T) {
			img, err := Render(v, RenderOptions{Plane: tc.plane, Index: tc.index, Center: 300, Width: 600, Labels: labels})
			if err != nil {
				t.Fatal(err)
			}
			vs, _ := Reformat(v, tc.plane, tc.index)
			grey := vs.Gray(300, 600)
			ls, err := ReformatLabels(labels, tc.plane, tc.index)
			if err != nil {
				t.Fatal(err)
			}
			at := func(x, y int) float32 {
				if x < 0 || y < 0 || x >= ls.Width || y >= ls.Height {
					return -1
				}
				return ls.Pix[y*ls.Width+x]
			}
			outlined := map[int]int{}
			for y := range ls.Height {
				for x := range ls.Width {
					l := at(x, y)
					if l != float32(int(l)) || l < 0 || l > 3 {
						t.Fatalf("label pixel (%d, %d) = %g: not one voxel's label", x, y, l)
					}
					want := grey.RGBAAt(x, y)
					if l != 0 && (at(x-1, y) != l || at(x+1, y) != l || at(x, y-1) != l || at(x, y+1) != l) {
						want = OutlineColor(int(l))
						outlined[int(l)]++
					}
					if got := img.RGBAAt(x, y); got != want {
						t.Fatalf("pixel (%d, %d) of label %g: %v, want %v", x, y, l, got, want)
					}
				}
			}
			if tc.plane == Axial && tc.index == 1 && (outlined[1] != 14 || outlined[2] != 10 || outlined[3] != 3) {
				t.Errorf("outline pixels per label %v, want 1:14 2:10 3:3", outlined)
			}
		})
	}
	if c := OutlineColor(1); c != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("label 1 colour %v, want red", c)
	}
	if c := OutlineColor(2); c != (color.RGBA{255, 165, 0, 255}) {
		t.Errorf("label 2 colour %v, want orange", c)
	}
	if c := OutlineColor(7); c != (color.RGBA{255, 255, 0, 255}) {
		t.Errorf("label 7 colour %v, want yellow", c)
	}
}

func TestRenderRejects(t *testing.T) {
	ident := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	v := renderGrid([3]int{6, 5, 4}, [3]float64{1, 1, 3}, ident)
	other := renderGrid([3]int{6, 5, 3}, [3]float64{1, 1, 3}, ident)
	for _, tc := range []struct {
		name string
		o    RenderOptions
	}{
		{"unknown plane", RenderOptions{Plane: "oblique"}},
		{"empty plane", RenderOptions{}},
		{"negative index", RenderOptions{Plane: Axial, Index: -1}},
		{"axial index past the slices", RenderOptions{Plane: Axial, Index: 4}},
		{"coronal index past the rows", RenderOptions{Plane: Coronal, Index: 5}},
		{"sagittal index past the columns", RenderOptions{Plane: Sagittal, Index: 6}},
		{"labels on another grid", RenderOptions{Plane: Axial, Index: 0, Labels: other}},
	} {
		if _, err := Render(v, tc.o); !errors.Is(err, ErrSection) {
			t.Errorf("%s: error %v, want ErrSection", tc.name, err)
		}
	}
	if n := SectionCount(v, "oblique"); n != 0 {
		t.Errorf("SectionCount of an unknown plane: %d", n)
	}
	for p, want := range map[Plane]int{Axial: 4, Coronal: 5, Sagittal: 6} {
		if n := SectionCount(v, p); n != want {
			t.Errorf("SectionCount(%s) = %d, want %d", p, n, want)
		}
	}
}

// TestReformatCapsSide checks that a reformat whose square pixels would
// exceed MaxSectionSide gets larger pixels instead, on both axes.
func TestReformatCapsSide(t *testing.T) {
	v := renderGrid([3]int{4, 3, 100}, [3]float64{0.1, 0.1, 20}, [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}})
	s, err := Reformat(v, Coronal, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 1980 mm of slices in 4096 pixels of 0.48 mm; 0.3 mm of columns
	// in 2 of them.
	if s.Height != MaxSectionSide || s.Width != 2 || math.Abs(s.PixelMM-1980.0/4095) > 1e-12 {
		t.Errorf("%d×%d pixels of %g mm, want 2×%d", s.Width, s.Height, s.PixelMM, MaxSectionSide)
	}
}

func TestVoxelIndexInvertsAffine(t *testing.T) {
	c, s := math.Cos(0.3), math.Sin(0.3)
	v := &Volume{Spacing: [3]float64{0.45, 0.5, 2.5}, Origin: [3]float64{-120.5, 88, 31},
		Axes: [3][3]float64{{c, s, 0}, {-s, c, 0.1}, {0, -0.1, 1}}}
	for _, idx := range [][3]float64{{0, 0, 0}, {511, 0, 3}, {17.25, 300.5, 41}} {
		got := v.VoxelIndex(mul(v.Affine(), [4]float64{idx[0], idx[1], idx[2], 1}))
		for a := range 3 {
			if math.Abs(got[a]-idx[a]) > 1e-9 {
				t.Fatalf("VoxelIndex(Affine(%v)) = %v", idx, got)
			}
		}
	}
}

// BenchmarkRender512 renders an axial 512×512 slice of a stored CT volume
// with a label outline (the key image's work before PNG encoding).
func BenchmarkRender512(b *testing.B) {
	v := &Volume{Size: [4]int{512, 512, 8, 1}, Spacing: [3]float64{0.45, 0.45, 5},
		Axes: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, Stored: make([]int16, 512*512*8), Slope: 1, Intercept: -1024}
	labels := &Volume{Size: v.Size, Spacing: v.Spacing, Axes: v.Axes, Stored: make([]int16, 512*512*8), Slope: 1}
	for i := range v.Stored {
		v.Stored[i] = int16(i % 2000)
		if x, y := i%512, i/512%512; (x-256)*(x-256)+(y-256)*(y-256) < 40*40 {
			labels.Stored[i] = 1
		}
	}
	for _, p := range []Plane{Axial, Coronal} {
		b.Run(string(p), func(b *testing.B) {
			for b.Loop() {
				if _, err := Render(v, RenderOptions{Plane: p, Index: 4, Center: 40, Width: 80, Labels: labels}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
