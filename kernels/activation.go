package kernels

import (
	"fmt"
	"math"
)

// Apply is the activation of one value, the definition every backend
// follows: ReLU max(x, 0); LeakyReLU x or Alpha*x below 0; Sigmoid
// 1/(1+e^-x) computed in float64.
func (a Activation) Apply(x float32) float32 {
	switch a.Kind {
	case ActReLU:
		if x < 0 {
			return 0
		}
	case ActLeakyReLU:
		if x < 0 {
			return a.Alpha * x
		}
	case ActSigmoid:
		return float32(1 / (1 + math.Exp(-float64(x))))
	}
	return x
}

// applyAll applies a in place to every element of d (the CPU backend's
// fused epilogues call it on rows they have just written, while hot in
// cache).
func (a Activation) applyAll(d []float32) {
	switch a.Kind {
	case ActNone:
	// Branch-free forms (MAXSS/MINSS): on activations, whose signs are
	// random, a branch per value mispredicts about half the time and the
	// loop runs about 5 times slower. Same values as Apply (NaN stays NaN;
	// -0 becomes +0).
	case ActReLU:
		for i, x := range d {
			d[i] = max(x, 0)
		}
	case ActLeakyReLU:
		al := a.Alpha
		for i, x := range d {
			d[i] = max(x, 0) + al*min(x, 0)
		}
	default:
		for i, x := range d {
			d[i] = a.Apply(x)
		}
	}
}

// valid says whether a is a known activation.
func (a Activation) valid() error {
	if a.Kind > ActSigmoid {
		return fmt.Errorf("%w: activation %d", ErrShape, a.Kind)
	}
	return nil
}
