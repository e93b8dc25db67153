// Package phantom makes synthetic head-CT studies: a Hounsfield-unit
// volume of a head (scalp, skull, CSF, grey and white matter, lateral and
// third ventricles) with optional bleeds, intraparenchymal (ICH) or
// subdural (SDH), their per-voxel ground-truth mask, and writers for the
// volume as a DICOM CT series and the mask as NIfTI-1. Everything is
// deterministic for a seed, so tests, the demo and training can make the
// same studies again.
//
// Arrays are in (D, H, W) order, as in package kernels: slice, row,
// column; voxel (d, h, w) at d*H*W + h*W + w. The grid is axial and
// axis-aligned in DICOM patient coordinates (LPS, millimetres): columns
// run to the patient's left (+x), rows to posterior (+y), slices from
// inferior to superior (+z). The anatomy, not the grid, is turned by a
// few degrees per seed.
package phantom

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Defaults of Spec's zero fields: a routine non-contrast head CT
// reconstructed at 5 mm, on a 256×256 matrix of 0.9 mm pixels (a 230 mm
// field of view; scanners use 512×512 at 0.45 mm, four times the voxels
// for little gain in a model that finds bleeds).
var (
	DefaultSize    = [3]int{32, 256, 256}
	DefaultSpacing = [3]float64{5, 0.9, 0.9}
)

// DefaultNoise is the standard deviation of the noise, in HU, when
// Spec.Noise is 0.
const DefaultNoise = 8

// Lesion kinds and their labels in the mask.
const (
	KindICH = "ich" // intraparenchymal haemorrhage, label 1
	KindSDH = "sdh" // subdural haematoma, label 2

	LabelBackground uint8 = 0
	LabelICH        uint8 = 1
	LabelSDH        uint8 = 2
)

// Errors of Generate.
var (
	ErrSpec = errors.New("phantom: invalid spec")
)

// Spec says what to generate.
type Spec struct {
	Seed uint64
	// Size is the voxel count along (D, H, W); zero: DefaultSize. Each
	// must be 1 to 2048 (H and W at least 16).
	Size [3]int
	// Spacing is the voxel spacing in mm along (D, H, W); zero:
	// DefaultSpacing.
	Spacing [3]float64
	// Lesions to place; none for a normal study (see RandomLesions).
	Lesions []LesionSpec
	// Noise is the standard deviation of the Gaussian noise in HU, added
	// after a slight in-plane blur; 0 means DefaultNoise, negative none.
	Noise float64
}

// LesionSpec is one lesion to place.
type LesionSpec struct {
	Kind string // KindICH or KindSDH
	// VolumeML is the wanted volume in mL, 0 for random (ICH: 0.5 to 40
	// mL, log-uniform; SDH: 5 to 60 mL). An ICH reaches it to within the
	// voxel grid; an SDH's thickness is set from it by a formula, so its
	// actual volume may differ by tens of percent. The true volume is in
	// Lesion.VolumeML.
	VolumeML float64
}

// RandomLesions returns the lesions of a random study for a seed: none
// (a third of studies), one ICH, one SDH, or both.
func RandomLesions(seed uint64) []LesionSpec {
	r := rand.New(rand.NewPCG(seed, 0x6c6573696f6e73))
	switch r.IntN(6) {
	case 0, 1:
		return nil
	case 2, 3:
		return []LesionSpec{{Kind: KindICH}}
	case 4:
		return []LesionSpec{{Kind: KindSDH}}
	default:
		return []LesionSpec{{Kind: KindICH}, {Kind: KindSDH}}
	}
}

// Phantom is a generated study.
type Phantom struct {
	Seed    uint64
	Size    [3]int     // (D, H, W)
	Spacing [3]float64 // mm along (D, H, W)
	// Origin is the LPS position (x, y, z) of the centre of voxel
	// (0, 0, 0). Voxel (d, h, w) lies at Origin + (w*Spacing[2],
	// h*Spacing[1], d*Spacing[0]).
	Origin [3]float64
	// HU holds the CT values, rounded and clamped to -1024..3071, in
	// (D, H, W) order.
	HU []int16
	// Labels holds LabelBackground, LabelICH or LabelSDH per voxel.
	Labels  []uint8
	Lesions []Lesion

	head *head // the model, for tests
}

// Lesion is one placed lesion, measured on the mask.
type Lesion struct {
	Kind     string
	Label    uint8
	Voxels   int     // mask voxels of this lesion
	VolumeML float64 // Voxels × voxel volume, in mL
	TargetML float64 // the volume that was asked for or drawn
	// CentroidLPS is the mean LPS position of its voxels (mm).
	CentroidLPS [3]float64
	// BBoxMin and BBoxMax are its voxels' smallest and largest (d, h, w),
	// inclusive.
	BBoxMin, BBoxMax [3]int
}

