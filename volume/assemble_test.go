package volume

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/internal/testenv"
)

// worldMismatch compares v with a reference volume voxel by voxel through
// patient coordinates: each reference voxel's centre, mapped by the
// reference affine and the inverse of v's, must land on a voxel of v (to
// 1e-3 voxel) holding the same value (to abs + rel·|value|). It is
// independent of how either orders its axes.
func worldMismatch(v, ref *Volume, abs, rel float64) string {
	if v.Voxels() != ref.Voxels() || v.Size[3] != ref.Size[3] {
		return fmt.Sprintf("size %v, reference %v", v.Size, ref.Size)
	}
	ra := ref.Affine()
	bad, first := 0, ""
	for k := range ref.Size[2] {
		for j := range ref.Size[1] {
			for i := range ref.Size[0] {
				var w [3]float64
				for r := range 3 {
					w[r] = ra[r][0]*float64(i) + ra[r][1]*float64(j) + ra[r][2]*float64(k) + ra[r][3]
				}
				d := sub(w, v.Origin)
				var idx [3]int
				for a := range 3 {
					f := dot(d, v.Axes[a]) / v.Spacing[a]
					if math.Abs(f-math.Round(f)) > 1e-3 || math.Round(f) < 0 || int(math.Round(f)) >= v.Size[a] {
						return fmt.Sprintf("reference voxel (%d, %d, %d) lies at %.4f along axis %d, not on a voxel", i, j, k, f, a)
					}
					idx[a] = int(math.Round(f))
				}
				for t := range ref.Size[3] {
					want := ref.Values()[ref.Voxels()*t+i+ref.Size[0]*(j+ref.Size[1]*k)]
					got := v.Values()[v.Voxels()*t+idx[0]+v.Size[0]*(idx[1]+v.Size[1]*idx[2])]
					if diff := math.Abs(float64(got - want)); !(diff <= abs+rel*math.Abs(float64(want))) {
						if bad == 0 {
							first = fmt.Sprintf("reference (%d, %d, %d, %d) = %v, ours %v at %v", i, j, k, t, want, got, idx)
						}
						bad++
					}
				}
			}
		}
	}
	if bad > 0 {
		return fmt.Sprintf("%d voxels differ; first: %s", bad, first)
	}
	return ""
}

// TestWorldMatchesDcm2niix checks geometry and voxels against dcm2niix's
// references through patient coordinates, whatever axis flips the
// reference made.
func TestWorldMatchesDcm2niix(t *testing.T) {
	for _, tc := range []struct {
		in, ref string
		label   string // stack label substring, "" for the only stack
		volumes int
	}{
		{"ct-head-5mm", "ct-head-5mm.ref/ct-head-5mm.nii.gz", "", 1},
		{"enhanced/In/Philips", "enhanced/Ref/Philips_WIP_B0_NS_801_e1.nii", `\M `, 1},
		{"enhanced/In/Philips", "enhanced/Ref/Philips_WIP_B0_NS_801_e2_fieldmaphz.nii", "FIELD_MAP", 1},
		{"enhanced/In/Siemens/XA10", "enhanced/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii", "", 4},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			ref, err := ReadNIfTIFile(filepath.Join(testenv.SharedDICOM(t), tc.ref))
			if err != nil {
				t.Fatal(err)
			}
			c, err := LoadDir(os.DirFS(filepath.Join(testenv.SharedDICOM(t), tc.in)), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Series) != 1 {
				t.Fatalf("%d series", len(c.Series))
			}
			var st *Stack
			for _, s := range c.Series[0].Stacks {
				if strings.Contains(s.Label, tc.label) {
					st = s
					break
				}
			}
			if st == nil {
				t.Fatalf("no stack labelled %q among %d", tc.label, len(c.Series[0].Stacks))
			}
			if st.Volumes != tc.volumes || len(st.Warnings) != 0 {
				t.Errorf("volumes %d warnings %v", st.Volumes, st.Warnings)
			}
			v, err := st.Assemble(AssembleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A tenth of the reference's quantum, plus float32 rounding.
			quantum := math.Abs(ref.Slope) / 10
			if d := worldMismatch(v, ref, quantum, 1e-5); d != "" {
				t.Fatal(d)
			}
			if math.Abs(v.Slope-ref.Slope) > 1e-4*math.Abs(ref.Slope) || math.Abs(v.Intercept-ref.Intercept) > 1e-3 {
				t.Errorf("slope %v intercept %v, reference %v %v", v.Slope, v.Intercept, ref.Slope, ref.Intercept)
			}
		})
	}
}

