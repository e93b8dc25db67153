//go:build cuda

package kernels

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"gorgonia.org/cu"
)

// The CUDA backend: kernels from cuda_*.cu, compiled by `make ptx` into
// ptx/*.ptx (compute_80, so Ampere or newer; the driver JIT-compiles them
// for the device at Open and caches the result), embedded here.
//
// One goroutine locked to its OS thread owns the device context (the
// device's primary context); every method hands it a closure and waits, so
// methods may be called from any goroutine. Kernels run in order on the
// default stream: a method returns once its kernels are queued; Download,
// Sync and the reductions wait for them.

//go:embed ptx/*.ptx
var ptxFiles embed.FS

var _ Backend = (*cudaBackend)(nil)

// Launch shapes.
const (
	cudaThreads  = 256  // threads per block of the 1D kernels
	cudaMaxParts = 1024 // blocks (partials) of a reduction
)

type cudaBackend struct {
	work chan func()
	quit chan struct{}
	once sync.Once
	pool bufPool
	name string
	sms  int

	// Owned by the worker goroutine.
	dev  cu.Device
	ctx  cu.CUContext
	mods []cu.Module
	fns  map[string]cu.Function
	part cu.DevicePtr // reduction partials, cudaMaxParts x 8 bytes
	dead bool
}

// newCUDA opens device ord: context, modules, pool.
func newCUDA(ord int) (*cudaBackend, error) {
	c := &cudaBackend{work: make(chan func()), quit: make(chan struct{})}
	ready := make(chan error, 1)
	go c.loop(ord, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	c.pool.newMem = c.newMem
	c.pool.releaseMem = c.releaseMem
	if total, err := c.totalMem(); err == nil {
		c.pool.limit = total / 4
	}
	return c, nil
}

// loop is the context's goroutine: it runs closures until Close.
func (c *cudaBackend) loop(ord int, ready chan<- error) {
	// Never unlocked: when the goroutine ends, its thread (and the context
	// binding) ends with it.
	runtime.LockOSThread()
	if err := c.setup(ord); err != nil {
		c.teardown()
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case f := <-c.work:
			f()
		case <-c.quit:
			return
		}
	}
}

func (c *cudaBackend) setup(ord int) error {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("counting CUDA devices: %w", err)
	}
	if ord >= n {
		return fmt.Errorf("CUDA device %d asked for, %d present", ord, n)
	}
	dev, err := cu.GetDevice(ord)
	if err != nil {
		return fmt.Errorf("CUDA device %d: %w", ord, err)
	}
	c.dev = dev
	major, _ := dev.Attribute(cu.ComputeCapabilityMajor)
	minor, _ := dev.Attribute(cu.ComputeCapabilityMinor)
	if major < 8 {
		return fmt.Errorf("CUDA device %d has compute capability %d.%d; the kernels need 8.0 or newer", ord, major, minor)
	}
	c.sms, _ = dev.Attribute(cu.MultiprocessorCount)
	if c.sms <= 0 {
		c.sms = 1
	}
	name, _ := dev.Name()
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return fmt.Errorf("CUDA device %d: context: %w", ord, err)
	}
	c.ctx = ctx
	if err := cu.SetCurrentContext(ctx); err != nil {
		return fmt.Errorf("CUDA device %d: context: %w", ord, err)
	}
	if err := c.loadModules(); err != nil {
		return err
	}
	if c.part, err = cu.MemAlloc(cudaMaxParts * 8); err != nil {
		return fmt.Errorf("CUDA device %d: scratch: %w", ord, err)
	}
	c.name = fmt.Sprintf("cuda (%s, %d SMs, sm_%d%d, device %d)", name, c.sms, major, minor, ord)
	return nil
}

// loadModules loads every embedded PTX file and looks up its entries.
func (c *cudaBackend) loadModules() error {
	c.fns = make(map[string]cu.Function)
	files, err := fs.Glob(ptxFiles, "ptx/*.ptx")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no embedded PTX (make ptx): %v", err)
	}
	for _, f := range files {
		src, err := ptxFiles.ReadFile(f)
		if err != nil {
			return err
		}
		mod, err := cu.LoadData(string(src))
		if err != nil {
			return fmt.Errorf("loading %s: %w", f, err)
		}
		c.mods = append(c.mods, mod)
		for _, name := range ptxEntries(string(src)) {
			fn, err := mod.Function(name)
			if err != nil {
				return fmt.Errorf("%s: kernel %s: %w", f, name, err)
			}
			c.fns[name] = fn
		}
	}
	return nil
}