// VoxelML is the volume of one voxel in mL.
func (p *Phantom) VoxelML() float64 {
	return p.Spacing[0] * p.Spacing[1] * p.Spacing[2] / 1000
}

// Position returns the LPS position of voxel (d, h, w), rounded to a
// nanometre so that a DICOM decimal string holds it exactly.
func (p *Phantom) Position(d, h, w float64) [3]float64 {
	return [3]float64{
		roundNM(p.Origin[0] + w*p.Spacing[2]),
		roundNM(p.Origin[1] + h*p.Spacing[1]),
		roundNM(p.Origin[2] + d*p.Spacing[0]),
	}
}

func roundNM(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// Tissue values in HU.
const (
	huAir   = -1000
	huScalp = 40
	huCSF   = 5
	huGrey  = 38
	huWhite = 28
	huDeep  = 35 // thalami
)

func (s *Spec) normalise() error {
	if s.Size == [3]int{} {
		s.Size = DefaultSize
	}
	if s.Spacing == [3]float64{} {
		s.Spacing = DefaultSpacing
	}
	for a := range 3 {
		lo := 1
		if a > 0 {
			lo = 16
		}
		if s.Size[a] < lo || s.Size[a] > 2048 {
			return fmt.Errorf("%w: size[%d] = %d, want %d to 2048", ErrSpec, a, s.Size[a], lo)
		}
		if !(s.Spacing[a] >= 0.05 && s.Spacing[a] <= 20) {
			return fmt.Errorf("%w: spacing[%d] = %g mm, want 0.05 to 20", ErrSpec, a, s.Spacing[a])
		}
	}
	if math.IsNaN(s.Noise) || s.Noise > 500 {
		return fmt.Errorf("%w: noise %g HU, want at most 500", ErrSpec, s.Noise)
	}
	if s.Noise == 0 {
		s.Noise = DefaultNoise
	}
	for i, l := range s.Lesions {
		if l.Kind != KindICH && l.Kind != KindSDH {
			return fmt.Errorf("%w: lesion %d: kind %q, want %q or %q", ErrSpec, i, l.Kind, KindICH, KindSDH)
		}
		if !(l.VolumeML >= 0 && l.VolumeML <= 200) {
			return fmt.Errorf("%w: lesion %d: volume %g mL, want 0 (random) to 200", ErrSpec, i, l.VolumeML)
		}
	}
	return nil
}

// Generate makes the phantom of spec.
func Generate(spec Spec) (*Phantom, error) {
	if err := spec.normalise(); err != nil {
		return nil, err
	}
	D, H, W := spec.Size[0], spec.Size[1], spec.Size[2]
	p := &Phantom{
		Seed:    spec.Seed,
		Size:    spec.Size,
		Spacing: spec.Spacing,
		Origin: [3]float64{
			roundNM(-float64(W-1) / 2 * spec.Spacing[2]),
			roundNM(-float64(H-1) / 2 * spec.Spacing[1]),
			roundNM(-float64(D-1) / 2 * spec.Spacing[0]),
		},
		HU:     make([]int16, D*H*W),
		Labels: make([]uint8, D*H*W),
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x68656164))
	hd := newHead(rng, p)
	for _, l := range spec.Lesions {
		hd.addLesion(rng, l)
	}
	owner := make([]int8, D*H*W)
	hu := make([]float32, D*H*W)
	parallel(D, func(d int) {
		n := H * W
		hd.slice(p, d, hu[d*n:(d+1)*n], p.Labels[d*n:(d+1)*n], owner[d*n:(d+1)*n])
	})
	parallel(D, func(d int) {
		n := H * W
		finishSlice(p.HU[d*n:(d+1)*n], hu[d*n:(d+1)*n], H, W, spec.Noise, spec.Seed, d)
	})
	p.Lesions = measure(p, hd.lesions, owner)
	p.head = hd
	return p, nil
}

