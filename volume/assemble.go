package volume

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/radtriage/radtriage/dicomio"
)

// AssembleOptions tune Stack.Assemble. The zero value is the default.
type AssembleOptions struct {
	// TiltAffine keeps the sheared grid of a tilted stack as it is: no
	// interpolation, Axes[2] along the line through the first and last
	// slice positions, so that Axes[2] is not Axes[0]×Axes[1] (a
	// non-orthogonal affine, exact). By default a tilted stack is shear
	// corrected instead, as dcm2niix's `_Tilt_1` output: the grid is
	// widened by ceil(d) rows (d the largest displacement between slices,
	// in pixels, along the column direction; likewise columns for a
	// displacement along the rows) so that no pixel is lost, its rows are
	// those of the slice displaced furthest along the column direction
	// (the first slice when the displacement runs towards row 0), the new
	// rows come before row 0, and each slice is shifted onto it by linear
	// interpolation; pixels shifted in from outside a slice get the
	// volume's smallest value, except that a grid row less than one pixel
	// before a slice's row 0 takes that row (both as dcm2niix does).
	TiltAffine bool
	// PhilipsDisplayScaling uses the Rescale Slope and Intercept alone for
	// Philips MR images. By default, when Philips' private MR Scale Slope
	// (2005,100E) is present, values are Philips' floating-point values
	// (stored·RS+RI)/(RS·SS), as dcm2niix writes them by default.
	PhilipsDisplayScaling bool
	// Workers is the number of files decoded at once; 0 means GOMAXPROCS.
	Workers int
}

// Errors of Assemble that callers branch on; the returned errors wrap them
// with the slices involved.
var (
	// ErrConflictingSlices: two different images at one position and
	// time; assembly refuses rather than guess which is right.
	ErrConflictingSlices = errors.New("different images at one slice position")
	// ErrUndecodable: pixel data of some slices could not be decoded
	// (corrupt or an unsupported transfer syntax).
	ErrUndecodable = errors.New("pixel data could not be decoded")
	// ErrEmptyStack: the stack holds no slices.
	ErrEmptyStack = errors.New("the stack holds no slices")
)

