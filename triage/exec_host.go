package triage

import (
	"fmt"
	"math"
)

// hostT is a constant tensor known at compile time: an initializer, a
// Constant node, or the folded result of nodes whose inputs are all
// constant. Integer and bool tensors hold ints, floating ones flts.
type hostT struct {
	shape []int
	isInt bool
	ints  []int64
	flts  []float32
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// maxHostElems bounds a tensor computed on the host (shape arithmetic
// and folded constants), so that a hostile model cannot make Compile
// allocate without limit.
const maxHostElems = 1 << 24

// maxElems bounds one activation.
const maxElems = 1 << 31

// checkedNumel is the product of shape, or false when it exceeds limit.
func checkedNumel(shape []int, limit int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > limit/d) {
			return 0, false
		}
		n *= d
	}
	return n, n <= limit
}

func (h *hostT) len() int {
	if h.isInt {
		return len(h.ints)
	}
	return len(h.flts)
}

// float returns element i as float64.
func (h *hostT) float(i int) float64 {
	if h.isInt {
		return float64(h.ints[i])
	}
	return float64(h.flts[i])
}

// int returns element i as int64 (floats truncated toward zero).
func (h *hostT) int(i int) int64 {
	if h.isInt {
		return h.ints[i]
	}
	return int64(h.flts[i])
}

// float32s returns the values as float32 (converting ints).
func (h *hostT) float32s() []float32 {
	if !h.isInt {
		return h.flts
	}
	out := make([]float32, len(h.ints))
	for i, v := range h.ints {
		out[i] = float32(v)
	}
	return out
}

// int64s returns the values as int64.
func (h *hostT) int64s() []int64 {
	if h.isInt {
		return h.ints
	}
	out := make([]int64, len(h.flts))
	for i, v := range h.flts {
		out[i] = int64(v)
	}
	return out
}

// withShape is the same data under another shape (views on constants).
func (h *hostT) withShape(shape []int) *hostT {
	return &hostT{shape: shape, isInt: h.isInt, ints: h.ints, flts: h.flts}
}

// gather makes a tensor of h's kind from the elements at idx.
func (h *hostT) gather(shape []int, idx []int) *hostT {
	out := &hostT{shape: shape, isInt: h.isInt}
	if h.isInt {
		out.ints = make([]int64, len(idx))
		for i, j := range idx {
			out.ints[i] = h.ints[j]
		}
	} else {
		out.flts = make([]float32, len(idx))
		for i, j := range idx {
			out.flts[i] = h.flts[j]
		}
	}
	return out
}

// tensorToHost converts a decoded ONNX tensor.
func tensorToHost(t *Tensor) (*hostT, error) {
	shape := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: tensor %q: dimension %d is %d", ErrModel, t.Name, i, d)
		}
		shape[i] = int(d)
	}
	n, ok := checkedNumel(shape, math.MaxInt32)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q of shape %v", ErrUnsupported, t.Name, shape)
	}
	switch {
	case t.Int64 != nil || (t.Float == nil && isIntType(t.DataType)):
		if len(t.Int64) != n {
			return nil, fmt.Errorf("%w: tensor %q: %d values for shape %v", ErrModel, t.Name, len(t.Int64), shape)
		}
		return &hostT{shape: shape, isInt: true, ints: t.Int64}, nil
	default:
		if len(t.Float) != n {
			return nil, fmt.Errorf("%w: tensor %q: %d values for shape %v", ErrModel, t.Name, len(t.Float), shape)
		}
		return &hostT{shape: shape, flts: t.Float}, nil
	}
}

func isIntType(d DataType) bool {
	switch d {
	case TypeFloat, TypeFloat16, TypeDouble:
		return false
	}
	return true
}

// strides returns row-major strides of shape.
func strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// broadcastShape is the NumPy broadcast of a and b, or false.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

