package triage

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/radtriage/radtriage/kernels"
)

// Post-processing turns a segmentation probability map into lesions:
// threshold, 3D connected components, smallest-lesion filter, and the
// measurements of each lesion in patient (LPS) coordinates.
//
// Volumes here are flat in the kernels' (D, H, W) order: the voxel (d, h,
// w) is at index (d*H + h)*W + w.

// ErrPostSpec reports a post-processing specification or input that
// cannot be used (a threshold outside (0, 1], a negative minimum volume,
// an unknown connectivity, a probability map of the wrong size).
var ErrPostSpec = errors.New("triage: invalid post-processing")

// Connectivity is the neighbourhood of 3D connected components: 6 (voxels
// sharing a face) or 26 (sharing a face, an edge or a corner).
type Connectivity int

const (
	Conn6  Connectivity = 6
	Conn26 Connectivity = 26
)

// Component is one connected component of a mask.
type Component struct {
	// Label is the component's value in the label volume, 1 to
	// len(comps); components are numbered in raster order of their first
	// voxel (the one with the smallest flat index).
	Label  int32
	Voxels int
	// Min and Max bound the component's voxel indices (D, H, W),
	// inclusive.
	Min, Max [3]int
	// Centroid is the mean voxel index (D, H, W).
	Centroid [3]float64
	// ProbSum and ProbMax are the sum and the maximum of the probability
	// map over the component's voxels (zero without a map).
	ProbSum float64
	ProbMax float32
	// KeySlice is the D index where the component has the most voxels
	// (the smallest such index on ties); KeyArea is that number.
	KeySlice, KeyArea int
}

// maskRun is a maximal stretch of mask voxels along W in one (d, h) row.
type maskRun struct {
	start, end int32 // W indices, inclusive
	parent     int32 // union-find parent (a run index)
}

// Components labels the 3D connected components of mask, a volume of
// size (D, H, W) voxels. labels holds 0 for background and the
// component's Label elsewhere. It panics if len(mask) is not the product
// of size, or conn is neither Conn6 nor Conn26.
//
// It is equivalent to this flood fill, without its queue and with
// memory proportional to the number of runs of the mask along W:
//
//	for each voxel v in raster order with mask[v] and labels[v] == 0:
//		n++; labels[v] = n; queue = [v]
//		while queue not empty: pop u; for each neighbour x of u (by conn)
//			with mask[x] and labels[x] == 0: labels[x] = n; push x
func Components(mask []bool, size [3]int, conn Connectivity) (labels []int32, comps []Component) {
	return components(mask, nil, size, conn)
}

// ComponentsProb is Components that also sums and maximises prob (a map
// of the same size as mask) over each component.
func ComponentsProb(mask []bool, prob []float32, size [3]int, conn Connectivity) (labels []int32, comps []Component) {
	if len(prob) != len(mask) {
		panic("triage: ComponentsProb: prob and mask lengths differ")
	}
	return components(mask, prob, size, conn)
}