// ptxEntries lists the kernel names of a PTX text (".entry NAME(").
func ptxEntries(src string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		_, rest, ok := strings.Cut(line, ".entry ")
		if !ok || strings.HasPrefix(line, "//") {
			continue
		}
		if name, _, ok := strings.Cut(rest, "("); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// teardown frees what setup made (on the worker).
func (c *cudaBackend) teardown() {
	c.dead = true
	if c.part != 0 {
		_ = cu.MemFree(c.part)
		c.part = 0
	}
	for _, m := range c.mods {
		_ = m.Unload()
	}
	c.mods = nil
	if c.ctx != (cu.CUContext{}) {
		_ = c.dev.ReleasePrimaryCtx()
		c.ctx = cu.CUContext{}
	}
}

// do runs f on the context's goroutine and returns its error.
func (c *cudaBackend) do(f func() error) error {
	res := make(chan error, 1)
	job := func() {
		if c.dead {
			res <- ErrClosed
			return
		}
		res <- f()
	}
	select {
	case c.work <- job:
	case <-c.quit:
		return ErrClosed
	}
	return <-res
}

func (c *cudaBackend) totalMem() (int64, error) {
	var total int64
	err := c.do(func() error {
		var err error
		total, err = c.dev.TotalMem()
		return err
	})
	return total, err
}

// newMem allocates device memory for a pool class; when the device is
// full it empties the pool once and retries.
func (c *cudaBackend) newMem(b *Buffer, dt DType, class int) error {
	bytes := class * dt.Size()
	alloc := func() error {
		return c.do(func() error {
			p, err := cu.MemAlloc(int64(bytes))
			if err != nil {
				return err
			}
			b.ptr, b.bytes = uintptr(p), bytes
			return nil
		})
	}
	err := alloc()
	if errors.Is(err, cu.OutOfMemory) {
		c.pool.drain()
		err = alloc()
	}
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("%w: cuda alloc of %d bytes: %v", ErrShape, bytes, err)
	}
	return nil
}

func (c *cudaBackend) releaseMem(b *Buffer) {
	p := b.ptr
	b.ptr, b.bytes = 0, 0
	if p != 0 {
		_ = c.do(func() error { return cu.MemFree(cu.DevicePtr(p)) })
	}
}

func (c *cudaBackend) Name() string { return c.name }

func (c *cudaBackend) Alloc(dt DType, n int) (*Buffer, error) {
	select {
	case <-c.quit:
		return nil, ErrClosed
	default:
	}
	return c.pool.alloc(c, dt, n)
}

func (c *cudaBackend) Free(b *Buffer) {
	if b != nil && b.owner == Backend(c) {
		c.pool.release(b)
	}
}

func (c *cudaBackend) Stats() PoolStats { return c.pool.snapshot() }

func (c *cudaBackend) Sync() error {
	return c.do(func() error { return cudaErr("sync", cu.Synchronize()) })
}

// Close frees the pooled buffers, the modules and the context; buffers
// still live are freed with the context and answer ErrClosed after.
func (c *cudaBackend) Close() error {
	var err error
	c.once.Do(func() {
		c.pool.drain()
		err = c.do(func() error {
			serr := cu.Synchronize()
			c.teardown()
			return cudaErr("close", serr)
		})
		close(c.quit)
	})
	return err
}

// cudaErr names the operation of a driver error (nil stays nil).
func cudaErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("kernels: cuda %s: %w", op, err)
}

// check says whether b is a live buffer of this backend, of type dt,
// holding at least n elements.
func (c *cudaBackend) check(b *Buffer, dt DType, n int, what string) error {
	return checkBuffer(c, b, dt, n, what)
}

// f32 checks a float32 buffer of at least n elements.
func (c *cudaBackend) f32(b *Buffer, n int, what string) error {
	return c.check(b, Float32, n, what)
}

// hostMem returns the address, length and element type of a host slice
// of float32, int16 or uint8 (ok false for anything else).
func hostMem(x any) (p unsafe.Pointer, n int, dt DType, ok bool) {
	switch s := x.(type) {
	case []float32:
		return unsafe.Pointer(unsafe.SliceData(s)), len(s), Float32, true
	case []int16:
		return unsafe.Pointer(unsafe.SliceData(s)), len(s), Int16, true
	case []uint8:
		return unsafe.Pointer(unsafe.SliceData(s)), len(s), Uint8, true
	}
	return nil, 0, 0, false
}

