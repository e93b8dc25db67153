package kernels

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The conformance suite: every Backend runs it (TestConformanceCPU here,
// TestConformanceCUDA in the cuda build where a device answers). Each
// group checks its operations against naive reference loops written in
// the tests and against PyTorch outputs (testdata/golden, made by the
// testdata/golden_*.py scripts with Debian's python3-torch).
func runConformance(t *testing.T, b Backend) {
	runChecks(t, b, []backendCheck{
		{"core", confCore},
		{"prep", confPrep},
		{"nn", confNN},
		{"conv", confConv},
		{"denoise", confDenoise},
	})
}

// backendCheck is one named test of a backend: a group of the suite, or a test
// of a group.
type backendCheck struct {
	name string
	run  func(t *testing.T, b Backend)
}

// runChecks runs each check on b as a subtest.
func runChecks(t *testing.T, b Backend, checks []backendCheck) {
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

func TestConformanceCPU(t *testing.T) { runConformance(t, NewCPU()) }

// golden is one PyTorch reference case: the operation, its parameters,
// and named tensors (inputs and expected outputs).
type golden struct {
	Op      string                     `json:"op"`
	Params  map[string]json.RawMessage `json:"params"`
	Tensors map[string]goldenTensor    `json:"tensors"`
}

type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

// readGoldens reads every case of a group (testdata/golden/GROUP/*.json),
// keyed by file name without the extension. A group with no files fails:
// the goldens are committed.
func readGoldens(t *testing.T, group string) map[string]golden {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", group, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files for %s (testdata/golden_%s.py makes them): %v", group, group, err)
	}
	out := make(map[string]golden, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name, x := range g.Tensors {
			n := 1
			for _, d := range x.Shape {
				n *= d
			}
			if n != len(x.Data) {
				t.Fatalf("%s: tensor %s has %d values for shape %v", f, name, len(x.Data), x.Shape)
			}
		}
		out[filepath.Base(f[:len(f)-len(".json")])] = g
	}
	return out
}

// param decodes one parameter of a golden case into v.
func (g golden) param(t *testing.T, name string, v any) {
	t.Helper()
	raw, ok := g.Params[name]
	if !ok {
		t.Fatalf("golden %s: no parameter %q", g.Op, name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("golden %s: parameter %q: %v", g.Op, name, err)
	}
}

// params decodes several parameters of a golden case, each as param:
// name, pointer, name, pointer, ...
func (g golden) params(t *testing.T, namesAndPtrs ...any) {
	t.Helper()
	if len(namesAndPtrs)%2 != 0 {
		t.Fatalf("golden %s: params of %d arguments, want name and pointer pairs", g.Op, len(namesAndPtrs))
	}
	for i := 0; i < len(namesAndPtrs); i += 2 {
		name, ok := namesAndPtrs[i].(string)
		if !ok {
			t.Fatalf("golden %s: params argument %d is %T, want a parameter name", g.Op, i, namesAndPtrs[i])
		}
		g.param(t, name, namesAndPtrs[i+1])
	}
}

// tensor returns a named tensor of a golden case.
func (g golden) tensor(t *testing.T, name string) goldenTensor {
	t.Helper()
	x, ok := g.Tensors[name]
	if !ok {
		t.Fatalf("golden %s: no tensor %q", g.Op, name)
	}
	return x
}

// upload allocates a buffer on b holding data, freed at cleanup.
func upload(t *testing.T, b Backend, data []float32) *Buffer {
	t.Helper()
	buf := alloc(t, b, len(data))
	if err := b.Upload(buf, data); err != nil {
		t.Fatal(err)
	}
	return buf
}

// alloc allocates an n-element float32 buffer on b, freed at cleanup.
func alloc(t *testing.T, b Backend, n int) *Buffer {
	t.Helper()
	return allocOf(t, b, Float32, n)
}

// allocOf allocates an n-element buffer of type dt on b, freed at
// cleanup.
func allocOf(t *testing.T, b Backend, dt DType, n int) *Buffer {
	t.Helper()
	buf, err := b.Alloc(dt, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Free(buf) })
	return buf
}

// badBuffers returns float32 buffers that b must refuse with ErrBackend:
// one of another backend (n elements) and one of b's, freed (in a size
// class of its own, so that no later Alloc of the test revives it).
func badBuffers(t *testing.T, b Backend, n int) (foreign, freed *Buffer) {
	t.Helper()
	other := NewCPU()
	t.Cleanup(func() { other.Close() })
	foreign, err := other.Alloc(Float32, n)
	if err != nil {
		t.Fatal(err)
	}
	if freed, err = b.Alloc(Float32, 3<<11); err != nil {
		t.Fatal(err)
	}
	b.Free(freed)
	return foreign, freed
}

// download reads n float32 values back from buf.
func download(t *testing.T, b Backend, buf *Buffer, n int) []float32 {
	t.Helper()
	out := make([]float32, n)
	if err := b.Download(out, buf); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkOp runs op into a fresh float32 buffer of len(want) values and
// compares what it wrote with want (closeTo).
func checkOp(t *testing.T, b Backend, what string, want []float32, abs, rel float64, op func(dst *Buffer) error) {
	t.Helper()
	dst := alloc(t, b, len(want))
	if err := op(dst); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	closeTo(t, what, download(t, b, dst, len(want)), want, abs, rel)
}

// closeTo fails t unless got and want agree element by element within
// abs + rel*|want|, reporting the worst element.
func closeTo(t *testing.T, what string, got, want []float32, abs, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, g, w)
		}
		if math.IsNaN(w) {
			continue
		}
		d := math.Abs(g-w) - (abs + rel*math.Abs(w))
		if d > worst || (at < 0 && d > 0) {
			worst, at = d, i
		}
	}
	if at >= 0 && worst > 0 {
		t.Fatalf("%s[%d] = %v, want %v (tolerance %g + %g×|want| exceeded by %g)", what, at, got[at], want[at], abs, rel, worst)
	}
}
