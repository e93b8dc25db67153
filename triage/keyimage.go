package triage

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"math"
	"sync"
	"time"

	"github.com/radtriage/radtriage/volume"
)

// Key images: a plane of the series a stored triage result was made on,
// windowed, with the result's label mask outlined (volume.Render), as
// PNG for the worklist page.

// ErrNoKeyImage: a study has nothing to draw: its stored result names no
// series, or that series is no longer among the study's files or cannot
// be assembled. The source's own not-found error (no stored result, no
// stored files) is passed on wrapped as it is.
var ErrNoKeyImage = errors.New("triage: no key image")

// ErrKeyImageOptions: an unknown plane or window, or a slice outside the
// series.
var ErrKeyImageOptions = errors.New("triage: invalid key image options")

// KeyImageSource gives KeyImages a study's files and its stored triage
// result (store.DB implements it). Each returns an error wrapping the
// store's not-found error for a study without files or without a result.
type KeyImageSource interface {
	StudyFS(ctx context.Context, study string) (fs.FS, error)
	TriageResult(ctx context.Context, study string) (StoredResult, error)
}

// Planes and windows of KeyImageOptions.
const (
	PlaneAxial    = string(volume.Axial)
	PlaneCoronal  = string(volume.Coronal)
	PlaneSagittal = string(volume.Sagittal)

	WindowBrain    = "brain"    // 40/80 HU
	WindowSubdural = "subdural" // 75/215 HU
	WindowStroke   = "stroke"   // 40/40 HU
	WindowBone     = "bone"     // 600/2800 HU
	WindowSoft     = "soft"     // 50/400 HU (soft tissue)
)

// keyWindows are the window presets: center and width in HU.
var keyWindows = map[string][2]float64{
	WindowBrain:    {40, 80},
	WindowSubdural: {75, 215},
	WindowStroke:   {40, 40},
	WindowBone:     {600, 2800},
	WindowSoft:     {50, 400},
}

// KeyImageOptions choose a key image.
type KeyImageOptions struct {
	// Plane is PlaneAxial (the stored slices), PlaneCoronal or
	// PlaneSagittal (reformats with square pixels, the head up); ""
	// means axial.
	Plane string
	// Window is a preset: brain (40/80), subdural (75/215), stroke
	// (40/40), bone (600/2800) or soft (50/400); "" means brain.
	Window string
	// Slice is the section's index along the grid axis across the plane
	// (axial: the series' slice, in the order volume assembly puts them;
	// coronal: the row; sagittal: the column), or -1 for the key
	// section: the top finding's key slice (axial) or the section
	// through its centroid (coronal, sagittal; also axial without a key
	// slice), the middle one when the result has no finding.
	Slice int
	// Outline draws the result's label mask over the image
	// (volume.OutlineColor: label 1 red, 2 orange, others yellow).
	Outline bool
}

// KeyImages renders key images of stored triage results. It keeps the
// assembled series and mask of the most recently used studies, so that
// another image of a study costs a stored-result lookup, a slice and a
// PNG encoding; an entry is rebuilt when the study's stored result
// changes (its At). It is safe for concurrent use.
type KeyImages struct {
	src KeyImageSource
	max int

	mu      sync.Mutex
	lru     *list.List // of *keyEntry, most recent first
	byStudy map[string]*list.Element

	buffers pngBuffers
}

// keyEntry is one study's assembled series. ready is closed when the
// fields below it are set.
type keyEntry struct {
	study string
	at    time.Time
	ready chan struct{}

	err      error
	vol      *volume.Volume
	labels   *volume.Volume // nil: the result has no mask
	findings []Finding
}

// NewKeyImages returns KeyImages reading from src and keeping the
// series of up to cacheStudies studies (at least 1).
func NewKeyImages(src KeyImageSource, cacheStudies int) *KeyImages {
	return &KeyImages{src: src, max: max(cacheStudies, 1), lru: list.New(), byStudy: map[string]*list.Element{}}
}

