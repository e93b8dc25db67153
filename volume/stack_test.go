package volume

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
)

// synth describes a synthetic series: every slice 8×6 pixels of 0.5×0.75 mm
// (rows 6, columns 8) unless changed.
type synth struct {
	in         *dicomio.Instance
	rows, cols int
	ps         [2]float64
	iop        [6]float64
}

func newSynth(modality string) *synth {
	return &synth{
		in:   &dicomio.Instance{SeriesInstanceUID: "1.2.3", StudyInstanceUID: "1.2", Modality: modality, SeriesNumber: 7},
		rows: 6, cols: 8,
		ps:  [2]float64{0.75, 0.5},
		iop: [6]float64{1, 0, 0, 0, 1, 0},
	}
}

// slice makes one slice at pos whose stored value at (i, j) is f(i, j).
func (s *synth) slice(name string, pos [3]float64, f func(i, j int) int32) *slice {
	vals := make([]int32, s.rows*s.cols)
	for j := range s.rows {
		for i := range s.cols {
			vals[j*s.cols+i] = f(i, j)
		}
	}
	return &slice{
		name: name, in: s.in, src: memSource(vals), geomOK: true,
		rows: s.rows, cols: s.cols, pos: pos, iop: s.iop, ps: s.ps, thickness: 1,
		slope: 1, bits: 16, signed: true,
	}
}

// constant returns a pixel function of one value.
func constant(v int32) func(i, j int) int32 { return func(int, int) int32 { return v } }

func codes(ws []Warning) map[WarningCode]int {
	m := map[WarningCode]int{}
	for _, w := range ws {
		m[w.Code]++
	}
	return m
}

// oneStack builds the series and returns its only stack.
func oneStack(t *testing.T, ss []*slice) (*Series, *Stack) {
	t.Helper()
	ser := buildSeries(ss)
	if len(ser.Stacks) != 1 {
		t.Fatalf("got %d stacks, want 1 (series warnings %v)", len(ser.Stacks), ser.Warnings)
	}
	return ser, ser.Stacks[0]
}

func assemble(t *testing.T, st *Stack, opts AssembleOptions) *Volume {
	t.Helper()
	v, err := st.Assemble(opts)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	if got, want := len(v.Values()), v.Size[0]*v.Size[1]*v.Size[2]*v.Size[3]; got != want {
		t.Fatalf("len(Data) = %d, want %d for size %v", got, want, v.Size)
	}
	return v
}

// sliceValue is the value of voxel (0, 0, k, t).
func sliceValue(v *Volume, k, t int) float32 { return v.Values()[v.Voxels()*t+k*v.Size[0]*v.Size[1]] }

