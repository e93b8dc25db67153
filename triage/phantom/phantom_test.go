package phantom

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func gen(t testing.TB, s Spec) *Phantom {
	t.Helper()
	p, err := Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var both = []LesionSpec{{Kind: KindICH}, {Kind: KindSDH}}

func TestDefaults(t *testing.T) {
	p := gen(t, Spec{Seed: 1})
	if p.Size != DefaultSize || p.Spacing != DefaultSpacing || len(p.HU) != 32*256*256 || len(p.Labels) != len(p.HU) || len(p.Lesions) != 0 {
		t.Fatalf("size %v spacing %v, %d values, %d lesions", p.Size, p.Spacing, len(p.HU), len(p.Lesions))
	}
	if slices.ContainsFunc(p.Labels, func(l uint8) bool { return l != 0 }) {
		t.Error("a study without lesions has labelled voxels")
	}
	// The grid is centred on 0.
	c := p.Position(31/2.0, 255/2.0, 255/2.0)
	for a := range 3 {
		if math.Abs(c[a]) > 1e-9 {
			t.Errorf("centre of the grid at %v, want 0", c)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	for _, s := range []Spec{
		{Size: [3]int{0, 256, 256}},
		{Size: [3]int{4, 8, 256}},
		{Spacing: [3]float64{5, 0, 1}},
		{Spacing: [3]float64{5, math.NaN(), 1}},
		{Noise: math.NaN()},
		{Lesions: []LesionSpec{{Kind: "edh"}}},
		{Lesions: []LesionSpec{{Kind: KindICH, VolumeML: -1}}},
	} {
		if _, err := Generate(s); !errors.Is(err, ErrSpec) {
			t.Errorf("%+v: got %v, want ErrSpec", s, err)
		}
	}
}

func TestDeterminism(t *testing.T) {
	s := Spec{Seed: 7, Size: [3]int{10, 96, 96}, Lesions: both}
	a, b := gen(t, s), gen(t, s)
	if !slices.Equal(a.HU, b.HU) || !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Lesions, b.Lesions) {
		t.Fatal("one seed gave two phantoms")
	}
	da, db := t.TempDir(), t.TempDir()
	if err := WriteSeries(da, a, SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteSeries(db, b, SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	for d := range s.Size[0] {
		fa, _ := os.ReadFile(filepath.Join(da, SliceFileName(d)))
		fb, _ := os.ReadFile(filepath.Join(db, SliceFileName(d)))
		if len(fa) == 0 || !bytes.Equal(fa, fb) {
			t.Fatalf("slice %d: files differ (%d, %d bytes)", d, len(fa), len(fb))
		}
	}
	s.Seed = 8
	c := gen(t, s)
	if slices.Equal(a.HU, c.HU) || slices.Equal(a.Labels, c.Labels) {
		t.Error("seeds 7 and 8 gave the same phantom")
	}
	sa, _, _, _ := a.UIDs()
	sc, _, _, _ := c.UIDs()
	if sa == sc {
		t.Error("seeds 7 and 8 gave the same Study Instance UID")
	}
}

func TestLesionVolumes(t *testing.T) {
	for seed := range uint64(4) {
		p := gen(t, Spec{Seed: seed, Lesions: []LesionSpec{{Kind: KindICH}, {Kind: KindSDH}, {Kind: KindICH, VolumeML: 10}}})
		count := map[uint8]int{}
		for _, l := range p.Labels {
			count[l]++
		}
		sum := map[uint8]int{}
		for i, l := range p.Lesions {
			sum[l.Label] += l.Voxels
			if l.Voxels == 0 {
				t.Errorf("seed %d lesion %d (%s): no voxels", seed, i, l.Kind)
				continue
			}
			if got := float64(l.Voxels) * p.VoxelML(); math.Abs(got-l.VolumeML) > 1e-9 {
				t.Errorf("seed %d lesion %d: %d voxels are %g mL, reported %g", seed, i, l.Voxels, got, l.VolumeML)
			}
			// The mask reaches the wanted volume of an ICH (to the
			// voxel grid: 4 mm³ voxels, 5 mm slices); an SDH's is set by
			// an approximate formula.
			tol := 0.25
			if l.Kind == KindSDH {
				tol = 0.6
			}
			if l.TargetML >= 2 && math.Abs(l.VolumeML-l.TargetML) > tol*l.TargetML {
				t.Errorf("seed %d lesion %d (%s): %g mL, wanted %g", seed, i, l.Kind, l.VolumeML, l.TargetML)
			}
			// The box holds the centroid.
			for a, c := range [3]float64{(l.CentroidLPS[2] - p.Origin[2]) / p.Spacing[0], (l.CentroidLPS[1] - p.Origin[1]) / p.Spacing[1], (l.CentroidLPS[0] - p.Origin[0]) / p.Spacing[2]} {
				if c < float64(l.BBoxMin[a]) || c > float64(l.BBoxMax[a]) {
					t.Errorf("seed %d lesion %d: centroid %v outside box %v-%v", seed, i, l.CentroidLPS, l.BBoxMin, l.BBoxMax)
				}
			}
		}
		if count[LabelICH] != sum[LabelICH] || count[LabelSDH] != sum[LabelSDH] || count[LabelICH] == 0 || count[LabelSDH] == 0 {
			t.Errorf("seed %d: mask holds %v voxels per label, lesions %v", seed, count, sum)
		}
		if p.Lesions[2].TargetML != 10 {
			t.Errorf("seed %d: asked 10 mL, target %g", seed, p.Lesions[2].TargetML)
		}
	}
}

// Every lesion voxel lies inside the inner table of the skull, an ICH's in
// the brain; an ICH's core is 50-80 HU without noise.
func TestLesionsInsideBrain(t *testing.T) {
	for seed := range uint64(3) {
		p := gen(t, Spec{Seed: seed, Lesions: both, Noise: -1})
		D, H, W := p.Size[0], p.Size[1], p.Size[2]
		core, dense := 0, 0
		for d := range D {
			for h := range H {
				for w := range W {
					i := (d*H+h)*W + w
					l := p.Labels[i]
					if l == 0 {
						continue
					}
					class, _, brain, _ := p.head.tissue(p.head.frame(p.Position(float64(d), float64(h), float64(w))))
					if class < tCSF || brain < 0 || (l == LabelICH && brain < 0.5) {
						t.Fatalf("seed %d: label %d at voxel (%d,%d,%d) in tissue class %d, %.1f mm below the inner skull", seed, l, d, h, w, class, brain)
					}
					if l == LabelICH && h > 0 && w > 0 && h < H-1 && w < W-1 &&
						p.Labels[i-1] == l && p.Labels[i+1] == l && p.Labels[i-W] == l && p.Labels[i+W] == l {
						core++
						if v := p.HU[i]; v >= 50 && v <= 80 {
							dense++
						}
					}
				}
			}
		}
		if core == 0 || float64(dense) < 0.95*float64(core) {
			t.Errorf("seed %d: %d of %d ICH core voxels are 50-80 HU", seed, dense, core)
		}
	}
}

// Tissues away from their edges have the model's values, and the noise
// its standard deviation.
func TestTissueHU(t *testing.T) {
	p := gen(t, Spec{Seed: 3})
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	class := make([]int8, len(p.HU))
	parallel(D, func(d int) {
		for h := range H {
			for w := range W {
				c, _, _, _ := p.head.tissue(p.head.frame(p.Position(float64(d), float64(h), float64(w))))
				class[(d*H+h)*W+w] = int8(c)
			}
		}
	})
	var n [tDural + 1]int
	var sum, sq [tDural + 1]float64
	for d := range D {
		for h := 2; h < H-2; h++ {
			for w := 2; w < W-2; w++ {
				i := (d*H+h)*W + w
				c := class[i]
				flat := true
				for dy := -2; dy <= 2 && flat; dy++ {
					for dx := -2; dx <= 2; dx++ {
						if class[i+dy*W+dx] != c {
							flat = false
							break
						}
					}
				}
				if flat {
					v := float64(p.HU[i])
					n[c]++
					sum[c] += v
					sq[c] += v * v
				}
			}
		}
	}
	for c, want := range []struct {
		name     string
		lo, hi   float64
		noiseMax float64
	}{
		tAir:   {"air", -1005, -995, 10},
		tScalp: {"scalp", 30, 50, 0},
		tBone:  {"bone", 700, 1500, 0},
		tCSF:   {"CSF", 0, 12, 0},
		tGrey:  {"grey matter", 33, 42, 0},
		tWhite: {"white matter", 25, 31, 0},
		tDeep:  {"thalamus", 30, 40, 0},
		tDural: {"dural sinus", 42, 62, 0},
	} {
		if n[c] < 50 {
			t.Errorf("%s: %d voxels away from edges", want.name, n[c])
			continue
		}
		mean := sum[c] / float64(n[c])
		sd := math.Sqrt(sq[c]/float64(n[c]) - mean*mean)
		if mean < want.lo || mean > want.hi {
			t.Errorf("%s: mean %.1f HU over %d voxels, want %g to %g", want.name, mean, n[c], want.lo, want.hi)
		}
		if c == tWhite && math.Abs(sd-DefaultNoise) > 1 {
			t.Errorf("white matter: noise %.2f HU, want %d", sd, DefaultNoise)
		}
		t.Logf("%s: %d voxels, %.1f ± %.1f HU", want.name, n[c], mean, sd)
	}
}

func TestRandomLesions(t *testing.T) {
	kinds := map[string]int{}
	for seed := range uint64(200) {
		ls := RandomLesions(seed)
		if len(ls) == 0 {
			kinds["none"]++
		}
		for _, l := range ls {
			kinds[l.Kind]++
		}
	}
	if kinds["none"] < 40 || kinds[KindICH] < 60 || kinds[KindSDH] < 40 {
		t.Errorf("200 random studies: %v", kinds)
	}
}

func TestParseSize(t *testing.T) {
	if n, err := ParseSize("32x256x256"); err != nil || n != [3]int{32, 256, 256} {
		t.Errorf("got %v, %v", n, err)
	}
	for _, s := range []string{"", "32x256", "32x256x256x1", "0x256x256", "32x8x256", "32x256x4096", "32x+256x256", "32x0256x256", "axbxc", "32X256X256"} {
		if _, err := ParseSize(s); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "size") {
			t.Errorf("%q: got %v", s, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"32x256x256", "1x16x16", "0x1x1", "x", "-1x16x16", "2048x2048x2048"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		for a, v := range n {
			if v < 1 || v > 2048 || (a > 0 && v < 16) {
				t.Fatalf("%q: size %v", s, n)
			}
		}
		if back := strings.Join([]string{itoa(n[0]), itoa(n[1]), itoa(n[2])}, "x"); back != s {
			t.Fatalf("%q read as %v", s, n)
		}
	})
}

func itoa(v int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
		if v == 0 {
			return string(b)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		if _, err := Generate(Spec{Seed: uint64(i), Lesions: both}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateWrite(b *testing.B) {
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		p, err := Generate(Spec{Seed: uint64(i), Lesions: both})
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteSeries(dir, p, SeriesMeta{}); err != nil {
			b.Fatal(err)
		}
		if err := WriteMask(filepath.Join(dir, "mask.nii.gz"), p); err != nil {
			b.Fatal(err)
		}
	}
}