func components(mask []bool, prob []float32, size [3]int, conn Connectivity) ([]int32, []Component) {
	D, H, W := size[0], size[1], size[2]
	if D < 0 || H < 0 || W < 0 || len(mask) != gridVoxels(size) {
		panic("triage: Components: mask length does not match size")
	}
	if conn != Conn6 && conn != Conn26 {
		panic("triage: Components: connectivity is neither 6 nor 26")
	}
	if len(mask) >= math.MaxInt32 {
		panic("triage: Components: volume too large")
	}
	labels := make([]int32, len(mask))
	if len(mask) == 0 {
		return labels, nil
	}

	// Pass 1: runs per row, rowStart[r] .. rowStart[r+1] are row r's.
	rows := D * H
	rowStart := make([]int32, rows+1)
	nruns := 0
	prev := false
	for i, m := range mask {
		if m && (!prev || i%W == 0) {
			nruns++
		}
		prev = m
	}
	runs := make([]maskRun, 0, nruns)
	for r := 0; r < rows; r++ {
		rowStart[r] = int32(len(runs))
		row := mask[r*W : (r+1)*W]
		for w := 0; w < W; {
			if !row[w] {
				w++
				continue
			}
			s := w
			for w < W && row[w] {
				w++
			}
			runs = append(runs, maskRun{start: int32(s), end: int32(w - 1), parent: int32(len(runs))})
		}
	}
	rowStart[rows] = int32(len(runs))

	// Pass 2: union each run with the touching runs of earlier
	// neighbouring rows. Two runs in neighbouring rows touch when their W
	// ranges overlap (6) or overlap after growing by one voxel (26).
	var slack int32
	if conn == Conn26 {
		slack = 1
	}
	join := func(a0, a1, b0, b1 int32) {
		// Both rows' runs are sorted by start; walk them together.
		i, j := a0, b0
		for i < a1 && j < b1 {
			ra, rb := &runs[i], &runs[j]
			if ra.start <= rb.end+slack && rb.start <= ra.end+slack {
				runUnion(runs, i, j)
			}
			// Advance the run that ends first; it cannot touch later
			// runs of the other row.
			if ra.end < rb.end {
				i++
			} else {
				j++
			}
		}
	}
	for d := 0; d < D; d++ {
		for h := 0; h < H; h++ {
			r := d*H + h
			a0, a1 := rowStart[r], rowStart[r+1]
			if a0 == a1 {
				continue
			}
			if h > 0 {
				join(a0, a1, rowStart[r-1], rowStart[r])
			}
			if d > 0 {
				p := r - H
				join(a0, a1, rowStart[p], rowStart[p+1])
				if conn == Conn26 {
					if h > 0 {
						join(a0, a1, rowStart[p-1], rowStart[p])
					}
					if h < H-1 {
						join(a0, a1, rowStart[p+1], rowStart[p+2])
					}
				}
			}
		}
	}

	// Pass 3: number the roots in raster order and measure.
	rootLabel := make([]int32, len(runs))
	ncomps := 0
	for i := range runs {
		if runs[i].parent == int32(i) {
			ncomps++
		}
	}
	comps := make([]Component, 0, ncomps)
	type acc struct {
		sum         [3]int64 // sums of d, h and 2w
		slice, area int      // the slice being counted and its voxels so far
	}
	accs := make([]acc, 0, ncomps)
	for r := 0; r < rows; r++ {
		d, h := r/H, r%H
		for i := rowStart[r]; i < rowStart[r+1]; i++ {
			root := runRoot(runs, i)
			lab := rootLabel[root]
			if lab == 0 {
				comps = append(comps, Component{
					Label:    int32(len(comps) + 1),
					Min:      [3]int{D, H, W},
					Max:      [3]int{-1, -1, -1},
					KeySlice: d,
				})
				if prob != nil {
					comps[len(comps)-1].ProbMax = float32(math.Inf(-1))
				}
				accs = append(accs, acc{slice: d})
				lab = int32(len(comps))
				rootLabel[root] = lab
			}
			c, a := &comps[lab-1], &accs[lab-1]
			s, e := int(runs[i].start), int(runs[i].end)
			n := e - s + 1
			base := r * W
			lrow := labels[base+s : base+e+1]
			for k := range lrow {
				lrow[k] = lab
			}
			if prob != nil {
				for _, p := range prob[base+s : base+e+1] {
					c.ProbSum += float64(p)
					if p > c.ProbMax {
						c.ProbMax = p
					}
				}
			}
			c.Voxels += n
			c.Min = [3]int{min(c.Min[0], d), min(c.Min[1], h), min(c.Min[2], s)}
			c.Max = [3]int{max(c.Max[0], d), max(c.Max[1], h), max(c.Max[2], e)}
			a.sum[0] += int64(d) * int64(n)
			a.sum[1] += int64(h) * int64(n)
			a.sum[2] += int64(s+e) * int64(n)
			if d != a.slice {
				a.slice, a.area = d, 0
			}
			a.area += n
			if a.area > c.KeyArea {
				c.KeySlice, c.KeyArea = d, a.area
			}
		}
	}
	for i := range comps {
		c, a := &comps[i], &accs[i]
		n := float64(c.Voxels)
		c.Centroid = [3]float64{float64(a.sum[0]) / n, float64(a.sum[1]) / n, float64(a.sum[2]) / (2 * n)}
	}
	return labels, comps
}

