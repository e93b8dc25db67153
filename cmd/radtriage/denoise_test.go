package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/volume"
)

// cropVolume returns the block of v of size n starting at voxel at, with
// its origin moved so that every voxel keeps its position.
func cropVolume(v *volume.Volume, at, n [3]int) *volume.Volume {
	data := v.Values()
	c := &volume.Volume{Size: [4]int{n[0], n[1], n[2], 1}, Spacing: v.Spacing, Axes: v.Axes, Origin: v.Origin}
	for a := range 3 {
		for r := range 3 {
			c.Origin[r] += float64(at[a]) * v.Spacing[a] * v.Axes[a][r]
		}
	}
	c.Data = make([]float32, n[0]*n[1]*n[2])
	for k := range n[2] {
		for j := range n[1] {
			for i := range n[0] {
				src := (at[0] + i) + v.Size[0]*((at[1]+j)+v.Size[1]*(at[2]+k))
				c.Data[i+n[0]*(j+n[1]*k)] = data[src]
			}
		}
	}
	return c
}

// rmse is the root mean square difference over the voxels where mask
// is true (all when mask is nil).
func rmse(a, b []float32, mask []bool) float64 {
	s, n := 0.0, 0
	for i := range a {
		if mask != nil && !mask[i] {
			continue
		}
		d := float64(a[i]) - float64(b[i])
		s += d * d
		n++
	}
	return math.Sqrt(s / float64(n))
}

// flatMask marks the voxels of v whose in-slice 7×7 neighbourhood spans
// less than span: where smoothing removes noise, not edges.
func flatMask(v *volume.Volume, span float32) []bool {
	nx, ny := v.Size[0], v.Size[1]
	m := make([]bool, len(v.Data))
	for i := range m {
		x, y, z := i%nx, (i/nx)%ny, i/(nx*ny)
		if x < 3 || y < 3 || x >= nx-3 || y >= ny-3 {
			continue
		}
		lo, hi := v.Data[i], v.Data[i]
		for dy := -3; dy <= 3; dy++ {
			for dx := -3; dx <= 3; dx++ {
				w := v.Data[(x+dx)+nx*((y+dy)+ny*z)]
				lo, hi = min(lo, w), max(hi, w)
			}
		}
		m[i] = hi-lo < span
	}
	return m
}

// TestDenoiseRoundTrip denoises a block of the head CT (dcm2niix's NIfTI
// of ct-head-5mm) with 20 HU of noise added, through the command, and
// checks that every method brings the values closer to the clean ones
// and keeps the geometry.
func TestDenoiseRoundTrip(t *testing.T) {
	ref := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm.ref", "ct-head-5mm.nii.gz")
	full, err := volume.ReadNIfTIFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	clean := cropVolume(full, [3]int{200, 200, 12}, [3]int{96, 80, 5})
	noisy := cropVolume(full, [3]int{200, 200, 12}, [3]int{96, 80, 5})
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noisy.Data {
		noisy.Data[i] += float32(20 * r.NormFloat64())
	}
	// Both through the writer and the reader, so that they share the
	// file's row order.
	dir := t.TempDir()
	in := filepath.Join(dir, "noisy.nii.gz")
	if err := volume.WriteNIfTIFile(in, noisy, volume.NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	if noisy, err = volume.ReadNIfTIFile(in); err != nil {
		t.Fatal(err)
	}
	cleanName := filepath.Join(dir, "clean.nii")
	if err := volume.WriteNIfTIFile(cleanName, clean, volume.NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	if clean, err = volume.ReadNIfTIFile(cleanName); err != nil {
		t.Fatal(err)
	}
	flat := flatMask(clean, 40)
	nflat := 0
	for _, f := range flat {
		if f {
			nflat++
		}
	}
	if nflat < 1000 {
		t.Fatalf("only %d flat voxels to measure noise in", nflat)
	}
	before := rmse(noisy.Data, clean.Data, flat)
	for _, tc := range []struct {
		method string
		args   []string
		gain   float64 // at least this factor less error in flat voxels
	}{
		{"gaussian", []string{"--sigma", "0.6"}, 2},
		{"bilateral", []string{"--sigma", "0.6", "--sigma-range", "40"}, 2},
		{"nlm", []string{"--patch-radius", "1", "--search-radius", "2", "--noise", "20"}, 2},
	} {
		t.Run(tc.method, func(t *testing.T) {
			out := filepath.Join(dir, tc.method+".nii")
			env, stdout, stderr := testEnv(nil)
			args := append([]string{"denoise", in, "-o", out, "--method", tc.method, "--backend", "cpu"}, tc.args...)
			if err := runEnv(t.Context(), env, args); err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr)
			}
			if !strings.Contains(stdout.String(), "wrote "+out+": 96×80×5") {
				t.Errorf("stdout: %s", stdout)
			}
			got, err := volume.ReadNIfTIFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Size != clean.Size {
				t.Fatalf("size %v, want %v", got.Size, clean.Size)
			}
			ga, ca := got.Affine(), clean.Affine()
			for rr := range 3 {
				for cc := range 4 {
					if math.Abs(ga[rr][cc]-ca[rr][cc]) > 1e-3 {
						t.Fatalf("affine %v, want %v", ga, ca)
					}
				}
			}
			after := rmse(got.Values(), clean.Data, flat)
			t.Logf("%s: RMSE in %d flat voxels %.2f HU -> %.2f HU; everywhere %.2f -> %.2f", tc.method, nflat, before, after,
				rmse(noisy.Data, clean.Data, nil), rmse(got.Values(), clean.Data, nil))
			if after*tc.gain > before {
				t.Errorf("%s: RMSE %.2f HU after, %.2f before: want at least %.1f× less", tc.method, after, before, tc.gain)
			}
		})
	}
}

func TestDenoiseUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"in.nii", "-o", "out.nii"}, "--method is required"},
		{[]string{"in.nii", "--method", "nlm"}, "--out"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "median"}, "must be one of"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "gaussian", "--sigma", "0"}, "must be above 0"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "gaussian", "--sigma", "NaN"}, "not a number"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "nlm", "--noise", "0"}, "needs --h"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "nlm", "--patch-radius", "-1"}, "patch-radius"},
		{[]string{"in.txt", "-o", "out.nii", "--method", "nlm"}, "must end in .nii"},
		{[]string{"-o", "out.nii", "--method", "nlm"}, "missing argument"},
		{[]string{"in.nii", "-o", "out.nii", "--method", "nlm", "--backend", "tpu"}, "must be one of cpu, cuda, auto"},
	} {
		env, _, _ := testEnv(nil)
		err := runEnv(t.Context(), env, append([]string{"denoise"}, tc.args...))
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v (exit %d), want a usage error with %q", tc.args, err, exitCode(err), tc.want)
		}
	}
	// A file that is not NIfTI is an error, not a usage error.
	bad := filepath.Join(t.TempDir(), "bad.nii")
	env, _, _ := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"denoise", bad, "-o", bad + ".out.nii", "--method", "gaussian"}); err == nil || exitCode(err) != 1 {
		t.Errorf("missing input: got %v", err)
	}
}

// --backend cuda in a binary without CUDA (or on a machine without a GPU)
// is an error naming the reason, not a silent run on the CPU.
func TestDenoiseBackendCUDAMissing(t *testing.T) {
	if _, _, err := kernels.Open("cuda"); err == nil {
		t.Skip("this build has a working CUDA backend")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.nii")
	v := &volume.Volume{Size: [4]int{4, 3, 2, 1}, Spacing: [3]float64{1, 1, 1},
		Axes: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, Data: make([]float32, 24)}
	if err := volume.WriteNIfTIFile(in, v, volume.NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	env, _, _ := testEnv(nil)
	err := runEnv(t.Context(), env, []string{"denoise", in, "-o", filepath.Join(dir, "out.nii"), "--method", "gaussian", "--backend", "cuda"})
	if !errors.Is(err, kernels.ErrNoDevice) || exitCode(err) != 1 {
		t.Fatalf("denoise --backend cuda = %v (exit %d), want ErrNoDevice, exit 1", err, exitCode(err))
	}
	if _, err := os.Stat(filepath.Join(dir, "out.nii")); !os.IsNotExist(err) {
		t.Errorf("an output was written: %v", err)
	}
}