// broadcastIndex maps a flat index of out to the flat index of an operand
// of shape in (right-aligned, size-1 axes repeated).
func broadcastIndex(flat int, out, in []int) int {
	idx, stride := 0, 1
	for i := len(out) - 1; i >= 0; i-- {
		c := flat % out[i]
		flat /= out[i]
		if j := i - (len(out) - len(in)); j >= 0 {
			if in[j] != 1 {
				idx += c * stride
			}
			stride *= in[j]
		}
	}
	return idx
}

// hostBinary computes a op b on constants (integer arithmetic when both
// are integer).
func hostBinary(op string, a, b *hostT) (*hostT, error) {
	shape, ok := broadcastShape(a.shape, b.shape)
	if !ok {
		return nil, fmt.Errorf("%w: shapes %v and %v do not broadcast", ErrModel, a.shape, b.shape)
	}
	n, ok := checkedNumel(shape, maxHostElems)
	if !ok {
		return nil, fmt.Errorf("%w: constant of shape %v", ErrUnsupported, shape)
	}
	out := &hostT{shape: shape, isInt: a.isInt && b.isInt}
	if out.isInt {
		out.ints = make([]int64, n)
	} else {
		out.flts = make([]float32, n)
	}
	for i := range n {
		ia, ib := broadcastIndex(i, shape, a.shape), broadcastIndex(i, shape, b.shape)
		if out.isInt {
			x, y := a.ints[ia], b.ints[ib]
			var r int64
			switch op {
			case "Add":
				r = x + y
			case "Sub":
				r = x - y
			case "Mul":
				r = x * y
			case "Div":
				if y == 0 {
					return nil, fmt.Errorf("%w: integer division by zero", ErrModel)
				}
				r = x / y
			}
			out.ints[i] = r
			continue
		}
		x, y := float32(a.float(ia)), float32(b.float(ib))
		var r float32
		switch op {
		case "Add":
			r = x + y
		case "Sub":
			r = x - y
		case "Mul":
			r = x * y
		case "Div":
			r = x / y
		}
		out.flts[i] = r
	}
	return out, nil
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(rank) {
		return 0, fmt.Errorf("%w: axis %d out of range for rank %d", ErrModel, axis, rank)
	}
	return int(axis), nil
}

// hostGather is ONNX Gather on constants.
func hostGather(data, indices *hostT, axis int64) (*hostT, error) {
	ax, err := normAxis(axis, len(data.shape))
	if err != nil {
		return nil, err
	}
	shape := append(append(append([]int{}, data.shape[:ax]...), indices.shape...), data.shape[ax+1:]...)
	if _, ok := checkedNumel(shape, maxHostElems); !ok {
		return nil, fmt.Errorf("%w: Gather result of shape %v", ErrUnsupported, shape)
	}
	outer := numel(data.shape[:ax])
	inner := numel(data.shape[ax+1:])
	dim := data.shape[ax]
	var idx []int
	for o := range outer {
		for k := range indices.len() {
			j := indices.int(k)
			if j < 0 {
				j += int64(dim)
			}
			if j < 0 || j >= int64(dim) {
				return nil, fmt.Errorf("%w: Gather index %d out of range for dimension %d", ErrModel, indices.int(k), dim)
			}
			for in := range inner {
				idx = append(idx, (o*dim+int(j))*inner+in)
			}
		}
	}
	return data.gather(shape, idx), nil
}

// hostConcat is ONNX Concat on constants.
func hostConcat(ts []*hostT, axis int64) (*hostT, error) {
	rank := len(ts[0].shape)
	ax, err := normAxis(axis, rank)
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, ts[0].shape...)
	shape[ax] = 0
	isInt := true
	for _, t := range ts {
		if len(t.shape) != rank {
			return nil, fmt.Errorf("%w: Concat of ranks %d and %d", ErrModel, rank, len(t.shape))
		}
		for i := range rank {
			if i != ax && t.shape[i] != ts[0].shape[i] {
				return nil, fmt.Errorf("%w: Concat of shapes %v and %v on axis %d", ErrModel, ts[0].shape, t.shape, ax)
			}
		}
		shape[ax] += t.shape[ax]
		isInt = isInt && t.isInt
	}
	out := &hostT{shape: shape, isInt: isInt}
	outer := numel(shape[:ax])
	for o := range outer {
		for _, t := range ts {
			inner := numel(t.shape[ax:])
			for i := o * inner; i < (o+1)*inner; i++ {
				if isInt {
					out.ints = append(out.ints, t.ints[i])
				} else {
					out.flts = append(out.flts, float32(t.float(i)))
				}
			}
		}
	}
	return out, nil
}