// runRoot is the root of run i, halving the path on the way.
func runRoot(runs []maskRun, i int32) int32 {
	for runs[i].parent != i {
		p := runs[i].parent
		runs[i].parent = runs[p].parent
		i = runs[i].parent
	}
	return i
}

// runUnion joins the sets of runs i and j; the smaller index becomes the
// root, so roots are the earliest run of their set.
func runUnion(runs []maskRun, i, j int32) {
	a, b := runRoot(runs, i), runRoot(runs, j)
	if a == b {
		return
	}
	if a > b {
		a, b = b, a
	}
	runs[b].parent = a
}

func gridVoxels(size [3]int) int {
	n := 1
	for _, s := range size {
		if s < 0 || s > 0 && n > math.MaxInt32/s {
			return -1
		}
		n *= s
	}
	return n
}

// PostSpec is how a probability map becomes lesions.
type PostSpec struct {
	// Threshold: a voxel belongs to a lesion when its probability is at
	// least Threshold (prob >= Threshold; NaN never does). It must be in
	// (0, 1].
	Threshold float64
	// Connectivity of lesions; 0 means Conn26.
	Connectivity Connectivity
	// MinVolumeML drops smaller components: a component is kept when its
	// volume is at least MinVolumeML millilitres. It must be >= 0.
	MinVolumeML float64
}

func (p PostSpec) check() (PostSpec, error) {
	if !(p.Threshold > 0 && p.Threshold <= 1) {
		return p, fmt.Errorf("%w: threshold %v is not in (0, 1]", ErrPostSpec, p.Threshold)
	}
	if !(p.MinVolumeML >= 0) || math.IsInf(p.MinVolumeML, 0) {
		return p, fmt.Errorf("%w: minimum volume %v mL is not a finite value >= 0", ErrPostSpec, p.MinVolumeML)
	}
	switch p.Connectivity {
	case 0:
		p.Connectivity = Conn26
	case Conn6, Conn26:
	default:
		return p, fmt.Errorf("%w: connectivity %d is neither 6 nor 26", ErrPostSpec, p.Connectivity)
	}
	return p, nil
}

// Lesion is one kept component of a thresholded probability map.
type Lesion struct {
	Voxels   int
	VolumeML float64 // Voxels times the voxel volume (product of Spacing, mm³) / 1000
	// MeanProb and MaxProb are the mean and maximum probability over the
	// lesion's voxels.
	MeanProb, MaxProb float64
	// CentroidLPS is the LPS position (mm) of the mean voxel index.
	CentroidLPS [3]float64
	// BBoxLPS is the minimum (row 0) and maximum (row 1) LPS coordinate,
	// per axis, of the lesion's voxel-index bounding box taken to the
	// outer faces of its voxels: the 8 corners of the index box from
	// Min-0.5 to Max+0.5 on each of D, H, W, mapped through the geometry.
	// With rotated axes it is the axis-aligned LPS box around that
	// oriented box.
	BBoxLPS [2][3]float64
	// Min and Max are the inclusive voxel-index (D, H, W) bounding box.
	Min, Max [3]int
	// KeySlice is the D index where the lesion has the most voxels.
	KeySlice int
	// label is the lesion's value in the Components labelling.
	label int32
}

// Findings thresholds prob (a map of size (D, H, W) on the grid geom),
// labels its connected components, drops those below p.MinVolumeML and
// measures the rest, largest volume first (ties in raster order of their
// first voxel). size must equal geom.Size.
func Findings(prob []float32, size [3]int, geom kernels.Geometry, p PostSpec) ([]Lesion, error) {
	lesions, _, err := postprocess(prob, size, geom, p)
	return lesions, err
}

