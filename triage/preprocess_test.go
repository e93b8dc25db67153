package triage

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
)

// spec is a valid input spec for the tests.
func spec(spacing [3]float64, size [3]int, center, width float64, d DenoiseSpec) InputSpec {
	return InputSpec{Spacing: spacing, Size: size, Window: WindowSpec{center, width}, Denoise: d, Channels: 1}
}

var noDenoise = DenoiseSpec{Method: "none"}

func prep(t *testing.T, v *volume.Volume, in InputSpec) *Prepared {
	t.Helper()
	p, err := Preprocess(t.Context(), kernels.CPU(), v, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	if len(p.Tensor) != kernels.Voxels(in.Size) || p.Geometry.Size != in.Size || p.Geometry.Spacing != in.Spacing {
		t.Fatalf("tensor of %d values, geometry %+v for %v", len(p.Tensor), p.Geometry, in.Size)
	}
	for i, x := range p.Tensor {
		if !(x >= 0 && x <= 1) {
			t.Fatalf("value %d is %v, outside [0, 1]", i, x)
		}
	}
	return p
}

func near3(a, b [3]float64, tol float64) bool {
	for r := 0; r < 3; r++ {
		if math.Abs(a[r]-b[r]) > tol {
			return false
		}
	}
	return true
}

// lpsToIndex inverts g.IndexToLPS for orthonormal axes.
func lpsToIndex(g kernels.Geometry, x [3]float64) [3]float64 {
	var q [3]float64
	for a := 0; a < 3; a++ {
		for r := 0; r < 3; r++ {
			q[a] += (x[r] - g.Origin[r]) * g.Axes[a][r]
		}
		q[a] /= g.Spacing[a]
	}
	return q
}

// Keeping the grid, preprocessing is the window of the values in the
// volume's own layout: (i, j, k) = (W, H, D), no transposition.
func TestPreprocessIdentityGrid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	v := &volume.Volume{
		Size: [4]int{7, 5, 3, 1}, Spacing: [3]float64{0.8, 0.9, 4},
		Origin: [3]float64{-10, 20, 30}, Axes: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
		Stored: make([]int16, 7*5*3), Slope: 1, Intercept: -1024,
	}
	for i := range v.Stored {
		v.Stored[i] = int16(r.IntN(1200) + 900)
	}
	in := spec([3]float64{4, 0.9, 0.8}, [3]int{3, 5, 7}, 40, 120, noDenoise)
	p := prep(t, v, in)
	if p.Geometry.Origin != v.Origin || p.Map != (kernels.AxisMap{Scale: [3]float64{1, 1, 1}}) {
		t.Fatalf("geometry %+v map %+v", p.Geometry, p.Map)
	}
	for i, s := range v.Stored {
		hu := float64(s) - 1024
		want := min(max((hu-(40-60))/120, 0), 1)
		if math.Abs(float64(p.Tensor[i])-want) > 1e-6 {
			t.Fatalf("voxel %d: HU %v gave %v, want %v", i, hu, p.Tensor[i], want)
		}
	}
	// A known HU value: 40 is the window centre, 0.5.
	v.Stored[0] = 1024 + 40
	if p := prep(t, v, in); p.Tensor[0] != 0.5 {
		t.Errorf("40 HU gave %v, want 0.5", p.Tensor[0])
	}
	// Data and Stored give the same result; the backend buffer holds the
	// tensor.
	w := *v
	w.Stored, w.Slope, w.Intercept = nil, 0, 0
	w.Data = append([]float32(nil), v.Values()...)
	q := prep(t, &w, in)
	got := make([]float32, len(q.Tensor))
	if err := kernels.CPU().Download(got, q.Buffer); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != q.Tensor[i] || q.Tensor[i] != prep(t, v, in).Tensor[i] {
			t.Fatalf("voxel %d: buffer %v tensor %v", i, got[i], q.Tensor[i])
		}
	}
}