func (c *cudaBackend) Upload(dst *Buffer, src any) error {
	p, n, dt, ok := hostMem(src)
	if !ok {
		return fmt.Errorf("%w: upload of %T", ErrShape, src)
	}
	if err := c.check(dst, dt, n, "upload destination"); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	err := c.do(func() error {
		return cudaErr("upload", cu.MemcpyHtoD(cu.DevicePtr(dst.ptr), p, int64(n*dt.Size())))
	})
	runtime.KeepAlive(src)
	return err
}

func (c *cudaBackend) Download(dst any, src *Buffer) error {
	p, n, dt, ok := hostMem(dst)
	if !ok {
		return fmt.Errorf("%w: download into %T", ErrShape, dst)
	}
	if err := c.check(src, dt, n, "download source"); err != nil {
		return err
	}
	err := c.do(func() error {
		if n == 0 {
			return cudaErr("download", cu.Synchronize())
		}
		// Synchronous on the default stream: waits for queued kernels.
		return cudaErr("download", cu.MemcpyDtoH(p, cu.DevicePtr(src.ptr), int64(n*dt.Size())))
	})
	runtime.KeepAlive(dst)
	return err
}

// ---- launching ----

// dim3 is a launch dimension.
type dim3 [3]int

// launch queues kernel name (on the worker). Every argument becomes an
// 8-byte holder (cu's Launch reads 8 bytes per argument; the kernels take
// only pointers, long long and double): *Buffer and cu.DevicePtr as device
// pointers, int/int64/bool as long long, float32/float64 as double.
func (c *cudaBackend) launch(name string, grid, block dim3, args ...any) error {
	fn, ok := c.fns[name]
	if !ok {
		return fmt.Errorf("kernels: cuda kernel %s missing from the PTX (make ptx)", name)
	}
	hold := make([]uint64, len(args))
	params := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case *Buffer:
			hold[i] = uint64(v.ptr)
		case cu.DevicePtr:
			hold[i] = uint64(v)
		case int:
			hold[i] = uint64(int64(v))
		case int64:
			hold[i] = uint64(v)
		case bool:
			if v {
				hold[i] = 1
			}
		case float32:
			hold[i] = math.Float64bits(float64(v))
		case float64:
			hold[i] = math.Float64bits(v)
		default:
			return fmt.Errorf("kernels: cuda kernel %s: argument %d of type %T", name, i, a)
		}
		params[i] = unsafe.Pointer(&hold[i])
	}
	for a := 0; a < 3; a++ {
		if grid[a] <= 0 || block[a] <= 0 {
			return fmt.Errorf("kernels: cuda kernel %s: launch %v x %v", name, grid, block)
		}
	}
	err := fn.Launch(grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, cu.NoStream, params)
	runtime.KeepAlive(hold)
	return cudaErr("launch "+name, err)
}

// linGrid is the grid of a grid-stride 1D kernel over n elements.
func (c *cudaBackend) linGrid(n int) dim3 {
	b := (n + cudaThreads - 1) / cudaThreads
	b = min(max(b, 1), c.sms*32)
	return dim3{b, 1, 1}
}

var (
	linBlock = dim3{cudaThreads, 1, 1}
	rowBlock = dim3{32, 8, 1} // row kernels: 8 rows of 32 threads
)

// rowGrid is the grid of a row kernel over rows rows.
func rowGrid(rows int) dim3 {
	return dim3{min(max((rows+7)/8, 1), 1<<20), 1, 1}
}

// run launches on the worker and returns the launch error.
func (c *cudaBackend) run(name string, grid, block dim3, args ...any) error {
	return c.do(func() error { return c.launch(name, grid, block, args...) })
}

// scratch allocates a temporary float32 buffer (free it after the
// kernels that use it are queued: the pool hands it out again only to
// later, stream-ordered work).
func (c *cudaBackend) scratch(n int) (*Buffer, error) {
	return c.pool.alloc(c, Float32, max(n, 1))
}

// upload32 allocates a scratch buffer holding vals.
func (c *cudaBackend) upload32(vals []float32) (*Buffer, error) {
	b, err := c.scratch(len(vals))
	if err != nil {
		return nil, err
	}
	if err := c.Upload(b, vals); err != nil {
		c.Free(b)
		return nil, err
	}
	return b, nil
}