// MaskOf is Findings that also returns the label mask of the kept
// lesions: 0 for background, i+1 for the voxels of lesions[i] (255 for
// every lesion from the 255th on), for saving as a NIfTI label map.
func MaskOf(prob []float32, size [3]int, geom kernels.Geometry, p PostSpec) (mask []uint8, lesions []Lesion, err error) {
	lesions, labels, err := postprocess(prob, size, geom, p)
	if err != nil {
		return nil, nil, err
	}
	byLabel := map[int32]uint8{}
	for i, l := range lesions {
		byLabel[l.label] = uint8(min(i+1, 255))
	}
	mask = make([]uint8, len(labels))
	for i, lab := range labels {
		if lab != 0 {
			mask[i] = byLabel[lab]
		}
	}
	return mask, lesions, nil
}

func postprocess(prob []float32, size [3]int, geom kernels.Geometry, p PostSpec) ([]Lesion, []int32, error) {
	p, err := p.check()
	if err != nil {
		return nil, nil, err
	}
	if size != geom.Size {
		return nil, nil, fmt.Errorf("%w: size %v differs from the geometry's %v", ErrPostSpec, size, geom.Size)
	}
	n := gridVoxels(size)
	if n < 0 || n >= math.MaxInt32 {
		return nil, nil, fmt.Errorf("%w: size %v is negative or too large", ErrPostSpec, size)
	}
	if len(prob) != n {
		return nil, nil, fmt.Errorf("%w: probability map of %d values for size %v (%d voxels)", ErrPostSpec, len(prob), size, n)
	}
	voxelML := geom.Spacing[0] * geom.Spacing[1] * geom.Spacing[2] / 1000
	if !(voxelML > 0) || math.IsInf(voxelML, 0) {
		return nil, nil, fmt.Errorf("%w: spacing %v mm", ErrPostSpec, geom.Spacing)
	}
	t := float32(p.Threshold)
	if float64(t) < p.Threshold {
		// Keep prob >= Threshold exact for float32 probabilities.
		t = math.Nextafter32(t, 2)
	}
	mask := make([]bool, n)
	for i, v := range prob {
		mask[i] = v >= t
	}
	labels, comps := ComponentsProb(mask, prob, size, p.Connectivity)
	var lesions []Lesion
	for _, c := range comps {
		vol := float64(c.Voxels) * voxelML
		if vol < p.MinVolumeML {
			continue
		}
		l := Lesion{
			Voxels:      c.Voxels,
			VolumeML:    vol,
			MeanProb:    c.ProbSum / float64(c.Voxels),
			MaxProb:     float64(c.ProbMax),
			CentroidLPS: geom.IndexToLPS(c.Centroid),
			Min:         c.Min,
			Max:         c.Max,
			KeySlice:    c.KeySlice,
			label:       c.Label,
		}
		l.BBoxLPS = boxLPS(geom, c.Min, c.Max)
		lesions = append(lesions, l)
	}
	slices.SortStableFunc(lesions, func(a, b Lesion) int { return b.Voxels - a.Voxels })
	return lesions, labels, nil
}

// boxLPS is the LPS bounding box of the 8 corners of the index box from
// lo-0.5 to hi+0.5.
func boxLPS(g kernels.Geometry, lo, hi [3]int) [2][3]float64 {
	box := [2][3]float64{
		{math.Inf(1), math.Inf(1), math.Inf(1)},
		{math.Inf(-1), math.Inf(-1), math.Inf(-1)},
	}
	for corner := 0; corner < 8; corner++ {
		var p [3]float64
		for a := 0; a < 3; a++ {
			if corner>>a&1 == 0 {
				p[a] = float64(lo[a]) - 0.5
			} else {
				p[a] = float64(hi[a]) + 0.5
			}
		}
		x := g.IndexToLPS(p)
		for r := 0; r < 3; r++ {
			box[0][r] = min(box[0][r], x[r])
			box[1][r] = max(box[1][r], x[r])
		}
	}
	return box
}