// A linear function of the LPS position is resampled exactly by
// trilinear interpolation: every network voxel inside the volume holds
// the function at its IndexToLPS, whatever the axes.
func TestPreprocessGeometryLinear(t *testing.T) {
	v := &volume.Volume{
		Size:    [4]int{20, 16, 9, 1},
		Spacing: [3]float64{1.1, 0.7, 3},
		Origin:  [3]float64{12, -30, 40},
		// Rows along -y, columns along z, slices along x.
		Axes: [3][3]float64{{0, 0, 1}, {0, -1, 0}, {1, 0, 0}},
	}
	f := func(x [3]float64) float64 { return 2*x[0] - 3*x[1] + 0.5*x[2] }
	v.Data = make([]float32, v.Voxels())
	for k := range v.Size[2] {
		for j := range v.Size[1] {
			for i := range v.Size[0] {
				var x [3]float64
				for r := range 3 {
					x[r] = v.Origin[r] + float64(i)*v.Spacing[0]*v.Axes[0][r] + float64(j)*v.Spacing[1]*v.Axes[1][r] + float64(k)*v.Spacing[2]*v.Axes[2][r]
				}
				v.Data[i+v.Size[0]*(j+v.Size[1]*k)] = float32(f(x))
			}
		}
	}
	const center, width = 0, 4000
	in := spec([3]float64{2, 1.3, 0.9}, [3]int{17, 7, 30}, center, width, noDenoise)
	p := prep(t, v, in)
	src := kernels.GeometryFromVolume(v.Size, v.Spacing, v.Origin, v.Axes)
	if c, want := p.Geometry.Centre(), src.Centre(); !near3(c, want, 1e-6) {
		t.Fatalf("centre %v, volume's %v", c, want)
	}
	inside, outside := 0, 0
	for d := range in.Size[0] {
		for h := range in.Size[1] {
			for w := range in.Size[2] {
				q := [3]float64{float64(d), float64(h), float64(w)}
				s := p.ToSource(q)
				// ToSource agrees with the geometry.
				if x := lpsToIndex(src, p.Geometry.IndexToLPS(q)); !near3(x, s, 1e-9) {
					t.Fatalf("voxel %v: ToSource %v, by LPS %v", q, s, x)
				}
				got := float64(p.Tensor[w+in.Size[2]*(h+in.Size[1]*d)])
				in := true
				for a := range 3 {
					in = in && s[a] >= 0 && s[a] <= float64(src.Size[a]-1)
				}
				if !in {
					outside++
					if want := (AirHU - (center - width/2.0)) / width; math.Abs(got-want) > 1e-6 {
						t.Fatalf("voxel %v outside: %v, want air %v", q, got, want)
					}
					continue
				}
				inside++
				want := (f(p.Geometry.IndexToLPS(q)) - (center - width/2.0)) / width
				if math.Abs(got-want) > 2e-5 {
					t.Fatalf("voxel %v at %v: %v, want %v", q, p.Geometry.IndexToLPS(q), got, want)
				}
			}
		}
	}
	if inside == 0 || outside == 0 {
		t.Errorf("%d voxels inside, %d outside: the test covers both", inside, outside)
	}
	// BackMap inverts Map.
	bm := p.BackMap()
	for a := range 3 {
		x := p.Map.Offset[a] + p.Map.Scale[a]*5
		if y := bm.Offset[a] + bm.Scale[a]*x; math.Abs(y-5) > 1e-9 {
			t.Errorf("axis %d: BackMap(Map(5)) = %v", a, y)
		}
	}
}