// Assemble decodes the stack's pixels (reading through the fs.FS handed to
// LoadDir when LoadDir did not keep the bytes) and builds the Volume.
//
// Values are each slice's stored values with its own rescale applied
// (computed in float64, stored as float32); on a CT, stored values equal
// to the Pixel Padding Value (or within the Pixel Padding Range Limit)
// become PaddingHU. Slices are decoded in parallel, one file per worker,
// straight into Volume.Stored when the stored integers give every value
// exactly (one rescale shared by every slice, values that fit an int16,
// nothing resampled, a padding value that is a stored integer; see
// Volume.Stored), Data then being left to Volume.Values; otherwise into
// Volume.Data.
//
// Beyond stacking: a tilted stack is shear corrected (see
// AssembleOptions.TiltAffine), and a stack of irregular spacing (gaps
// included) is resampled to equal spacing as dcm2niix's `_Eq_` output: the
// new grid starts at the first slice, its step is the smallest distance
// between neighbouring slices, and it has ceil((span − g/2)/step) slices
// (span from the first slice to the last, g the distance between the last
// two), so that a slice more than half the last gap beyond the grid's end
// is not kept (dcm2niix's rule); when that would be more than twice the n
// original slices, the grid has 2n slices from the first slice to the
// last. Each new slice is the linear interpolation of the two original
// slices around it (weights by distance along the normal). Each is said
// in Notes, and Slope is then 0. Both match dcm2niix to its rounding of
// the interpolated stored values to integers (0.5 HU at slope 1), checked
// against dcm2niix itself in dcm2niix_test.go.
//
// Errors: ErrConflictingSlices, ErrUndecodable (naming the files),
// ErrEmptyStack.
func (st *Stack) Assemble(opts AssembleOptions) (*Volume, error) {
	if st.conflict {
		var msgs []string
		for _, w := range st.Warnings {
			if w.Code == WarnConflictingSlices {
				msgs = append(msgs, w.Message)
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrConflictingSlices, strings.Join(msgs, "; "))
	}
	if len(st.vols) == 0 || len(st.vols[0]) == 0 {
		return nil, ErrEmptyStack
	}
	nt, nk := len(st.vols), len(st.vols[0])
	plane := st.Rows * st.Columns
	first := st.vols[0][0]
	isCT := st.Modality == "CT"

	// Effective rescale per slice; one shared rescale sets Slope.
	byFile := map[*fileData][]job{}
	var fileOrder []*fileData
	var loose []job // synthetic slices
	shared := true
	s0, i0 := rescale(first, opts)
	for t, v := range st.vols {
		for k, s := range v {
			sl, ic := rescale(s, opts)
			if sl != s0 || ic != i0 || s.signed != first.signed || s.bits != first.bits {
				shared = false
			}
			j := job{s, (t*nk + k) * plane}
			if s.file == nil {
				loose = append(loose, j)
				continue
			}
			if _, ok := byFile[s.file]; !ok {
				fileOrder = append(fileOrder, s.file)
			}
			byFile[s.file] = append(byFile[s.file], j)
		}
	}

	// The stored integers are kept as int16 (Volume.Stored) when they can
	// give every voxel exactly: one rescale, no resampling, and a padding
	// value that is itself a stored integer. decodeInto falls back to
	// float32 when a file's values turn out not to fit.
	padStored, padOK := int16(0), true
	for _, v := range st.vols {
		for _, s := range v {
			if s.padding && isCT {
				p := math.Round((PaddingHU - i0) / s0)
				if p < math.MinInt16 || p > math.MaxInt16 || float32(p*s0+i0) != PaddingHU {
					padOK = false
				}
				padStored = int16(p)
			}
		}
	}
	resampling := (st.Tilted && !opts.TiltAffine) || (st.Irregular && nk > 1)
	var (
		data   []float32
		stored []int16
		failed []string
	)
	if shared && !resampling && padOK {
		stored = make([]int16, plane*nk*nt)
		var fits bool
		if fits, failed = st.decodeInto(opts, fileOrder, byFile, loose, nil, stored, padStored); !fits {
			stored, failed = nil, nil
		}
	}
	if stored == nil {
		data = make([]float32, plane*nk*nt)
		_, failed = st.decodeInto(opts, fileOrder, byFile, loose, data, nil, 0)
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%w: %d of the stack's files or slices: %s", ErrUndecodable, len(failed), strings.Join(failed, "; "))
	}

	v := &Volume{
		Size:              [4]int{st.Columns, st.Rows, nk, nt},
		Spacing:           [3]float64{st.PixelSpacing[1], st.PixelSpacing[0], st.SliceSpacing},
		Origin:            first.pos,
		Axes:              [3][3]float64{unit(vec(st.Orientation[0:3])), unit(vec(st.Orientation[3:6])), st.Normal},
		Data:              data,
		Stored:            stored,
		SeriesInstanceUID: st.SeriesUID,
		Modality:          st.Modality,
		Warnings:          append([]Warning(nil), st.Warnings...),
	}
	if v.Spacing[2] == 0 {
		v.Spacing[2] = st.SliceThickness
		if v.Spacing[2] <= 0 {
			v.Spacing[2] = 1
		}
	}
	resampled := false
	coords := st.Positions
	if st.Tilted {
		if opts.TiltAffine {
			coords = st.tiltAffine(v)
		} else {
			st.shearCorrect(v)
			resampled = true
		}
	}
	if st.Irregular && nk > 1 {
		step, nk2 := eqGrid(coords)
		v.Data = equalize(v.Data, v.Size[0]*v.Size[1], nk, nt, coords, step, nk2)
		note := fmt.Sprintf(
			"the %d slices were irregularly spaced (%.4g to %.4g mm apart): resampled by linear interpolation between neighbouring slices to %d slices %.4g mm apart from the first slice (as dcm2niix's _Eq_ output)",
			nk, minStep(coords), maxStep(coords), nk2, step)
		if short := coords[nk-1] - coords[0] - float64(nk2-1)*step; short > 1e-3*step {
			note += fmt.Sprintf("; the grid ends %.4g mm before the last slice", short)
		}
		v.Notes = append(v.Notes, note)
		v.Size[2] = nk2
		if step > 0 {
			v.Spacing[2] = step
		}
		resampled = true
	} else if nk > 1 && (!st.Tilted || !opts.TiltAffine) {
		v.Spacing[2] = (coords[nk-1] - coords[0]) / float64(nk-1)
	}
	dups := 0
	for _, w := range st.Warnings {
		if w.Code == WarnDuplicate {
			dups++
		}
	}
	if dups > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%s dropped as exact duplicates (same position, same pixels)", count(dups, "slice")))
	}
	if stored != nil {
		v.Slope, v.Intercept = s0, i0
		v.StoredSigned, v.StoredBits = first.signed, first.bits
	} else if shared && !resampled {
		v.Slope, v.Intercept = s0, i0
		v.StoredSigned, v.StoredBits = first.signed, first.bits
		if first.padding && isCT {
			// The padding value must still be a stored integer.
			st := (PaddingHU - i0) / s0
			if math.Abs(st-math.Round(st)) > 1e-6 {
				v.Slope, v.Intercept = 0, 0
			}
		}
	}
	if v.Slope == 0 {
		v.StoredSigned, v.StoredBits = false, 0
	}
	return v, nil
}