// Finding is one finding of a study, as "radtriage triage --json" prints
// it. The location fields describe the finding's whole mask, all its kept
// lesions together, and are absent when no segmentation model covers the
// finding.
type Finding struct {
	Code  string `json:"code"`
	Label string `json:"label"`
	// Probability is the combined score of CombineFinding.
	Probability float64 `json:"probability"`
	Tier        string  `json:"tier"`
	// VolumeML is the total volume of the kept lesions.
	VolumeML float64 `json:"volume_ml"`
	// Lesions is the number of kept lesions.
	Lesions int `json:"lesions"`
	// CentroidLPS is the centre of mass (mm) of all kept lesions.
	CentroidLPS *[3]float64 `json:"centroid_lps,omitempty"`
	// BBoxLPS is the LPS box (minimum, maximum) around the lesions'
	// boxes (Lesion.BBoxLPS).
	BBoxLPS *[2][3]float64 `json:"bbox_lps,omitempty"`
	// KeySlice is the largest lesion's key slice: a D index of the grid
	// the probability map is on.
	KeySlice *int `json:"key_slice,omitempty"`
	// ModelVersions name the models that contributed ("ich-seg@0.1.0").
	ModelVersions []string `json:"model_versions"`
	// Explanation says in a sentence why the finding is (or is not)
	// positive: each model's score against its threshold and the rule.
	Explanation string `json:"explanation"`
}

// Evidence is what the ensemble says about one finding code: at least one
// of a segmentation model (HasSeg) and a classifier (HasCls).
type Evidence struct {
	Code, Label, Tier string
	// HasSeg: SegScore is the study-level segmentation score, the
	// maximum of the ensemble-averaged probability map (after the
	// test-time flips), and Lesions are that map's kept lesions
	// (Findings with the card's threshold and minimum volume).
	HasSeg   bool
	SegScore float64
	// SegThreshold is the segmentation models' (mean) voxel threshold,
	// in (0, 1); 0 means 0.5.
	SegThreshold float64
	Lesions      []Lesion
	// HasCls: ClsScore is the classifier's probability p_cls and
	// ClsThreshold the card's threshold for it, in (0, 1).
	HasCls       bool
	ClsScore     float64
	ClsThreshold float64
	// ModelVersions are copied to the Finding.
	ModelVersions []string
}

