package kernels

import (
	"fmt"
	"math"
)

// Argument checks shared by the backends: one rule for which buffers,
// sizes and parameters an operation accepts, whatever holds its memory.

// checkBuffer says whether b is a live buffer of backend owner, of type
// dt, holding at least n elements.
func checkBuffer(owner Backend, b *Buffer, dt DType, n int, what string) error {
	return checkBufferOf(owner, b, dt, n, what, "")
}

// checkBufferOf is checkBuffer for the buffer named op+" "+role (role ""
// for op alone); the name is put together only for an error, so a check
// that passes allocates nothing.
func checkBufferOf(owner Backend, b *Buffer, dt DType, n int, op, role string) error {
	what := func() string {
		if role == "" {
			return op
		}
		return op + " " + role
	}
	if b == nil || b.owner != owner || b.freed {
		return fmt.Errorf("%w: %s", ErrBackend, what())
	}
	if b.dtype != dt {
		return fmt.Errorf("%w: %s is %v, want %v", ErrShape, what(), b.dtype, dt)
	}
	if n < 0 || b.n < n {
		return fmt.Errorf("%w: %s holds %d elements, need %d", ErrShape, what(), b.n, n)
	}
	return nil
}

// checkCopy checks the operands of Copy: n elements from src to dst, both
// live buffers of owner, dst of src's type.
func checkCopy(owner Backend, dst, src *Buffer, n int) error {
	if src == nil || dst == nil {
		return fmt.Errorf("%w: copy of nil", ErrBackend)
	}
	if err := checkBuffer(owner, src, src.dtype, n, "copy source"); err != nil {
		return err
	}
	return checkBuffer(owner, dst, src.dtype, n, "copy destination")
}

// checkNorm checks a normalisation of n×ch rows of spatial values: the
// sizes, the epsilon and the fused activation. It returns n*ch*spatial.
func checkNorm(op string, n, ch, spatial int, eps float32, act Activation) (int, error) {
	total, err := channelsSize(op, n, ch, spatial)
	if err != nil {
		return 0, err
	}
	if err := act.valid(); err != nil {
		return 0, err
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return 0, fmt.Errorf("%w: %s epsilon %v", ErrShape, op, eps)
	}
	return total, nil
}

// normParams names the per-channel parameters of a normalisation, in the
// order InstanceNorm and BatchNorm take them.
var normParams = [...]string{"scale", "bias", "mean", "variance"}

// checkDistinct refuses a destination that is also a source of an
// operation that does not work in place.
func checkDistinct(op string, dst *Buffer, srcs ...*Buffer) error {
	for _, s := range srcs {
		if dst != nil && dst == s {
			return fmt.Errorf("%w: %s does not work in place", ErrShape, op)
		}
	}
	return nil
}

// channelsSize checks the sizes of n×ch rows of spatial values (all
// positive, at most 2^40 elements in all; Alloc stops there) and returns
// their product.
func channelsSize(op string, n, ch, spatial int) (int, error) {
	const limit = 1 << 40
	if n <= 0 || ch <= 0 || spatial <= 0 || n > limit/ch || n*ch > limit/spatial {
		return 0, fmt.Errorf("%w: %s n=%d c=%d spatial=%d", ErrShape, op, n, ch, spatial)
	}
	return n * ch * spatial, nil
}

// checkResample checks Resample's interpolation and its map (finite scale
// and offset on every axis).
func checkResample(m AxisMap, mode Interp) error {
	if mode != Linear && mode != Nearest {
		return fmt.Errorf("%w: resample interpolation %d", ErrShape, mode)
	}
	for a := 0; a < 3; a++ {
		if math.IsNaN(m.Scale[a]) || math.IsInf(m.Scale[a], 0) || math.IsNaN(m.Offset[a]) || math.IsInf(m.Offset[a], 0) {
			return fmt.Errorf("%w: resample map scale %v offset %v", ErrShape, m.Scale, m.Offset)
		}
	}
	return nil
}

// checkResize checks a Resize's modes and scales (each 0, for Out/In, or
// positive and finite).
func checkResize(r ResizeSpec) error {
	if r.Mode != Linear && r.Mode != Nearest || r.Coord > CoordAsymmetric || r.Nearest > NearestCeil {
		return fmt.Errorf("%w: resize mode %d coordinates %d nearest %d", ErrShape, r.Mode, r.Coord, r.Nearest)
	}
	for a, sc := range r.Scale {
		if !(sc >= 0) || math.IsInf(sc, 0) {
			return fmt.Errorf("%w: resize axis %d: scale %v", ErrShape, a, sc)
		}
	}
	return nil
}
