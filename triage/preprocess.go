package triage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/volume"
)

// ErrPreprocess is wrapped by errors of Preprocess about its input (the
// volume or the spec); backend errors are wrapped as they come.
var ErrPreprocess = errors.New("triage: cannot preprocess")

// AirHU is the value of network-grid voxels outside the scanned volume.
const AirHU = volume.PaddingHU

// Prepared is a network input made by Preprocess: one channel of
// Geometry.Size voxels, (D, H, W) with W fastest, values in [0, 1].
type Prepared struct {
	// Tensor is the host copy of the input: Geometry.Voxels() float32
	// values, the voxel (d, h, w) at w + W*(h + H*d): the layout of an
	// N=1, C=1 NCDHW tensor.
	Tensor []float32
	// Buffer holds the same values on the backend Preprocess ran on, for
	// the engine; Release frees it.
	Buffer *kernels.Buffer
	// Geometry places the network grid in patient space: voxel (d, h, w)
	// is at Geometry.IndexToLPS({d, h, w}) (LPS mm). It has the source
	// grid's axes and centre.
	Geometry kernels.Geometry
	// Source is the grid of the volume that was preprocessed, in (D, H,
	// W) order (kernels.GeometryFromVolume).
	Source kernels.Geometry
	// Map takes a network-grid index to the source grid's:
	// src[a] = Map.Offset[a] + Map.Scale[a]*net[a] (ToSource).
	Map kernels.AxisMap
	// Timings are the stages' wall times.
	Timings PrepTimings

	backend kernels.Backend
}

// PrepTimings are the wall times of Preprocess's stages in milliseconds;
// each stage ends with a Sync, so device work is counted in its stage.
type PrepTimings struct {
	Upload   float64 `json:"upload_ms"`   // host to backend, with the rescale to HU
	Denoise  float64 `json:"denoise_ms"`  // 0 for method none
	Resample float64 `json:"resample_ms"` // to the network grid
	Window   float64 `json:"window_ms"`
	Download float64 `json:"download_ms"` // the host copy
	Total    float64 `json:"total_ms"`
}

// Release frees the backend buffer; the host Tensor stays. It may be
// called more than once.
func (p *Prepared) Release() {
	if p.Buffer != nil && p.backend != nil {
		p.backend.Free(p.Buffer)
	}
	p.Buffer = nil
}

// ToSource maps a (possibly fractional) network-grid index (d, h, w) to
// the source grid's (d, h, w) index (the volume's (k, j, i)).
func (p *Prepared) ToSource(q [3]float64) [3]float64 {
	var s [3]float64
	for a := 0; a < 3; a++ {
		s[a] = p.Map.Offset[a] + p.Map.Scale[a]*q[a]
	}
	return s
}

// BackMap is the map from a source-grid index to the network grid's,
// the inverse of Map: pass it to Backend.Resample to bring a network-grid
// output (a mask, Nearest; a probability map, Linear) back onto the
// volume's grid (dstSize Source.Size, srcSize Geometry.Size).
func (p *Prepared) BackMap() kernels.AxisMap {
	var m kernels.AxisMap
	for a := 0; a < 3; a++ {
		m.Scale[a] = 1 / p.Map.Scale[a]
		m.Offset[a] = -p.Map.Offset[a] / p.Map.Scale[a]
	}
	return m
}