// copyDir copies the regular files of src into a new temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// loadOne loads dir and returns its only series.
func loadOne(t *testing.T, dir string) (*Collection, *Series) {
	t.Helper()
	c, err := LoadDir(os.DirFS(dir), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Series) != 1 {
		t.Fatalf("%d series, want 1 (skipped %v)", len(c.Series), c.Skipped)
	}
	return c, c.Series[0]
}

// TestHostileCTHead damages copies of ct-head-5mm: each damage gives a
// warning, a skip or an error, never a silent wrong volume.
func TestHostileCTHead(t *testing.T) {
	src := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	ref, err := func() (*Volume, error) {
		_, ser := loadOne(t, src)
		return ser.Stacks[0].Assemble(AssembleOptions{})
	}()
	if err != nil {
		t.Fatal(err)
	}
	plane := ref.Size[0] * ref.Size[1]

	t.Run("shuffled names", func(t *testing.T) {
		dir := copyDir(t, src)
		// Rename so that name order reverses position order.
		for _, e := range mustReadDir(t, dir) {
			if strings.HasPrefix(e, "I") {
				must(t, os.Rename(filepath.Join(dir, e), filepath.Join(dir, "x"+reverse(e))))
			}
		}
		_, ser := loadOne(t, dir)
		v, err := ser.Stacks[0].Assemble(AssembleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v.Values(), ref.Values()) || v.Origin != ref.Origin || len(v.Warnings) != 0 {
			t.Errorf("shuffled names changed the volume (origin %v, warnings %v)", v.Origin, v.Warnings)
		}
	})
	t.Run("missing slice", func(t *testing.T) {
		dir := copyDir(t, src)
		must(t, os.Remove(filepath.Join(dir, "I150")))
		_, ser := loadOne(t, dir)
		st := ser.Stacks[0]
		if c := codes(st.Warnings); c[WarnGap] != 1 {
			t.Fatalf("warnings %v, want a gap", st.Warnings)
		}
		v, err := st.Assemble(AssembleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// 5 mm steps from the first slice, as dcm2niix's _Eq_: ceil((135 −
		// 5/2)/5) = 27 slices, the last (135 mm) beyond the grid.
		if v.Size[2] != 27 || len(v.Notes) == 0 || codes(v.Warnings)[WarnGap] != 1 {
			t.Errorf("size %v notes %q warnings %v", v.Size, v.Notes, v.Warnings)
		}
	})
	t.Run("duplicated slice", func(t *testing.T) {
		dir := copyDir(t, src)
		b, err := os.ReadFile(filepath.Join(dir, "I100"))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "copy-of-I100"), b, 0o644))
		_, ser := loadOne(t, dir)
		st := ser.Stacks[0]
		if c := codes(st.Warnings); c[WarnDuplicate] != 1 || len(st.Warnings) != 1 {
			t.Fatalf("warnings %v, want one duplicate", st.Warnings)
		}
		v, err := st.Assemble(AssembleOptions{})
		must(t, err)
		if !slices.Equal(v.Values(), ref.Values()) {
			t.Error("the volume differs after dropping the duplicate")
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		dir := copyDir(t, src)
		p := filepath.Join(dir, "I120")
		b, err := os.ReadFile(p)
		must(t, err)
		must(t, os.WriteFile(p, b[:len(b)/2], 0o644))
		c, ser := loadOne(t, dir)
		if !slices.ContainsFunc(c.Skipped, func(s Skipped) bool { return s.Path == "I120" && s.Reason != "" }) {
			t.Errorf("skipped %v, want I120 with a reason", c.Skipped)
		}
		if codes(ser.Stacks[0].Warnings)[WarnGap] != 1 {
			t.Errorf("warnings %v, want the gap the truncated slice left", ser.Stacks[0].Warnings)
		}
	})
	t.Run("other orientation", func(t *testing.T) {
		dcm := testenv.Tool(t, "dcmodify", "dcmtk")
		dir := copyDir(t, src)
		out, err := exec.Command(dcm, "-nb", "-m", `(0020,0037)=1\0\0\0\0.8660254\-0.5`, filepath.Join(dir, "I130")).CombinedOutput()
		if err != nil {
			t.Fatalf("dcmodify: %v: %s", err, out)
		}
		_, ser := loadOne(t, dir)
		if codes(ser.Warnings)[WarnMixedOrientation] != 1 || len(ser.Stacks) != 2 {
			t.Fatalf("series warnings %v, %d stacks", ser.Warnings, len(ser.Stacks))
		}
		main := ser.Stacks[0]
		if main.Slices != 27 || codes(main.Warnings)[WarnGap] != 1 || codes(main.Warnings)[WarnMixedOrientation] != 1 {
			t.Errorf("main stack %d slices, warnings %v", main.Slices, main.Warnings)
		}
	})
	t.Run("other size", func(t *testing.T) {
		dcm := testenv.Tool(t, "dcmodify", "dcmtk")
		dir := copyDir(t, src)
		// 256×1024 keeps the pixel data length consistent.
		out, err := exec.Command(dcm, "-nb", "-m", "(0028,0010)=256", "-m", "(0028,0011)=1024", filepath.Join(dir, "I140")).CombinedOutput()
		if err != nil {
			t.Fatalf("dcmodify: %v: %s", err, out)
		}
		_, ser := loadOne(t, dir)
		if codes(ser.Warnings)[WarnMixedSize] != 1 || len(ser.Stacks) != 2 || ser.Stacks[0].Slices != 27 {
			t.Fatalf("series warnings %v, %d stacks", ser.Warnings, len(ser.Stacks))
		}
		if !strings.Contains(ser.Warnings[0].Message, "I140") {
			t.Errorf("warning %q does not name I140", ser.Warnings[0].Message)
		}
	})
	for _, enc := range []string{"rle", "jpll"} {
		t.Run("corrupt "+enc, func(t *testing.T) {
			dir := copyDir(t, filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm."+enc))
			p := filepath.Join(dir, "I100.dcm")
			b, err := os.ReadFile(p)
			must(t, err)
			// Overwrite the middle of the pixel data (the file's tail) with
			// run headers that claim long literal runs.
			for i := len(b) - len(b)/4; i < len(b)-8; i += 7 {
				b[i] = 0x7F
			}
			must(t, os.WriteFile(p, b, 0o644))
			c, err := LoadDir(os.DirFS(dir), LoadOptions{})
			must(t, err)
			if len(c.Series) != 1 {
				// Refused at load: acceptable when named in Skipped.
				if !slices.ContainsFunc(c.Skipped, func(s Skipped) bool { return s.Path == "I100.dcm" }) {
					t.Fatalf("series %d, skipped %v", len(c.Series), c.Skipped)
				}
				return
			}
			st := c.Series[0].Stacks[0]
			v, err := st.Assemble(AssembleOptions{})
			switch {
			case err != nil:
				if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "I100.dcm") {
					t.Errorf("error %v, want ErrUndecodable naming I100.dcm", err)
				}
				if codes(st.Warnings)[WarnUndecodable] != 1 {
					t.Errorf("stack warnings %v, want WarnUndecodable", st.Warnings)
				}
				t.Logf("refused: %v", err)
			case slices.Equal(v.Values(), ref.Values()):
				t.Log("the damage fell where RLE still decodes the same pixels")
			default:
				t.Errorf("a wrong volume without error (warnings %v)", v.Warnings)
			}
		})
	}
	_ = plane
}

