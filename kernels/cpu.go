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
	if b == nil || b.owner != Backend(c) || b.freed {
		return fmt.Errorf("%w: %s", ErrBackend, what)
	}
	if b.dtype != dt {
		return fmt.Errorf("%w: %s is %v, want %v", ErrShape, what, b.dtype, dt)
	}
	if n < 0 || b.n < n {
		return fmt.Errorf("%w: %s holds %d elements, need %d", ErrShape, what, b.n, n)
	}
	return nil
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

func (c *cpuBackend) Upload(dst *Buffer, src any) error {
	switch s := src.(type) {
	case []float32:
		d, err := c.f32(dst, len(s), "upload destination")
		if err != nil {
			return err
		}
		copy(d, s)
	case []int16:
		d, err := c.i16(dst, len(s), "upload destination")
		if err != nil {
			return err
		}
		copy(d, s)
	case []uint8:
		d, err := c.u8(dst, len(s), "upload destination")
		if err != nil {
			return err
		}
		copy(d, s)
	default:
		return fmt.Errorf("%w: upload of %T", ErrShape, src)
	}
	return nil
}

func (c *cpuBackend) Download(dst any, src *Buffer) error {
	switch d := dst.(type) {
	case []float32:
		s, err := c.f32(src, len(d), "download source")
		if err != nil {
			return err
		}
		copy(d, s)
	case []int16:
		s, err := c.i16(src, len(d), "download source")
		if err != nil {
			return err
		}
		copy(d, s)
	case []uint8:
		s, err := c.u8(src, len(d), "download source")
		if err != nil {
			return err
		}
		copy(d, s)
	default:
		return fmt.Errorf("%w: download into %T", ErrShape, dst)
	}
	return nil
}

func (c *cpuBackend) Copy(dst, src *Buffer, n int) error {
	if src == nil || dst == nil {
		return fmt.Errorf("%w: copy of nil", ErrBackend)
	}
	if err := c.check(src, src.dtype, n, "copy source"); err != nil {
		return err
	}
	if err := c.check(dst, src.dtype, n, "copy destination"); err != nil {
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