// Preprocess turns a head-CT volume into a model's input, on backend b:
//
//  1. the volume's real values (HU): v.Data, or v.Stored rescaled on the
//     backend by v.Slope and v.Intercept when Data is nil;
//  2. denoising on the volume's own grid (in.Denoise; sigmas in mm are
//     converted to voxels with the volume's spacing per axis);
//  3. trilinear resampling to in.Spacing and in.Size around the
//     volume's physical centre (kernels.Geometry.ResampleTo), points
//     outside the volume taking AirHU. This is a resample to in.Spacing
//     followed by a centred crop/pad to in.Size in one pass, with the
//     centre kept exactly (a separate CenteredCropPad by an odd number of
//     voxels would move it half a voxel). Like kernels.Resample, a point
//     more than kernels.ResampleEdge voxels beyond the outer voxel
//     centres is air;
//  4. the window in.Window to [0, 1], clipped.
//
// Only 3D volumes are taken: a 4D series (v.Size[3] > 1: perfusion,
// multiple phases) is refused, since its first volume is not the
// non-contrast head CT the models expect.
//
// The result holds the host tensor and a backend buffer (Release frees
// it). Preprocess is deterministic on the CPU backend.
func Preprocess(ctx context.Context, b kernels.Backend, v *volume.Volume, in InputSpec) (*Prepared, error) {
	start := time.Now()
	p, err := newPrepared(b, v, in)
	if err != nil {
		return nil, err
	}
	src, out, m := p.Source, p.Geometry, p.Map
	n, nOut := src.Voxels(), out.Voxels()

	// The stages' buffers: two of the source grid (the values and the
	// denoised values) and the output.
	var bufs []*kernels.Buffer
	defer func() {
		for _, x := range bufs {
			b.Free(x)
		}
	}()
	alloc := func(dt kernels.DType, k int) (*kernels.Buffer, error) {
		x, err := b.Alloc(dt, k)
		if err == nil {
			bufs = append(bufs, x)
		}
		return x, err
	}
	t := time.Now()
	stage := func(dst *float64) error {
		if err := b.Sync(); err != nil {
			return err
		}
		now := time.Now()
		*dst = float64(now.Sub(t).Microseconds()) / 1000
		t = now
		return ctx.Err()
	}

	// 1. HU on the backend.
	hu, err := alloc(kernels.Float32, n)
	if err != nil {
		return nil, err
	}
	if v.Data == nil && v.Stored != nil {
		st, err := alloc(kernels.Int16, n)
		if err != nil {
			return nil, err
		}
		if err := b.Upload(st, v.Stored[:n]); err != nil {
			return nil, err
		}
		if err := b.Rescale(hu, st, n, float32(v.Slope), float32(v.Intercept), kernels.Window{}); err != nil {
			return nil, fmt.Errorf("rescaling stored values by %g%+g: %w", v.Slope, v.Intercept, err)
		}
	} else if err := b.Upload(hu, v.Data[:n]); err != nil {
		return nil, err
	}
	if err := stage(&p.Timings.Upload); err != nil {
		return nil, err
	}

	// 2. Denoise on the source grid.
	if in.Denoise.Method != "none" {
		dn, err := alloc(kernels.Float32, n)
		if err != nil {
			return nil, err
		}
		if err := denoise(b, dn, hu, src, in.Denoise); err != nil {
			return nil, err
		}
		hu = dn
	}
	if err := stage(&p.Timings.Denoise); err != nil {
		return nil, err
	}

	// 3. Resample to the network grid (the output buffer is kept).
	res, err := b.Alloc(kernels.Float32, nOut)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			b.Free(res)
		}
	}()
	if err := b.Resample(res, hu, out.Size, src.Size, m, kernels.Linear, AirHU); err != nil {
		return nil, fmt.Errorf("resampling %v voxels of %v mm to %v of %v mm: %w", src.Size, src.Spacing, out.Size, out.Spacing, err)
	}
	if err := stage(&p.Timings.Resample); err != nil {
		return nil, err
	}

	// 4. Window to [0, 1], in place.
	w := kernels.Window{Center: float32(in.Window.Center), Width: float32(in.Window.Width), Clip: true}
	if err := b.Rescale(res, res, nOut, 1, 0, w); err != nil {
		return nil, fmt.Errorf("window %g/%g: %w", in.Window.Center, in.Window.Width, err)
	}
	if err := stage(&p.Timings.Window); err != nil {
		return nil, err
	}

	p.Tensor = make([]float32, nOut)
	if err := b.Download(p.Tensor, res); err != nil {
		return nil, err
	}
	if err := stage(&p.Timings.Download); err != nil {
		return nil, err
	}
	p.Timings.Total = float64(time.Since(start).Microseconds()) / 1000
	p.Buffer, keep = res, true
	return p, nil
}