func smallPhantom(t *testing.T) *phantom.Phantom {
	t.Helper()
	p, err := phantom.Generate(phantom.Spec{
		Seed: 2, Size: [3]int{16, 128, 112}, Spacing: [3]float64{5, 1.8, 1.8},
		Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 4}, {Kind: phantom.KindSDH}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A phantom lesion's centroid lands on the network voxel its LPS
// position names: the label volume, through the same preprocessing,
// has its weighted centroid there.
func TestPreprocessPhantomLesion(t *testing.T) {
	ph := smallPhantom(t)
	v := ph.HUVolume()
	in := spec([3]float64{4, 2.5, 2.5}, [3]int{24, 96, 96}, 40, 120, DenoiseSpec{Method: "gaussian", SigmaMM: 1})
	p := prep(t, v, in)
	src := kernels.GeometryFromVolume(v.Size, v.Spacing, v.Origin, v.Axes)
	if c, want := p.Geometry.Centre(), src.Centre(); !near3(c, want, 1e-6) {
		t.Fatalf("centre %v, volume's %v", c, want)
	}
	// Padding (the grid is 96 mm deep, the phantom 80): air, 0.
	if p.Tensor[0] != 0 || p.Tensor[len(p.Tensor)-1] != 0 {
		t.Errorf("corners %v %v, want 0 (air)", p.Tensor[0], p.Tensor[len(p.Tensor)-1])
	}
	if len(ph.Lesions) != 2 || ph.Lesions[0].Voxels == 0 || ph.Lesions[1].Voxels == 0 {
		t.Fatalf("lesions %+v", ph.Lesions)
	}
	for _, l := range ph.Lesions {
		lab := ph.LabelVolume()
		for i, s := range lab.Stored {
			if uint8(s) == l.Label {
				lab.Stored[i] = 1000
			} else {
				lab.Stored[i] = 0
			}
		}
		m := prep(t, lab, spec(in.Spacing, in.Size, 500, 1000, noDenoise))
		var c [3]float64
		var sum float64
		for d := range in.Size[0] {
			for h := range in.Size[1] {
				for w := range in.Size[2] {
					x := float64(m.Tensor[w+in.Size[2]*(h+in.Size[1]*d)])
					c[0] += x * float64(d)
					c[1] += x * float64(h)
					c[2] += x * float64(w)
					sum += x
				}
			}
		}
		if sum == 0 {
			t.Fatalf("%s: no lesion voxels on the network grid", l.Kind)
		}
		for a := range 3 {
			c[a] /= sum
		}
		want := lpsToIndex(p.Geometry, l.CentroidLPS)
		if !near3(c, want, 1) {
			t.Errorf("%s: centroid at network voxel %.2f, its LPS %v names %.2f", l.Kind, c, l.CentroidLPS, want)
		}
		// The lesion is blood: above brain in the window.
		q := [3]int{int(math.Round(want[0])), int(math.Round(want[1])), int(math.Round(want[2]))}
		if x := p.Tensor[q[2]+in.Size[2]*(q[1]+in.Size[1]*q[0])]; l.Kind == phantom.KindICH && !(x > (45+20)/120.0) {
			t.Errorf("%s: window value %v at its centroid voxel %v", l.Kind, x, q)
		}
	}
}

func TestPreprocessDenoiseAndDeterminism(t *testing.T) {
	ph := smallPhantom(t)
	in := spec([3]float64{5, 1.8, 1.8}, [3]int{16, 128, 112}, 40, 120, noDenoise)
	none := prep(t, ph.HUVolume(), in)
	methods := []DenoiseSpec{
		{Method: "gaussian", SigmaMM: 1},
		{Method: "bilateral", SigmaMM: 1, SigmaRangeHU: 40},
		{Method: "nlm", PatchRadius: 1, SearchRadius: 1, NoiseHU: 10, HHU: 12},
	}
	for _, d := range methods {
		in.Denoise = d
		a := prep(t, ph.HUVolume(), in)
		b := prep(t, ph.HUVolume(), in)
		diff := 0
		for i := range a.Tensor {
			if a.Tensor[i] != b.Tensor[i] {
				t.Fatalf("%s: voxel %d differs between runs: %v %v", d.Method, i, a.Tensor[i], b.Tensor[i])
			}
			if a.Tensor[i] != none.Tensor[i] {
				diff++
			}
		}
		if diff < len(a.Tensor)/10 {
			t.Errorf("%s changed %d of %d voxels", d.Method, diff, len(a.Tensor))
		}
	}
}

func TestPreprocessErrors(t *testing.T) {
	good := spec([3]float64{5, 1.8, 1.8}, [3]int{4, 8, 8}, 40, 120, noDenoise)
	vol := func() *volume.Volume {
		return &volume.Volume{
			Size: [4]int{4, 4, 2, 1}, Spacing: [3]float64{1, 1, 5},
			Axes: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, Data: make([]float32, 32),
		}
	}
	cases := []struct {
		name string
		v    *volume.Volume
		in   InputSpec
		card bool // a spec error, wrapping ErrCard too
	}{
		{"nil volume", nil, good, false},
		{"empty", func() *volume.Volume { v := vol(); v.Size = [4]int{0, 4, 2, 1}; v.Data = nil; return v }(), good, false},
		{"4D", func() *volume.Volume { v := vol(); v.Size[3] = 2; v.Data = make([]float32, 64); return v }(), good, false},
		{"short data", func() *volume.Volume { v := vol(); v.Data = v.Data[:31]; return v }(), good, false},
		{"no values", func() *volume.Volume { v := vol(); v.Data = nil; return v }(), good, false},
		{"stored without slope", func() *volume.Volume { v := vol(); v.Data = nil; v.Stored = make([]int16, 32); return v }(), good, false},
		{"zero spacing", func() *volume.Volume { v := vol(); v.Spacing[2] = 0; return v }(), good, false},
		{"bad axes", func() *volume.Volume { v := vol(); v.Axes[1] = [3]float64{}; return v }(), good, false},
		{"bad size", vol(), spec(good.Spacing, [3]int{4, 0, 8}, 40, 120, noDenoise), true},
		{"bad window", vol(), spec(good.Spacing, good.Size, 40, 0, noDenoise), true},
		{"bad denoise", vol(), spec(good.Spacing, good.Size, 40, 120, DenoiseSpec{Method: "median"}), true},
	}
	for _, c := range cases {
		_, err := Preprocess(t.Context(), kernels.CPU(), c.v, c.in)
		if !errors.Is(err, ErrPreprocess) || errors.Is(err, ErrCard) != c.card {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A cancelled context stops it.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Preprocess(ctx, kernels.CPU(), vol(), good); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// The real CT through the example card.
func TestPreprocessRealCT(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	col, err := volume.LoadDir(os.DirFS(dir), volume.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := volume.Choose(col)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Assemble(volume.AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	card, err := LoadCard(exampleCard)
	if err != nil {
		t.Fatal(err)
	}
	p := prep(t, v, card.Input)
	src := kernels.GeometryFromVolume(v.Size, v.Spacing, v.Origin, v.Axes)
	if c, want := p.Geometry.Centre(), src.Centre(); !near3(c, want, 1e-6) {
		t.Fatalf("centre %v, volume's %v", c, want)
	}
	if p.Geometry.Axes != src.Axes {
		t.Errorf("axes %v, volume's %v", p.Geometry.Axes, src.Axes)
	}
	// Soft tissue (strictly inside the window, -20 to 100 HU) takes
	// about the volume on the network grid that it takes in the series.
	var srcIn int
	for _, x := range v.Values() {
		if x > -20 && x < 100 {
			srcIn++
		}
	}
	var mid int
	for _, x := range p.Tensor {
		if x > 0 && x < 1 {
			mid++
		}
	}
	srcML := float64(srcIn) * v.Spacing[0] * v.Spacing[1] * v.Spacing[2] / 1000
	netML := float64(mid) * 5 * 1.8 * 1.8 / 1000
	if srcIn == 0 || math.Abs(netML-srcML) > 0.3*srcML {
		t.Errorf("soft tissue: %.1f mL in the series, %.1f mL on the network grid", srcML, netML)
	}
	if p.Timings.Total <= 0 || p.Timings.Total < p.Timings.Resample {
		t.Errorf("timings %+v", p.Timings)
	}
	t.Logf("%v voxels of %v mm to %v: %+v", src.Size, src.Spacing, p.Geometry.Size, p.Timings)
}

// On a CUDA build with a device, the GPU gives the CPU's tensor (up to
// float rounding); skipped elsewhere.
func TestPreprocessCUDAMatchesCPU(t *testing.T) {
	gpu, _, err := kernels.Open("cuda")
	if err != nil {
		t.Skipf("no CUDA backend: %v", err)
	}
	defer gpu.Close()
	ph := smallPhantom(t)
	for _, d := range []DenoiseSpec{noDenoise, {Method: "gaussian", SigmaMM: 1}, {Method: "nlm", PatchRadius: 1, SearchRadius: 2, NoiseHU: 10, HHU: 12}} {
		in := spec([3]float64{4, 2.5, 2.5}, [3]int{24, 96, 96}, 40, 120, d)
		want := prep(t, ph.HUVolume(), in)
		got, err := Preprocess(t.Context(), gpu, ph.HUVolume(), in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got.Tensor {
			if math.Abs(float64(got.Tensor[i]-want.Tensor[i])) > 1e-4 {
				t.Fatalf("%s: voxel %d: cuda %v, cpu %v", d.Method, i, got.Tensor[i], want.Tensor[i])
			}
		}
		got.Release()
	}
}

// The network grid is oriented by the patient axes, not by how a source
// stores its voxels: a phantom's mask written as NIfTI (rows bottom to
// top, as dcm2niix and phantom.WriteMask write them) and read back gives,
// through PreprocessLabels, labels over the lesion's bright voxels of the
// DICOM-ordered volume's input; and the volume itself stored flipped on
// every axis gives the same input.
func TestPreprocessOrientation(t *testing.T) {
	ph := smallPhantom(t)
	v := ph.HUVolume()
	in := spec([3]float64{4, 2.5, 2.5}, [3]int{24, 96, 96}, 40, 120, noDenoise)
	p := prep(t, v, in)

	name := filepath.Join(t.TempDir(), "mask.nii.gz")
	if err := phantom.WriteMask(name, ph); err != nil {
		t.Fatal(err)
	}
	mv, err := volume.ReadNIfTIFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Axes[1][1] > 0 {
		t.Fatalf("the mask file's rows run %v: this test wants them stored bottom to top", mv.Axes[1])
	}
	lab, err := PreprocessLabels(t.Context(), kernels.CPU(), mv, in)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Release()
	if lab.Geometry.Size != p.Geometry.Size || lab.Geometry.Axes != p.Geometry.Axes || !near3(lab.Geometry.Origin, p.Geometry.Origin, 1e-4) {
		t.Fatalf("label grid %+v, input grid %+v", lab.Geometry, p.Geometry)
	}
	for _, l := range ph.Lesions {
		var sum float64
		var n int
		for i, x := range lab.Tensor {
			if x == float32(l.Label) {
				sum += float64(p.Tensor[i])
				n++
			}
		}
		// Blood is 52-78 HU, (HU+20)/120 in the window: over 0.6; brain
		// is about 0.4.
		if n == 0 || sum/float64(n) < 0.55 {
			t.Errorf("%s: %d label voxels, mean input %.3f under them", l.Kind, n, sum/float64(max(n, 1)))
		}
	}

	// The volume stored the other way on every axis: same input.
	src := kernels.GeometryFromVolume(v.Size, v.Spacing, v.Origin, v.Axes)
	fg := src.Flip([3]bool{true, true, true})
	vals := v.Values()
	fv := *v
	fv.Stored, fv.Data = nil, make([]float32, len(vals))
	D, H, W := v.Size[2], v.Size[1], v.Size[0]
	for d := range D {
		for h := range H {
			for w := range W {
				fv.Data[(W-1-w)+W*((H-1-h)+H*(D-1-d))] = vals[w+W*(h+H*d)]
			}
		}
	}
	fv.Size, fv.Spacing, fv.Origin, fv.Axes = fg.VolumeFields()
	q := prep(t, &fv, in)
	for i := range p.Tensor {
		if math.Abs(float64(p.Tensor[i]-q.Tensor[i])) > 1e-5 {
			t.Fatalf("voxel %d: %v from the volume, %v from its flipped storage", i, p.Tensor[i], q.Tensor[i])
		}
	}
	// And the map still leads back to the flipped source's indices.
	if s := q.ToSource([3]float64{0, 0, 0}); !near3(s, [3]float64{float64(D-1) - p.ToSource([3]float64{})[0], float64(H-1) - p.ToSource([3]float64{})[1], float64(W-1) - p.ToSource([3]float64{})[2]}, 1e-9) {
		t.Errorf("ToSource(0) %v on the flipped source", s)
	}
}
