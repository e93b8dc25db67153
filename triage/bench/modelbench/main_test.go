package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/radtriage/radtriage/triage/bench/benchio"
)

// TestRunParityNets runs the program on triage's parity nets (the ONNX
// models and PyTorch goldens of triage/testdata/parity) and checks the
// outputs it writes against PyTorch's.
func TestRunParityNets(t *testing.T) {
	src := filepath.Join("..", "..", "testdata", "parity")
	raw, err := os.ReadFile(filepath.Join(src, "parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nets []modelInfo
	if err := json.Unmarshal(raw, &nets); err != nil {
		t.Fatal(err)
	}
	if len(nets) == 0 {
		t.Fatal("no nets in parity.json")
	}
	for _, net := range nets {
		t.Run(net.Name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(src, net.Name+".onnx"), filepath.Join(dir, net.Name+".onnx"))
			copyFile(t, filepath.Join(src, net.Name+".in.f32"), filepath.Join(dir, "x.f32"))
			js, _ := json.Marshal([]modelInfo{net})
			if err := os.WriteFile(filepath.Join(dir, "models.json"), js, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := run(dir, 1, true, ""); err != nil {
				t.Fatal(err)
			}
			got, err := benchio.ReadF32(filepath.Join(dir, net.Name+".radtriage.f32"), benchio.Numel(net.Output))
			if err != nil {
				t.Fatal(err)
			}
			want, err := benchio.ReadF32(filepath.Join(src, net.Name+".out.f32"), benchio.Numel(net.Output))
			if err != nil {
				t.Fatal(err)
			}
			var maxDiff float64
			for i := range got {
				maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			if !(maxDiff <= 1e-4) {
				t.Errorf("max abs diff from PyTorch %g, want <= 1e-4", maxDiff)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, 1, false, ""); err == nil {
		t.Error("no models.json: want an error")
	}
	js := `[{"name":"missing","input":[1,1,2,2,2],"output":[1,1,2,2,2]}]`
	if err := os.WriteFile(filepath.Join(dir, "models.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x.f32"), make([]byte, 4*7), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, 1, false, ""); err == nil {
		t.Error("x.f32 of the wrong size: want an error")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