// CombineFinding applies the ensemble rule to one finding code.
//
// The score is the mean of the scores of the models that cover the code:
// (SegScore + ClsScore)/2 with both, the one score with one. It is
// reported as the finding's probability whether or not the finding is
// positive (the study's "scores").
//
// With a segmentation model, the finding is positive when the
// segmentation has at least one lesion of at least the minimum volume
// (so that every reported finding has a volume and a place) and the score
// reaches the mean of the covering models' thresholds (SegThreshold and
// ClsThreshold; 0.5 and 0.5 in the default ensemble). The two weigh each
// other: a confident segmentation (peak 0.98) needs little support from
// the classifier (0.02), a marginal one (peak 0.6) needs it to agree
// (0.4 or more). A code only a classifier covers is positive when p_cls
// >= ClsThreshold, and has no location.
//
// The score is a plain average, not a calibrated probability: the two
// models' scores measure different things (the most confident voxel, the
// whole study).
func CombineFinding(e Evidence) (f Finding, positive bool, err error) {
	if !e.HasSeg && !e.HasCls {
		return f, false, fmt.Errorf("%w: finding %q has neither a segmentation nor a classifier score", ErrPostSpec, e.Code)
	}
	unit := func(name string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%w: finding %q: %s %v is not a probability in [0, 1]", ErrPostSpec, e.Code, name, v)
		}
		return nil
	}
	f = Finding{Code: e.Code, Label: e.Label, Tier: e.Tier, ModelVersions: append([]string{}, e.ModelVersions...)}
	positive = true
	var sum float64
	var n int
	if e.HasSeg {
		if err := unit("segmentation score", e.SegScore); err != nil {
			return Finding{}, false, err
		}
		sum += e.SegScore
		n++
		positive = len(e.Lesions) > 0
		if len(e.Lesions) > 0 {
			var c [3]float64
			box := e.Lesions[0].BBoxLPS
			largest, voxels := 0, 0
			for i, l := range e.Lesions {
				if l.Voxels <= 0 {
					return Finding{}, false, fmt.Errorf("%w: finding %q: lesion %d has %d voxels", ErrPostSpec, e.Code, i, l.Voxels)
				}
				f.VolumeML += l.VolumeML
				voxels += l.Voxels
				for r := 0; r < 3; r++ {
					c[r] += float64(l.Voxels) * l.CentroidLPS[r]
					box[0][r] = min(box[0][r], l.BBoxLPS[0][r])
					box[1][r] = max(box[1][r], l.BBoxLPS[1][r])
				}
				if l.Voxels > e.Lesions[largest].Voxels {
					largest = i
				}
			}
			for r := 0; r < 3; r++ {
				c[r] /= float64(voxels)
			}
			k := e.Lesions[largest].KeySlice
			f.Lesions, f.CentroidLPS, f.BBoxLPS, f.KeySlice = len(e.Lesions), &c, &box, &k
		}
	}
	if e.HasCls {
		if err := unit("classifier score", e.ClsScore); err != nil {
			return Finding{}, false, err
		}
		if !(e.ClsThreshold > 0 && e.ClsThreshold < 1) {
			return Finding{}, false, fmt.Errorf("%w: finding %q: classifier threshold %v is not in (0, 1)", ErrPostSpec, e.Code, e.ClsThreshold)
		}
		sum += e.ClsScore
		n++
		positive = e.ClsScore >= e.ClsThreshold // a classifier alone; with a segmentation, see below
	}
	f.Probability = sum / float64(n)
	if e.HasSeg {
		thr := e.SegThreshold
		if thr == 0 {
			thr = 0.5
		}
		if !(thr > 0 && thr < 1) {
			return Finding{}, false, fmt.Errorf("%w: finding %q: segmentation threshold %v is not in (0, 1)", ErrPostSpec, e.Code, e.SegThreshold)
		}
		if e.HasCls {
			thr = (thr + e.ClsThreshold) / 2
		}
		positive = len(e.Lesions) > 0 && f.Probability >= thr
	}
	f.Explanation = explain(e, positive)
	return f, positive, nil
}

// explain is CombineFinding's sentence.
func explain(e Evidence, positive bool) string {
	var parts []string
	if e.HasSeg {
		if len(e.Lesions) > 0 {
			var ml float64
			for _, l := range e.Lesions {
				ml += l.VolumeML
			}
			parts = append(parts, fmt.Sprintf("segmentation found %d lesion(s), %.1f mL in all (peak probability %.2f)", len(e.Lesions), ml, e.SegScore))
		} else {
			parts = append(parts, fmt.Sprintf("segmentation found no lesion above threshold and minimum size (peak probability %.2f)", e.SegScore))
		}
	}
	if e.HasCls {
		cmp := "below"
		if e.ClsScore >= e.ClsThreshold {
			cmp = "at or above"
		}
		parts = append(parts, fmt.Sprintf("classifier %.2f, %s its threshold %.2f", e.ClsScore, cmp, e.ClsThreshold))
	}
	verdict := "not reported"
	if positive {
		verdict = "reported"
	}
	switch {
	case e.HasSeg && e.HasCls:
		st := e.SegThreshold
		if st == 0 {
			st = 0.5
		}
		verdict += fmt.Sprintf(": the rule wants a lesion and a mean score (%.2f) of at least the mean threshold (%.2f)", (e.SegScore+e.ClsScore)/2, (st+e.ClsThreshold)/2)
	case e.HasSeg:
		verdict += ": the rule wants a lesion"
	default:
		verdict += ": the rule wants the classifier at or above its threshold"
	}
	return strings.Join(parts, "; ") + "; " + verdict
}
