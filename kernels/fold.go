package kernels

import (
	"fmt"
	"math"
)

// FoldBatchNorm folds an inference BatchNorm that follows a convolution
// (or transposed convolution) into the convolution's weights and bias, so
// that one convolution computes both:
//
//	a[co] = scale[co] / sqrt(variance[co] + eps)
//	newWeights[.., co, ..] = weights[.., co, ..] * a[co]
//	newBias[co] = (bias[co] - mean[co]) * a[co] + shift[co]
//
// weights are [Cout, Cin, k...] or, transposed, [Cin, Cout, k...] (ONNX);
// bias holds Cout values, or is nil when spec.Bias is false (zeros). The
// folded convolution always has a bias: run it with spec.Bias set. The
// arithmetic is in float64. A spec with a fused activation cannot be
// folded (the BatchNorm would follow the activation), nor can a variance
// with variance+eps not positive. The inputs are not modified.
func FoldBatchNorm(weights, bias []float32, spec ConvSpec, scale, shift, mean, variance []float32, eps float32) (newWeights, newBias []float32, err error) {
	if _, err := spec.Out(); err != nil {
		return nil, nil, fmt.Errorf("fold batch norm: %w", err)
	}
	if spec.Act.Kind != ActNone {
		return nil, nil, fmt.Errorf("%w: fold batch norm: convolution has activation %d", ErrShape, spec.Act.Kind)
	}
	if len(weights) != spec.WeightLen() {
		return nil, nil, fmt.Errorf("%w: fold batch norm: %d weights, spec needs %d", ErrShape, len(weights), spec.WeightLen())
	}
	co := spec.Cout
	if spec.Bias && len(bias) != co || !spec.Bias && bias != nil {
		return nil, nil, fmt.Errorf("%w: fold batch norm: %d bias values, bias %v, Cout %d", ErrShape, len(bias), spec.Bias, co)
	}
	for i, p := range [][]float32{scale, shift, mean, variance} {
		if len(p) != co {
			what := [...]string{"scale", "shift", "mean", "variance"}[i]
			return nil, nil, fmt.Errorf("%w: fold batch norm: %d %s values, Cout %d", ErrShape, len(p), what, co)
		}
	}
	a := make([]float64, co)
	newBias = make([]float32, co)
	for c := range co {
		v := float64(variance[c]) + float64(eps)
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("%w: fold batch norm: channel %d: variance %v + eps %v", ErrShape, c, variance[c], eps)
		}
		a[c] = float64(scale[c]) / math.Sqrt(v)
		var b float64
		if bias != nil {
			b = float64(bias[c])
		}
		newBias[c] = float32((b-float64(mean[c]))*a[c] + float64(shift[c]))
	}
	// Weights of one output channel are runs of k voxels: all of a row
	// [Cout][Cin*k] for a convolution, every Cout-th run of
	// [Cin][Cout][k] for a transposed one.
	k := spec.Kernel[0] * spec.Kernel[1] * spec.Kernel[2]
	newWeights = make([]float32, len(weights))
	for r := range len(weights) / k {
		c := r / spec.Cin
		if spec.Transpose {
			c = r % co
		}
		for i, w := range weights[r*k : (r+1)*k] {
			newWeights[r*k+i] = float32(float64(w) * a[c])
		}
	}
	return newWeights, newBias, nil
}
