package kernels

import (
	"fmt"
	"math/bits"
	"sync"
)

// bufPool keeps freed buffers by element type and size class for reuse.
// Classes are the powers of two and three quarter-steps between them
// (1024, 1280, 1536, 1792, 2048, ...), so a buffer wastes at most a fifth
// of its memory and a steady workload stops allocating after its first
// pass. Both backends use it; newMem makes fresh storage of a class.
type bufPool struct {
	mu     sync.Mutex
	free   map[poolKey][]*Buffer
	stats  PoolStats
	newMem func(b *Buffer, dt DType, class int) error
	// limit is the most bytes kept pooled; beyond it freed buffers are
	// dropped (releaseMem is called).
	limit      int64
	releaseMem func(b *Buffer)
}

type poolKey struct {
	dt    DType
	class int
}

// sizeClass rounds n elements up to its class.
func sizeClass(n int) int {
	if n <= 1024 {
		return 1024
	}
	hb := bits.Len(uint(n-1)) - 1 // 2^hb < n <= 2^(hb+1)
	base := 1 << hb
	q := base / 4
	return base + q*((n-base+q-1)/q)
}

func (p *bufPool) alloc(owner Backend, dt DType, n int) (*Buffer, error) {
	if dt.Size() == 0 {
		return nil, fmt.Errorf("%w: alloc of %v", ErrShape, dt)
	}
	if n < 0 || n > 1<<40/dt.Size() {
		return nil, fmt.Errorf("%w: alloc of %d elements", ErrShape, n)
	}
	class := sizeClass(n)
	key := poolKey{dt, class}
	p.mu.Lock()
	if list := p.free[key]; len(list) > 0 {
		b := list[len(list)-1]
		list[len(list)-1] = nil
		p.free[key] = list[:len(list)-1]
		p.stats.Reuses++
		p.stats.Pooled -= int64(class * dt.Size())
		p.inUse(int64(class * dt.Size()))
		p.mu.Unlock()
		b.n, b.freed = n, false
		return b, nil
	}
	p.mu.Unlock()
	b := &Buffer{dtype: dt, n: n, owner: owner}
	if err := p.newMem(b, dt, class); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.stats.Allocs++
	p.inUse(int64(class * dt.Size()))
	p.mu.Unlock()
	return b, nil
}

func (p *bufPool) inUse(d int64) {
	p.stats.InUse += d
	if p.stats.InUse > p.stats.PeakInUse {
		p.stats.PeakInUse = p.stats.InUse
	}
}

func (p *bufPool) release(b *Buffer) {
	if b == nil || b.freed {
		return
	}
	b.freed = true
	class := sizeClass(b.n)
	sz := int64(class * b.dtype.Size())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InUse -= sz
	if p.limit > 0 && p.stats.Pooled+sz > p.limit {
		if p.releaseMem != nil {
			p.releaseMem(b)
		}
		return
	}
	if p.free == nil {
		p.free = make(map[poolKey][]*Buffer)
	}
	key := poolKey{b.dtype, class}
	p.free[key] = append(p.free[key], b)
	p.stats.Pooled += sz
}

func (p *bufPool) snapshot() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// drain empties the pool, calling releaseMem on each buffer.
func (p *bufPool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, list := range p.free {
		for _, b := range list {
			if p.releaseMem != nil {
				p.releaseMem(b)
			}
		}
		delete(p.free, k)
	}
	p.stats.Pooled = 0
}
