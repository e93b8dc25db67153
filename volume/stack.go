package volume

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/radtriage/radtriage/dicomio"
)

// Series is one DICOM series of a Collection, split into stacks.
//
// A series splits into stacks of consistent geometry: slices with the same
// rows and columns, pixel spacing (within 0.1%) and orientation (each
// direction cosine within 0.001) form one stack. Slices that differ in
// Image Type (or, in an enhanced multi-frame object, Frame Type) or echo
// form separate stacks too (a Philips field-map object gives a magnitude
// stack and a field-map stack), as do frames of different Stack ID in an
// enhanced object that has several. Slices split off for their size or
// orientation are reported (WarnMixedSize, WarnMixedOrientation) in
// Series.Warnings and in the warnings of the stack they were split from.
type Series struct {
	UID, StudyUID string
	Modality      string
	Description   string
	Number        int
	Stacks        []*Stack // largest first
	// Warnings about the series as a whole: split-off slices, slices
	// without geometry.
	Warnings []Warning
}

// Stack is a set of slices of one geometry, ordered along the slice
// normal, possibly repeated over time (4D).
//
// Slices are ordered by their Image Position (Patient) projected on the
// normal, the cross product of the row and column direction cosines of
// Image Orientation (Patient); never by Instance Number or file name.
// Slices at one position (within 0.01 mm) are told apart by their time key
// (Acquisition Number, Temporal Position Identifier, Temporal Position
// Index): when every position holds the same number of time points the
// stack is 4D (Volumes > 1) ordered by that key; when positions hold
// different numbers the stack is split per time key. Two slices at one
// position with the same time key are compared pixel by pixel (a hash of
// the decoded stored values): identical ones are duplicates, and all but
// one are dropped with WarnDuplicate; different ones are
// WarnConflictingSlices, and Assemble refuses the stack (which of two
// images is right cannot be known).
type Stack struct {
	SeriesUID   string
	Modality    string
	Description string
	// Label tells the stack apart from its siblings of one series: the
	// Image Type (or Frame Type) values and echo, e.g. `ORIGINAL\PRIMARY\T1\FIELD_MAP`.
	Label string

	Rows, Columns int
	// PixelSpacing is Pixel Spacing (0028,0030): the distance between rows,
	// then between columns, in mm.
	PixelSpacing [2]float64
	// Orientation is Image Orientation (Patient): row then column
	// direction cosines (LPS). Normal is their cross product, normalised.
	Orientation [6]float64
	Normal      [3]float64

	SliceThickness    float64 // Slice Thickness of the first slice, mm
	ImageType         []string
	ConvolutionKernel string
	StudyUID          string

	// Slices is the number of distinct positions; Volumes the number of
	// time points (1 for a 3D stack).
	Slices, Volumes int
	// Positions are the slice positions along Normal (mm, increasing),
	// one per slice of the first time point.
	Positions []float64
	// SliceSpacing is the usual (median) distance between neighbouring
	// positions, mm; 0 for a single slice.
	SliceSpacing float64
	// Irregular reports spacings that differ from SliceSpacing beyond
	// tolerance (gaps included): Assemble resamples to equal spacing.
	Irregular bool
	// Tilted reports slices displaced within their plane from one
	// another (a tilted CT gantry: the slice direction is not the
	// normal); TiltDegrees is the angle between the line through the first
	// and last slice positions and Normal.
	Tilted      bool
	TiltDegrees float64

	Warnings []Warning

	conflict bool
	vols     [][]*slice // [time][position]
}

// Coverage is the extent of the stack along its normal, mm: the distance
// from the first to the last slice position plus one slice spacing (or
// the slice thickness for a single slice).
func (s *Stack) Coverage() float64 {
	if len(s.Positions) == 0 {
		return 0
	}
	ext := s.SliceSpacing
	if ext == 0 {
		ext = s.SliceThickness
	}
	return s.Positions[len(s.Positions)-1] - s.Positions[0] + ext
}

// Files returns the paths of the files the stack's slices come from, in
// slice order (first time point first), each once.
func (s *Stack) Files() []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s.vols {
		for _, sl := range v {
			if sl.file != nil && !seen[sl.file.path] {
				seen[sl.file.path] = true
				out = append(out, sl.file.path)
			}
		}
	}
	return out
}

