package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/volume"
)

// runVolume runs "radtriage volume" with args as main would and returns
// the exit status: 0 done, 1 error, 2 usage; errors go to stderr.
func runVolume(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, append([]string{"volume"}, args...), stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "radtriage:", err)
	return exitCode(err)
}

// runVolumeTest runs the volume command with args and the given
// environment variables.
func runVolumeTest(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env, out, errw := testEnv(vars)
	err := runVolumeEnv(t.Context(), env, args)
	if err != nil {
		errw.WriteString("radtriage: " + err.Error() + "\n")
		return exitCode(err), out.String(), errw.String()
	}
	return 0, out.String(), errw.String()
}

func TestVolumeWritesChosenSeries(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	out := filepath.Join(t.TempDir(), "ct.nii.gz")
	var stdout, stderr bytes.Buffer
	if code := runVolume(t.Context(), []string{dir, "-o", out, "--sidecar"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"chose series", "skipped DIRFILE"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "wrote "+out+": 512×512×28") {
		t.Errorf("stdout: %s", stdout.String())
	}
	v, err := volume.ReadNIfTIFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if v.Size != [4]int{512, 512, 28, 1} {
		t.Errorf("size %v", v.Size)
	}
	// The same voxels as dcm2niix's reference (the conformance test in
	// package volume checks the affine and every header field).
	ref, err := volume.ReadNIfTIFile(filepath.Join(dir+".ref", "ct-head-5mm.nii.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ref.Data {
		if v.Data[i] != ref.Data[i] {
			t.Fatalf("voxel %d = %v, dcm2niix %v", i, v.Data[i], ref.Data[i])
		}
	}
	side, err := os.ReadFile(filepath.Join(filepath.Dir(out), "ct.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(side, &m); err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	if m["Modality"] != "CT" || m["SeriesInstanceUID"] == "" {
		t.Errorf("sidecar %s", side)
	}
}

func TestVolumeListAndSeries(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	code, stdout, stderr := runVolumeTest(t, nil, dir, "--list")
	if code != 0 {
		t.Fatalf("--list: exit status %d: %s", code, stderr)
	}
	for _, want := range []string{"512×512", "0.4512×0.4512×5", "axial", "DIRFILE", "skipped"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--list output lacks %q:\n%s", want, stdout)
		}
	}

	// The environment twin turns listing on too.
	code, stdout, stderr = runVolumeTest(t, map[string]string{"RADTRIAGE_LIST": "true", "RADTRIAGE_JSON": "1"}, dir)
	if code != 0 {
		t.Fatalf("RADTRIAGE_LIST: exit status %d: %s", code, stderr)
	}
	var listed listedCollection
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if len(listed.Series) != 1 || len(listed.Series[0].Stacks) != 1 || listed.Series[0].Stacks[0].Slices != 28 {
		t.Fatalf("--json: %+v", listed)
	}
	uid := listed.Series[0].UID

	out := filepath.Join(t.TempDir(), "x.nii")
	code, _, stderr = runVolumeTest(t, nil, dir, "--series", uid, "--stack", "1", "--out", out)
	if code != 0 {
		t.Fatalf("--series: exit status %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "chose series") {
		t.Errorf("--series given, yet a series was chosen: %s", stderr)
	}
	if _, err := volume.ReadNIfTIFile(out); err != nil {
		t.Fatal(err)
	}

	code, _, stderr = runVolumeTest(t, nil, dir, "--series", "1.2.3", "-o", out)
	if code != 1 || !strings.Contains(stderr, "no series 1.2.3") || !strings.Contains(stderr, uid) {
		t.Errorf("unknown series: exit status %d, stderr %s", code, stderr)
	}
	code, _, stderr = runVolumeTest(t, nil, dir, "--series", uid, "--stack", "2", "-o", out)
	if code != 2 || !strings.Contains(stderr, "has 1 stacks") {
		t.Errorf("--stack 2: exit status %d, stderr %s", code, stderr)
	}
}

func TestVolumeUsageAndErrors(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "f.txt")
	if err := os.WriteFile(file, []byte("not DICOM"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"no folder", nil, nil, 2, "missing argument: DIR"},
		{"no output", nil, []string{empty}, 2, "--out (or -o, or RADTRIAGE_OUT) is required"},
		{"bad extension", nil, []string{empty, "-o", "x.img"}, 2, `invalid --out "x.img": must end in .nii or .nii.gz`},
		{"bad extension from env", map[string]string{"RADTRIAGE_OUT": "x.nrrd"}, []string{empty}, 2, `invalid RADTRIAGE_OUT "x.nrrd"`},
		{"bad boolean", map[string]string{"RADTRIAGE_LIST": "maybe"}, []string{empty}, 2, `invalid RADTRIAGE_LIST "maybe": not a boolean`},
		{"list and out", nil, []string{empty, "--list", "-o", "x.nii"}, 2, "--list prints"},
		{"json without list", nil, []string{empty, "--json", "-o", "x.nii"}, 2, "applies only with --list"},
		{"stack without series", nil, []string{empty, "--stack", "2", "-o", "x.nii"}, 2, "needs --series"},
		{"two folders", nil, []string{empty, empty, "-o", "x.nii"}, 2, "unexpected argument"},
		{"missing folder", nil, []string{filepath.Join(empty, "nope"), "-o", "x.nii"}, 1, "no such file"},
		{"not a folder", nil, []string{file, "-o", "x.nii"}, 1, "is not a folder"},
		{"no series", nil, []string{empty, "-o", filepath.Join(empty, "x.nii")}, 1, "holds no DICOM image series (1 files skipped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runVolumeTest(t, tt.vars, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	// runVolume prints the error and maps usage errors to 2.
	var stdout, stderr bytes.Buffer
	if code := runVolume(t.Context(), []string{empty}, &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "radtriage: volume: --out") {
		t.Errorf("runVolume: exit status %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	if code := runVolume(t.Context(), []string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "RADTRIAGE_OUT") {
		t.Errorf("--help: exit status %d, stdout %q", code, stdout.String())
	}
}

func TestSidecarName(t *testing.T) {
	for in, want := range map[string]string{"a/x.nii": "a/x.json", "x.nii.gz": "x.json", "X.NII.GZ": "X.json"} {
		if got := sidecarName(in); got != want {
			t.Errorf("sidecarName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestVolumeRestoresGCPercent checks that the command's collector target
// (volumeGCPercent, when GOGC is not set) ends with the command.
func TestVolumeRestoresGCPercent(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: the command leaves the collector alone")
	}
	before := debug.SetGCPercent(137)
	defer debug.SetGCPercent(before)
	out := filepath.Join(t.TempDir(), "ct.nii")
	if code, _, stderr := runVolumeTest(t, nil, dir, "-o", out); code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	if got := debug.SetGCPercent(before); got != 137 {
		t.Errorf("GC percent %d after the command, want 137 as before it", got)
	}
}

// BenchmarkVolumeCommand runs "radtriage volume" in the process on
// ../shared/dicom/ct-head-5mm (28 slices of 512×512), to .nii and .nii.gz;
// .ci/bench-volume.sh times the whole process against dcm2niix.
func BenchmarkVolumeCommand(b *testing.B) {
	dir := filepath.Join(testenv.SharedDICOM(b), "ct-head-5mm")
	for _, ext := range []string{".nii", ".nii.gz"} {
		b.Run(ext, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "ct"+ext)
			for b.Loop() {
				os.Remove(out)
				var stdout, stderr bytes.Buffer
				if code := runVolume(b.Context(), []string{dir, "-o", out}, &stdout, &stderr); code != 0 {
					b.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
				}
			}
		})
	}
}
