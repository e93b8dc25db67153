package kernels

import (
	"errors"
	"math"
	"testing"
)

// A dilated window that starts in the padding and skips the whole input
// has no voxel to pool: refused (In 3, kernel 2, dilation 4, pads 1,1 has
// taps at -1 and 3 only).
func TestPoolOutPaddingOnlyWindow(t *testing.T) {
	p := PoolSpec{Kind: MaxPool, N: 1, C: 1, In: [3]int{3, 3, 3}, Kernel: [3]int{1, 1, 2},
		Dilation: [3]int{1, 1, 4}, PadBegin: [3]int{0, 0, 1}, PadEnd: [3]int{0, 0, 1}}
	if _, err := p.Out(); !errors.Is(err, ErrShape) {
		t.Fatalf("Out() = %v, want ErrShape", err)
	}
	p.In[2], p.PadBegin[2], p.PadEnd[2] = 4, 0, 1 // taps at 0 and 4: one real voxel
	if out, err := p.Out(); err != nil || out != [3]int{3, 3, 1} {
		t.Fatalf("Out() = %v, %v, want [3 3 1]", out, err)
	}
}

func TestConvSpecOut(t *testing.T) {
	for _, tc := range []struct {
		s    ConvSpec
		want [3]int
	}{
		{ConvSpec{N: 1, Cin: 1, Cout: 1, In: [3]int{96, 96, 96}, Kernel: [3]int{3, 3, 3}, PadBegin: [3]int{1, 1, 1}, PadEnd: [3]int{1, 1, 1}}, [3]int{96, 96, 96}},
		{ConvSpec{N: 1, Cin: 1, Cout: 1, In: [3]int{96, 95, 7}, Kernel: [3]int{3, 3, 3}, Stride: [3]int{2, 2, 2}, PadBegin: [3]int{1, 1, 1}, PadEnd: [3]int{1, 1, 1}}, [3]int{48, 48, 4}},
		{ConvSpec{N: 1, Cin: 1, Cout: 1, In: [3]int{24, 24, 24}, Kernel: [3]int{2, 2, 2}, Stride: [3]int{2, 2, 2}, Transpose: true}, [3]int{48, 48, 48}},
		{ConvSpec{N: 1, Cin: 1, Cout: 1, In: [3]int{5, 5, 5}, Kernel: [3]int{3, 3, 3}, Stride: [3]int{2, 2, 2}, PadBegin: [3]int{1, 1, 1}, PadEnd: [3]int{1, 1, 1}, OutputPadding: [3]int{1, 0, 1}, Transpose: true}, [3]int{10, 9, 10}},
		{ConvSpec{N: 1, Cin: 1, Cout: 1, In: [3]int{9, 9, 9}, Kernel: [3]int{3, 3, 3}, Dilation: [3]int{2, 2, 2}}, [3]int{5, 5, 5}},
	} {
		got, err := tc.s.Out()
		if err != nil || got != tc.want {
			t.Errorf("%+v: Out() = %v, %v, want %v", tc.s, got, err, tc.want)
		}
	}
	for _, bad := range []ConvSpec{
		{N: 1, Cin: 1, Cout: 1, In: [3]int{2, 2, 2}, Kernel: [3]int{3, 3, 3}},
		{N: 0, Cin: 1, Cout: 1, In: [3]int{2, 2, 2}, Kernel: [3]int{1, 1, 1}},
		{N: 1, Cin: 1, Cout: 1, In: [3]int{2, 2, 2}, Kernel: [3]int{1, 1, 1}, OutputPadding: [3]int{1, 0, 0}},
		{N: 1, Cin: 1, Cout: 1, In: [3]int{2, 2, 2}, Kernel: [3]int{1, 1, 1}, Transpose: true, OutputPadding: [3]int{1, 0, 0}},
	} {
		if _, err := bad.Out(); !errors.Is(err, ErrShape) {
			t.Errorf("%+v: Out() = %v, want ErrShape", bad, err)
		}
	}
}

// The fused, branch-free activation loops agree with Activation.Apply,
// the definition, on every kind of value (zeros of either sign compare
// equal; NaN stays NaN).
func TestApplyAllMatchesApply(t *testing.T) {
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 3.5, -2.25, 1e-30, -1e-30, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for i := 0; i < 200; i++ {
		vals = append(vals, float32(i-100)*0.37)
	}
	for _, a := range []Activation{{}, {Kind: ActReLU}, {Kind: ActLeakyReLU, Alpha: 0.01}, {Kind: ActLeakyReLU, Alpha: 0.2}, {Kind: ActSigmoid}} {
		d := append([]float32(nil), vals...)
		a.applyAll(d)
		for i, x := range vals {
			want, got := a.Apply(x), d[i]
			if got != want && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
				t.Errorf("%+v of %v: applyAll %v, Apply %v", a, x, got, want)
			}
		}
	}
}
