package kernels

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/radtriage/radtriage/kernels/internal/gemm"
)

// TestConvPaths runs the random conv and gemm checks of the suite on the
// CPU backend with each of its code paths: every micro-kernel of the GEMM
// core that can run here other than the default (the suite runs that
// one), plain Go always among them, and im2col rows always gathered
// instead of read in place.
func TestConvPaths(t *testing.T) {
	def := gemm.Kernel()
	for _, k := range gemm.Kernels() {
		if k == def {
			continue
		}
		t.Run(k, func(t *testing.T) {
			defer gemm.SetKernel(gemm.SetKernel(k))
			b := NewCPU()
			defer b.Close()
			confConvRandom(t, b)
			confGemmRandom(t, b)
			confConvGolden(t, b)
		})
	}
	t.Run("gather", func(t *testing.T) {
		convDirect = false
		defer func() { convDirect = true }()
		b := NewCPU()
		defer b.Close()
		confConvRandom(t, b)
	})
}

// confConv checks PrepareConv/RunConv (convolution and transposed
// convolution) and Gemm against naive loops written here, over random
// shapes, and against the PyTorch goldens (testdata/golden_conv.py).
//
// Tolerance: inputs and weights are in [-1, 1], so each of the K terms
// of an output is at most 1 in magnitude and float32 accumulation (in
// any order, with or without FMA) stays within K·2^-24 of the exact sum;
// the checks allow 2e-6·K + 1e-5 absolute plus 1e-4 relative, well below
// the error of one missing or misplaced term.
func confConv(t *testing.T, b Backend) {
	runChecks(t, b, []backendCheck{
		{"random", confConvRandom},
		{"gemm", confGemmRandom},
		{"golden", confConvGolden},
		{"errors", confConvErrors},
	})
}

// refConv is refConv64 rounded to float32, then the activation.
func refConv(s ConvSpec, x, w, bias []float32) []float32 {
	acc, _ := refConv64(s, x, w, bias)
	y := make([]float32, len(acc))
	for i, v := range acc {
		y[i] = s.Act.Apply(float32(v))
	}
	return y
}