// newPrepared checks the input spec and the volume and sets up the
// source and network grids and the map between them.
func newPrepared(b kernels.Backend, v *volume.Volume, in InputSpec) (*Prepared, error) {
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPreprocess, err)
	}
	src, err := sourceGeometry(v)
	if err != nil {
		return nil, err
	}
	out, m, err := networkGrid(src, in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPreprocess, err)
	}
	return &Prepared{Geometry: out, Source: src, Map: m, backend: b}, nil
}

// networkGrid is the network's grid for a source grid: the card's spacing
// and size around the source's physical centre (Geometry.ResampleTo),
// with each axis pointing the way of the patient axis (L, P or S) it is
// closest to. Models so see one orientation whichever way a source stores
// its columns, rows and slices: a DICOM axial stack (columns to the left,
// rows to the back, slices upwards: no flip), a NIfTI file written rows
// bottom to top, a stack ordered feet first. m maps a network index to
// the source's (a negative scale on a flipped axis).
func networkGrid(src kernels.Geometry, in InputSpec) (kernels.Geometry, kernels.AxisMap, error) {
	var flip [3]bool
	for a := 0; a < 3; a++ {
		r := 0
		for k := 1; k < 3; k++ {
			if math.Abs(src.Axes[a][k]) > math.Abs(src.Axes[a][r]) {
				r = k
			}
		}
		flip[a] = src.Axes[a][r] < 0
	}
	out, m, err := src.Flip(flip).ResampleTo(in.Spacing, in.Size)
	if err != nil {
		return out, m, err
	}
	for a := 0; a < 3; a++ {
		if flip[a] {
			m.Scale[a], m.Offset[a] = -m.Scale[a], float64(src.Size[a]-1)-m.Offset[a]
		}
	}
	return out, m, nil
}

// sourceGeometry checks the volume and returns its grid in (D, H, W).
func sourceGeometry(v *volume.Volume) (kernels.Geometry, error) {
	var g kernels.Geometry
	if v == nil {
		return g, fmt.Errorf("%w: no volume", ErrPreprocess)
	}
	for a := 0; a < 3; a++ {
		if v.Size[a] <= 0 {
			return g, fmt.Errorf("%w: empty volume of %v voxels", ErrPreprocess, v.Size)
		}
		if s := v.Spacing[a]; !(s > 0) || !finite(s) {
			return g, fmt.Errorf("%w: voxel spacing %v mm (axis %d)", ErrPreprocess, v.Spacing, a)
		}
		if !finite(v.Origin[a]) {
			return g, fmt.Errorf("%w: origin %v", ErrPreprocess, v.Origin)
		}
		l := 0.0
		for r := 0; r < 3; r++ {
			if !finite(v.Axes[a][r]) {
				return g, fmt.Errorf("%w: axes %v", ErrPreprocess, v.Axes)
			}
			l += v.Axes[a][r] * v.Axes[a][r]
		}
		if math.Abs(l-1) > 1e-3 {
			return g, fmt.Errorf("%w: axis %d direction %v is not a unit vector", ErrPreprocess, a, v.Axes[a])
		}
	}
	if v.Size[3] > 1 {
		return g, fmt.Errorf("%w: a 4D series of %d volumes (triage takes one 3D volume)", ErrPreprocess, v.Size[3])
	}
	n := v.Voxels()
	if n > 1<<30 {
		return g, fmt.Errorf("%w: volume of %v voxels is too large", ErrPreprocess, v.Size)
	}
	switch {
	case v.Data != nil:
		if len(v.Data) < n {
			return g, fmt.Errorf("%w: %d values for %v voxels", ErrPreprocess, len(v.Data), v.Size)
		}
	case v.Stored != nil:
		if len(v.Stored) < n {
			return g, fmt.Errorf("%w: %d stored values for %v voxels", ErrPreprocess, len(v.Stored), v.Size)
		}
		if v.Slope == 0 || !finite(v.Slope) || !finite(v.Intercept) {
			return g, fmt.Errorf("%w: stored values with rescale slope %v intercept %v", ErrPreprocess, v.Slope, v.Intercept)
		}
	default:
		return g, fmt.Errorf("%w: volume of %v voxels holds no values", ErrPreprocess, v.Size)
	}
	return kernels.GeometryFromVolume(v.Size, v.Spacing, v.Origin, v.Axes), nil
}

