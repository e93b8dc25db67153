package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
)

const exampleCard = "../../triage/testdata/cards/example_seg.json"

// phantomStudy writes a phantom series into a temporary folder.
func phantomStudy(t *testing.T) (*phantom.Phantom, string) {
	t.Helper()
	p, err := phantom.Generate(phantom.Spec{
		Seed: 2, Size: [3]int{16, 128, 112}, Spacing: [3]float64{5, 1.8, 1.8}, Noise: 4,
		Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	return p, dir
}

// "radtriage preprocess" of a phantom series writes the card's network
// grid around the series' centre, with the values Preprocess gives.
func TestPreprocessCommand(t *testing.T) {
	ph, dir := phantomStudy(t)
	out := filepath.Join(t.TempDir(), "in.nii.gz")
	env, stdout, stderr := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"preprocess", dir, "--card", exampleCard, "-o", out, "--backend", "cpu"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout.String(), "wrote "+out+": 128×128×32 voxels") {
		t.Errorf("stdout %q", stdout)
	}
	got, err := volume.ReadNIfTIFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != [4]int{128, 128, 32, 1} || math.Abs(got.Spacing[0]-1.8) > 1e-6 || math.Abs(got.Spacing[1]-1.8) > 1e-6 || got.Spacing[2] != 5 {
		t.Fatalf("size %v spacing %v", got.Size, got.Spacing)
	}
	// The grid's centre is the phantom's (LPS 0, 0, 0 up to rounding),
	// its axes the series' (identity).
	g := kernels.GeometryFromVolume(got.Size, got.Spacing, got.Origin, got.Axes)
	src := kernels.Geometry{Size: ph.Size, Spacing: ph.Spacing, Origin: ph.Origin, Axes: [3][3]float64{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}}}
	c, want := g.Centre(), src.Centre()
	for r := range 3 {
		// The header stores float32: 1e-4 mm.
		if math.Abs(c[r]-want[r]) > 1e-4 {
			t.Fatalf("centre %v, series' %v", c, want)
		}
		for a := range 3 {
			if math.Abs(g.Axes[a][r]-src.Axes[a][r]) > 1e-6 {
				t.Fatalf("axes %v", g.Axes)
			}
		}
	}
	// The voxels are Preprocess's tensor, in its order.
	card, err := triage.LoadCard(exampleCard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := triage.Preprocess(t.Context(), kernels.CPU(), ph.HUVolume(), card.Input)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	vals := got.Values()
	if len(vals) != len(p.Tensor) {
		t.Fatalf("%d values, tensor %d", len(vals), len(p.Tensor))
	}
	for i := range vals {
		if vals[i] != p.Tensor[i] {
			t.Fatalf("voxel %d: file %v, Preprocess %v", i, vals[i], p.Tensor[i])
		}
	}

	// The same series as NIfTI (rows stored bottom to top, as dcm2niix
	// writes them): the same network input, since the network grid is
	// oriented by the patient axes, not by the file's storage order.
	nii := filepath.Join(t.TempDir(), "series.nii")
	if err := volume.WriteNIfTIFile(nii, ph.HUVolume(), volume.NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "in2.nii")
	env, _, stderr = testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"preprocess", nii, "--card", exampleCard, "-o", out2, "--backend", "cpu"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	got2, err := volume.ReadNIfTIFile(out2)
	if err != nil {
		t.Fatal(err)
	}
	v2 := got2.Values()
	W, H, D := 128, 128, 32
	for d := range D {
		for h := range H {
			for w := range W {
				a, b := vals[w+W*(h+H*d)], v2[w+W*(h+H*d)]
				if math.Abs(float64(a-b)) > 1e-5 {
					t.Fatalf("voxel (%d,%d,%d): %v from DICOM, %v from NIfTI", d, h, w, a, b)
				}
			}
		}
	}
}

func TestPreprocessUsage(t *testing.T) {
	_, dir := phantomStudy(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"name":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "o.nii")
	for _, c := range []struct {
		args  []string
		usage bool
		msg   string
	}{
		{[]string{"preprocess", dir, "-o", out}, true, "--card is required"},
		{[]string{"preprocess", dir, "--card", exampleCard}, true, "--out"},
		{[]string{"preprocess", "--card", exampleCard, "-o", out}, true, "missing argument"},
		{[]string{"preprocess", dir, "--card", exampleCard, "-o", "x.raw"}, true, "must end in .nii"},
		{[]string{"preprocess", "a.nii", "--series", "1.2", "--card", exampleCard, "-o", out}, true, "only to a DICOM folder"},
		{[]string{"preprocess", dir, "--card", bad, "-o", out}, false, "invalid model card"},
		{[]string{"preprocess", dir, "--card", exampleCard, "-o", out, "--series", "9.9"}, false, "no series 9.9"},
		{[]string{"preprocess", exampleCard, "--card", exampleCard, "-o", out}, false, "neither a folder nor a NIfTI file"},
	} {
		env, _, _ := testEnv(nil)
		err := runEnv(t.Context(), env, c.args)
		var u usageError
		if err == nil || errors.As(err, &u) != c.usage || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v (want usage %v, %q)", c.args, err, c.usage, c.msg)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an output was written: %v", err)
	}
}