// PNG renders a key image of study. Errors wrap ErrKeyImageOptions (bad
// options), ErrNoKeyImage (nothing to draw) or the source's errors (no
// stored result: the store's not-found error).
func (k *KeyImages) PNG(ctx context.Context, study string, o KeyImageOptions) ([]byte, error) {
	plane := volume.Plane(o.Plane)
	if o.Plane == "" {
		plane = volume.Axial
	}
	if plane != volume.Axial && plane != volume.Coronal && plane != volume.Sagittal {
		return nil, fmt.Errorf("%w: plane %q (want %s, %s or %s)", ErrKeyImageOptions, o.Plane, PlaneAxial, PlaneCoronal, PlaneSagittal)
	}
	if o.Window == "" {
		o.Window = WindowBrain
	}
	win, ok := keyWindows[o.Window]
	if !ok {
		return nil, fmt.Errorf("%w: window %q (want %s, %s, %s, %s or %s)", ErrKeyImageOptions, o.Window,
			WindowBrain, WindowSubdural, WindowStroke, WindowBone, WindowSoft)
	}
	if o.Slice < -1 {
		return nil, fmt.Errorf("%w: slice %d (want -1 for the key slice, or 0 and up)", ErrKeyImageOptions, o.Slice)
	}
	sr, err := k.src.TriageResult(ctx, study)
	if err != nil {
		return nil, fmt.Errorf("triage: key image of study %s: %w", study, err)
	}
	e, err := k.entry(ctx, study, sr)
	if err != nil {
		return nil, err
	}
	n := volume.SectionCount(e.vol, plane)
	idx := o.Slice
	if idx == -1 {
		idx = e.keySection(plane)
	}
	if idx >= n {
		return nil, fmt.Errorf("%w: %s slice %d of series %s, which has %d", ErrKeyImageOptions, plane, idx, e.vol.SeriesInstanceUID, n)
	}
	ro := volume.RenderOptions{Plane: plane, Index: idx, Center: win[0], Width: win[1]}
	if o.Outline {
		ro.Labels = e.labels
	}
	img, err := volume.Render(e.vol, ro)
	if err != nil {
		return nil, fmt.Errorf("triage: key image of study %s: %w", study, err)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &k.buffers}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("triage: key image of study %s: %w", study, err)
	}
	return buf.Bytes(), nil
}

// entry returns study's cached series for the stored result sr, loading
// it when the cache has none or one of another result. Concurrent
// callers share one load; a failed load is not kept.
func (k *KeyImages) entry(ctx context.Context, study string, sr StoredResult) (*keyEntry, error) {
	k.mu.Lock()
	if el, ok := k.byStudy[study]; ok {
		e := el.Value.(*keyEntry)
		if e.at.Equal(sr.At) {
			k.lru.MoveToFront(el)
			k.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.err != nil {
				return nil, e.err
			}
			return e, nil
		}
		k.lru.Remove(el)
		delete(k.byStudy, study)
	}
	e := &keyEntry{study: study, at: sr.At, ready: make(chan struct{})}
	k.byStudy[study] = k.lru.PushFront(e)
	for k.lru.Len() > k.max {
		old := k.lru.Back()
		k.lru.Remove(old)
		delete(k.byStudy, old.Value.(*keyEntry).study)
	}
	k.mu.Unlock()

	e.err = e.load(ctx, k.src, sr)
	close(e.ready)
	if e.err != nil {
		k.mu.Lock()
		if el, ok := k.byStudy[study]; ok && el.Value == e {
			k.lru.Remove(el)
			delete(k.byStudy, study)
		}
		k.mu.Unlock()
		return nil, e.err
	}
	return e, nil
}