// rescale returns a slice's effective slope and intercept.
func rescale(s *slice, opts AssembleOptions) (slope, intercept float64) {
	slope, intercept = s.slope, s.intercept
	if slope == 0 {
		slope = 1
	}
	if s.philipsSS != 0 && !opts.PhilipsDisplayScaling && s.in != nil &&
		strings.Contains(strings.ToUpper(s.in.Manufacturer), "PHILIPS") {
		// (stored·RS + RI) / (RS·SS) = stored/SS + RI/(RS·SS)
		return 1 / s.philipsSS, intercept / (slope * s.philipsSS)
	}
	return slope, intercept
}

// toFloat writes stored values as real-world values: v·slope+intercept in
// float64, rounded to float32; values in padLo..padHi become PaddingHU
// when pad is set.
func toFloat(dst []float32, src []int32, slope, intercept float64, pad bool, padLo, padHi int) {
	dst = dst[:len(src)]
	if !pad {
		for i, x := range src {
			dst[i] = float32(float64(x)*slope + intercept)
		}
		return
	}
	lo, hi := int32(max(padLo, math.MinInt32)), int32(min(padHi, math.MaxInt32))
	for i, x := range src {
		if x >= lo && x <= hi {
			dst[i] = PaddingHU
			continue
		}
		dst[i] = float32(float64(x)*slope + intercept)
	}
}

// tiltAffine keeps the sheared grid: Axes[2] along the first-to-last
// slice line. It returns the slice coordinates along that line.
func (st *Stack) tiltAffine(v *Volume) []float64 {
	first := st.vols[0]
	p0 := first[0].pos
	dir := unit(sub(first[len(first)-1].pos, p0))
	coords := make([]float64, len(first))
	for k, s := range first {
		coords[k] = dot(sub(s.pos, p0), dir)
	}
	v.Axes[2] = dir
	v.Spacing[2] = coords[len(coords)-1] / float64(max(len(coords)-1, 1))
	v.Notes = append(v.Notes, fmt.Sprintf(
		"gantry tilt of %.3g°: the grid is kept sheared (no interpolation); the third axis follows the slice positions and is not perpendicular to the slices",
		st.TiltDegrees))
	return coords
}

