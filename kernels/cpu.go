package kernels

import (
	"fmt"
	"sync"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

var _ Backend = (*cpuBackend)(nil)

// cpuBackend is the pure-Go backend: host memory, loops parallel over
// cores (kernels/internal/par).
type cpuBackend struct {
	pool bufPool
}

var (
	cpuOnce sync.Once
	cpuDflt *cpuBackend
)

// CPU returns the CPU backend. It always exists; one instance is shared
// by the process, so its pool serves every caller.
func CPU() Backend {
	cpuOnce.Do(func() { cpuDflt = newCPU() })
	return cpuDflt
}

// NewCPU returns a CPU backend with a pool of its own (tests use it to
// count allocations).
func NewCPU() Backend { return newCPU() }

func newCPU() *cpuBackend {
	c := &cpuBackend{}
	c.pool.newMem = func(b *Buffer, dt DType, class int) error {
		switch dt {
		case Float32:
			b.f32 = make([]float32, class)
		case Int16:
			b.i16 = make([]int16, class)
		case Uint8:
			b.u8 = make([]uint8, class)
		}
		return nil
	}
	c.pool.releaseMem = func(b *Buffer) { b.f32, b.i16, b.u8 = nil, nil, nil }
	return c
}

func (c *cpuBackend) Name() string {
	return fmt.Sprintf("cpu (%d threads)", par.Workers())
}

func (c *cpuBackend) Alloc(dt DType, n int) (*Buffer, error) { return c.pool.alloc(c, dt, n) }

func (c *cpuBackend) Free(b *Buffer) {
	if b != nil && b.owner == Backend(c) {
		c.pool.release(b)
	}
}

func (c *cpuBackend) Stats() PoolStats { return c.pool.snapshot() }
func (c *cpuBackend) Sync() error      { return nil }
func (c *cpuBackend) Close() error     { c.pool.drain(); return nil }

// check says whether b is a live buffer of this backend, of type dt,
// holding at least n elements.
func (c *cpuBackend) check(b *Buffer, dt DType, n int, what string) error {
	return checkBuffer(c, b, dt, n, what)
}

// f32 returns the first n elements of a float32 buffer, checked.
func (c *cpuBackend) f32(b *Buffer, n int, what string) ([]float32, error) {
	if err := c.check(b, Float32, n, what); err != nil {
		return nil, err
	}
	return b.f32[:n], nil
}

func (c *cpuBackend) i16(b *Buffer, n int, what string) ([]int16, error) {
	if err := c.check(b, Int16, n, what); err != nil {
		return nil, err
	}
	return b.i16[:n], nil
}

func (c *cpuBackend) u8(b *Buffer, n int, what string) ([]uint8, error) {
	if err := c.check(b, Uint8, n, what); err != nil {
		return nil, err
	}
	return b.u8[:n], nil
}

// volumes checks an operation from n volumes of cin channels and size in
// (src) to n volumes of cout channels and size out (dst): positive sizes,
// dst not src, float32 buffers that hold them. It returns the
// destination's and the source's elements, allocating nothing.
func (c *cpuBackend) volumes(op string, dst, src *Buffer, n, cin, cout int, in, out [3]int) (d, s []float32, err error) {
	ns, nd := volCount(n, cin, in), volCount(n, cout, out)
	if ns < 0 || nd < 0 {
		return nil, nil, fmt.Errorf("%w: %s of %d volumes of %d channels of %v into %d channels of %v", ErrShape, op, n, cin, in, cout, out)
	}
	if err := checkDistinct(op, dst, src); err != nil {
		return nil, nil, err
	}
	return c.srcDst(op, src, ns, dst, nd)
}

// srcDst checks an operation's float32 source of ns elements and its
// destination of nd and returns their elements (dst's first), allocating
// nothing.
func (c *cpuBackend) srcDst(op string, src *Buffer, ns int, dst *Buffer, nd int) (d, s []float32, err error) {
	if err := checkBufferOf(c, src, Float32, ns, op, "source"); err != nil {
		return nil, nil, err
	}
	if err := checkBufferOf(c, dst, Float32, nd, op, "destination"); err != nil {
		return nil, nil, err
	}
	return dst.f32[:nd], src.f32[:ns], nil
}

// volCount is n×c volumes of size voxels (at most 2^40 elements), or -1
// when a count or an axis is not positive or the product is larger.
func volCount(n, c int, size [3]int) int {
	v := 1
	for _, x := range [...]int{n, c, size[0], size[1], size[2]} {
		if x <= 0 || x > 1<<40/v {
			return -1
		}
		v *= x
	}
	return v
}

func (c *cpuBackend) Upload(dst *Buffer, src any) error { return c.hostIO(dst, src, true) }

func (c *cpuBackend) Download(dst any, src *Buffer) error { return c.hostIO(src, dst, false) }

// hostIO copies between host slice h and the first len(h) elements of
// buffer b: into b when upload, else out of it.
func (c *cpuBackend) hostIO(b *Buffer, h any, upload bool) error {
	what := "download source"
	if upload {
		what = "upload destination"
	}
	switch h := h.(type) {
	case []float32:
		return hostCopy(c.f32, b, h, upload, what)
	case []int16:
		return hostCopy(c.i16, b, h, upload, what)
	case []uint8:
		return hostCopy(c.u8, b, h, upload, what)
	}
	if upload {
		return fmt.Errorf("%w: upload of %T", ErrShape, h)
	}
	return fmt.Errorf("%w: download into %T", ErrShape, h)
}

// hostCopy is hostIO for one element type, b checked by view (c.f32,
// c.i16 or c.u8).
func hostCopy[T any](view func(*Buffer, int, string) ([]T, error), b *Buffer, h []T, upload bool, what string) error {
	v, err := view(b, len(h), what)
	if err != nil {
		return err
	}
	if upload {
		copy(v, h)
	} else {
		copy(h, v)
	}
	return nil
}

func (c *cpuBackend) Copy(dst, src *Buffer, n int) error {
	if err := checkCopy(c, dst, src, n); err != nil {
		return err
	}
	switch src.dtype {
	case Float32:
		copy(dst.f32[:n], src.f32[:n])
	case Int16:
		copy(dst.i16[:n], src.i16[:n])
	case Uint8:
		copy(dst.u8[:n], src.u8[:n])
	}
	return nil
}

func (c *cpuBackend) Fill(dst *Buffer, n int, v float32) error {
	d, err := c.f32(dst, n, "fill destination")
	if err != nil {
		return err
	}
	for i := range d {
		d[i] = v
	}
	return nil
}