// denoise filters src into dst, both of g's size, with d's parameters.
func denoise(b kernels.Backend, dst, src *kernels.Buffer, g kernels.Geometry, d DenoiseSpec) error {
	var sigma [3]float64
	for a := 0; a < 3; a++ {
		sigma[a] = d.SigmaMM / g.Spacing[a]
	}
	var err error
	switch d.Method {
	case "gaussian":
		err = b.Gaussian(dst, src, g.Size, sigma, 4)
	case "bilateral":
		err = b.Bilateral(dst, src, g.Size, kernels.BilateralParams{SigmaSpatial: sigma, SigmaRange: d.SigmaRangeHU})
	case "nlm":
		err = b.NLM(dst, src, g.Size, kernels.NLMParams{PatchRadius: d.PatchRadius, SearchRadius: d.SearchRadius, H: d.HHU, Sigma: d.NoiseHU})
	default:
		return fmt.Errorf("%w: denoise method %q", ErrPreprocess, d.Method)
	}
	if err != nil {
		return fmt.Errorf("denoising (%s) %v voxels: %w", d.Method, g.Size, err)
	}
	return nil
}

// VolumeOf returns the prepared tensor as a volume.Volume on the network
// grid (Data set to the Tensor, not copied; float values), for writing
// it as NIfTI: its (i, j, k) are the tensor's (W, H, D).
func (p *Prepared) VolumeOf() *volume.Volume {
	size, spacing, origin, axes := p.Geometry.VolumeFields()
	return &volume.Volume{
		Size:     size,
		Spacing:  spacing,
		Origin:   origin,
		Axes:     axes,
		Data:     p.Tensor,
		Modality: "CT",
	}
}

// PreprocessLabels brings a label mask (integer labels stored as the
// volume's values, such as a phantom's mask.nii.gz) onto the network grid
// of in, the same grid Preprocess gives for a volume of the same geometry:
// nearest-neighbour resampling (kernels.Nearest), background (0) outside
// the volume, no denoising and no window. Training reads the result as
// the target beside Preprocess's input, so both are on one grid.
func PreprocessLabels(ctx context.Context, b kernels.Backend, v *volume.Volume, in InputSpec) (*Prepared, error) {
	start := time.Now()
	p, err := newPrepared(b, v, in)
	if err != nil {
		return nil, err
	}
	src, out, m := p.Source, p.Geometry, p.Map
	n, nOut := src.Voxels(), out.Voxels()
	vals := v.Values()
	lab, err := b.Alloc(kernels.Float32, n)
	if err != nil {
		return nil, err
	}
	defer b.Free(lab)
	if err := b.Upload(lab, vals[:n]); err != nil {
		return nil, err
	}
	res, err := b.Alloc(kernels.Float32, nOut)
	if err != nil {
		return nil, err
	}
	if err := b.Resample(res, lab, out.Size, src.Size, m, kernels.Nearest, 0); err != nil {
		b.Free(res)
		return nil, fmt.Errorf("resampling labels %v to %v: %w", src.Size, out.Size, err)
	}
	p.Tensor = make([]float32, nOut)
	if err := b.Download(p.Tensor, res); err != nil {
		b.Free(res)
		return nil, err
	}
	p.Buffer = res
	p.Timings.Resample = float64(time.Since(start).Microseconds()) / 1000
	p.Timings.Total = p.Timings.Resample
	return p, ctx.Err()
}