// load assembles the series that sr names from the study's files, as
// RunStudy assembled it, and puts the mask on its grid.
func (e *keyEntry) load(ctx context.Context, src KeyImageSource, sr StoredResult) error {
	var r Result
	if err := json.Unmarshal(sr.JSON, &r); err != nil {
		return fmt.Errorf("triage: stored result of study %s: %w", e.study, err)
	}
	series := r.SeriesUID
	if series == "" {
		series = sr.SeriesUID
	}
	if series == "" {
		return fmt.Errorf("%w: the stored result of study %s names no series", ErrNoKeyImage, e.study)
	}
	fsys, err := src.StudyFS(ctx, e.study)
	if err != nil {
		return fmt.Errorf("triage: key image of study %s: %w", e.study, err)
	}
	all, _, err := studySeries(fsys, e.study)
	if err != nil {
		return fmt.Errorf("triage: key image of study %s: reading its files: %w", e.study, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var ser *volume.Series
	for _, s := range all {
		if s.UID == series {
			ser = s
		}
	}
	if ser == nil {
		return fmt.Errorf("%w: series %s of study %s's triage result is not among its stored series", ErrNoKeyImage, series, e.study)
	}
	// The stack triage chose: the best stack of that series.
	stack, _, err := volume.Choose(&volume.Collection{Series: []*volume.Series{ser}})
	if err != nil {
		return fmt.Errorf("%w: series %s of study %s: %w", ErrNoKeyImage, series, e.study, err)
	}
	v, err := stack.Assemble(volume.AssembleOptions{})
	if err != nil {
		return fmt.Errorf("%w: assembling series %s of study %s: %w", ErrNoKeyImage, series, e.study, err)
	}
	if v.Data == nil && v.Stored == nil {
		return fmt.Errorf("%w: series %s of study %s has no values", ErrNoKeyImage, series, e.study)
	}
	if len(sr.Mask) > 0 {
		m, err := volume.ReadNIfTI(bytes.NewReader(sr.Mask))
		if err != nil {
			return fmt.Errorf("triage: mask of study %s: %w", e.study, err)
		}
		if e.labels, err = alignLabels(m, v); err != nil {
			return fmt.Errorf("triage: mask of study %s: %w", e.study, err)
		}
	}
	e.vol, e.findings = v, r.Findings
	return nil
}

// keySection is the section of plane p through the top finding (see
// KeyImageOptions.Slice).
func (e *keyEntry) keySection(p volume.Plane) int {
	n := volume.SectionCount(e.vol, p)
	if len(e.findings) == 0 {
		return n / 2
	}
	f := e.findings[0]
	if p == volume.Axial && f.KeySlice != nil {
		return min(max(*f.KeySlice, 0), n-1)
	}
	if f.CentroidLPS != nil {
		axis := map[volume.Plane]int{volume.Axial: 2, volume.Coronal: 1, volume.Sagittal: 0}[p]
		x := e.vol.VoxelIndex(*f.CentroidLPS)[axis]
		if !math.IsNaN(x) {
			return min(max(int(math.Round(x)), 0), n-1)
		}
	}
	return n / 2
}

// alignLabels returns the label volume m (as ReadNIfTI gives it: rows
// bottom to top, as WriteNIfTI and dcm2niix write them) on v's grid,
// voxel for voxel: each axis of v must be an axis of m, of the same size
// and spacing, in either direction, and the grids must share their voxel
// centres.
func alignLabels(m, v *volume.Volume) (*volume.Volume, error) {
	if m.Size[3] > 1 {
		return nil, fmt.Errorf("a mask of %d volumes", m.Size[3])
	}
	var from [3]int
	var rev [3]bool
	var used [3]bool
	for c := range 3 {
		from[c] = -1
		for d := range 3 {
			dp := m.Axes[d][0]*v.Axes[c][0] + m.Axes[d][1]*v.Axes[c][1] + m.Axes[d][2]*v.Axes[c][2]
			if !used[d] && math.Abs(dp) > 0.999 && m.Size[d] == v.Size[c] && math.Abs(m.Spacing[d]-v.Spacing[c]) <= 1e-3*v.Spacing[c] {
				from[c], rev[c], used[d] = d, dp < 0, true
				break
			}
		}
		if from[c] < 0 {
			return nil, fmt.Errorf("the mask's grid (%v voxels of %v mm) is not the series' (%v voxels of %v mm)", m.Size[:3], m.Spacing, v.Size[:3], v.Spacing)
		}
	}
	// The mask voxel of v's voxel (i, j, k) is idx[from[c]] = x_c, or
	// Size-1-x_c along a reversed axis: start and step per axis of v.
	mStride := [3]int{1, m.Size[0], m.Size[0] * m.Size[1]}
	start := 0
	var step [3]int
	var corner [3]float64 // the mask index of v's voxel (0, 0, 0)
	for c := range 3 {
		d := from[c]
		step[c] = mStride[d]
		if rev[c] {
			corner[d] = float64(v.Size[c] - 1)
			start += (v.Size[c] - 1) * mStride[d]
			step[c] = -step[c]
		}
	}
	var pos [3]float64
	for r := range 3 {
		pos[r] = m.Origin[r]
		for d := range 3 {
			pos[r] += corner[d] * m.Spacing[d] * m.Axes[d][r]
		}
	}
	tol := 0.01*min(v.Spacing[0], v.Spacing[1], v.Spacing[2]) + 1e-3
	if d := math.Hypot(math.Hypot(pos[0]-v.Origin[0], pos[1]-v.Origin[1]), pos[2]-v.Origin[2]); !(d <= tol) {
		return nil, fmt.Errorf("the mask's grid is %.3g mm away from the series' grid", d)
	}
	n := v.Voxels()
	labels := m.Values()
	if len(labels) < n {
		return nil, fmt.Errorf("a mask of %d values for %d voxels", len(labels), n)
	}
	out := make([]int16, n)
	o := 0
	for k := range v.Size[2] {
		for j := range v.Size[1] {
			src := start + k*step[2] + j*step[1]
			for range v.Size[0] {
				out[o] = int16(labels[src]) // whole labels
				o++
				src += step[0]
			}
		}
	}
	return &volume.Volume{Size: [4]int{v.Size[0], v.Size[1], v.Size[2], 1}, Spacing: v.Spacing, Origin: v.Origin,
		Axes: v.Axes, Stored: out, Slope: 1, StoredBits: 16, StoredSigned: true, Modality: "SEG",
		SeriesInstanceUID: v.SeriesInstanceUID}, nil
}

// pngBuffers lends PNG encoders their buffers (png.EncoderBufferPool).
type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	if e, ok := b.p.Get().(*png.EncoderBuffer); ok {
		return e
	}
	return nil
}

func (b *pngBuffers) Put(e *png.EncoderBuffer) { b.p.Put(e) }