// Tolerances of the geometry checks.
const (
	orientTol  = 1e-3  // per direction cosine
	spacingTol = 1e-3  // relative, pixel spacing
	posTol     = 0.01  // mm: two slices closer than this along the normal share a position
	gapTol     = 0.1   // a spacing within 10% of an integer multiple m ≥ 2 of the usual one is a gap
	regularTol = 0.01  // relative tolerance of a regular spacing (with posTol absolute)
	tiltTol    = 0.001 // in-plane offset per mm along the normal that counts as a shear
)

// slice is one 2D image: a single-frame instance or one frame of a
// multi-frame instance. Tests build them directly with a memSource.
type slice struct {
	name  string // file path, with the frame for multi-frame images
	file  *fileData
	frame int
	in    *dicomio.Instance // nil for synthetic slices
	src   source

	geomOK     bool
	rows, cols int
	pos        [3]float64
	iop        [6]float64
	ps         [2]float64
	thickness  float64

	slope, intercept float64
	philipsSS        float64
	signed           bool
	bits             int
	padding          bool
	padLo, padHi     int

	imageType []string
	echo      float64
	time      timeKey
	stackID   string

	d float64 // position along the stack normal
}

// timeKey orders slices at one position in time: Acquisition Number,
// Temporal Position Identifier, Temporal Position Index.
type timeKey [3]int

// source gives a slice's stored values (Rows×Columns, row by row).
type source interface {
	int32s(dst []int32) error
}

// memSource is a source held in memory.
type memSource []int32

func (m memSource) int32s(dst []int32) error {
	if len(dst) != len(m) {
		return fmt.Errorf("slice holds %d values, not %d", len(m), len(dst))
	}
	copy(dst, m)
	return nil
}

