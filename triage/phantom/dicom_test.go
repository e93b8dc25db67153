package phantom

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/volume"
)

// smallSeries writes a small phantom with both lesions and returns it
// and its folder.
func smallSeries(t *testing.T, seed uint64) (*Phantom, string) {
	t.Helper()
	p := gen(t, Spec{Seed: seed, Size: [3]int{12, 96, 80}, Spacing: [3]float64{2.5, 0.9, 0.9}, Lesions: both})
	dir := t.TempDir()
	if err := WriteSeries(dir, p, SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	return p, dir
}

// assemble reads dir back with package volume.
func assemble(t *testing.T, dir string) (*volume.Stack, *volume.Volume) {
	t.Helper()
	col, err := volume.LoadDir(os.DirFS(dir), volume.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(col.Series) != 1 || len(col.Skipped) != 0 {
		t.Fatalf("%d series, skipped %v", len(col.Series), col.Skipped)
	}
	st, _, err := volume.Choose(col)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Assemble(volume.AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st, v
}

func TestSeriesRoundTrip(t *testing.T) {
	p, dir := smallSeries(t, 11)
	st, v := assemble(t, dir)
	if len(v.Warnings) != 0 || len(v.Notes) != 0 {
		t.Errorf("warnings %v, notes %v", v.Warnings, v.Notes)
	}
	want := p.HUVolume()
	if v.Size != want.Size || v.Spacing != want.Spacing || v.Origin != want.Origin || v.Axes != want.Axes {
		t.Fatalf("geometry: got size %v spacing %v origin %v axes %v, want %v %v %v %v",
			v.Size, v.Spacing, v.Origin, v.Axes, want.Size, want.Spacing, want.Origin, want.Axes)
	}
	if v.Slope != 1 || v.Intercept != RescaleIntercept || v.Stored == nil || !v.StoredSigned {
		t.Errorf("rescale %g/%g signed %v, stored %v", v.Slope, v.Intercept, v.StoredSigned, v.Stored != nil)
	}
	vals := v.Values()
	for i, hu := range p.HU {
		if vals[i] != float32(hu) {
			t.Fatalf("voxel %d: read %g HU, wrote %d", i, vals[i], hu)
		}
	}
	study, series, _, _ := p.UIDs()
	if v.SeriesInstanceUID != series || v.Modality != "CT" || st.Description != "AXIAL 2.5mm (synthetic)" {
		t.Errorf("series %q (want %q) modality %q description %q", v.SeriesInstanceUID, series, v.Modality, st.Description)
	}
	uid := regexp.MustCompile(`^2\.25\.(0|[1-9][0-9]{0,38})$`)
	_, _, frame, inst := p.UIDs()
	for _, u := range append([]string{study, series, frame}, inst...) {
		if !uid.MatchString(u) || len(u) > 64 {
			t.Errorf("bad UID %q", u)
		}
	}
	if !uid.MatchString(implementationUID) {
		t.Errorf("bad implementation UID %q", implementationUID)
	}
}

// The mask NIfTI has the grid of the series' NIfTI, and its labels sit on
// the voxels that hold the lesions' values.
func TestMaskAlignment(t *testing.T) {
	p, dir := smallSeries(t, 12)
	_, v := assemble(t, dir)
	out := t.TempDir()
	volName, maskName := filepath.Join(out, "vol.nii.gz"), filepath.Join(out, "mask.nii.gz")
	if err := volume.WriteNIfTIFile(volName, v, volume.NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteMask(maskName, p); err != nil {
		t.Fatal(err)
	}
	a, err := volume.ReadNIfTIFile(volName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := volume.ReadNIfTIFile(maskName)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != m.Size {
		t.Fatalf("sizes %v and %v", a.Size, m.Size)
	}
	fa, fm := a.Affine(), m.Affine()
	for r := range 4 {
		for c := range 4 {
			if math.Abs(fa[r][c]-fm[r][c]) > 1e-4 {
				t.Fatalf("affines differ:\n%v\n%v", fa, fm)
			}
		}
	}
	// Each voxel read back holds the value and label of the phantom's
	// voxel at its LPS position.
	av, mv := a.Values(), m.Values()
	n := 0
	for k := range m.Size[2] {
		for j := range m.Size[1] {
			for i := range m.Size[0] {
				var pos [3]float64
				for r := range 3 {
					pos[r] = m.Origin[r] + float64(i)*m.Spacing[0]*m.Axes[0][r] + float64(j)*m.Spacing[1]*m.Axes[1][r] + float64(k)*m.Spacing[2]*m.Axes[2][r]
				}
				w := math.Round((pos[0] - p.Origin[0]) / p.Spacing[2])
				h := math.Round((pos[1] - p.Origin[1]) / p.Spacing[1])
				d := math.Round((pos[2] - p.Origin[2]) / p.Spacing[0])
				if q := p.Position(d, h, w); math.Abs(q[0]-pos[0])+math.Abs(q[1]-pos[1])+math.Abs(q[2]-pos[2]) > 1e-3 {
					t.Fatalf("voxel (%d,%d,%d) at %v is off the phantom's grid", i, j, k, pos)
				}
				src := (int(d)*p.Size[1]+int(h))*p.Size[2] + int(w)
				x := i + m.Size[0]*(j+m.Size[1]*k)
				if mv[x] != 0 {
					n++
				}
				if float32(p.Labels[src]) != mv[x] || float32(p.HU[src]) != av[x] {
					t.Fatalf("voxel (%d,%d,%d): label %g, %g HU read back; the phantom has %d, %d HU there", i, j, k, mv[x], av[x], p.Labels[src], p.HU[src])
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("empty mask")
	}
}

func TestDcmtkReads(t *testing.T) {
	dcmdump := testenv.Tool(t, "dcmdump", "dcmtk")
	dcmftest := testenv.Tool(t, "dcmftest", "dcmtk")
	p, dir := smallSeries(t, 13)
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if len(files) != p.Size[0] {
		t.Fatalf("%d files", len(files))
	}
	out, err := exec.Command(dcmftest, files...).CombinedOutput()
	if err != nil || strings.Count(string(out), "yes: ") != len(files) {
		t.Fatalf("dcmftest: %v\n%s", err, out)
	}
	cmd := exec.Command(dcmdump, "-E", files[3])
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil || stderr.Len() != 0 {
		t.Fatalf("dcmdump: %v\n%s", err, stderr.String())
	}
	_, _, _, inst := p.UIDs()
	pos := p.Position(3, 0, 0)
	for _, want := range []string{
		"(0002,0010) UI =LittleEndianExplicit",
		"(0008,0016) UI =CTImageStorage",
		"(0008,0018) UI [" + inst[3] + "]",
		`(0008,0008) CS [ORIGINAL\PRIMARY\AXIAL]`,
		"(0008,0060) CS [CT]",
		"(0008,1030) LO [" + StudyDescription + "]",
		"(0010,0010) PN [PHANTOM^13]",
		"(0018,0015) CS [HEAD]",
		"(0020,0013) IS [4]",
		fmt.Sprintf(`(0020,0032) DS [%s]`, ds(pos[0], pos[1], pos[2])),
		`(0028,0030) DS [0.9\0.9]`,
		"(0028,0010) US 96",
		"(0028,0011) US 80",
		"(0028,0103) US 1",
		"(0028,1052) DS [-1024]",
		"(7fe0,0010) OW",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dcmdump lacks %q:\n%s", want, out)
		}
	}
}

// pydicomScript reads every file of a folder strictly and prints the
// sums of their HU values, in slice order, and some attributes.
const pydicomScript = `
import json, sys, os
import pydicom
from pydicom.config import settings, RAISE
settings.reading_validation_mode = RAISE
ds = [pydicom.dcmread(os.path.join(sys.argv[1], f)) for f in sorted(os.listdir(sys.argv[1]))]
ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
out = {"sums": [], "tsuid": str(ds[0].file_meta.TransferSyntaxUID), "sop": str(ds[0].SOPClassUID),
       "name": str(ds[0].PatientName), "series": [str(d.SeriesInstanceUID) for d in ds],
       "rows": ds[0].Rows, "cols": ds[0].Columns, "min": 0}
for d in ds:
    hu = d.pixel_array.astype("int64") * int(d.RescaleSlope) + int(d.RescaleIntercept)
    out["sums"].append(int(hu.sum()))
    out["min"] = min(out["min"], int(hu.min()))
print(json.dumps(out))
`

func TestPydicomReads(t *testing.T) {
	py := testenv.Tool(t, "/usr/bin/python3", "python3-pydicom")
	if out, err := exec.Command(py, "-c", "import pydicom, numpy").CombinedOutput(); err != nil {
		if testenv.CI() {
			t.Fatalf("pydicom and numpy (Debian python3-pydicom, python3-numpy) are required under CI=true: %v\n%s", err, out)
		}
		t.Skipf("skipping: pydicom or numpy is not installed: %s", out)
	}
	p, dir := smallSeries(t, 14)
	out, err := exec.Command(py, "-c", pydicomScript, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	var got struct {
		Sums       []int64
		TSUID, SOP string
		Name       string
		Series     []string
		Rows, Cols int
		Min        int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_, series, _, _ := p.UIDs()
	if got.TSUID != ExplicitVRLittleEndian || got.SOP != CTImageStorage || got.Name != "PHANTOM^14" || got.Rows != 96 || got.Cols != 80 || len(got.Sums) != 12 {
		t.Fatalf("pydicom read %+v", got)
	}
	H, W := p.Size[1], p.Size[2]
	for d, s := range got.Sums {
		var want int64
		for _, v := range p.HU[d*H*W : (d+1)*H*W] {
			want += int64(v)
		}
		if s != want || got.Series[d] != series {
			t.Errorf("slice %d: pydicom sums %d HU, want %d; series %s", d, s, want, got.Series[d])
		}
	}
	if got.Min < -1024 {
		t.Errorf("min %d HU", got.Min)
	}
}

func TestDS(t *testing.T) {
	for x, want := range map[float64]string{0: "0", math.Copysign(0, -1): "0", 0.9: "0.9", -114.75: "-114.75", 1.0 / 3: "0.33333333333333", -1e5 / 3: "-33333.333333333"} {
		if got := ds(x); got != want || len(got) > 16 {
			t.Errorf("ds(%v) = %q, want %q", x, got, want)
		}
	}
	if got := ds(1, -2.5); got != `1\-2.5` {
		t.Errorf("ds(1, -2.5) = %q", got)
	}
}