// shearCorrect resamples each slice within its plane onto one orthogonal
// grid, as dcm2niix's `_Tilt_1` output: the grid is widened (along the
// rows, and the columns if the slices are also displaced that way) by
// ceil(range of the displacements) pixels so that no pixel of any slice
// is lost, its rows (columns) are those of the slice displaced furthest
// along the column (row) direction, the new ones added before its first
// row (column); each slice is shifted onto it by bilinear interpolation
// (linear along the one axis of a gantry tilt), and pixels shifted in
// from outside a slice get the volume's smallest value (dcm2niix's
// "darkest observed value"), except that a grid row less than one pixel
// before a slice's row 0 takes row 0 (dcm2niix clamps there).
func (st *Stack) shearCorrect(v *Volume) {
	first := st.vols[0]
	p0 := first[0].pos
	r, c := v.Axes[0], v.Axes[1]
	cols, rows := st.Columns, st.Rows
	plane := rows * cols
	nk := len(first)
	// The displacement of each slice from the first, in pixels.
	si, sj := make([]float64, nk), make([]float64, nk)
	for k, s := range first {
		off := inPlane(sub(s.pos, p0), st.Normal)
		si[k], sj[k] = dot(off, r)/v.Spacing[0], dot(off, c)/v.Spacing[1]
	}
	// Pixel (x, y) of slice k lies at (x+si[k], y+sj[k]) in the first
	// slice's pixel coordinates; the grid's (0, 0) there is (x0, y0).
	grow := func(d []float64) (origin float64, extra int) {
		lo, hi := slicesMinMax(d)
		extra = int(math.Ceil(hi - lo - 1e-6))
		if extra < 0 || hi-lo < 1e-6 {
			return 0, 0
		}
		return hi - float64(extra), extra
	}
	x0, ex := grow(si)
	y0, ey := grow(sj)
	dcols, drows := cols+ex, rows+ey
	dplane := dcols * drows
	fill := float32(math.Inf(1))
	for _, x := range v.Data {
		fill = min(fill, x)
	}
	if math.IsInf(float64(fill), 1) {
		fill = 0
	}
	out := v.Data
	if dplane != plane {
		out = make([]float32, dplane*nk*len(st.vols))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for t := range st.vols {
		for k := range st.vols[t] {
			// dst(i, j) = src(i + x0 − si, j + y0 − sj)
			di, dj := si[k]-x0, sj[k]-y0
			if dplane == plane && math.Abs(di) < 1e-6 && math.Abs(dj) < 1e-6 {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				src := v.Data[(t*nk+k)*plane : (t*nk+k+1)*plane]
				if dplane == plane {
					src = append([]float32(nil), src...)
				}
				shiftInto(out[(t*nk+k)*dplane:(t*nk+k+1)*dplane], dcols, drows, src, cols, rows, di, dj, fill, true)
			}()
		}
	}
	wg.Wait()
	v.Data = out
	v.Size[0], v.Size[1] = dcols, drows
	for a := range 3 {
		v.Origin[a] += x0*v.Spacing[0]*r[a] + y0*v.Spacing[1]*c[a]
	}
	v.Notes = append(v.Notes, fmt.Sprintf(
		"gantry tilt of %.3g°: each slice was shifted within its plane (bilinear interpolation) onto an orthogonal grid widened to %d×%d pixels to hold every slice, outside the slices filled with the smallest value %g (shear correction, as dcm2niix's _Tilt_1 output)",
		st.TiltDegrees, dcols, drows, fill))
}

// slicesMinMax returns the smallest and largest of d (not empty).
func slicesMinMax(d []float64) (lo, hi float64) {
	lo, hi = d[0], d[0]
	for _, x := range d[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func minStep(c []float64) float64 {
	m := math.Inf(1)
	for k := 1; k < len(c); k++ {
		m = math.Min(m, c[k]-c[k-1])
	}
	return m
}

func maxStep(c []float64) float64 {
	m := 0.0
	for k := 1; k < len(c); k++ {
		m = math.Max(m, c[k]-c[k-1])
	}
	return m
}

// lutMinPlane is the smallest slice for which 16-bit values are converted
// through a lookup table: building one costs about a 256×256 slice.
const lutMinPlane = 256 * 256

// lutKey identifies a 16-bit lookup table: rescale, padding and bit layout.
type lutKey struct {
	slope, intercept float64
	pad              bool
	padLo, padHi     int
	bitsStored, high int
	signed           bool
}

// lutCache holds the lookup tables of one assembly.
type lutCache struct {
	mu sync.Mutex
	m  map[lutKey][]float32
}

// get returns the table mapping every 16-bit container of px's layout to
// its real-world value, building it with px's own conversion (Float32 and,
// for padding, Int32) on all 65536 containers, so that the table and the
// direct conversion cannot differ.
func (c *lutCache) get(px *dicomio.Pixels, k lutKey) ([]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lut, ok := c.m[k]; ok {
		return lut, nil
	}
	all := &dicomio.Pixels{
		Rows: 1, Columns: 1 << 16, Samples: 1, Frames: 1,
		BitsAllocated: 16, BitsStored: k.bitsStored, HighBit: k.high, Signed: k.signed,
		Data: make([]byte, 2<<16),
	}
	for v := range 1 << 16 {
		all.Data[2*v], all.Data[2*v+1] = byte(v), byte(v>>8)
	}
	lut := make([]float32, 1<<16)
	if err := all.Float32(0, lut, k.slope, k.intercept); err != nil {
		return nil, err
	}
	if k.pad {
		stored := make([]int32, 1<<16)
		if err := all.Int32(0, stored); err != nil {
			return nil, err
		}
		for v, x := range stored {
			if int(x) >= k.padLo && int(x) <= k.padHi {
				lut[v] = PaddingHU
			}
		}
	}
	c.m[k] = lut
	return lut, nil
}

// lutConvert writes lut[container] for each little-endian 16-bit container
// of src. The naive reference: dst[i] = lut[binary.LittleEndian.Uint16(src[2*i:])].
func lutConvert(dst []float32, src []byte, lut []float32) {
	lut = lut[:1<<16]
	src = src[:2*len(dst)]
	for i := range dst {
		s := src[2*i : 2*i+2 : 2*i+2]
		dst[i] = lut[uint16(s[0])|uint16(s[1])<<8]
	}
}

// job is one slice to decode and its offset in the volume.
type job struct {
	s   *slice
	off int
}

// decodeInto decodes every slice, in parallel one file per worker, into
// data (real-world values) or, when data is nil, into stored (the stored
// integers, padding replaced by padStored). fits is false when stored was
// asked for and some slice's values do not fit an int16 (a 32-bit
// container, unsigned 16-bit values): the caller then decodes again into
// data. failed names the slices that could not be decoded.
func (st *Stack) decodeInto(opts AssembleOptions, fileOrder []*fileData, byFile map[*fileData][]job, loose []job, data []float32, stored []int16, padStored int16) (fits bool, failed []string) {
	plane := st.Rows * st.Columns
	isCT := st.Modality == "CT"
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	luts := &lutCache{m: map[lutKey][]float32{}}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		next     = make(chan int)
		overflow atomic.Bool
	)
	fail := func(name string, err error) {
		mu.Lock()
		failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		mu.Unlock()
	}
	for range min(workers, max(len(fileOrder)+len(loose), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch []int32
			for i := range next {
				if overflow.Load() {
					continue
				}
				if i >= len(fileOrder) {
					j := loose[i-len(fileOrder)]
					if scratch == nil {
						scratch = make([]int32, plane)
					}
					if err := j.s.src.int32s(scratch); err != nil {
						fail(j.s.name, err)
						continue
					}
					sl, ic := rescale(j.s, opts)
					pad := j.s.padding && isCT
					if stored == nil {
						toFloat(data[j.off:j.off+plane], scratch, sl, ic, pad, j.s.padLo, j.s.padHi)
					} else if !int32To16(stored[j.off:j.off+plane], scratch, pad, j.s.padLo, j.s.padHi, padStored) {
						overflow.Store(true)
					}
					continue
				}
				f := fileOrder[i]
				if f.loc != nil && stored != nil {
					// Native 16-bit frames: read straight into place.
					if !st.readInto(f, byFile[f], stored, isCT, padStored, fail) {
						overflow.Store(true)
					}
					continue
				}
				px, err := f.decode()
				if err != nil {
					fail(f.path, err)
					continue
				}
				if px.Rows != st.Rows || px.Columns != st.Columns {
					fail(f.path, fmt.Errorf("decoded %d×%d pixels where the stack is %d×%d", px.Columns, px.Rows, st.Columns, st.Rows))
					continue
				}
				for _, j := range byFile[f] {
					if j.s.frame >= px.Frames {
						fail(j.s.name, fmt.Errorf("the file has %d frames", px.Frames))
						continue
					}
					sl, ic := rescale(j.s, opts)
					pad := j.s.padding && isCT
					if stored != nil {
						if !unpackInt16(stored[j.off:j.off+plane], px, j.s.frame, pad, j.s.padLo, j.s.padHi, padStored) {
							overflow.Store(true)
						}
						continue
					}
					dst := data[j.off : j.off+plane]
					switch {
					case px.BitsAllocated == 16 && plane >= lutMinPlane:
						var lut []float32
						if lut, err = luts.get(px, lutKey{sl, ic, pad, j.s.padLo, j.s.padHi, px.BitsStored, px.HighBit, px.Signed}); err == nil {
							lutConvert(dst, px.Frame(j.s.frame), lut)
						}
					case pad:
						if scratch == nil {
							scratch = make([]int32, plane)
						}
						err = px.Int32(j.s.frame, scratch)
						if err == nil {
							toFloat(dst, scratch, sl, ic, true, j.s.padLo, j.s.padHi)
						}
					default:
						err = px.Float32(j.s.frame, dst, sl, ic)
					}
					if err != nil {
						fail(j.s.name, err)
					}
				}
			}
		}()
	}
	// Alternately from the front and the back: two workers then write
	// far apart in the volume, rather than taking turns on the page-table
	// lock of the pages they first touch.
	for n, lo, hi := len(fileOrder)+len(loose), 0, len(fileOrder)+len(loose)-1; lo <= hi; n-- {
		if n%2 == 0 {
			next <- lo
			lo++
		} else {
			next <- hi
			hi--
		}
	}
	close(next)
	wg.Wait()
	return !overflow.Load(), failed
}

// readInto reads the frames of f, a file read by header alone with a
// direct layout (see directLayout), straight into stored at each job's
// offset and converts them there (unpackInt16 in place). It returns false
// when the values may not fit an int16; read errors go to fail.
func (st *Stack) readInto(f *fileData, jobs []job, stored []int16, isCT bool, padStored int16, fail func(string, error)) bool {
	plane := st.Rows * st.Columns
	loc := f.loc
	if loc.Rows != st.Rows || loc.Columns != st.Columns {
		fail(f.path, fmt.Errorf("holds %d×%d pixels where the stack is %d×%d", loc.Columns, loc.Rows, st.Columns, st.Rows))
		return true
	}
	h, err := f.open()
	if err != nil {
		fail(f.path, err)
		return true
	}
	defer h.Close()
	for _, j := range jobs {
		if j.s.frame >= loc.Frames {
			fail(j.s.name, fmt.Errorf("the file has %d frames", loc.Frames))
			continue
		}
		dst := stored[j.off : j.off+plane]
		b := int16Bytes(dst)
		if err := f.readAt(h, b, loc.Offset+int64(j.s.frame)*loc.FrameSize); err != nil {
			fail(j.s.name, err)
			continue
		}
		view := &dicomio.Pixels{
			Rows: loc.Rows, Columns: loc.Columns, Samples: 1, Frames: 1,
			BitsAllocated: 16, BitsStored: loc.BitsStored, HighBit: loc.HighBit, Signed: loc.Signed,
			Data: b,
		}
		if !unpackInt16(dst, view, 0, j.s.padding && isCT, j.s.padLo, j.s.padHi, padStored) {
			return false
		}
	}
	return true
}

// unpackInt16 writes the stored values of one greyscale frame of px to
// dst, values in padLo..padHi replaced by padStored when pad is set. The
// value of a container c is its BitsStored bits ending at HighBit, sign
// extended when Signed, as (*dicomio.Pixels).Int32 gives it. It returns
// false, leaving dst partly written, when the values may not fit an int16
// (containers beyond 16 bits, unsigned 16-bit values) or the bit layout is
// invalid (Int32 then says why on the float path). For 16-bit containers
// the frame's bytes may be dst's own memory (conversion in place): each
// value is written only over the bytes it was read from.
func unpackInt16(dst []int16, px *dicomio.Pixels, frame int, pad bool, padLo, padHi int, padStored int16) bool {
	size := px.BitsAllocated / 8
	if px.Samples != 1 || (size != 1 && size != 2) || px.BitsStored < 1 ||
		px.BitsStored > px.HighBit+1 || px.HighBit >= px.BitsAllocated ||
		(!px.Signed && px.BitsStored > 15) || len(dst) != px.Rows*px.Columns {
		return false
	}
	src := px.Frame(frame)
	if len(src) != size*len(dst) {
		return false
	}
	// Shift the container left so that HighBit is bit 15, then right
	// (arithmetic when signed) to keep BitsStored bits.
	lsh, rsh := uint(15-px.HighBit), uint(16-px.BitsStored)
	if size == 1 {
		for i, c := range src {
			if px.Signed {
				dst[i] = int16(uint16(c)<<lsh) >> rsh
			} else {
				dst[i] = int16(uint16(c) << lsh >> rsh)
			}
		}
	} else {
		src = src[:2*len(dst)]
		switch {
		case px.Signed && lsh == 0 && rsh == 0 && littleEndian:
			copy(int16Bytes(dst), src) // the containers are the values
		case !px.Signed && littleEndian:
			// (c >> low) & mask, four values per 64-bit word: the bits a
			// lane gets from the next one land above the mask.
			low := uint(px.HighBit + 1 - px.BitsStored)
			mask := uint64(1)<<px.BitsStored - 1
			mask *= 0x0001_0001_0001_0001
			b := int16Bytes(dst)
			n := len(b) &^ 7
			if aligned8(src) && aligned8(b) {
				// The same on 64-bit words of memory, four at a time.
				ws := unsafe.Slice((*uint64)(unsafe.Pointer(&src[0])), n/8)
				wd := unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n/8)
				wd = wd[:len(ws)]
				k := len(ws) &^ 3
				for i := 0; i < k; i += 4 {
					w := ws[i : i+4 : i+4]
					d := wd[i : i+4 : i+4]
					d[0], d[1], d[2], d[3] = w[0]>>low&mask, w[1]>>low&mask, w[2]>>low&mask, w[3]>>low&mask
				}
				for i := k; i < len(ws); i++ {
					wd[i] = ws[i] >> low & mask
				}
			} else {
				for i := 0; i < n; i += 8 {
					binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(src[i:])>>low&mask)
				}
			}
			for i := n / 2; i < len(dst); i++ {
				dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]) << lsh >> rsh)
			}
		case px.Signed && lsh == 0 && rsh == 0:
			for i := range dst {
				dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]))
			}
		case px.Signed:
			for i := range dst {
				dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:])<<lsh) >> rsh
			}
		default:
			for i := range dst {
				dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]) << lsh >> rsh)
			}
		}
	}
	if pad {
		lo, hi := int16(max(padLo, math.MinInt16)), int16(min(padHi, math.MaxInt16))
		if padLo <= math.MaxInt16 && padHi >= math.MinInt16 {
			for i, x := range dst {
				if x >= lo && x <= hi {
					dst[i] = padStored
				}
			}
		}
	}
	return true
}

// int32To16 is unpackInt16 for values already unpacked; it returns false
// when one does not fit an int16.
func int32To16(dst []int16, src []int32, pad bool, padLo, padHi int, padStored int16) bool {
	for i, x := range src {
		if pad && int(x) >= padLo && int(x) <= padHi {
			dst[i] = padStored
			continue
		}
		if x < math.MinInt16 || x > math.MaxInt16 {
			return false
		}
		dst[i] = int16(x)
	}
	return true
}

// littleEndian is set when the host stores integers least significant byte
// first, as DICOM and NIfTI files here do: an int16 slice then has the
// bytes of the file.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// aligned8 reports whether b starts on an 8-byte boundary (b not empty).
func aligned8(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 == 0
}

// int16Bytes returns the memory of s as bytes, in host order.
func int16Bytes(s []int16) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))
}