func TestOrderByPositionNotName(t *testing.T) {
	for _, tc := range []struct {
		name string
		iop  [6]float64
		// want z of slice k (increasing along the normal)
		ascending bool
	}{
		{"normal +z", [6]float64{1, 0, 0, 0, 1, 0}, true},
		{"normal -z", [6]float64{1, 0, 0, 0, -1, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sy := newSynth("CT")
			sy.iop = tc.iop
			var ss []*slice
			for k := range 10 {
				z := 100 + 2.5*float64(k)
				// Names and instance order deliberately disagree with position.
				ss = append(ss, sy.slice(fmt.Sprintf("I%d", 9-k), [3]float64{-10, -20, z}, constant(int32(k))))
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
			_, st := oneStack(t, ss)
			if len(st.Warnings) != 0 {
				t.Errorf("warnings %v on a regular stack", st.Warnings)
			}
			v := assemble(t, st, AssembleOptions{})
			if v.Size != [4]int{8, 6, 10, 1} || v.Spacing != [3]float64{0.5, 0.75, 2.5} {
				t.Fatalf("size %v spacing %v", v.Size, v.Spacing)
			}
			for k := range 10 {
				want := float32(k)
				if !tc.ascending {
					want = float32(9 - k)
				}
				if got := sliceValue(v, k, 0); got != want {
					t.Errorf("slice %d holds %v, want %v", k, got, want)
				}
			}
			wantZ := 100.0
			if !tc.ascending {
				wantZ = 100 + 2.5*9
			}
			if v.Origin != [3]float64{-10, -20, wantZ} {
				t.Errorf("origin %v, want z %v", v.Origin, wantZ)
			}
			// The affine maps the last voxel to the last slice's corner.
			a := v.Affine()
			lastZ := a[2][2]*9 + a[2][3]
			if want := 100 + 2.5*9 - wantZ + 100; math.Abs(lastZ-want) > 1e-9 {
				t.Errorf("affine puts slice 9 at z %v, want %v", lastZ, want)
			}
			if v.Slope != 1 || v.Intercept != 0 || !v.StoredSigned || v.StoredBits != 16 {
				t.Errorf("slope %v intercept %v signed %v bits %v", v.Slope, v.Intercept, v.StoredSigned, v.StoredBits)
			}
		})
	}
}

func TestGapWarnsAndResamples(t *testing.T) {
	sy := newSynth("CT")
	var ss []*slice
	for k := range 8 {
		if k == 4 {
			continue // missing slice
		}
		ss = append(ss, sy.slice(fmt.Sprintf("I%d", k), [3]float64{0, 0, 5 * float64(k)}, constant(int32(10*k))))
	}
	_, st := oneStack(t, ss)
	c := codes(st.Warnings)
	if c[WarnGap] != 1 || len(st.Warnings) != 1 {
		t.Fatalf("warnings %v, want one gap", st.Warnings)
	}
	if msg := st.Warnings[0].Message; !strings.Contains(msg, "I3") || !strings.Contains(msg, "I5") {
		t.Errorf("gap warning %q does not name the slices around the gap", msg)
	}
	if !st.Irregular || st.SliceSpacing != 5 {
		t.Errorf("irregular %v spacing %v", st.Irregular, st.SliceSpacing)
	}
	v := assemble(t, st, AssembleOptions{})
	// As dcm2niix's _Eq_: ceil((35 − 5/2)/5) = 7 slices 0, 5, …, 30.
	if v.Size[2] != 7 || v.Spacing[2] != 5 {
		t.Fatalf("resampled to %d slices of %v mm, want 7 of 5", v.Size[2], v.Spacing[2])
	}
	for k := range 7 {
		if got := sliceValue(v, k, 0); got != float32(10*k) {
			t.Errorf("slice %d = %v, want %v (linear between neighbours)", k, got, 10*k)
		}
	}
	if len(v.Notes) == 0 || v.Slope != 0 {
		t.Errorf("notes %q slope %v: a resampled volume needs a note and no stored-integer rescale", v.Notes, v.Slope)
	}
}

func TestVariableSpacingEqualized(t *testing.T) {
	sy := newSynth("MR")
	zs := []float64{0, 2, 4, 7, 9, 11}
	var ss []*slice
	for i, z := range zs {
		ss = append(ss, sy.slice(fmt.Sprintf("S%d", i), [3]float64{0, 0, z}, constant(int32(10*z))))
	}
	_, st := oneStack(t, ss)
	if c := codes(st.Warnings); c[WarnIrregularSpacing] != 1 {
		t.Fatalf("warnings %v, want one irregular spacing", st.Warnings)
	}
	v := assemble(t, st, AssembleOptions{})
	// As dcm2niix's _Eq_: ceil((11 − 2/2)/2) = 5 slices 0, 2, …, 8.
	if v.Size[2] != 5 || v.Spacing[2] != 2 {
		t.Fatalf("size %v spacing %v", v.Size, v.Spacing)
	}
	for k := range 5 {
		if got, want := sliceValue(v, k, 0), float32(20*k); math.Abs(float64(got-want)) > 1e-4 {
			t.Errorf("slice %d = %v, want %v", k, got, want)
		}
	}
}

func TestDuplicateDroppedConflictRefused(t *testing.T) {
	sy := newSynth("CT")
	mk := func(extra *slice) []*slice {
		var ss []*slice
		for k := range 5 {
			ss = append(ss, sy.slice(fmt.Sprintf("I%d", k), [3]float64{0, 0, float64(k)}, constant(int32(k))))
		}
		return append(ss, extra)
	}
	t.Run("duplicate", func(t *testing.T) {
		_, st := oneStack(t, mk(sy.slice("copy-of-I2", [3]float64{0, 0, 2}, constant(2))))
		if c := codes(st.Warnings); c[WarnDuplicate] != 1 || len(st.Warnings) != 1 {
			t.Fatalf("warnings %v, want one duplicate", st.Warnings)
		}
		if !strings.Contains(st.Warnings[0].Message, "copy-of-I2") {
			t.Errorf("duplicate warning %q does not name the slice", st.Warnings[0].Message)
		}
		v := assemble(t, st, AssembleOptions{})
		if v.Size[2] != 5 || len(v.Notes) != 1 {
			t.Errorf("size %v notes %q", v.Size, v.Notes)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		_, st := oneStack(t, mk(sy.slice("other-at-2", [3]float64{0, 0, 2.001}, constant(99))))
		if c := codes(st.Warnings); c[WarnConflictingSlices] != 1 {
			t.Fatalf("warnings %v, want a conflict", st.Warnings)
		}
		_, err := st.Assemble(AssembleOptions{})
		if !errors.Is(err, ErrConflictingSlices) || !strings.Contains(err.Error(), "other-at-2") {
			t.Fatalf("Assemble error %v, want ErrConflictingSlices naming the slice", err)
		}
	})
}

func TestFourD(t *testing.T) {
	sy := newSynth("MR")
	var ss []*slice
	for _, acq := range []int{3, 1, 2} {
		for k := range 4 {
			s := sy.slice(fmt.Sprintf("a%d-%d", acq, k), [3]float64{0, 0, 3 * float64(k)}, constant(int32(100*acq+k)))
			s.time = timeKey{acq, 0, 0}
			ss = append(ss, s)
		}
	}
	_, st := oneStack(t, ss)
	if st.Volumes != 3 || st.Slices != 4 || len(st.Warnings) != 0 {
		t.Fatalf("volumes %d slices %d warnings %v", st.Volumes, st.Slices, st.Warnings)
	}
	v := assemble(t, st, AssembleOptions{})
	if v.Size != [4]int{8, 6, 4, 3} {
		t.Fatalf("size %v", v.Size)
	}
	for tp := range 3 {
		for k := range 4 {
			if got, want := sliceValue(v, k, tp), float32(100*(tp+1)+k); got != want {
				t.Errorf("(k %d, t %d) = %v, want %v", k, tp, got, want)
			}
		}
	}
}

func TestStackIDsSplit(t *testing.T) {
	sy := newSynth("MR")
	var ss []*slice
	for k := range 6 {
		s := sy.slice(fmt.Sprintf("f%d", k), [3]float64{0, 0, float64(k)}, constant(1))
		s.stackID = fmt.Sprint(1 + k%2)
		ss = append(ss, s)
	}
	ser := buildSeries(ss)
	if len(ser.Stacks) != 2 || ser.Stacks[0].Slices != 3 || !strings.HasSuffix(ser.Stacks[1].Label, "stack 2") {
		t.Fatalf("%d stacks", len(ser.Stacks))
	}
}

func TestAcquisitionNumberPerSliceIs3D(t *testing.T) {
	sy := newSynth("CT")
	var ss []*slice
	for k := range 8 {
		s := sy.slice(fmt.Sprintf("I%d", k), [3]float64{0, 0, float64(k)}, constant(int32(k)))
		s.time = timeKey{k / 2, 0, 0} // one acquisition per two slices
		ss = append(ss, s)
	}
	_, st := oneStack(t, ss)
	if st.Slices != 8 || st.Volumes != 1 || len(st.Warnings) != 0 {
		t.Fatalf("slices %d volumes %d warnings %v", st.Slices, st.Volumes, st.Warnings)
	}
}

func TestAcquisitionsCoveringDifferentPositionsSplit(t *testing.T) {
	sy := newSynth("CT")
	var ss []*slice
	for k := range 6 {
		s := sy.slice(fmt.Sprintf("a1-%d", k), [3]float64{0, 0, float64(k)}, constant(1))
		s.time = timeKey{1, 0, 0}
		ss = append(ss, s)
	}
	for k := 4; k < 12; k++ {
		s := sy.slice(fmt.Sprintf("a2-%d", k), [3]float64{0, 0, float64(k)}, constant(2))
		s.time = timeKey{2, 0, 0}
		ss = append(ss, s)
	}
	ser := buildSeries(ss)
	if len(ser.Stacks) != 2 || ser.Stacks[0].Slices != 8 || ser.Stacks[1].Slices != 6 {
		t.Fatalf("stacks %+v", ser.Stacks)
	}
}

func TestMixedSizeAndOrientationSplit(t *testing.T) {
	sy := newSynth("CT")
	var ss []*slice
	for k := range 6 {
		ss = append(ss, sy.slice(fmt.Sprintf("ax%d", k), [3]float64{0, 0, float64(k)}, constant(1)))
	}
	big := newSynth("CT")
	big.in = sy.in
	big.rows, big.cols = 12, 16
	ss = append(ss, big.slice("odd-size", [3]float64{0, 0, 2.5}, constant(1)))
	sag := newSynth("CT")
	sag.in = sy.in
	sag.iop = [6]float64{0, 1, 0, 0, 0, -1}
	for k := range 3 {
		ss = append(ss, sag.slice(fmt.Sprintf("sag%d", k), [3]float64{float64(k), 0, 0}, constant(1)))
	}
	ser := buildSeries(ss)
	c := codes(ser.Warnings)
	if c[WarnMixedSize] != 1 || c[WarnMixedOrientation] != 1 {
		t.Fatalf("series warnings %v", ser.Warnings)
	}
	if len(ser.Stacks) != 3 || ser.Stacks[0].Slices != 6 {
		t.Fatalf("%d stacks, first of %d slices", len(ser.Stacks), ser.Stacks[0].Slices)
	}
	main := codes(ser.Stacks[0].Warnings)
	if main[WarnMixedSize] != 1 || main[WarnMixedOrientation] != 1 {
		t.Errorf("the main stack does not carry the split warnings: %v", ser.Stacks[0].Warnings)
	}
	for _, w := range ser.Warnings {
		if w.Code == WarnMixedSize && !strings.Contains(w.Message, "odd-size") {
			t.Errorf("mixed-size warning %q does not name the slice", w.Message)
		}
	}
	if ser.Stacks[0].Slices*ser.Stacks[0].Volumes != 6 {
		t.Errorf("main stack %d slices", ser.Stacks[0].Slices)
	}
}

func TestGantryTilt(t *testing.T) {
	// A CT tilted by 15° about the patient x axis: the column direction
	// leans, the table (positions) moves along z.
	theta := 15 * math.Pi / 180
	sy := newSynth("CT")
	sy.rows, sy.cols = 40, 8
	sy.ps = [2]float64{1, 1}
	sy.iop = [6]float64{1, 0, 0, 0, math.Cos(theta), -math.Sin(theta)}
	c := [3]float64{0, math.Cos(theta), -math.Sin(theta)}
	var ss []*slice
	const nk = 5
	for k := range nk {
		p := [3]float64{0, -20, 4 * float64(k)}
		// The stored value is 10× the world y of the pixel: a linear
		// field, which bilinear interpolation reproduces exactly.
		ss = append(ss, sy.slice(fmt.Sprintf("T%d", k), p, func(i, j int) int32 {
			return int32(math.Round(10 * (p[1] + float64(j)*c[1])))
		}))
		ss[k].slope = 0.1
		ss[k].in = &dicomio.Instance{Modality: "CT", SeriesInstanceUID: "1.2.3"}
		ss[k].in.GantryDetectorTilt = 15
	}
	_, st := oneStack(t, ss)
	if !st.Tilted || math.Abs(st.TiltDegrees-15) > 1e-6 || codes(st.Warnings)[WarnGantryTilt] != 1 {
		t.Fatalf("tilted %v %v° warnings %v", st.Tilted, st.TiltDegrees, st.Warnings)
	}
	t.Run("shear corrected", func(t *testing.T) {
		v := assemble(t, st, AssembleOptions{})
		n := v.Axes[2]
		if math.Abs(dot(n, cross(v.Axes[0], v.Axes[1]))-1) > 1e-12 {
			t.Fatalf("axes %v not orthogonal", v.Axes)
		}
		if want := 4 * math.Cos(theta); math.Abs(v.Spacing[2]-want) > 1e-9 {
			t.Errorf("slice spacing %v, want %v", v.Spacing[2], want)
		}
		// The grid is widened to hold every slice: 4·4·sin θ = 4.14
		// pixels, 5 rows.
		if v.Size[0] != 8 || v.Size[1] != 45 {
			t.Errorf("size %v, want 8×45 (40 rows and 5 for the shear)", v.Size)
		}
		fill := slices.Min(v.Values())
		aff := v.Affine()
		checked := 0
		for k := range nk {
			for j := range v.Size[1] {
				val := v.Values()[k*v.Size[0]*v.Size[1]+j*v.Size[0]+3]
				if val == fill {
					continue // shifted in from outside the slice: the smallest value
				}
				y := aff[1][0]*3 + aff[1][1]*float64(j) + aff[1][2]*float64(k) + aff[1][3]
				if math.Abs(float64(val)-y) > 0.06 {
					t.Fatalf("voxel (3, %d, %d) = %v, want world y %v", j, k, val, y)
				}
				checked++
			}
		}
		if checked < nk*v.Size[1]/2 || len(v.Notes) == 0 || v.Slope != 0 {
			t.Errorf("checked %d voxels, notes %q, slope %v", checked, v.Notes, v.Slope)
		}
	})
	t.Run("sheared affine", func(t *testing.T) {
		v := assemble(t, st, AssembleOptions{TiltAffine: true})
		if v.Axes[2] != [3]float64{0, 0, 1} || math.Abs(v.Spacing[2]-4) > 1e-12 {
			t.Fatalf("axis %v spacing %v, want the table direction, 4 mm", v.Axes[2], v.Spacing[2])
		}
		aff := v.Affine()
		for k := range nk {
			for j := range v.Size[1] {
				val := v.Values()[k*v.Size[0]*v.Size[1]+j*v.Size[0]]
				y := aff[1][1]*float64(j) + aff[1][2]*float64(k) + aff[1][3]
				if math.Abs(float64(val)-y) > 0.06 {
					t.Fatalf("voxel (0, %d, %d) = %v, want world y %v", j, k, val, y)
				}
			}
		}
		if v.Slope != 0.1 {
			t.Errorf("slope %v: an unresampled volume keeps the stored integers", v.Slope)
		}
	})
}

func TestRescaleAndPadding(t *testing.T) {
	sy := newSynth("CT")
	var ss []*slice
	for k := range 4 {
		s := sy.slice(fmt.Sprintf("I%d", k), [3]float64{0, 0, float64(k)}, func(i, j int) int32 {
			if i == 0 {
				return -2000
			}
			return 1000
		})
		s.intercept = -1024
		s.padding, s.padLo, s.padHi = true, -2000, -2000
		ss = append(ss, s)
	}
	_, st := oneStack(t, ss)
	v := assemble(t, st, AssembleOptions{})
	if v.Values()[0] != PaddingHU || v.Values()[1] != -24 {
		t.Errorf("padding voxel %v, tissue voxel %v", v.Values()[0], v.Values()[1])
	}
	if v.Slope != 1 || v.Intercept != -1024 {
		t.Errorf("slope %v intercept %v", v.Slope, v.Intercept)
	}
	// Slices of different rescale: per-slice values, no shared slope.
	ss[2].slope, ss[2].intercept = 2, 0
	_, st = oneStack(t, ss)
	v = assemble(t, st, AssembleOptions{})
	if got := v.Values()[2*v.Size[0]*v.Size[1]+1]; got != 2000 {
		t.Errorf("rescaled slice 2 voxel = %v, want 2000", got)
	}
	if v.Slope != 0 || v.StoredBits != 0 {
		t.Errorf("slope %v bits %v for slices of different rescale", v.Slope, v.StoredBits)
	}
}

func TestNoGeometryAndTooFew(t *testing.T) {
	sy := newSynth("CT")
	a := sy.slice("a", [3]float64{0, 0, 0}, constant(1))
	b := sy.slice("b", [3]float64{0, 0, 1}, constant(1))
	lost := sy.slice("lost", [3]float64{}, constant(1))
	lost.geomOK = false
	ser := buildSeries([]*slice{a, b, lost})
	if codes(ser.Warnings)[WarnNoGeometry] != 1 || !strings.Contains(ser.Warnings[0].Message, "lost") {
		t.Errorf("series warnings %v", ser.Warnings)
	}
	if codes(ser.Stacks[0].Warnings)[WarnTooFewSlices] != 1 {
		t.Errorf("stack warnings %v", ser.Stacks[0].Warnings)
	}
}

func TestShiftAgainstNaive(t *testing.T) {
	const cols, rows = 7, 5
	src := make([]float32, cols*rows)
	for i := range src {
		src[i] = float32(i*i%13) + 0.5
	}
	at := func(x, y int) (float64, bool) {
		if x < 0 || y < 0 || x >= cols || y >= rows {
			return 0, false
		}
		return float64(src[y*cols+x]), true
	}
	for _, sh := range [][2]float64{{0, 0}, {1, 0}, {0.25, -0.5}, {-2.75, 1.5}, {3, 3}, {-0.1, 0}} {
		dst := make([]float32, cols*rows)
		shift(dst, src, cols, rows, sh[0], sh[1], -9)
		for j := range rows {
			for i := range cols {
				x, y := float64(i)-sh[0], float64(j)-sh[1]
				x0, y0 := math.Floor(x), math.Floor(y)
				fx, fy := x-x0, y-y0
				want, ok := 0.0, true
				for _, n := range []struct {
					dx, dy int
					w      float64
				}{{0, 0, (1 - fx) * (1 - fy)}, {1, 0, fx * (1 - fy)}, {0, 1, (1 - fx) * fy}, {1, 1, fx * fy}} {
					if n.w == 0 {
						continue
					}
					v, in := at(int(x0)+n.dx, int(y0)+n.dy)
					ok = ok && in
					want += n.w * v
				}
				if !ok {
					want = -9
				}
				if got := dst[j*cols+i]; math.Abs(float64(got)-want) > 1e-4 {
					t.Fatalf("shift %v: (%d, %d) = %v, want %v", sh, i, j, got, want)
				}
			}
		}
	}
}

// FuzzBuildSeries feeds arbitrary geometry (positions, orientations, sizes,
// time keys, pixel values) through stack building and assembly: any
// outcome but a panic, an endless loop or an inconsistent volume is fine.
func FuzzBuildSeries(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 0, 20, 0, 0, 30, 0, 0, 40}, uint8(0), false)
	f.Add([]byte{0, 0, 10, 0, 0, 10, 5, 0, 30, 0, 0, 41, 1, 2, 3}, uint8(3), true)
	f.Add([]byte{255, 0, 0, 0, 255, 0, 0, 0, 0, 9, 9, 9}, uint8(7), false)
	f.Fuzz(func(t *testing.T, b []byte, mode uint8, tiltAffine bool) {
		if len(b) > 300 {
			return
		}
		sy := newSynth("CT")
		sy.rows, sy.cols = 3, 4
		var ss []*slice
		for i := 0; i+3 <= len(b); i += 3 {
			pos := [3]float64{float64(int8(b[i])) / 4, float64(int8(b[i+1])) / 8, float64(int8(b[i+2]))}
			s := sy.slice(fmt.Sprintf("f%d", i/3), pos, constant(int32(b[i]%3)))
			switch mode % 4 {
			case 1:
				s.iop = [6]float64{1, 0, 0, 0, float64(b[i+1]%2) * 0.5, 1}
			case 2:
				s.rows = 1 + int(b[i]%2)
				s.src = memSource(make([]int32, s.rows*s.cols))
			case 3:
				s.time = timeKey{int(b[i+1] % 3), 0, 0}
			}
			if mode&4 != 0 {
				s.padding, s.padLo, s.padHi = true, 1, 1
			}
			s.geomOK = setGeometry(s, s.pos[:], s.iop[:], s.ps[:]) == nil
			ss = append(ss, s)
		}
		ser := buildSeries(ss)
		for _, st := range ser.Stacks {
			v, err := st.Assemble(AssembleOptions{TiltAffine: tiltAffine})
			if err != nil {
				continue
			}
			if len(v.Values()) != v.Size[0]*v.Size[1]*v.Size[2]*v.Size[3] || v.Size[2] < 1 || v.Spacing[2] <= 0 {
				t.Fatalf("inconsistent volume: size %v, %d values, spacing %v", v.Size, len(v.Values()), v.Spacing)
			}
		}
		_, _, _ = Choose(&Collection{Series: []*Series{ser}})
	})
}

