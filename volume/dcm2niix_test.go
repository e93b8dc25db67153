package volume

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

// These tests hold Assemble to the claims of its doc comments against
// dcm2niix itself: shear correction of a gantry tilt as dcm2niix's
// `_Tilt_1` output, and resampling of irregular spacing as its `_Eq_`
// output. The series are made from ct-head-5mm (28 axial Philips CT
// slices 5 mm apart, 512×512 of 0.451 mm) in a temporary folder with
// dcmodify, and converted there by dcm2niix.

// ctHeadSlices are the files of ct-head-5mm in slice order (the Instance
// Number is the file name's number over 10; z = 696.21 + 5·(n−1)).
func ctHeadSlices() []string {
	var names []string
	for n := 1; n <= 28; n++ {
		names = append(names, fmt.Sprintf("I%d", 10*n))
	}
	return names
}

// copySlices copies the named files of ct-head-5mm into a new temporary
// folder and returns it.
func copySlices(t *testing.T, names []string) string {
	t.Helper()
	src := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runDcm2niix converts the folder in with dcm2niix (uncompressed, no
// sidecar, base name x) and returns the names it wrote in a new folder.
func runDcm2niix(t *testing.T, in string) (dir string, names []string) {
	t.Helper()
	bin := testenv.Tool(t, "dcm2niix", "dcm2niix")
	dir = t.TempDir()
	out, err := exec.Command(bin, "-z", "n", "-b", "n", "-f", "x", "-o", dir, in).CombinedOutput()
	if err != nil {
		t.Fatalf("dcm2niix: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	t.Logf("dcm2niix wrote %v:\n%s", names, out)
	return dir, names
}

// assembleDir loads dir, which must hold one series of one stack, and
// assembles it with the default options.
func assembleDir(t *testing.T, dir string) (*Stack, *Volume) {
	t.Helper()
	col, err := LoadDir(os.DirFS(dir), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := Choose(col)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Assemble(AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st, v
}

// diffStats compares got with want voxel by voxel: the largest and mean
// absolute difference, the voxels equal, and the first voxel beyond tol.
type diffStats struct {
	max, mean  float64
	equal, n   int
	beyond     int
	firstBad   string
	worstVoxel string
}

func compareWithin(got, want *Volume, tol float64) diffStats {
	var s diffStats
	sum := 0.0
	nx, ny := want.Size[0], want.Size[1]
	for i, w := range want.Data {
		g := got.Data[i]
		d := math.Abs(float64(g) - float64(w))
		sum += d
		if d == 0 {
			s.equal++
		}
		if d > s.max {
			s.max = d
			s.worstVoxel = fmt.Sprintf("(i=%d, j=%d, k=%d): %v, dcm2niix %v", i%nx, i/nx%ny, i/(nx*ny), g, w)
		}
		if !(d <= tol) {
			if s.beyond == 0 {
				s.firstBad = fmt.Sprintf("(i=%d, j=%d, k=%d): %v, dcm2niix %v", i%nx, i/nx%ny, i/(nx*ny), g, w)
			}
			s.beyond++
		}
	}
	s.n = len(want.Data)
	s.mean = sum / float64(max(s.n, 1))
	return s
}

// matchDcm2niix writes v as NIfTI, reads it back, aligns it to dcm2niix's
// file ref (affine to affTol mm) and checks every voxel within tol HU.
// fix, when not nil, corrects dcm2niix's sform first (a known error of
// dcm2niix's geometry).
func matchDcm2niix(t *testing.T, v *Volume, ref string, affTol, tol float64, fix func(*NIfTIHeader)) diffStats {
	t.Helper()
	want, wantH := readNIfTIFile(t, ref)
	if fix != nil {
		fix(wantH)
	}
	got, gotH := niftiRoundTrip(t, v)
	mapped, order, err := alignToReference(got, gotH, want, wantH, affTol)
	if err != nil {
		t.Fatalf("against %s: %v\n our size %v, dcm2niix %v", filepath.Base(ref), err, got.Size, want.Size)
	}
	if order != "" {
		t.Logf("storage order differs from dcm2niix's: %s", order)
	}
	s := compareWithin(mapped, want, tol)
	t.Logf("%s: size %v; |ours − dcm2niix| max %.4g HU at %s, mean %.4g HU; %d of %d voxels equal",
		filepath.Base(ref), want.Size, s.max, s.worstVoxel, s.mean, s.equal, s.n)
	if s.beyond > 0 {
		t.Errorf("%d of %d voxels differ from dcm2niix by more than %g HU; first at %s", s.beyond, s.n, tol, s.firstBad)
	}
	return s
}

// TestDcm2niixTilt: ct-head-5mm made into a gantry-tilted series (each
// slice displaced along its column direction by −Δz·tan θ, Gantry/Detector
// Tilt θ: the convention under which dcm2niix's estimate from the slice
// positions agrees with the tag for this Philips series) assembles to
// dcm2niix's `_Tilt_1` volume: same size, affine within 1e-3 mm, voxels
// within rounding (see tiltTolerance).
func TestDcm2niixTilt(t *testing.T) {
	dcmodify := testenv.Tool(t, "dcmodify", "dcmtk")
	testenv.Tool(t, "dcm2niix", "dcm2niix")
	for _, deg := range []float64{15, -15} {
		t.Run(strconv.FormatFloat(deg, 'g', -1, 64)+"deg", func(t *testing.T) {
			names := ctHeadSlices()
			in := copySlices(t, names)
			tan := math.Tan(deg * math.Pi / 180)
			for n, name := range names {
				z := 696.21 + 5*float64(n)
				y := -1.85 - 5*float64(n)*tan
				pos := fmt.Sprintf("(0020,0032)=-115.5\\%s\\%s",
					strconv.FormatFloat(y, 'f', 8, 64), strconv.FormatFloat(z, 'f', 2, 64))
				tilt := "(0018,1120)=" + strconv.FormatFloat(deg, 'g', -1, 64)
				if out, err := exec.Command(dcmodify, "-nb", "-m", pos, "-m", tilt, filepath.Join(in, name)).CombinedOutput(); err != nil {
					t.Fatalf("dcmodify %s: %v\n%s", name, err, out)
				}
			}
			out, files := runDcm2niix(t, in)
			if !slices.Contains(files, "x_Tilt_1.nii") {
				t.Fatalf("dcm2niix wrote %v, no x_Tilt_1.nii", files)
			}
			st, v := assembleDir(t, in)
			if !st.Tilted || math.Abs(st.TiltDegrees-math.Abs(deg)) > 1e-3 {
				t.Fatalf("tilted %v, %v°; want %v°", st.Tilted, st.TiltDegrees, math.Abs(deg))
			}
			var fix func(*NIfTIHeader)
			if deg < 0 {
				// The slices are displaced along +column (+y) with z here.
				// dcm2niix then aligns its rows with the last slice but
				// keeps the first slice's origin in the sform: its grid is
				// frac = ceil(d) − d pixels (d the last slice's
				// displacement) away from where its sform puts it. Its
				// voxels are right (they match ours, placed right, in
				// storage order); its sform is moved by frac rows along
				// +y (−y in RAS) before the comparison.
				d := 135 * math.Abs(tan) / v.Spacing[1]
				frac := (math.Ceil(d) - d) * v.Spacing[1]
				fix = func(h *NIfTIHeader) {
					t.Logf("dcm2niix's sform origin corrected by %.4f mm along LPS +y (its error for this tilt direction)", frac)
					h.SRow[1][3] = float32(float64(h.SRow[1][3]) + frac)
				}
			}
			matchDcm2niix(t, v, filepath.Join(out, "x_Tilt_1.nii"), 1e-3, tiltTolerance, fix)
		})
	}
}

// tiltTolerance bounds |ours − dcm2niix| for the shear correction.
// dcm2niix interpolates the stored integers linearly between two rows and
// rounds to an integer: 0.5 HU at slope 1. Its displacements come from the
// tag's angle and float32 slice distances, ours from the positions in
// float64; the two interpolation weights differ by less than 1e-5, which
// at the steepest edges of the head (about 3000 HU between neighbouring
// rows) is under 0.03 HU.
const tiltTolerance = 0.5 + 0.03

// TestDcm2niixEq: ct-head-5mm with slices dropped (irregular spacing)
// assembles to dcm2niix's `_Eq_` volume: same grid (slice count, first
// slice, step), affine within 1e-3 mm, and voxels equal where a grid
// point is an original slice, within dcm2niix's rounding to an integer
// (0.5 HU) where it interpolates.
func TestDcm2niixEq(t *testing.T) {
	dcmodify := testenv.Tool(t, "dcmodify", "dcmtk")
	testenv.Tool(t, "dcm2niix", "dcm2niix")
	for _, c := range []struct {
		name string
		drop []string
		move map[string]float64 // new z of some slices
	}{
		// 5 mm with a 10 and a 15 mm gap; the last gap 5 mm: 27 slices.
		{"gaps", []string{"I50", "I160", "I170"}, nil},
		// The last gap 10 mm: dcm2niix ends the grid 10 mm short.
		{"last-gap", []string{"I50", "I270"}, nil},
		// 10 mm gaps with one of 5 mm: a 5 mm grid.
		{"mostly-10mm", []string{"I20", "I40", "I60", "I80", "I100", "I130", "I150", "I170", "I190", "I210", "I230", "I250", "I270"}, nil},
		// Slices at 0, 1, 10, 15 and 135 mm: a 1 mm step would make 75
		// slices, more than twice 5, so 10 slices 15 mm apart.
		{"capped", slices.DeleteFunc(ctHeadSlices(), func(n string) bool {
			return slices.Contains([]string{"I10", "I20", "I30", "I40", "I280"}, n)
		}), map[string]float64{"I20": 697.21}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var names []string
			for _, n := range ctHeadSlices() {
				if !slices.Contains(c.drop, n) {
					names = append(names, n)
				}
			}
			in := copySlices(t, names)
			for name, z := range c.move {
				pos := "(0020,0032)=-115.5\\-1.85\\" + strconv.FormatFloat(z, 'f', 2, 64)
				if out, err := exec.Command(dcmodify, "-nb", "-m", pos, filepath.Join(in, name)).CombinedOutput(); err != nil {
					t.Fatalf("dcmodify %s: %v\n%s", name, err, out)
				}
			}
			out, files := runDcm2niix(t, in)
			var eq string
			for _, f := range files {
				if strings.Contains(f, "_Eq_") {
					eq = f
				}
			}
			if eq == "" {
				t.Fatalf("dcm2niix wrote %v, no _Eq_ volume", files)
			}
			st, v := assembleDir(t, in)
			if !st.Irregular {
				t.Fatalf("stack not irregular (warnings %v)", st.Warnings)
			}
			matchDcm2niix(t, v, filepath.Join(out, eq), 1e-3, 0.5+1e-3, nil)
		})
	}
}