// hostSlice is ONNX Slice (opset 10+) on constants.
func hostSlice(data *hostT, starts, ends, axes, steps []int64) (*hostT, error) {
	rank := len(data.shape)
	begin := make([]int, rank)
	step := make([]int, rank)
	count := append([]int{}, data.shape...)
	for i := range rank {
		step[i] = 1
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, fmt.Errorf("%w: Slice: %d starts, %d ends, %d axes, %d steps", ErrModel, len(starts), len(ends), len(axes), len(steps))
	}
	for k := range starts {
		a := int64(k)
		if axes != nil {
			a = axes[k]
		}
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		st := int64(1)
		if steps != nil {
			st = steps[k]
		}
		if st == 0 {
			return nil, fmt.Errorf("%w: Slice step 0", ErrModel)
		}
		dim := int64(data.shape[ax])
		s, e := starts[k], ends[k]
		if s < 0 {
			s += dim
		}
		if e < 0 {
			e += dim
		}
		var n int64
		if st > 0 {
			s, e = min(max(s, 0), dim), min(max(e, 0), dim)
			if e > s {
				n = (e - s + st - 1) / st
			}
		} else {
			s, e = min(max(s, -1), dim-1), min(max(e, -1), dim-1)
			if s > e {
				n = (s - e - st - 1) / -st
			}
		}
		begin[ax], step[ax], count[ax] = int(s), int(st), int(n)
	}
	n := numel(count)
	idx := make([]int, 0, n)
	str := strides(data.shape)
	for flat := range n {
		src, f := 0, flat
		for i := rank - 1; i >= 0; i-- {
			c := f % count[i]
			f /= count[i]
			src += (begin[i] + c*step[i]) * str[i]
		}
		idx = append(idx, src)
	}
	return data.gather(count, idx), nil
}

// hostRange is ONNX Range.
func hostRange(start, limit, delta *hostT) (*hostT, error) {
	if start.len() != 1 || limit.len() != 1 || delta.len() != 1 {
		return nil, fmt.Errorf("%w: Range inputs must be scalars", ErrModel)
	}
	d := delta.float(0)
	if d == 0 {
		return nil, fmt.Errorf("%w: Range delta 0", ErrModel)
	}
	n := max(int(math.Ceil((limit.float(0)-start.float(0))/d)), 0)
	if n > 1<<24 {
		return nil, fmt.Errorf("%w: Range of %d elements", ErrModel, n)
	}
	out := &hostT{shape: []int{n}, isInt: start.isInt && limit.isInt && delta.isInt}
	for i := range n {
		if out.isInt {
			out.ints = append(out.ints, start.ints[0]+int64(i)*delta.ints[0])
		} else {
			out.flts = append(out.flts, float32(start.float(0)+float64(i)*d))
		}
	}
	return out, nil
}

// castHost is ONNX Cast on constants.
func castHost(h *hostT, to DataType) (*hostT, error) {
	switch to {
	case TypeFloat, TypeFloat16, TypeDouble:
		return &hostT{shape: h.shape, flts: h.float32s()}, nil
	case TypeBool:
		out := &hostT{shape: h.shape, isInt: true, ints: make([]int64, h.len())}
		for i := range out.ints {
			if h.float(i) != 0 {
				out.ints[i] = 1
			}
		}
		return out, nil
	case TypeString:
		return nil, fmt.Errorf("%w: Cast to string", ErrUnsupported)
	}
	return &hostT{shape: h.shape, isInt: true, ints: h.int64s()}, nil
}