// TestShiftIntoAgainstNaive checks shiftInto into a larger destination,
// with dcm2niix's row-0 rule (a source row between −1 and 0 reads row 0),
// against the naive per-pixel formula.
func TestShiftIntoAgainstNaive(t *testing.T) {
	const cols, rows, dcols, drows = 6, 5, 8, 9
	src := make([]float32, cols*rows)
	for i := range src {
		src[i] = float32(i*i%11) - 3.25
	}
	for _, sh := range [][2]float64{{0, 0}, {0, 3.4}, {1.5, 0.6}, {-0.25, 4}, {2, -0.5}} {
		dst := make([]float32, dcols*drows)
		shiftInto(dst, dcols, drows, src, cols, rows, sh[0], sh[1], 99, true)
		for j := range drows {
			for i := range dcols {
				x, y := float64(i)-sh[0], float64(j)-sh[1]
				if y > -1 && y < 0 {
					y = 0 // row 0 rule
				}
				x0, y0 := math.Floor(x), math.Floor(y)
				fx, fy := x-x0, y-y0
				want := 99.0
				in := func(x, y float64) bool { return x >= 0 && y >= 0 && x < cols && y < rows }
				if in(x0, y0) && (fx == 0 || in(x0+1, y0)) && (fy == 0 || in(x0, y0+1)) {
					at := func(dx, dy int) float64 {
						xi, yi := min(int(x0)+dx, cols-1), min(int(y0)+dy, rows-1)
						return float64(src[yi*cols+xi])
					}
					want = (1-fx)*(1-fy)*at(0, 0) + fx*(1-fy)*at(1, 0) + (1-fx)*fy*at(0, 1) + fx*fy*at(1, 1)
				}
				if got := dst[j*dcols+i]; math.Abs(float64(got)-want) > 1e-4 {
					t.Fatalf("shift %v: (%d, %d) = %v, want %v", sh, i, j, got, want)
				}
			}
		}
	}
}
