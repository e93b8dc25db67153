package volume

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

// ctHeadCopies are ct-head-5mm and its lossless re-encodings, with the
// transfer syntax whose decoder each needs from the codec registry (""
// when dicomio decodes it itself).
var ctHeadCopies = []struct {
	dir, syntax, name string
}{
	{"ct-head-5mm", "", "Explicit VR Little Endian"},
	{"ct-head-5mm.deflate", "", "Deflated Explicit VR Little Endian"},
	{"ct-head-5mm.rle", "1.2.840.10008.1.2.5", "RLE Lossless"},
	{"ct-head-5mm.jpll", "1.2.840.10008.1.2.4.70", "JPEG Lossless SV1"},
	{"ct-head-5mm.jlsl", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless (CharLS, build tag charls)"},
	{"ct-head-5mm.j2kr", "1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless (OpenJPEG, build tag openjpeg)"},
}

// requireDecoder skips the test when no decoder for syntax is
// registered, or fails it under RADTRIAGE_REQUIRE_CODECS=1.
func requireDecoder(t *testing.T, syntax, name string) {
	t.Helper()
	if syntax == "" {
		return
	}
	if _, ok := codec.Lookup(syntax); ok {
		return
	}
	msg := fmt.Sprintf("no decoder registered for %s (%s)", name, syntax)
	if os.Getenv("RADTRIAGE_REQUIRE_CODECS") == "1" {
		t.Fatal(msg + ", and RADTRIAGE_REQUIRE_CODECS=1 requires every codec")
	}
	t.Skip("skipping: " + msg)
}

// niftiRoundTrip writes v with WriteNIfTIFile and reads it back with its
// header, as a user of `radtriage volume` would. It writes both .nii and
// .nii.gz (different code paths) and checks that they hold the same
// bytes.
func niftiRoundTrip(t *testing.T, v *Volume) (*Volume, *NIfTIHeader) {
	t.Helper()
	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "v.nii"), filepath.Join(dir, "v.nii.gz")
	for _, name := range []string{plain, gz} {
		if err := WriteNIfTIFile(name, v, NIfTIOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", gz, err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s and %s hold different bytes (%d and %d)", plain, gz, len(a), len(b))
	}
	return readNIfTIFile(t, gz)
}

func readNIfTIFile(t *testing.T, name string) (*Volume, *NIfTIHeader) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, h, err := readNIfTI(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v, h
}

// compareAffines checks our qform and sform against the reference's, to
// tol mm (each matrix entry).
func compareAffines(t *testing.T, got, want *NIfTIHeader, tol float64) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want [4][4]float64
	}{
		{"sform", got.SForm(), want.SForm()},
		{"qform", got.QForm(), want.QForm()},
	} {
		for r := range 3 {
			for c := range 4 {
				if d := math.Abs(f.got[r][c] - f.want[r][c]); !(d <= tol) {
					t.Errorf("%s[%d][%d] = %.6f, dcm2niix %.6f (off by %.3g mm, tolerance %g)\n got  %v\n want %v",
						f.name, r, c, f.got[r][c], f.want[r][c], d, tol, f.got, f.want)
					return
				}
			}
		}
	}
}

