package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/volume"
)

// "radtriage phantom" writes studies whose mask lies on the grid that
// "radtriage volume" gives their series.
func TestPhantomCommand(t *testing.T) {
	out := t.TempDir()
	env, stdout, _ := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"phantom", "-o", out, "--seed", "5", "--count", "2", "--size", "10x64x48", "--lesion", "ich", "--noise", "4"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout.String(), "wrote "); n != 2 {
		t.Errorf("stdout %q", stdout)
	}
	for i, name := range []string{"0001", "0002"} {
		dir := filepath.Join(out, name)
		b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		var truth studyTruth
		if err := json.Unmarshal(b, &truth); err != nil {
			t.Fatal(err)
		}
		if truth.Seed != uint64(5+i) || truth.SizeDHW != [3]int{10, 64, 48} || len(truth.Lesions) != 1 || truth.Lesions[0].Kind != "ich" || truth.Lesions[0].Voxels == 0 {
			t.Fatalf("%s: truth %s", name, b)
		}
		l := truth.Lesions[0]
		if want := float64(l.Voxels) * 5 * 0.9 * 0.9 / 1000; math.Abs(l.VolumeML-want) > 1e-9 {
			t.Errorf("%s: %d voxels, %g mL", name, l.Voxels, l.VolumeML)
		}

		volName := filepath.Join(t.TempDir(), "vol.nii.gz")
		env, _, _ := testEnv(nil)
		if err := runEnv(t.Context(), env, []string{"volume", filepath.Join(dir, truth.SeriesDir), "-o", volName}); err != nil {
			t.Fatal(err)
		}
		v, err := volume.ReadNIfTIFile(volName)
		if err != nil {
			t.Fatal(err)
		}
		m, err := volume.ReadNIfTIFile(filepath.Join(dir, truth.Mask))
		if err != nil {
			t.Fatal(err)
		}
		if v.Size != m.Size || v.Size != [4]int{48, 64, 10, 1} {
			t.Fatalf("%s: volume %v, mask %v", name, v.Size, m.Size)
		}
		va, ma := v.Affine(), m.Affine()
		for r := range 4 {
			for c := range 4 {
				if math.Abs(va[r][c]-ma[r][c]) > 1e-4 {
					t.Fatalf("%s: affines differ:\n%v\n%v", name, va, ma)
				}
			}
		}
		// The mask's voxel count and the lesion's HU agree with truth.json.
		n, dense := 0, 0
		vv := v.Values()
		for i, x := range m.Values() {
			if x == 1 {
				n++
				if vv[i] > 40 {
					dense++
				}
			}
		}
		if n != l.Voxels || dense < n*9/10 {
			t.Errorf("%s: mask %d voxels (%d above 40 HU), truth %d", name, n, dense, l.Voxels)
		}
	}
}

func TestPhantomUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--out"},
		{[]string{"-o", "x", "extra"}, "unexpected argument"},
		{[]string{"-o", "x", "--size", "32x256"}, "slices x rows x columns"},
		{[]string{"-o", "x", "--size", "32x8x8"}, "slices x rows x columns"},
		{[]string{"-o", "x", "--lesion", "edh"}, "must be one of none, ich, sdh, random"},
		{[]string{"-o", "x", "--count", "0"}, "at least 1"},
		{[]string{"-o", "x", "--count", "200000"}, "at most 100000"},
		{[]string{"-o", "x", "--seed", "-1"}, "at least 0"},
		{[]string{"-o", "x", "--noise", "loud"}, "not a number"},
		{[]string{"-o", "x", "--noise", "-3"}, "must be 0 to 500"},
	} {
		env, _, _ := testEnv(nil)
		err := runEnv(t.Context(), env, append([]string{"phantom"}, tc.args...))
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v (exit %d), want a usage error with %q", tc.args, err, exitCode(err), tc.want)
		}
	}
	// The environment gives flags too, and a folder that cannot be made is
	// an error, not a usage error.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env, _, _ := testEnv(map[string]string{"RADTRIAGE_OUT": file, "RADTRIAGE_SIZE": "2x16x16"})
	if err := runEnv(t.Context(), env, []string{"phantom", "--lesion", "none"}); err == nil || exitCode(err) != 1 {
		t.Errorf("out is a file: got %v (exit %d)", err, exitCode(err))
	}
}
