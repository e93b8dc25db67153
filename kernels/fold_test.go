package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func foldRand(rng *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return x
}

// TestFoldBatchNorm checks conv-then-batch-norm against the folded conv,
// both naive loops in float64 on the same input.
func TestFoldBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	v3 := func(a, b, c int) [3]int { return [3]int{a, b, c} }
	specs := []ConvSpec{
		{N: 2, Cin: 3, Cout: 4, In: v3(5, 6, 7), Kernel: v3(3, 3, 3), PadBegin: v3(1, 1, 1), PadEnd: v3(1, 1, 1), Bias: true},
		{N: 1, Cin: 2, Cout: 5, In: v3(6, 5, 7), Kernel: v3(3, 1, 2), Stride: v3(2, 1, 2), Dilation: v3(1, 1, 2), PadBegin: v3(1, 0, 1)},
		{N: 2, Cin: 3, Cout: 2, In: v3(3, 4, 5), Kernel: v3(2, 2, 2), Stride: v3(2, 2, 2), Transpose: true, Bias: true},
		{N: 1, Cin: 4, Cout: 3, In: v3(3, 4, 2), Kernel: v3(3, 3, 3), Stride: v3(2, 2, 1), PadBegin: v3(1, 1, 0), PadEnd: v3(1, 0, 1), OutputPadding: v3(1, 0, 0), Transpose: true},
	}
	for i, s := range specs {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			x := foldRand(rng, s.N*s.Cin*Voxels(s.In), -1, 1)
			w := foldRand(rng, s.WeightLen(), -1, 1)
			var bias []float32
			if s.Bias {
				bias = foldRand(rng, s.Cout, -1, 1)
			}
			scale, shift := foldRand(rng, s.Cout, -2, 2), foldRand(rng, s.Cout, -1, 1)
			mean, variance := foldRand(rng, s.Cout, -1, 1), foldRand(rng, s.Cout, 0.05, 3)
			const eps = 1e-5
			conv, out := refConv64(s, x, w, bias)
			ov := Voxels(out)
			want := make([]float32, len(conv))
			for j, v := range conv {
				c := j / ov % s.Cout
				want[j] = float32((v-float64(mean[c]))/math.Sqrt(float64(variance[c])+eps)*float64(scale[c]) + float64(shift[c]))
			}
			w2, b2, err := FoldBatchNorm(w, bias, s, scale, shift, mean, variance, eps)
			if err != nil {
				t.Fatal(err)
			}
			s.Bias = true
			folded, _ := refConv64(s, x, w2, b2)
			got := make([]float32, len(folded))
			for j, v := range folded {
				got[j] = float32(v)
			}
			// Terms are at most 2·|a| ≤ 2·2/sqrt(0.05) in magnitude; the
			// folded weights are rounded to float32 once.
			closeTo(t, "folded", got, want, 1e-4, 1e-5)
		})
	}
}

func TestFoldBatchNormErrors(t *testing.T) {
	s := ConvSpec{N: 1, Cin: 2, Cout: 3, In: [3]int{4, 4, 4}, Kernel: [3]int{1, 1, 1}, Bias: true}
	w, c3 := make([]float32, 6), []float32{1, 1, 1}
	bad := s
	bad.Kernel[0] = 0
	act := s
	act.Act = Activation{Kind: ActReLU}
	noBias := s
	noBias.Bias = false
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"invalid spec", errOf(FoldBatchNorm(w, c3, bad, c3, c3, c3, c3, 1e-5))},
		{"activation", errOf(FoldBatchNorm(w, c3, act, c3, c3, c3, c3, 1e-5))},
		{"weights", errOf(FoldBatchNorm(w[:5], c3, s, c3, c3, c3, c3, 1e-5))},
		{"bias short", errOf(FoldBatchNorm(w, c3[:2], s, c3, c3, c3, c3, 1e-5))},
		{"bias without spec.Bias", errOf(FoldBatchNorm(w, c3, noBias, c3, c3, c3, c3, 1e-5))},
		{"mean short", errOf(FoldBatchNorm(w, c3, s, c3, c3, c3[:1], c3, 1e-5))},
		{"variance negative", errOf(FoldBatchNorm(w, c3, s, c3, c3, c3, []float32{1, -1, 1}, 1e-5))},
		{"variance NaN", errOf(FoldBatchNorm(w, c3, s, c3, c3, c3, []float32{1, float32(math.NaN()), 1}, 1e-5))},
	} {
		if !errors.Is(tc.err, ErrShape) {
			t.Errorf("%s: error %v, want ErrShape", tc.name, tc.err)
		}
	}
	if _, _, err := FoldBatchNorm(w, nil, noBias, c3, c3, c3, c3, 0); err != nil {
		t.Errorf("no bias: %v", err)
	}
}

func errOf(_, _ []float32, err error) error { return err }