// compareVoxels checks the voxels of got against want: exactly when tol
// is zero, else within tol·max(1, |want|). It reports the first bad
// voxel and how many differ.
func compareVoxels(t *testing.T, got, want *Volume, tol float64) {
	t.Helper()
	if got.Size != want.Size {
		t.Fatalf("size %v, dcm2niix %v", got.Size, want.Size)
	}
	got.Values() // from Stored when Assemble kept the stored integers
	bad, first := 0, -1
	for i, w := range want.Data {
		if g := got.Data[i]; g != w && !(tol > 0 && math.Abs(float64(g-w)) <= tol*max(1, math.Abs(float64(w)))) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad > 0 {
		nx, ny, nz := want.Size[0], want.Size[1], want.Size[2]
		i := first
		t.Errorf("%d of %d voxels differ from dcm2niix; first at (i=%d, j=%d, k=%d, t=%d): %v, want %v",
			bad, len(want.Data), i%nx, i/nx%ny, i/(nx*ny)%nz, i/(nx*ny*nz), got.Data[i], want.Data[i])
	}
}

// TestConformanceCTHead: ct-head-5mm and each lossless re-encoding
// assemble, through WriteNIfTI and ReadNIfTI, to exactly the voxels of
// dcm2niix's reference and an affine within 1e-4 mm of it; the header
// fields match dcm2niix's.
func TestConformanceCTHead(t *testing.T) {
	root := testenv.SharedDICOM(t)
	want, wantH := readNIfTIFile(t, filepath.Join(root, "ct-head-5mm.ref", "ct-head-5mm.nii.gz"))
	for _, c := range ctHeadCopies {
		t.Run(c.dir, func(t *testing.T) {
			requireDecoder(t, c.syntax, c.name)
			col, err := LoadDir(os.DirFS(filepath.Join(root, c.dir)), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(col.Series) != 1 || len(col.Series[0].Stacks) != 1 {
				t.Fatalf("want one series of one stack, got %d series (skipped %v)", len(col.Series), col.Skipped)
			}
			// Only the non-image files may be skipped (the Philips DIRFILE,
			// the fixture's LICENSE), and all 28 slices must be used.
			for _, s := range col.Skipped {
				if s.Path != "DIRFILE" && s.Path != "LICENSE" {
					t.Errorf("skipped %s: %s", s.Path, s.Reason)
				}
			}
			if st := col.Series[0].Stacks[0]; st.Slices != 28 || st.Volumes != 1 {
				t.Errorf("stack of %d slices × %d volumes, want 28 × 1", st.Slices, st.Volumes)
			}
			v, err := col.Series[0].Stacks[0].Assemble(AssembleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, gotH := niftiRoundTrip(t, v)
			compareVoxels(t, got, want, 0)
			compareAffines(t, gotH, wantH, 1e-4)
			if c.syntax == "" && c.dir == "ct-head-5mm" {
				compareHeaders(t, gotH, wantH)
			}
		})
	}
}

// compareHeaders checks the header fields radtriage writes as dcm2niix
// does: exactly, or to 1e-4 for floating-point values.
func compareHeaders(t *testing.T, got, want *NIfTIHeader) {
	t.Helper()
	if got.Dim != want.Dim {
		t.Errorf("dim %v, dcm2niix %v", got.Dim, want.Dim)
	}
	if got.Datatype != want.Datatype || got.Bitpix != want.Bitpix {
		t.Errorf("datatype %d bitpix %d, dcm2niix %d %d", got.Datatype, got.Bitpix, want.Datatype, want.Bitpix)
	}
	if got.QformCode != want.QformCode || got.SformCode != want.SformCode {
		t.Errorf("qform_code %d sform_code %d, dcm2niix %d %d", got.QformCode, got.SformCode, want.QformCode, want.SformCode)
	}
	if got.XYZTUnits != want.XYZTUnits || got.VoxOffset != want.VoxOffset || got.Magic != want.Magic {
		t.Errorf("xyzt_units %d vox_offset %v magic %q, dcm2niix %d %v %q", got.XYZTUnits, got.VoxOffset, got.Magic, want.XYZTUnits, want.VoxOffset, want.Magic)
	}
	near := func(name string, g, w []float32) {
		for i := range g {
			if math.Abs(float64(g[i]-w[i])) > 1e-4 {
				t.Errorf("%s %v, dcm2niix %v", name, g, w)
				return
			}
		}
	}
	near("pixdim", got.Pixdim[:], want.Pixdim[:])
	near("scl_slope/scl_inter", []float32{got.SclSlope, got.SclInter}, []float32{want.SclSlope, want.SclInter})
	near("quatern_b/c/d", got.Quatern[:], want.Quatern[:])
	near("qoffset", got.QOffset[:], want.QOffset[:])
	for r := range 3 {
		near(fmt.Sprintf("srow[%d]", r), got.SRow[r][:], want.SRow[r][:])
	}
}

// TestConformanceEnhanced: enhanced multi-frame MR objects with a
// dcm2niix reference in enhanced/Ref assemble to its voxels and affine.
//
// Each reference must match one stack of the series. Philips values are
// floating-point (stored·RS+RI)/(RS·SS) that dcm2niix stores as int16 with
// its own float32 scl_slope, so voxels are compared to within a tenth of
// the reference's quantum plus 1e-5 relative: an off-by-one stored value
// still fails. dcm2niix stores the Philips object with its columns in the
// opposite order (and the affine to match); the comparison is therefore
// made voxel by voxel in space: the map from reference indices to ours,
// inv(A_ours)·A_ref, must be a signed permutation with a whole-voxel
// offset that makes the affines agree to 1e-4 mm, and the voxels it pairs
// must be equal. A storage order that differs from dcm2niix's is logged.
func TestConformanceEnhanced(t *testing.T) {
	root := filepath.Join(testenv.SharedDICOM(t), "enhanced")
	tests := []struct {
		in   string
		refs []string
	}{
		{"In/Philips", []string{"Philips_WIP_B0_NS_801_e1.nii", "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii"}},
		{"In/Siemens/XA10", []string{"Siemens_REST1_w_SMS_PF7-8_6.nii"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			col, err := LoadDir(os.DirFS(filepath.Join(root, tt.in)), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(col.Series) != 1 {
				t.Fatalf("want one series, got %d (skipped %v)", len(col.Series), col.Skipped)
			}
			// Assemble every stack once; each reference must match one.
			type assembled struct {
				label string
				v     *Volume
				h     *NIfTIHeader
				err   error
			}
			var stacks []assembled
			for _, st := range col.Series[0].Stacks {
				a := assembled{label: fmt.Sprintf("%q %d×%d×%d×%d", st.Label, st.Columns, st.Rows, st.Slices, st.Volumes)}
				v, err := st.Assemble(AssembleOptions{})
				if err != nil {
					a.err = err
				} else {
					a.v, a.h = niftiRoundTrip(t, v)
				}
				stacks = append(stacks, a)
			}
			for _, ref := range tt.refs {
				t.Run(ref, func(t *testing.T) {
					want, wantH := readNIfTIFile(t, filepath.Join(root, "Ref", ref))
					var tried []string
					for _, a := range stacks {
						if a.err != nil {
							tried = append(tried, fmt.Sprintf("stack %s: assembly failed: %v", a.label, a.err))
							continue
						}
						mapped, order, err := alignToReference(a.v, a.h, want, wantH, 1e-4)
						if err != nil {
							tried = append(tried, fmt.Sprintf("stack %s: %v", a.label, err))
							continue
						}
						quantum := math.Abs(float64(wantH.SclSlope)) / 10
						if d := voxelMismatch(mapped, want, 1e-5, quantum); d != "" {
							tried = append(tried, fmt.Sprintf("stack %s: %s", a.label, d))
							continue
						}
						if order != "" {
							t.Logf("stack %s matches %s voxel for voxel in space; its storage order differs from dcm2niix's: %s", a.label, ref, order)
						}
						return
					}
					t.Errorf("no stack of the series matches dcm2niix's %s (%d stacks):\n  %s", ref, len(stacks), strings.Join(tried, "\n  "))
				})
			}
		})
	}
}

// alignToReference returns got's voxels in want's index order, found from
// the two files' sforms: inv(A_got)·A_want must map want's grid onto got's
// by a signed permutation of axes and a whole-voxel offset, with
// A_got·P equal to A_want to tol mm. order describes the permutation when
// it is not the identity ("" when the storage orders agree).
func alignToReference(got *Volume, gotH *NIfTIHeader, want *Volume, wantH *NIfTIHeader, tol float64) (mapped *Volume, order string, err error) {
	if got.Size[3] != want.Size[3] {
		return nil, "", fmt.Errorf("%d volumes, want %d", got.Size[3], want.Size[3])
	}
	ag, aw := gotH.SForm(), wantH.SForm()
	inv, ok := invertAffine(ag)
	if !ok {
		return nil, "", fmt.Errorf("singular sform %v", ag)
	}
	var m [4][4]float64 // want index → got index
	for r := range 4 {
		for c := range 4 {
			for k := range 4 {
				m[r][c] += inv[r][k] * aw[k][c]
			}
		}
	}
	// Round to a signed permutation with an integer offset.
	var p [3][4]int
	var axis [3]int
	var sign [3]int
	used := [3]bool{}
	for c := range 3 {
		axis[c] = -1
		for r := range 3 {
			if math.Abs(math.Abs(m[r][c])-1) < 1e-3 {
				if used[r] || axis[c] >= 0 {
					return nil, "", fmt.Errorf("sform %v is not a reordering of dcm2niix's %v", ag, aw)
				}
				axis[c], used[r] = r, true
				sign[c] = int(math.Round(m[r][c]))
			}
		}
		if axis[c] < 0 {
			return nil, "", fmt.Errorf("sform %v is not a reordering of dcm2niix's %v", ag, aw)
		}
		p[axis[c]][c] = sign[c]
	}
	for r := range 3 {
		p[r][3] = int(math.Round(m[r][3]))
	}
	// A_got·P must equal A_want to tol mm.
	for r := range 3 {
		for c := range 4 {
			var x float64
			for k := range 3 {
				x += ag[r][k] * float64(p[k][c])
			}
			if c == 3 {
				x += ag[r][3]
			}
			if d := math.Abs(x - aw[r][c]); !(d <= tol) {
				return nil, "", fmt.Errorf("affine off by %.3g mm at [%d][%d] (tolerance %g): sform %v, dcm2niix %v", d, r, c, tol, ag, aw)
			}
		}
	}
	var gs [3]int
	for c := range 3 {
		gs[axis[c]] = want.Size[c]
	}
	if gs != [3]int(got.Size[:3]) {
		return nil, "", fmt.Errorf("size %v, want %v reordered to %v", got.Size, want.Size, gs)
	}
	mapped = &Volume{Size: want.Size, Data: make([]float32, len(want.Data))}
	got.Values() // from Stored when Assemble kept the stored integers
	nx, ny, nz := want.Size[0], want.Size[1], want.Size[2]
	gx, gy, gz := got.Size[0], got.Size[1], got.Size[2]
	for t := range want.Size[3] {
		for k := range nz {
			for j := range ny {
				for i := range nx {
					var g [3]int
					for r := range 3 {
						g[r] = p[r][0]*i + p[r][1]*j + p[r][2]*k + p[r][3]
					}
					if g[0] < 0 || g[0] >= gx || g[1] < 0 || g[1] >= gy || g[2] < 0 || g[2] >= gz {
						return nil, "", fmt.Errorf("voxel (%d,%d,%d) of dcm2niix's grid falls outside ours at %v", i, j, k, g)
					}
					mapped.Data[i+nx*(j+ny*(k+nz*t))] = got.Data[g[0]+gx*(g[1]+gy*(g[2]+gz*t))]
				}
			}
		}
	}
	var parts []string
	for c := range 3 {
		if axis[c] != c || sign[c] != 1 {
			s := "+"
			if sign[c] < 0 {
				s = "reversed "
			}
			parts = append(parts, fmt.Sprintf("dcm2niix axis %d is our %saxis %d", c, s, axis[c]))
		}
	}
	return mapped, strings.Join(parts, ", "), nil
}

// invertAffine inverts a 4×4 affine (last row 0 0 0 1).
func invertAffine(a [4][4]float64) (inv [4][4]float64, ok bool) {
	var r [3][3]float64
	for i := range 3 {
		for j := range 3 {
			r[i][j] = a[i][j]
		}
	}
	det := niftiDet3(r)
	if det == 0 || math.IsNaN(det) {
		return inv, false
	}
	for i := range 3 {
		for j := range 3 {
			// inverse = adjugate / det; adj[i][j] = cofactor[j][i]
			j1, j2 := (j+1)%3, (j+2)%3
			i1, i2 := (i+1)%3, (i+2)%3
			inv[i][j] = (r[j1][i1]*r[j2][i2] - r[j1][i2]*r[j2][i1]) / det
		}
	}
	for i := range 3 {
		for k := range 3 {
			inv[i][3] -= inv[i][k] * a[k][3]
		}
	}
	inv[3][3] = 1
	return inv, true
}

// voxelMismatch describes how got differs from want beyond abs + rel·|want|
// per voxel, or returns "".
func voxelMismatch(got, want *Volume, rel, abs float64) string {
	got.Values() // from Stored when Assemble kept the stored integers
	bad, first := 0, -1
	for i, w := range want.Data {
		if d := math.Abs(float64(got.Data[i] - w)); !(d <= abs+rel*math.Abs(float64(w))) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return ""
	}
	nx, ny, nz := want.Size[0], want.Size[1], want.Size[2]
	i := first
	return fmt.Sprintf("%d of %d voxels differ; first at (i=%d, j=%d, k=%d, t=%d): %v, want %v",
		bad, len(want.Data), i%nx, i/nx%ny, i/(nx*ny)%nz, i/(nx*ny*nz), got.Data[i], want.Data[i])
}

// TestConformanceMosaic: transfer-syntaxes/In/1.dcm is a Siemens mosaic
// (64×64×35 tiled in one frame) that dcm2niix splits into slices using
// the CSA header's NumberOfImagesInMosaic. Assembly does not demosaic
// (issue 3 does not ask for it), so the comparison with Ref/1.nii is
// skipped with that reason (the fixture must still be present).
func TestConformanceMosaic(t *testing.T) {
	root := filepath.Join(testenv.SharedDICOM(t), "transfer-syntaxes")
	if _, err := os.Stat(filepath.Join(root, "In", "1.dcm")); err != nil {
		t.Fatal(err)
	}
	t.Skip("skipping: Siemens mosaic demosaicing (CSA NumberOfImagesInMosaic) is not implemented; Ref/1.nii (64×64×35) cannot be matched")
}