func TestChooseReal(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"ct-head-5mm", "enhanced/In/Philips", "enhanced/In/Siemens/XA10"} {
		src := copyDir(t, filepath.Join(testenv.SharedDICOM(t), d))
		must(t, os.Rename(src, filepath.Join(root, filepath.Base(d))))
	}
	c, err := LoadDir(os.DirFS(root), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, why, err := Choose(c)
	if err != nil {
		t.Fatal(err)
	}
	if st.Modality != "CT" || st.Slices != 28 {
		t.Errorf("chose %s %d slices: %s", st.Modality, st.Slices, why)
	}
	for _, want := range []string{"STD BRAIN 5MM", "FIELD_MAP", "not a magnitude image", "less coverage"} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q does not mention %q", why, want)
		}
	}
	// With MR only thick slices allowed, nothing fits, and the error says why.
	if _, _, err := ChooseWith(c, ChooseOptions{MinThickness: 6, MaxThickness: 10}); !errors.Is(err, ErrNoStack) || !strings.Contains(err.Error(), "slice thickness") {
		t.Errorf("error %v, want ErrNoStack with the thickness reason", err)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// BenchmarkLoadAssembleCTHead loads and assembles ../shared/dicom/ct-head-5mm
// (28 slices of 512×512) from disk, in both load modes. On os.DirFS both
// read these native files by header alone (dicomio.ReadHeader), Assemble
// reading each frame straight into the volume.
func BenchmarkLoadAssembleCTHead(b *testing.B) {
	fsys := os.DirFS(filepath.Join(testenv.SharedDICOM(b), "ct-head-5mm"))
	for _, bc := range []struct {
		name string
		opts LoadOptions
	}{
		{"decode-at-load", LoadOptions{}},
		{"headers-only", LoadOptions{HeadersOnly: true, KeepBytes: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				c, err := LoadDir(fsys, bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Series[0].Stacks[0].Assemble(AssembleOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ = dicomio.ErrUnsupportedTransferSyntax

func TestLoadDirSkipsNonImages(t *testing.T) {
	c, err := LoadDir(os.DirFS(filepath.Join(testenv.SharedDICOM(t), "seg-sr/sr-example")), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Series) != 1 || c.Series[0].Modality != "SEG" || len(c.Skipped) != 2 {
		t.Fatalf("%d series, skipped %v", len(c.Series), c.Skipped)
	}
	for _, s := range c.Skipped {
		if !strings.HasPrefix(s.Reason, "not an image") {
			t.Errorf("%s skipped for %q", s.Path, s.Reason)
		}
	}
	c, err = LoadDir(os.DirFS(filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Skipped {
		if s.Path == "DIRFILE" && !strings.Contains(s.Reason, "DICOMDIR") {
			t.Errorf("DIRFILE skipped for %q", s.Reason)
		}
	}
	if _, _, err := Choose(&Collection{}); !errors.Is(err, ErrNoStack) {
		t.Errorf("Choose on nothing: %v", err)
	}
}

// TestLUTMatchesDirectConversion checks the 16-bit lookup-table path of
// Assemble against the naive conversion (Pixels.Float32, and PaddingHU
// for stored values in the padding range).
func TestLUTMatchesDirectConversion(t *testing.T) {
	for _, tc := range []struct {
		stored, high int
		signed       bool
		slope, inter float64
		pad          bool
	}{
		{16, 15, true, 1, -1024, false},
		{16, 15, false, 1, -1024, true},
		{12, 11, true, 0.5, 3.25, true},
		{12, 15, false, 1.2798534798534797, 0, false},
		{10, 9, false, 1, 0, false},
	} {
		t.Run(fmt.Sprintf("%d-%d-%v-pad%v", tc.stored, tc.high, tc.signed, tc.pad), func(t *testing.T) {
			const n = 1 << 12
			px := &dicomio.Pixels{Rows: 64, Columns: n / 64, Samples: 1, Frames: 1, BitsAllocated: 16,
				BitsStored: tc.stored, HighBit: tc.high, Signed: tc.signed, Data: make([]byte, 2*n)}
			for i := range px.Data {
				px.Data[i] = byte(i*7919 + i/3)
			}
			lo, hi := -3, 40
			luts := &lutCache{m: map[lutKey][]float32{}}
			lut, err := luts.get(px, lutKey{tc.slope, tc.inter, tc.pad, lo, hi, tc.stored, tc.high, tc.signed})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, n)
			lutConvert(got, px.Frame(0), lut)
			want := make([]float32, n)
			stored := make([]int32, n)
			must(t, px.Float32(0, want, tc.slope, tc.inter))
			must(t, px.Int32(0, stored))
			for i := range want {
				if tc.pad && int(stored[i]) >= lo && int(stored[i]) <= hi {
					want[i] = PaddingHU
				}
				if got[i] != want[i] {
					t.Fatalf("value %d (stored %d): table gives %v, direct %v", i, stored[i], got[i], want[i])
				}
			}
		})
	}
}
