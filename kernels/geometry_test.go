package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// obliqueGeometry is a grid with rotated axes and unequal spacing.
func obliqueGeometry() Geometry {
	// A rotation about a tilted axis: the axes are orthonormal.
	c, s := math.Cos(0.3), math.Sin(0.3)
	cz, sz := math.Cos(-0.2), math.Sin(-0.2)
	return Geometry{
		Size:    [3]int{11, 17, 23},
		Spacing: [3]float64{2.5, 0.8, 0.7},
		Origin:  [3]float64{-120.5, 33.25, 410},
		Axes: [3][3]float64{
			{0, -s, c},
			{sz, cz * c, cz * s},
			{cz, -sz * c, -sz * s},
		},
	}
}

func near3(a, b [3]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// TestGeometryVolumeRoundTrip converts a volume.Volume's fields to a
// Geometry and back, and checks that both place every voxel alike (the
// volume's affine, volume.Volume.Affine, written out here).
func TestGeometryVolumeRoundTrip(t *testing.T) {
	size := [4]int{23, 17, 11, 3}
	spacing := [3]float64{0.7, 0.8, 2.5}
	origin := [3]float64{-120.5, 33.25, 410}
	g0 := obliqueGeometry()
	axes := [3][3]float64{g0.Axes[2], g0.Axes[1], g0.Axes[0]}
	g := GeometryFromVolume(size, spacing, origin, axes)
	if g.Size != [3]int{11, 17, 23} || g.Spacing != [3]float64{2.5, 0.8, 0.7} || g.Axes[0] != axes[2] || g.Axes[2] != axes[0] {
		t.Fatalf("GeometryFromVolume = %+v", g)
	}
	s2, sp2, o2, a2 := g.VolumeFields()
	if s2 != [4]int{23, 17, 11, 1} || sp2 != spacing || o2 != origin || a2 != axes {
		t.Fatalf("VolumeFields = %v %v %v %v", s2, sp2, o2, a2)
	}
	for _, ijk := range [][3]int{{0, 0, 0}, {22, 0, 0}, {0, 16, 0}, {0, 0, 10}, {5, 7, 9}, {22, 16, 10}} {
		var want [3]float64
		for r := 0; r < 3; r++ {
			want[r] = origin[r]
			for c := 0; c < 3; c++ {
				want[r] += axes[c][r] * spacing[c] * float64(ijk[c])
			}
		}
		got := g.IndexToLPS([3]float64{float64(ijk[2]), float64(ijk[1]), float64(ijk[0])})
		if !near3(got, want, 1e-9) {
			t.Errorf("voxel (i,j,k) %v: %v, volume's affine gives %v", ijk, got, want)
		}
	}
}

func TestResampleToIdentity(t *testing.T) {
	g := obliqueGeometry()
	for _, c := range []struct {
		spacing [3]float64
		size    [3]int
	}{
		{g.Spacing, g.Size},
		{[3]float64{}, g.Size},
		{g.Spacing, [3]int{}},
		{[3]float64{}, [3]int{}},
	} {
		out, m, err := g.ResampleTo(c.spacing, c.size)
		if err != nil {
			t.Fatal(err)
		}
		if out != g || m.Scale != [3]float64{1, 1, 1} || m.Offset != [3]float64{} {
			t.Errorf("ResampleTo(%v, %v) = %+v, %+v; want the same grid and the identity", c.spacing, c.size, out, m)
		}
	}
	// And the resampled data is the source, exactly.
	b := NewCPU()
	defer b.Close()
	_, m, _ := g.ResampleTo(g.Spacing, g.Size)
	src := randFloats(rand.New(rand.NewPCG(21, 1)), g.Voxels(), -1000, 3000)
	dst := alloc(t, b, len(src))
	for _, mode := range []Interp{Linear, Nearest} {
		if err := b.Resample(dst, upload(t, b, src), g.Size, g.Size, m, mode, -5); err != nil {
			t.Fatal(err)
		}
		closeTo(t, "identity resample", download(t, b, dst, len(src)), src, 0, 0)
	}
}

// TestResampleToCentre checks that the new grid keeps the centre and that
// the map sends each new voxel to the old index at the same position.
func TestResampleToCentre(t *testing.T) {
	g := obliqueGeometry()
	rng := rand.New(rand.NewPCG(22, 1))
	for i := 0; i < 20; i++ {
		var sp [3]float64
		var size [3]int
		for a := 0; a < 3; a++ {
			sp[a] = 0.3 + 3*rng.Float64()
			if i%2 == 0 {
				size[a] = 1 + rng.IntN(40)
			}
		}
		out, m, err := g.ResampleTo(sp, size)
		if err != nil {
			t.Fatal(err)
		}
		if !near3(out.Centre(), g.Centre(), 1e-9) {
			t.Errorf("ResampleTo(%v, %v): centre %v, want %v", sp, size, out.Centre(), g.Centre())
		}
		if out.Axes != g.Axes || out.Spacing != sp {
			t.Errorf("ResampleTo(%v, %v) = %+v", sp, size, out)
		}
		for a := 0; a < 3; a++ {
			if size[a] != 0 && out.Size[a] != size[a] {
				t.Errorf("size %v, asked %v", out.Size, size)
			}
			if size[a] == 0 {
				want := int(math.Round(float64(g.Size[a]) * g.Spacing[a] / sp[a]))
				if out.Size[a] != max(want, 1) {
					t.Errorf("axis %d covers %d voxels, want %d", a, out.Size[a], want)
				}
			}
		}
		for _, p := range [][3]float64{{0, 0, 0}, {3, 1, 2}, {float64(out.Size[0] - 1), float64(out.Size[1] - 1), float64(out.Size[2] - 1)}} {
			var q [3]float64
			for a := 0; a < 3; a++ {
				q[a] = m.Offset[a] + m.Scale[a]*p[a]
			}
			if !near3(out.IndexToLPS(p), g.IndexToLPS(q), 1e-9) {
				t.Errorf("new voxel %v at %v, its source index %v at %v", p, out.IndexToLPS(p), q, g.IndexToLPS(q))
			}
		}
	}
	// A CT-like grid to 1 mm: 512 voxels of 0.7 mm cover 358 of 1 mm.
	ct := Geometry{Size: [3]int{200, 512, 512}, Spacing: [3]float64{1.25, 0.7, 0.7}, Axes: [3][3]float64{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}}}
	out, _, err := ct.ResampleTo([3]float64{1, 1, 1}, [3]int{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Size != [3]int{250, 358, 358} {
		t.Errorf("CT to 1 mm: %v voxels", out.Size)
	}
}

// TestResampleToRamp resamples a linear function of position: trilinear
// interpolation reproduces it at every new voxel inside the old grid.
func TestResampleToRamp(t *testing.T) {
	g := obliqueGeometry()
	ramp := func(x [3]float64) float64 { return 0.5*x[0] - 1.25*x[1] + 2*x[2] + 7 }
	src := make([]float32, g.Voxels())
	for d := 0; d < g.Size[0]; d++ {
		for h := 0; h < g.Size[1]; h++ {
			for w := 0; w < g.Size[2]; w++ {
				src[(d*g.Size[1]+h)*g.Size[2]+w] = float32(ramp(g.IndexToLPS([3]float64{float64(d), float64(h), float64(w)})))
			}
		}
	}
	b := NewCPU()
	defer b.Close()
	sb := upload(t, b, src)
	for _, sp := range [][3]float64{{1, 1, 1}, {3.1, 0.45, 0.9}, {2.5, 0.8, 0.35}} {
		out, m, err := g.ResampleTo(sp, [3]int{})
		if err != nil {
			t.Fatal(err)
		}
		const fill = -1e9
		dst := alloc(t, b, out.Voxels())
		if err := b.Resample(dst, sb, out.Size, g.Size, m, Linear, fill); err != nil {
			t.Fatal(err)
		}
		got := download(t, b, dst, out.Voxels())
		inside, outside := 0, 0
		for d := 0; d < out.Size[0]; d++ {
			for h := 0; h < out.Size[1]; h++ {
				for w := 0; w < out.Size[2]; w++ {
					p := [3]float64{float64(d), float64(h), float64(w)}
					in := true
					for a := 0; a < 3; a++ {
						q := m.Offset[a] + m.Scale[a]*p[a]
						in = in && q >= -ResampleEdge && q <= float64(g.Size[a]-1)+ResampleEdge
					}
					v := got[(d*out.Size[1]+h)*out.Size[2]+w]
					if !in {
						outside++
						if v != fill {
							t.Fatalf("spacing %v: voxel %v outside the old grid = %v", sp, p, v)
						}
						continue
					}
					inside++
					want := ramp(out.IndexToLPS(p))
					if math.Abs(float64(v)-want) > 2e-3+1e-6*math.Abs(want) {
						t.Fatalf("spacing %v: voxel %v = %v, ramp %v", sp, p, v, want)
					}
				}
			}
		}
		if inside == 0 {
			t.Fatalf("spacing %v: no voxel inside", sp)
		}
		t.Logf("spacing %v: %d voxels inside, %d outside", sp, inside, outside)
	}
}

// TestGeometryFlipCropPad checks that Flip and CropPad of the geometry
// follow the data: every value stays at its position.
func TestGeometryFlipCropPad(t *testing.T) {
	g := obliqueGeometry()
	g.Size = [3]int{4, 5, 6}
	b := NewCPU()
	defer b.Close()
	src := randFloats(rand.New(rand.NewPCG(23, 1)), g.Voxels(), -1, 1)
	sb := upload(t, b, src)
	at := func(data []float32, size [3]int, p [3]int) float32 {
		return data[(p[0]*size[1]+p[1])*size[2]+p[2]]
	}
	// position → value of the source, by exact index.
	srcAt := func(x [3]float64) (float32, bool) {
		// Invert by search: the grids are small.
		for d := 0; d < g.Size[0]; d++ {
			for h := 0; h < g.Size[1]; h++ {
				for w := 0; w < g.Size[2]; w++ {
					if near3(g.IndexToLPS([3]float64{float64(d), float64(h), float64(w)}), x, 1e-9) {
						return at(src, g.Size, [3]int{d, h, w}), true
					}
				}
			}
		}
		return 0, false
	}
	for m := 0; m < 8; m++ {
		axes := [3]bool{m&4 != 0, m&2 != 0, m&1 != 0}
		fg := g.Flip(axes)
		dst := alloc(t, b, g.Voxels())
		if err := b.Flip(dst, sb, 1, 1, g.Size, axes); err != nil {
			t.Fatal(err)
		}
		got := download(t, b, dst, g.Voxels())
		for _, p := range [][3]int{{0, 0, 0}, {3, 4, 5}, {1, 2, 3}, {3, 0, 5}} {
			want, ok := srcAt(fg.IndexToLPS([3]float64{float64(p[0]), float64(p[1]), float64(p[2])}))
			if !ok || at(got, g.Size, p) != want {
				t.Errorf("flip %v: voxel %v = %v, the source at its position %v (found %v)", axes, p, at(got, g.Size, p), want, ok)
			}
		}
	}
	size, off := [3]int{3, 7, 2}, [3]int{1, -1, 3}
	cg := g.CropPad(size, off)
	dst := alloc(t, b, Voxels(size))
	if err := b.CropPad(dst, sb, 1, 1, g.Size, size, off, 99); err != nil {
		t.Fatal(err)
	}
	got := download(t, b, dst, Voxels(size))
	for d := 0; d < size[0]; d++ {
		for h := 0; h < size[1]; h++ {
			for w := 0; w < size[2]; w++ {
				v := at(got, size, [3]int{d, h, w})
				want, ok := srcAt(cg.IndexToLPS([3]float64{float64(d), float64(h), float64(w)}))
				if !ok {
					want = 99
				}
				if v != want {
					t.Errorf("crop/pad voxel %v = %v, want %v", [3]int{d, h, w}, v, want)
				}
			}
		}
	}
}

func TestResampleToErrors(t *testing.T) {
	g := obliqueGeometry()
	bad := g
	bad.Spacing[1] = 0
	empty := g
	empty.Size[2] = 0
	for _, c := range []struct {
		name    string
		g       Geometry
		spacing [3]float64
		size    [3]int
	}{
		{"zero spacing", bad, [3]float64{1, 1, 1}, [3]int{}},
		{"empty grid", empty, [3]float64{1, 1, 1}, [3]int{}},
		{"negative spacing", g, [3]float64{1, -1, 1}, [3]int{}},
		{"NaN spacing", g, [3]float64{1, math.NaN(), 1}, [3]int{}},
		{"infinite spacing", g, [3]float64{1, math.Inf(1), 1}, [3]int{}},
		{"negative size", g, [3]float64{1, 1, 1}, [3]int{-1, 0, 0}},
		{"tiny spacing", g, [3]float64{1e-300, 1, 1}, [3]int{}},
	} {
		if _, _, err := c.g.ResampleTo(c.spacing, c.size); !errors.Is(err, ErrShape) {
			t.Errorf("%s: error %v, want ErrShape", c.name, err)
		}
	}
}

func TestCenteredCropPad(t *testing.T) {
	g := obliqueGeometry() // 11×17×23
	for _, c := range []struct {
		size, off [3]int
	}{
		{[3]int{11, 17, 23}, [3]int{0, 0, 0}},
		{[3]int{9, 16, 24}, [3]int{1, 0, -1}},
		{[3]int{14, 20, 1}, [3]int{-2, -2, 11}},
	} {
		out, off := g.CenteredCropPad(c.size)
		if off != c.off || out.Size != c.size {
			t.Errorf("CenteredCropPad(%v) = %v, offset %v; want offset %v", c.size, out.Size, off, c.off)
		}
		// The new centre is the old grid's index off+(size-1)/2, at most
		// half a voxel from the old centre on each axis.
		var q [3]float64
		for a := 0; a < 3; a++ {
			q[a] = float64(off[a]) + float64(c.size[a]-1)/2
			if d := q[a] - float64(g.Size[a]-1)/2; math.Abs(d) > 0.5 {
				t.Errorf("CenteredCropPad(%v): centre moved %v voxels on axis %d", c.size, d, a)
			}
		}
		if !near3(out.Centre(), g.IndexToLPS(q), 1e-9) {
			t.Errorf("CenteredCropPad(%v): centre %v, want %v", c.size, out.Centre(), g.IndexToLPS(q))
		}
	}
}