func (s *slice) label() string {
	l := strings.Join(s.imageType, `\`)
	if s.echo != 0 {
		l += fmt.Sprintf(" echo %g", s.echo)
	}
	return l
}

// buildSeries splits the slices of one series into stacks.
func buildSeries(all []*slice) *Series {
	ser := &Series{}
	if len(all) > 0 && all[0].in != nil {
		in := all[0].in
		ser.UID, ser.StudyUID, ser.Modality, ser.Description, ser.Number =
			in.SeriesInstanceUID, in.StudyInstanceUID, in.Modality, in.SeriesDescription, in.SeriesNumber
	}
	var placed, unplaced []*slice
	for _, s := range all {
		if s.geomOK {
			placed = append(placed, s)
		} else {
			unplaced = append(unplaced, s)
		}
	}
	if len(unplaced) > 0 {
		ser.Warnings = append(ser.Warnings, Warning{WarnNoGeometry,
			fmt.Sprintf("%s %s no Image Position/Orientation (Patient) or Pixel Spacing and cannot be placed in a volume: %s",
				count(len(unplaced), "slice"), have(len(unplaced)), names(unplaced, 5))})
	}

	// Group by label, then cluster by geometry within each label. Frames
	// of an enhanced object with several Stack IDs (0020,9056) are kept
	// apart by their Stack ID too.
	stackIDs := map[string]bool{}
	for _, s := range placed {
		stackIDs[s.stackID] = true
	}
	byLabel := map[string][]*slice{}
	var labels []string
	for _, s := range placed {
		l := s.label()
		if len(stackIDs) > 1 {
			l += " stack " + s.stackID
		}
		if _, ok := byLabel[l]; !ok {
			labels = append(labels, l)
		}
		byLabel[l] = append(byLabel[l], s)
	}
	for _, l := range labels {
		groups := clusterGeometry(byLabel[l])
		main := groups[0]
		for _, g := range groups[1:] {
			code, what := WarnMixedOrientation, "orientation"
			if g[0].rows != main[0].rows || g[0].cols != main[0].cols || !sameSpacing(g[0].ps, main[0].ps) {
				code, what = WarnMixedSize, "size or pixel spacing"
			}
			w := Warning{code, fmt.Sprintf("%s of another %s (%d×%d, %.4g×%.4g mm, orientation %s) split off from the %d×%d stack: %s",
				count(len(g), "slice"), what, g[0].cols, g[0].rows, g[0].ps[1], g[0].ps[0], fmtIOP(g[0].iop),
				main[0].cols, main[0].rows, names(g, 5))}
			ser.Warnings = append(ser.Warnings, w)
		}
		for gi, g := range groups {
			for _, st := range buildStacks(g, ser) {
				st.Label = l
				if gi == 0 {
					for _, w := range ser.Warnings {
						if w.Code == WarnMixedOrientation || w.Code == WarnMixedSize {
							st.Warnings = append(st.Warnings, w)
						}
					}
				}
				ser.Stacks = append(ser.Stacks, st)
			}
		}
	}
	slices.SortStableFunc(ser.Stacks, func(a, b *Stack) int {
		return cmp.Compare(b.Slices*b.Volumes, a.Slices*a.Volumes)
	})
	return ser
}

// clusterGeometry groups slices of equal rows, columns, pixel spacing and
// orientation (within tolerance), largest group first.
func clusterGeometry(ss []*slice) [][]*slice {
	var groups [][]*slice
	for _, s := range ss {
		found := false
		for i, g := range groups {
			r := g[0]
			if r.rows == s.rows && r.cols == s.cols && sameSpacing(r.ps, s.ps) && sameOrientation(r.iop, s.iop) {
				groups[i] = append(g, s)
				found = true
				break
			}
		}
		if !found {
			groups = append(groups, []*slice{s})
		}
	}
	slices.SortStableFunc(groups, func(a, b []*slice) int { return cmp.Compare(len(b), len(a)) })
	return groups
}

func sameSpacing(a, b [2]float64) bool {
	return math.Abs(a[0]-b[0]) <= spacingTol*a[0] && math.Abs(a[1]-b[1]) <= spacingTol*a[1]
}

func sameOrientation(a, b [6]float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > orientTol {
			return false
		}
	}
	return true
}

// buildStacks orders one geometry group along its normal, drops
// duplicates, separates time points and analyses spacing and tilt. It
// returns one stack, or one per time key when positions hold different
// numbers of time points.
func buildStacks(ss []*slice, ser *Series) []*Stack {
	ref := ss[0]
	r, c := unit(vec(ref.iop[0:3])), unit(vec(ref.iop[3:6]))
	n := unit(cross(r, c))
	for _, s := range ss {
		s.d = dot(s.pos, n)
	}
	slices.SortStableFunc(ss, func(a, b *slice) int {
		if x := cmp.Compare(a.d, b.d); x != 0 {
			return x
		}
		return cmpTime(a.time, b.time)
	})

	st := newStack(ref, ser, n)
	// Positions: runs of slices within posTol of the run's first.
	var groups [][]*slice
	for i := 0; i < len(ss); {
		j := i + 1
		for j < len(ss) && ss[j].d-ss[i].d <= posTol {
			j++
		}
		groups = append(groups, dedupe(ss[i:j], st))
		i = j
	}
	// When some position holds several time points, every position must
	// hold the same time keys, else the stack splits per key. One slice per
	// position is a 3D stack whatever the keys (a CT may number each
	// rotation as an acquisition).
	consistent := true
	if slices.ContainsFunc(groups, func(g []*slice) bool { return len(g) > 1 }) {
		for _, g := range groups[1:] {
			consistent = consistent && slices.EqualFunc(g, groups[0], func(a, b *slice) bool { return a.time == b.time })
		}
	}
	if !consistent && !st.conflict {
		// Positions hold different numbers of time points: one stack per
		// time key.
		byTime := map[timeKey][]*slice{}
		var keys []timeKey
		for _, g := range groups {
			for _, s := range g {
				if _, ok := byTime[s.time]; !ok {
					keys = append(keys, s.time)
				}
				byTime[s.time] = append(byTime[s.time], s)
			}
		}
		if len(keys) > 1 {
			slices.SortFunc(keys, cmpTime)
			var out []*Stack
			for _, k := range keys {
				sub := byTime[k]
				one := newStack(ref, ser, n)
				one.Warnings = append(one.Warnings, st.Warnings...)
				one.Warnings = append(one.Warnings, Warning{WarnGap, fmt.Sprintf(
					"the series holds %d acquisitions or time points that do not cover the same positions; this stack is acquisition %d (temporal position %d/%d) with %s",
					len(keys), k[0], k[1], k[2], count(len(sub), "slice"))})
				var gs [][]*slice
				for _, s := range sub {
					gs = append(gs, []*slice{s})
				}
				one.finish(gs)
				out = append(out, one)
			}
			return out
		}
	}
	st.finish(groups)
	return []*Stack{st}
}

func newStack(ref *slice, ser *Series, n [3]float64) *Stack {
	st := &Stack{
		SeriesUID:    ser.UID,
		StudyUID:     ser.StudyUID,
		Modality:     ser.Modality,
		Description:  ser.Description,
		Rows:         ref.rows,
		Columns:      ref.cols,
		PixelSpacing: ref.ps,
		Orientation:  ref.iop,
		Normal:       n,
		ImageType:    ref.imageType,
	}
	if ref.in != nil {
		st.ConvolutionKernel = ref.in.ConvolutionKernel
	}
	return st
}

// finish fills the stack from its position groups (each sorted in time).
func (st *Stack) finish(groups [][]*slice) {
	if len(groups) == 0 {
		return
	}
	st.SliceThickness = groups[0][0].thickness
	nt := len(groups[0])
	for _, g := range groups {
		nt = min(nt, len(g))
	}
	st.Volumes = nt
	st.Slices = len(groups)
	st.vols = make([][]*slice, nt)
	for t := range nt {
		st.vols[t] = make([]*slice, len(groups))
		for k, g := range groups {
			st.vols[t][k] = g[t]
		}
	}
	first := st.vols[0]
	st.Positions = make([]float64, len(first))
	for k, s := range first {
		st.Positions[k] = s.d
	}
	if len(first) < 3 {
		st.Warnings = append(st.Warnings, Warning{WarnTooFewSlices,
			fmt.Sprintf("the stack has only %s (%s): too thin to be a volume", count(len(first), "slice"), names(first, 3))})
	}
	st.spacing(first)
	st.tilt(first)
	seen := map[*fileData]bool{}
	for _, v := range st.vols {
		for _, s := range v {
			if f := s.file; f != nil && f.err != nil && !seen[f] {
				seen[f] = true
				st.Warnings = append(st.Warnings, Warning{WarnUndecodable,
					fmt.Sprintf("the pixel data of %s cannot be decoded: %v", f.path, f.err)})
			}
		}
	}
}

// spacing finds the usual spacing and reports gaps and irregular spacing.
func (st *Stack) spacing(first []*slice) {
	if len(first) < 2 {
		return
	}
	diffs := make([]float64, len(first)-1)
	for k := range diffs {
		diffs[k] = first[k+1].d - first[k].d
	}
	sorted := slices.Clone(diffs)
	slices.Sort(sorted)
	usual := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		// The lower median: with a gap in a short stack, the usual spacing
		// is the smaller one.
		usual = sorted[len(sorted)/2-1]
	}
	st.SliceSpacing = usual
	for k, d := range diffs {
		if math.Abs(d-usual) <= max(posTol, regularTol*usual) {
			continue
		}
		st.Irregular = true
		m := math.Round(d / usual)
		if m >= 2 && math.Abs(d/usual-m) <= gapTol {
			st.Warnings = append(st.Warnings, Warning{WarnGap, fmt.Sprintf(
				"%s and %s are %.4g mm apart, %g times the usual %.4g mm spacing: %s missing between them",
				first[k].name, first[k+1].name, d, m, usual, count(int(m)-1, "slice"))})
			continue
		}
		st.Warnings = append(st.Warnings, Warning{WarnIrregularSpacing, fmt.Sprintf(
			"%s and %s are %.4g mm apart where the usual spacing is %.4g mm",
			first[k].name, first[k+1].name, d, usual)})
	}
}

// tilt detects slices displaced within their plane (gantry tilt).
func (st *Stack) tilt(first []*slice) {
	if len(first) < 2 {
		return
	}
	p0 := first[0].pos
	var worst float64
	for _, s := range first[1:] {
		off := inPlane(sub(s.pos, p0), st.Normal)
		along := s.d - first[0].d
		if along > 0 {
			worst = max(worst, norm(off)/along)
		}
	}
	if worst <= tiltTol {
		return
	}
	last := first[len(first)-1]
	dir := unit(sub(last.pos, p0))
	st.Tilted = true
	st.TiltDegrees = math.Acos(math.Min(1, math.Abs(dot(dir, st.Normal)))) * 180 / math.Pi
	msg := fmt.Sprintf("the slices are displaced within their plane along the stack (%.3g° between the slice direction and the normal",
		st.TiltDegrees)
	if ref := first[0].in; ref != nil && ref.GantryDetectorTilt != 0 {
		msg += fmt.Sprintf("; Gantry/Detector Tilt %g°", ref.GantryDetectorTilt)
	}
	st.Warnings = append(st.Warnings, Warning{WarnGantryTilt, msg + "): the grid is sheared"})
}

// dedupe handles the slices found at one position: those of one time key
// are compared by pixel hash; exact duplicates are dropped, different
// images mark the stack conflicting. It returns the slices kept, ordered
// by time key.
func dedupe(g []*slice, st *Stack) []*slice {
	if len(g) == 1 {
		return g
	}
	slices.SortStableFunc(g, func(a, b *slice) int { return cmpTime(a.time, b.time) })
	var out []*slice
	for i := 0; i < len(g); {
		j := i + 1
		for j < len(g) && g[j].time == g[i].time {
			j++
		}
		same := g[i:j]
		out = append(out, same[0])
		if len(same) > 1 {
			h0, err0 := pixelHash(same[0])
			for _, s := range same[1:] {
				h, err := pixelHash(s)
				switch {
				case err0 != nil || err != nil:
					st.conflict = true
					st.Warnings = append(st.Warnings, Warning{WarnConflictingSlices, fmt.Sprintf(
						"%s and %s are at one position (%.4g mm) and their pixels could not be compared: %v",
						same[0].name, s.name, s.d, cmp.Or(err0, err))})
				case h == h0:
					st.Warnings = append(st.Warnings, Warning{WarnDuplicate, fmt.Sprintf(
						"%s duplicates %s (same position %.4g mm, same pixels): dropped", s.name, same[0].name, s.d)})
				default:
					st.conflict = true
					st.Warnings = append(st.Warnings, Warning{WarnConflictingSlices, fmt.Sprintf(
						"%s and %s are different images at one position (%.4g mm along the normal)", same[0].name, s.name, s.d)})
				}
			}
		}
		i = j
	}
	return out
}

var hashSeed = maphash.MakeSeed()

// pixelHash hashes a slice's stored values and rescale.
func pixelHash(s *slice) (uint64, error) {
	buf := make([]int32, s.rows*s.cols)
	if err := s.src.int32s(buf); err != nil {
		return 0, err
	}
	var h maphash.Hash
	h.SetSeed(hashSeed)
	if len(buf) > 0 {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf)))
	}
	fmt.Fprintf(&h, "%g %g", s.slope, s.intercept)
	return h.Sum64(), nil
}

func cmpTime(a, b timeKey) int {
	for i := range a {
		if x := cmp.Compare(a[i], b[i]); x != 0 {
			return x
		}
	}
	return 0
}

// names lists up to n slice names.
func names(ss []*slice, n int) string {
	var parts []string
	for i, s := range ss {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ss)-n))
			break
		}
		parts = append(parts, s.name)
	}
	return strings.Join(parts, ", ")
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func have(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func fmtIOP(v [6]float64) string {
	parts := make([]string, 6)
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.4g", x)
	}
	return strings.Join(parts, `\`)
}

// Small vector helpers (LPS millimetres).

func vec(v []float64) [3]float64  { return [3]float64{v[0], v[1], v[2]} }
func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func norm(a [3]float64) float64   { return math.Sqrt(dot(a, a)) }
func sub(a, b [3]float64) [3]float64 {
	return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]}
}
func scale(a [3]float64, f float64) [3]float64 { return [3]float64{a[0] * f, a[1] * f, a[2] * f} }
func unit(a [3]float64) [3]float64 {
	if n := norm(a); n > 0 {
		return scale(a, 1/n)
	}
	return a
}
func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// inPlane is the component of v perpendicular to the unit vector n.
func inPlane(v, n [3]float64) [3]float64 { return sub(v, scale(n, dot(v, n))) }
