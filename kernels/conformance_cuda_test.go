//go:build cuda

package kernels

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// openCUDATest opens the CUDA backend, or skips the test where no device
// answers (fails instead under RADTRIAGE_REQUIRE_GPU=1, as on GPU CI).
func openCUDATest(tb testing.TB) Backend {
	tb.Helper()
	b, reason, err := Open("cuda")
	if err != nil {
		if os.Getenv("RADTRIAGE_REQUIRE_GPU") == "1" {
			tb.Fatalf("RADTRIAGE_REQUIRE_GPU=1 but no CUDA backend: %v", err)
		}
		if !errors.Is(err, ErrNoDevice) {
			tb.Fatalf("Open(cuda): %v, want an error wrapping ErrNoDevice", err)
		}
		tb.Skipf("no CUDA device: %s", reason)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestConformanceCUDA(t *testing.T) {
	b := openCUDATest(t)
	t.Logf("backend: %s", b.Name())
	runConformance(t, b)
}

// TestOpenAutoWithoutDevice checks that a cuda build on a machine whose
// driver answers no device falls back to the CPU instead of exiting (see
// cuda_open.go).
func TestOpenAutoWithoutDevice(t *testing.T) {
	b, reason, err := Open("auto")
	if err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	if cerr := cuInitError(); cerr != nil {
		if b != CPU() {
			t.Fatalf("Open(auto) with cuInit failing (%v) gave %s", cerr, b.Name())
		}
		t.Logf("no device, CPU chosen: %s", reason)
		return
	}
	t.Logf("Open(auto): %s (%s)", b.Name(), reason)
	if b != CPU() {
		b.Close()
	}
}

// TestCUDAConvTiles checks the tile shapes and sub-pixel phases of the
// CUDA convolution beyond the suite's sizes: every Cout range (16, 32 and
// 64-row tiles, more than one tile of rows and of columns), strided,
// dilated and padded convolutions and transposed ones, against the naive
// reference refConv (float64 sums). Tolerance 1e-4 + 1e-4 relative.
func TestCUDAConvTiles(t *testing.T) {
	b := openCUDATest(t)
	rng := rand.New(rand.NewPCG(7, 7))
	c3 := func(v ...int) [3]int { return [3]int{v[0], v[1], v[2]} }
	specs := []ConvSpec{
		{N: 2, Cin: 3, Cout: 16, In: c3(9, 8, 7), Kernel: c3(3, 3, 3), PadBegin: c3(1, 1, 1), PadEnd: c3(1, 1, 1), Bias: true, Act: Activation{Kind: ActReLU}},
		{N: 1, Cin: 5, Cout: 17, In: c3(6, 11, 9), Kernel: c3(3, 2, 3), Stride: c3(2, 1, 2), PadBegin: c3(1, 0, 2), PadEnd: c3(0, 1, 1), Bias: true},
		{N: 1, Cin: 4, Cout: 33, In: c3(7, 7, 13), Kernel: c3(3, 3, 3), Dilation: c3(2, 1, 2), PadBegin: c3(2, 1, 2), PadEnd: c3(2, 1, 2), Act: Activation{Kind: ActLeakyReLU, Alpha: 0.1}},
		{N: 2, Cin: 2, Cout: 70, In: c3(5, 6, 7), Kernel: c3(1, 1, 1), Bias: true, Act: Activation{Kind: ActSigmoid}},
		{N: 1, Cin: 6, Cout: 32, In: c3(5, 4, 6), Kernel: c3(2, 2, 2), Stride: c3(2, 2, 2), Transpose: true, Bias: true},
		{N: 2, Cin: 3, Cout: 20, In: c3(4, 5, 3), Kernel: c3(3, 3, 3), Stride: c3(2, 3, 2), PadBegin: c3(1, 0, 2), PadEnd: c3(0, 1, 1), OutputPadding: c3(1, 2, 0), Transpose: true},
		{N: 1, Cin: 2, Cout: 65, In: c3(3, 4, 5), Kernel: c3(3, 2, 3), Stride: c3(3, 2, 1), Dilation: c3(2, 3, 1), PadBegin: c3(2, 1, 0), PadEnd: c3(1, 0, 1), Transpose: true, Bias: true, Act: Activation{Kind: ActReLU}},
		{N: 1, Cin: 3, Cout: 4, In: c3(2, 2, 2), Kernel: c3(2, 2, 2), Stride: c3(4, 4, 4), Transpose: true, Bias: true}, // phases with no taps
	}
	for i, s := range specs {
		if _, err := s.Out(); err != nil {
			t.Fatalf("spec %d: %v", i, err)
		}
		x := randVals(rng, s.N*s.Cin*Voxels(s.In), 1)
		w := randVals(rng, s.WeightLen(), 0.5)
		var bias []float32
		if s.Bias {
			bias = randVals(rng, s.Cout, 0.5)
		}
		closeTo(t, fmt.Sprintf("conv spec %d", i), runConvOn(t, b, s, x, w, bias), refConv(s, x, w, bias), 1e-4, 1e-4)
	}
}

// TestCUDAGemmTiles checks Gemm across tile edges and transposes against
// refGemm.
func TestCUDAGemmTiles(t *testing.T) {
	b := openCUDATest(t)
	rng := rand.New(rand.NewPCG(8, 8))
	for _, sz := range [][3]int{{1, 1, 1}, {65, 70, 17}, {130, 3, 33}, {7, 129, 64}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			a, bm, cm := randVals(rng, m*k, 1), randVals(rng, k*n, 1), randVals(rng, m*n, 1)
			const alpha, beta = 0.7, -1.3
			want := refGemm(a, bm, cm, m, n, k, tr[0], tr[1], alpha, beta, m*n)
			checkOp(t, b, fmt.Sprintf("gemm %v %v", sz, tr), want, 1e-4, 1e-4, func(dst *Buffer) error {
				return b.Gemm(dst, upload(t, b, a), upload(t, b, bm), upload(t, b, cm), m, n, k, tr[0], tr[1], alpha, beta, m*n)
			})
		}
	}
}