// refConv64 is the naive convolution (or transposed convolution, as a
// scatter) in float64 with bias (nil: none), no activation; it returns the
// output and its size.
func refConv64(s ConvSpec, x, w, bias []float32) ([]float64, [3]int) {
	out, err := s.Out()
	if err != nil {
		panic(err)
	}
	in, k := s.In, s.Kernel
	var st, dl [3]int
	for a := range 3 {
		st[a], dl[a] = max(s.Stride[a], 1), max(s.Dilation[a], 1)
	}
	kv, iv, ov := Voxels(k), Voxels(in), Voxels(out)
	y := make([]float64, s.N*s.Cout*ov)
	for n := range s.N {
		for co := range s.Cout {
			if bias != nil {
				for i := range ov {
					y[(n*s.Cout+co)*ov+i] = float64(bias[co])
				}
			}
			for ci := range s.Cin {
				wo := (co*s.Cin + ci) * kv
				if s.Transpose {
					wo = (ci*s.Cout + co) * kv
				}
				for kd := range k[0] {
					for kh := range k[1] {
						for kw := range k[2] {
							wt := float64(w[wo+(kd*k[1]+kh)*k[2]+kw])
							// Transposed: input voxel i feeds output
							// i*stride - pad + tap*dilation.
							if s.Transpose {
								for id := range in[0] {
									for ih := range in[1] {
										for iw := range in[2] {
											od := id*st[0] - s.PadBegin[0] + kd*dl[0]
											oh := ih*st[1] - s.PadBegin[1] + kh*dl[1]
											ow := iw*st[2] - s.PadBegin[2] + kw*dl[2]
											if od < 0 || od >= out[0] || oh < 0 || oh >= out[1] || ow < 0 || ow >= out[2] {
												continue
											}
											y[(n*s.Cout+co)*ov+(od*out[1]+oh)*out[2]+ow] += wt * float64(x[(n*s.Cin+ci)*iv+(id*in[1]+ih)*in[2]+iw])
										}
									}
								}
								continue
							}
							for od := range out[0] {
								for oh := range out[1] {
									for ow := range out[2] {
										id := od*st[0] - s.PadBegin[0] + kd*dl[0]
										ih := oh*st[1] - s.PadBegin[1] + kh*dl[1]
										iw := ow*st[2] - s.PadBegin[2] + kw*dl[2]
										if id < 0 || id >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2] {
											continue
										}
										y[(n*s.Cout+co)*ov+(od*out[1]+oh)*out[2]+ow] += wt * float64(x[(n*s.Cin+ci)*iv+(id*in[1]+ih)*in[2]+iw])
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return y, out
}

func randVals(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (rng.Float32()*2 - 1) * scale
	}
	return v
}

// runConvOn prepares and runs s on b, returning the output.
func runConvOn(t *testing.T, b Backend, s ConvSpec, x, w, bias []float32) []float32 {
	t.Helper()
	cv, err := b.PrepareConv(s, w, bias)
	if err != nil {
		t.Fatalf("PrepareConv %+v: %v", s, err)
	}
	defer b.ReleaseConv(cv)
	n := s.N * s.Cout * Voxels(cv.Out)
	dst := alloc(t, b, n)
	if err := b.RunConv(cv, dst, upload(t, b, x)); err != nil {
		t.Fatalf("RunConv %+v: %v", s, err)
	}
	return download(t, b, dst, n)
}

func confConvRandom(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(7, 11))
	acts := []Activation{{}, {Kind: ActReLU}, {Kind: ActLeakyReLU, Alpha: 0.2}, {Kind: ActSigmoid}}
	fixed := []ConvSpec{
		{N: 2, Cin: 3, Cout: 5, In: [3]int{5, 6, 7}, Kernel: [3]int{1, 1, 1}, Bias: true},
		{N: 1, Cin: 2, Cout: 3, In: [3]int{6, 7, 5}, Kernel: [3]int{5, 5, 5}, PadBegin: [3]int{2, 2, 2}, PadEnd: [3]int{2, 2, 2}},
		{N: 1, Cin: 1, Cout: 9, In: [3]int{9, 9, 30}, Kernel: [3]int{3, 3, 3}, PadBegin: [3]int{1, 1, 1}, PadEnd: [3]int{1, 1, 1}, Bias: true},
		{N: 2, Cin: 4, Cout: 3, In: [3]int{4, 4, 4}, Kernel: [3]int{2, 2, 2}, Stride: [3]int{2, 2, 2}, Transpose: true, Bias: true},
		{N: 1, Cin: 3, Cout: 2, In: [3]int{3, 4, 5}, Kernel: [3]int{5, 5, 5}, Transpose: true},
		{N: 1, Cin: 2, Cout: 2, In: [3]int{4, 3, 3}, Kernel: [3]int{1, 1, 1}, Stride: [3]int{2, 3, 2}, OutputPadding: [3]int{1, 2, 0}, Transpose: true, Bias: true},
		// Rows of 24 and more voxels: im2col rows read in place.
		{N: 2, Cin: 3, Cout: 5, In: [3]int{3, 4, 50}, Kernel: [3]int{2, 3, 3}, Dilation: [3]int{1, 1, 2}, PadBegin: [3]int{0, 1, 3}, PadEnd: [3]int{1, 0, 1}, Bias: true},
		{N: 1, Cin: 2, Cout: 3, In: [3]int{3, 3, 40}, Kernel: [3]int{3, 3, 3}, PadBegin: [3]int{1, 2, 1}, PadEnd: [3]int{1, 0, 2}, Transpose: true, Bias: true},
		// K above one block of the GEMM core (KC = 256), Cout not a
		// multiple of its tile.
		{N: 1, Cin: 11, Cout: 7, In: [3]int{5, 5, 6}, Kernel: [3]int{3, 3, 3}, PadBegin: [3]int{1, 1, 1}, PadEnd: [3]int{1, 1, 1}, Bias: true},
	}
	ran := 0
	for i := 0; i < 60+len(fixed); i++ {
		var s ConvSpec
		if i < len(fixed) {
			s = fixed[i]
			s.Act = acts[i%len(acts)]
		} else {
			s = ConvSpec{N: 1 + rng.IntN(2), Cin: 1 + rng.IntN(4), Cout: 1 + rng.IntN(6), Transpose: rng.IntN(2) == 1,
				Bias: rng.IntN(2) == 1, Act: acts[rng.IntN(len(acts))]}
			if s.Act.Kind == ActLeakyReLU {
				s.Act.Alpha = 0.05
			}
			for a := range 3 {
				s.In[a] = 1 + rng.IntN(7)
				s.Kernel[a] = 1 + rng.IntN(3)
				s.Stride[a] = rng.IntN(4) // 0 means 1
				s.Dilation[a] = rng.IntN(3)
				s.PadBegin[a] = rng.IntN(3)
				s.PadEnd[a] = rng.IntN(3)
				if s.Transpose {
					s.OutputPadding[a] = rng.IntN(max(s.Stride[a], s.Dilation[a], 1))
				}
			}
			if _, err := s.Out(); err != nil {
				continue // an invalid draw: the error cases are tested apart
			}
		}
		x := randVals(rng, s.N*s.Cin*Voxels(s.In), 1)
		w := randVals(rng, s.WeightLen(), 1)
		var bias []float32
		if s.Bias {
			bias = randVals(rng, s.Cout, 1)
		}
		got := runConvOn(t, b, s, x, w, bias)
		K := s.Cin * Voxels(s.Kernel)
		closeTo(t, fmt.Sprintf("case %d %+v", i, s), got, refConv(s, x, w, bias), 2e-6*float64(K)+1e-5, 1e-4)
		ran++
	}
	if ran < 40 {
		t.Fatalf("only %d valid random specs drawn", ran)
	}
}

// refGemm is alpha*op(a)·op(b) + beta*c in float64.
func refGemm(a, b, c []float32, m, n, k int, transA, transB bool, alpha, beta float32, cLen int) []float32 {
	y := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av, bv := a[i*k+p], b[p*n+j]
				if transA {
					av = a[p*m+i]
				}
				if transB {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
			}
			s *= float64(alpha)
			if c != nil {
				switch cLen {
				case m * n:
					s += float64(beta) * float64(c[i*n+j])
				case n:
					s += float64(beta) * float64(c[j])
				case m:
					s += float64(beta) * float64(c[i])
				}
			}
			y[i*n+j] = float32(s)
		}
	}
	return y
}

func confGemmRandom(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(5, 9))
	shapes := [][3]int{{1, 1, 1}, {4, 24, 8}, {7, 50, 3}, {3, 5, 300}, {33, 25, 17}, {2, 100, 600}}
	for i, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for variant := 0; variant < 4; variant++ {
			transA, transB := variant&1 == 1, variant&2 == 2
			alpha, beta := float32(1), float32(0.5)
			if variant == 3 {
				alpha = -0.75
			}
			cLen := []int{0, m * n, n, m}[(i+variant)%4]
			if cLen == n && m == n && variant%2 == 1 {
				cLen = m * n
			}
			a := randVals(rng, m*k, 1)
			bb := randVals(rng, k*n, 1)
			var c []float32
			var cBuf *Buffer
			if cLen > 0 {
				c = randVals(rng, cLen, 1)
				cBuf = upload(t, b, c)
			}
			dst := alloc(t, b, m*n)
			if err := b.Gemm(dst, upload(t, b, a), upload(t, b, bb), cBuf, m, n, k, transA, transB, alpha, beta, cLen); err != nil {
				t.Fatalf("Gemm m=%d n=%d k=%d: %v", m, n, k, err)
			}
			closeTo(t, fmt.Sprintf("gemm m=%d n=%d k=%d tA=%v tB=%v cLen=%d", m, n, k, transA, transB, cLen),
				download(t, b, dst, m*n), refGemm(a, bb, c, m, n, k, transA, transB, alpha, beta, cLen), 2e-6*float64(k)+1e-5, 1e-4)
		}
	}
}

func confConvGolden(t *testing.T, b Backend) {
	for name, g := range readGoldens(t, "conv") {
		t.Run(name, func(t *testing.T) {
			y := g.tensor(t, "y")
			switch g.Op {
			case "gemm":
				var m, n, k, cLen int
				var transA, transB bool
				var alpha, beta float32
				g.params(t, "m", &m, "n", &n, "k", &k, "trans_a", &transA, "trans_b", &transB,
					"alpha", &alpha, "beta", &beta, "c_len", &cLen)
				var cBuf *Buffer
				if cLen > 0 {
					cBuf = upload(t, b, g.tensor(t, "c").Data)
				}
				dst := alloc(t, b, m*n)
				if err := b.Gemm(dst, upload(t, b, g.tensor(t, "a").Data), upload(t, b, g.tensor(t, "b").Data), cBuf,
					m, n, k, transA, transB, alpha, beta, cLen); err != nil {
					t.Fatal(err)
				}
				closeTo(t, name, download(t, b, dst, m*n), y.Data, 2e-6*float64(k)+1e-5, 1e-4)
			case "conv3d", "conv_transpose3d":
				var s ConvSpec
				var act ActKind
				g.params(t, "n", &s.N, "cin", &s.Cin, "cout", &s.Cout, "in", &s.In, "kernel", &s.Kernel,
					"stride", &s.Stride, "dilation", &s.Dilation, "pad_begin", &s.PadBegin,
					"pad_end", &s.PadEnd, "output_padding", &s.OutputPadding, "transpose", &s.Transpose,
					"bias", &s.Bias, "act", &act, "alpha", &s.Act.Alpha)
				s.Act.Kind = act
				var bias []float32
				if s.Bias {
					bias = g.tensor(t, "b").Data
				}
				out, err := s.Out()
				if err != nil {
					t.Fatal(err)
				}
				if want := []int{s.N, s.Cout, out[0], out[1], out[2]}; fmt.Sprint(want) != fmt.Sprint(y.Shape) {
					t.Fatalf("output shape %v, PyTorch %v", want, y.Shape)
				}
				got := runConvOn(t, b, s, g.tensor(t, "x").Data, g.tensor(t, "w").Data, bias)
				K := s.Cin * Voxels(s.Kernel)
				closeTo(t, name, got, y.Data, 2e-6*float64(K)+1e-5, 1e-4)
			default:
				t.Fatalf("unknown op %q", g.Op)
			}
		})
	}
}

func confConvErrors(t *testing.T, b Backend) {
	good := ConvSpec{N: 1, Cin: 2, Cout: 3, In: [3]int{4, 4, 4}, Kernel: [3]int{3, 3, 3}, Bias: true}
	w := make([]float32, good.WeightLen())
	bias := make([]float32, 3)
	isShape := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s: got %v, want ErrShape", what, err)
		}
	}
	bad := []ConvSpec{}
	for _, f := range []func(*ConvSpec){
		func(s *ConvSpec) { s.Cin = 0 },
		func(s *ConvSpec) { s.Kernel[1] = 0 },
		func(s *ConvSpec) { s.Kernel[2] = 9 }, // larger than the input
		func(s *ConvSpec) { s.Stride[0] = -1 },
		func(s *ConvSpec) { s.PadEnd[2] = -1 },
		func(s *ConvSpec) { s.OutputPadding[0] = 1 }, // not transposed
		func(s *ConvSpec) { s.Transpose, s.Stride[0], s.OutputPadding[0] = true, 2, 2 },
		func(s *ConvSpec) { s.Act.Kind = 99 },
		func(s *ConvSpec) { s.In[0] = 1 << 30 },
	} {
		s := good
		f(&s)
		bad = append(bad, s)
	}
	for _, s := range bad {
		_, err := b.PrepareConv(s, make([]float32, max(0, min(s.WeightLen(), 1<<20))), bias)
		isShape(fmt.Sprintf("spec %+v", s), err)
	}
	_, err := b.PrepareConv(good, w[1:], bias)
	isShape("short weights", err)
	_, err = b.PrepareConv(good, w, bias[1:])
	isShape("short bias", err)
	nb := good
	nb.Bias = false
	_, err = b.PrepareConv(nb, w, bias)
	isShape("bias without spec.Bias", err)

	cv, err := b.PrepareConv(good, w, bias)
	if err != nil {
		t.Fatal(err)
	}
	in := good.N * good.Cin * Voxels(good.In)
	out := good.N * good.Cout * Voxels(cv.Out)
	src, dst := alloc(t, b, in), alloc(t, b, out)
	isShape("short source", b.RunConv(cv, dst, alloc(t, b, in-1)))
	isShape("short destination", b.RunConv(cv, alloc(t, b, out-1), src))
	i16, err := b.Alloc(Int16, in)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free(i16)
	isShape("int16 source", b.RunConv(cv, dst, i16))
	big := alloc(t, b, max(in, out))
	isShape("in place", b.RunConv(cv, big, big))
	if err := b.RunConv(cv, dst, src); err != nil {
		t.Fatalf("valid RunConv: %v", err)
	}
	other := NewCPU()
	defer other.Close()
	foreign, err := other.Alloc(Float32, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RunConv(cv, dst, foreign); !errors.Is(err, ErrBackend) {
		t.Errorf("source of another backend: got %v, want ErrBackend", err)
	}
	ocv, err := other.PrepareConv(good, w, bias)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RunConv(ocv, dst, src); !errors.Is(err, ErrBackend) {
		t.Errorf("conv of another backend: got %v, want ErrBackend", err)
	}
	if err := b.RunConv(nil, dst, src); !errors.Is(err, ErrBackend) {
		t.Errorf("nil conv: got %v, want ErrBackend", err)
	}
	b.ReleaseConv(cv)
	if err := b.RunConv(cv, dst, src); !errors.Is(err, ErrBackend) {
		t.Errorf("released conv: got %v, want ErrBackend", err)
	}

	// Gemm.
	a4, b4, d4 := alloc(t, b, 4), alloc(t, b, 4), alloc(t, b, 4)
	isShape("gemm m=0", b.Gemm(d4, a4, b4, nil, 0, 2, 2, false, false, 1, 0, 0))
	isShape("gemm short a", b.Gemm(d4, a4, b4, nil, 2, 2, 3, false, false, 1, 0, 0))
	isShape("gemm short dst", b.Gemm(alloc(t, b, 3), a4, b4, nil, 2, 2, 2, false, false, 1, 0, 0))
	isShape("gemm c length", b.Gemm(d4, a4, b4, alloc(t, b, 3), 2, 2, 2, false, false, 1, 1, 3))
	isShape("gemm short c", b.Gemm(d4, a4, b4, alloc(t, b, 1), 2, 2, 2, false, false, 1, 1, 4))
	if err := b.Gemm(d4, a4, foreign, nil, 2, 2, 2, false, false, 1, 0, 0); !errors.Is(err, ErrBackend) {
		t.Errorf("gemm b of another backend: got %v, want ErrBackend", err)
	}
	if err := b.Gemm(d4, a4, b4, nil, 2, 2, 2, false, false, 1, 0, 0); err != nil {
		t.Errorf("valid gemm: %v", err)
	}
}
