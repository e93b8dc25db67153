package triage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/radtriage/radtriage/kernels"
)

// TestExecParity runs the nets that testdata/parity/make_parity.py
// exported from PyTorch and compares with PyTorch's outputs.
func TestExecParity(t *testing.T) {
	dir := filepath.Join("testdata", "parity")
	raw, err := os.ReadFile(filepath.Join(dir, "parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nets []struct {
		Name          string
		Input, Output []int
	}
	if err := json.Unmarshal(raw, &nets); err != nil {
		t.Fatal(err)
	}
	if len(nets) == 0 {
		t.Fatal("no nets in parity.json")
	}
	for _, net := range nets {
		t.Run(net.Name, func(t *testing.T) {
			m, err := ReadModelFile(filepath.Join(dir, net.Name+".onnx"), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var ops []string
			for _, n := range m.Graph.Nodes {
				ops = append(ops, n.OpType)
			}
			t.Logf("nodes: %v", ops)
			x := readF32(t, filepath.Join(dir, net.Name+".in.f32"), numel(net.Input))
			want := readF32(t, filepath.Join(dir, net.Name+".out.f32"), numel(net.Output))
			for _, opts := range []CompileOptions{{}, {NoFusion: true}} {
				p, err := Compile(m, kernels.CPU(), map[string][]int{"x": net.Input}, opts)
				if err != nil {
					t.Fatal(err)
				}
				out, err := p.Run(context.Background(), map[string][]float32{"x": x})
				if err != nil {
					t.Fatal(err)
				}
				if s := p.OutputShapes()["y"]; numel(s) != numel(net.Output) || len(s) != len(net.Output) {
					t.Fatalf("output shape %v, PyTorch %v", s, net.Output)
				}
				t.Logf("NoFusion %v: %d steps, peak %d bytes", opts.NoFusion, len(p.steps), p.PeakBytes())
				near(t, "y", out["y"], want, 1e-5, 1e-4)
				p.Close()
			}
			// A symbolic batch axis compiles for any fixed batch: two
			// copies of the input give two copies of the output.
			if in := m.Graph.Inputs[0]; len(in.Shape) > 0 && in.Shape[0].Value < 0 {
				shape := append([]int{2}, net.Input[1:]...)
				p, err := Compile(m, kernels.CPU(), map[string][]int{"x": shape}, CompileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				out, err := p.Run(context.Background(), map[string][]float32{"x": append(append([]float32{}, x...), x...)})
				if err != nil {
					t.Fatal(err)
				}
				near(t, "y batch 2", out["y"], append(append([]float32{}, want...), want...), 1e-5, 1e-4)
			}
		})
	}
}

func readF32(t *testing.T, name string, n int) []float32 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d", name, len(b), 4*n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// FuzzCompile: whatever model ReadModel accepts, Compile returns a plan
// or an error, and a plan runs, without panicking.
func FuzzCompile(f *testing.F) {
	for _, pat := range []string{"testdata/parity/*.onnx", "testdata/onnx/*.onnx"} {
		names, _ := filepath.Glob(pat)
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadModel(data, Limits{MaxBytes: 1 << 20, MaxTensorElems: 1 << 16, MaxTotalElems: 1 << 18})
		if err != nil {
			return
		}
		shapes := map[string][]int{}
		for _, in := range m.Graph.Inputs {
			if _, ok := m.Graph.Initializers[in.Name]; ok {
				continue
			}
			var s []int
			for _, d := range in.Shape {
				s = append(s, int(max(min(d.Value, 32), 1)))
			}
			if numel(s) > 1<<15 {
				return
			}
			shapes[in.Name] = s
		}
		p, err := Compile(m, kernels.CPU(), shapes, CompileOptions{})
		if err != nil {
			return
		}
		defer p.Close()
		if p.PeakBytes() > 1<<22 || len(p.steps) > 64 {
			return
		}
		inputs := map[string][]float32{}
		for name, s := range shapes {
			inputs[name] = make([]float32, numel(s))
		}
		if _, err := p.Run(context.Background(), inputs); err != nil {
			t.Logf("run: %v", err)
		}
	})
}