// parallel runs fn(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// measure fills each lesion's volume, centroid and box from the owner map.
func measure(p *Phantom, ls []*lesion, owner []int8) []Lesion {
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	out := make([]Lesion, len(ls))
	sum := make([][3]float64, len(ls))
	for i, l := range ls {
		out[i] = Lesion{Kind: l.kind, Label: l.label, TargetML: l.targetML,
			BBoxMin: [3]int{D, H, W}, BBoxMax: [3]int{-1, -1, -1}}
	}
	for d := range D {
		for h := range H {
			row := owner[(d*H+h)*W : (d*H+h+1)*W]
			for w, o := range row {
				if o == 0 {
					continue
				}
				l := &out[o-1]
				l.Voxels++
				v := [3]int{d, h, w}
				for a := range 3 {
					l.BBoxMin[a] = min(l.BBoxMin[a], v[a])
					l.BBoxMax[a] = max(l.BBoxMax[a], v[a])
				}
				sum[o-1][0] += float64(w)
				sum[o-1][1] += float64(h)
				sum[o-1][2] += float64(d)
			}
		}
	}
	for i := range out {
		l := &out[i]
		l.VolumeML = float64(l.Voxels) * p.VoxelML()
		if l.Voxels > 0 {
			n := float64(l.Voxels)
			l.CentroidLPS = p.Position(sum[i][2]/n, sum[i][1]/n, sum[i][0]/n)
		} else {
			l.BBoxMin, l.BBoxMax = [3]int{}, [3]int{-1, -1, -1}
		}
	}
	return out
}

// finishSlice blurs one slice in-plane (Gaussian, σ 0.6 pixel), adds the
// noise of slice d and rounds to HU integers.
func finishSlice(dst []int16, src []float32, H, W int, noise float64, seed uint64, d int) {
	const r = 2
	var k [2*r + 1]float32
	sum := float32(0)
	for i := -r; i <= r; i++ {
		k[i+r] = float32(math.Exp(-float64(i*i) / (2 * 0.6 * 0.6)))
		sum += k[i+r]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float32, H*W)
	for h := range H {
		row := src[h*W : (h+1)*W]
		for w := range W {
			acc := float32(0)
			for i := -r; i <= r; i++ {
				acc += k[i+r] * row[min(max(w+i, 0), W-1)]
			}
			tmp[h*W+w] = acc
		}
	}
	var rng *rand.Rand
	if noise > 0 {
		rng = rand.New(rand.NewPCG(seed, 0x6e6f697365<<16|uint64(d)))
	}
	for h := range H {
		for w := range W {
			acc := float32(0)
			for i := -r; i <= r; i++ {
				acc += k[i+r] * tmp[min(max(h+i, 0), H-1)*W+w]
			}
			v := float64(acc)
			if rng != nil {
				v += rng.NormFloat64() * noise
			}
			dst[h*W+w] = int16(min(max(math.Round(v), -1024), 3071))
		}
	}
}

// wave is a smooth function on directions (or positions): a sum of a few
// sines of random frequency and phase, of amplitude about amp.
type wave struct {
	w   [][3]float64
	ph  []float64
	amp float64
}

func newWave(rng *rand.Rand, n int, fmin, fmax, amp float64) wave {
	wv := wave{amp: amp / math.Sqrt(float64(n))}
	for range n {
		u := randomUnit(rng)
		f := fmin + (fmax-fmin)*rng.Float64()
		wv.w = append(wv.w, [3]float64{u[0] * f, u[1] * f, u[2] * f})
		wv.ph = append(wv.ph, 2*math.Pi*rng.Float64())
	}
	return wv
}

func (wv *wave) at(u [3]float64) float64 {
	s := 0.0
	for i, w := range wv.w {
		s += math.Sin(w[0]*u[0] + w[1]*u[1] + w[2]*u[2] + wv.ph[i])
	}
	return s * wv.amp
}

func randomUnit(rng *rand.Rand) [3]float64 {
	for {
		v := [3]float64{2*rng.Float64() - 1, 2*rng.Float64() - 1, 2*rng.Float64() - 1}
		n := math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])
		if n > 0.1 && n <= 1 {
			return [3]float64{v[0] / n, v[1] / n, v[2] / n}
		}
	}
}

type mat3 [3][3]float64

func (m *mat3) mul(v [3]float64) [3]float64 {
	return [3]float64{
		m[0][0]*v[0] + m[0][1]*v[1] + m[0][2]*v[2],
		m[1][0]*v[0] + m[1][1]*v[1] + m[1][2]*v[2],
		m[2][0]*v[0] + m[2][1]*v[1] + m[2][2]*v[2],
	}
}

func (m mat3) times(n mat3) mat3 {
	var r mat3
	for i := range 3 {
		for j := range 3 {
			for k := range 3 {
				r[i][j] += m[i][k] * n[k][j]
			}
		}
	}
	return r
}

// rotation returns the rotation by angles (radians) about x, then y,
// then z.
func rotation(ax, ay, az float64) mat3 {
	cx, sx := math.Cos(ax), math.Sin(ax)
	cy, sy := math.Cos(ay), math.Sin(ay)
	cz, sz := math.Cos(az), math.Sin(az)
	rx := mat3{{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}}
	ry := mat3{{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}}
	rz := mat3{{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}}
	return rz.times(ry).times(rx)
}

func norm(v [3]float64) float64 { return math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2]) }

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
