package kernels

import (
	"math/rand/v2"
	"testing"
)

// Benchmarks of the prep operations on CT-sized data: a 512×512×200
// volume at 0.7×0.7×1.25 mm, resampled to 1 mm (250×358×358), and a
// Binary over 16×96³. Each reports GB/s of bytes read plus written
// (b.SetBytes) and compares with the naive loop of the conformance test
// where one is cheap enough (…Naive, on the same data, one thread).
//
//	go test -run '^$' -bench 'Rescale|Resample|Binary' -benchtime 5x ./kernels

var benchCT = Geometry{
	Size:    [3]int{200, 512, 512},
	Spacing: [3]float64{1.25, 0.7, 0.7},
	Axes:    [3][3]float64{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}},
}

func benchBackend(b *testing.B) Backend {
	be := NewCPU()
	b.Cleanup(func() { be.Close() })
	return be
}

func benchBuf(b *testing.B, be Backend, dt DType, n int) *Buffer {
	buf, err := be.Alloc(dt, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Free(buf) })
	return buf
}

// ctInt16 is CT-like stored values: noise around soft tissue and air.
func ctInt16(n int) []int16 {
	rng := rand.New(rand.NewPCG(31, 1))
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(rng.IntN(2000))
	}
	return out
}

func ctFloat32(n int) []float32 {
	rng := rand.New(rand.NewPCG(32, 1))
	return randFloats(rng, n, -1024, 2000)
}

func BenchmarkRescaleInt16Window(b *testing.B) {
	be := benchBackend(b)
	n := benchCT.Voxels()
	src, dst := benchBuf(b, be, Int16, n), benchBuf(b, be, Float32, n)
	if err := be.Upload(src, ctInt16(n)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 6)
	for b.Loop() {
		if err := be.Rescale(dst, src, n, 1, -1024, Window{40, 400, true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRescaleInt16WindowNaive is the float64 reference loop.
func BenchmarkRescaleInt16WindowNaive(b *testing.B) {
	n := benchCT.Voxels()
	src := ctInt16(n)
	dst := make([]float32, n)
	b.SetBytes(int64(n) * 6)
	for b.Loop() {
		for i, v := range src {
			x := (float64(v) - 1024 - (40 - 200)) / 400
			dst[i] = float32(min(max(x, 0), 1))
		}
	}
}

func BenchmarkRescaleFloat32InPlace(b *testing.B) {
	be := benchBackend(b)
	n := benchCT.Voxels()
	buf := benchBuf(b, be, Float32, n)
	if err := be.Upload(buf, ctFloat32(n)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 8)
	for b.Loop() {
		// No clip, so that repeating it keeps the values in range.
		if err := be.Rescale(buf, buf, n, 1, 0, Window{0, 1, false}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchResample(b *testing.B, mode Interp) {
	be := benchBackend(b)
	out, m, err := benchCT.ResampleTo([3]float64{1, 1, 1}, [3]int{})
	if err != nil {
		b.Fatal(err)
	}
	src := benchBuf(b, be, Float32, benchCT.Voxels())
	dst := benchBuf(b, be, Float32, out.Voxels())
	if err := be.Upload(src, ctFloat32(benchCT.Voxels())); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(benchCT.Voxels()+out.Voxels()) * 4)
	for b.Loop() {
		if err := be.Resample(dst, src, out.Size, benchCT.Size, m, mode, -1024); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResampleCT is 512×512×200 at 0.7×0.7×1.25 mm to 1 mm,
// trilinear.
func BenchmarkResampleCT(b *testing.B) { benchResample(b, Linear) }

func BenchmarkResampleCTNearest(b *testing.B) { benchResample(b, Nearest) }

// BenchmarkResampleCTNaive is the conformance test's voxel-by-voxel loop
// (refResample) on the same data.
func BenchmarkResampleCTNaive(b *testing.B) {
	out, m, err := benchCT.ResampleTo([3]float64{1, 1, 1}, [3]int{})
	if err != nil {
		b.Fatal(err)
	}
	src := ctFloat32(benchCT.Voxels())
	b.SetBytes(int64(benchCT.Voxels()+out.Voxels()) * 4)
	for b.Loop() {
		refResample(src, benchCT.Size, out.Size, m, Linear, -1024)
	}
}

func benchBinary(b *testing.B, bShape []int) {
	be := benchBackend(b)
	shape := []int{16, 1, 96, 96, 96}
	n, nb := prod(shape), prod(bShape)
	rng := rand.New(rand.NewPCG(33, 1))
	x, y, dst := benchBuf(b, be, Float32, n), benchBuf(b, be, Float32, nb), benchBuf(b, be, Float32, n)
	if err := be.Upload(x, randFloats(rng, n, -1, 1)); err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(y, randFloats(rng, nb, -1, 1)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(2*n+nb) * 4)
	for b.Loop() {
		if err := be.Binary(OpAdd, dst, x, y, shape, shape, bShape); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBinaryAdd is 16×96³ + 16×96³.
func BenchmarkBinaryAdd(b *testing.B) { benchBinary(b, []int{16, 1, 96, 96, 96}) }

// BenchmarkBinaryAddPerVolume adds one value per volume ([16,1,1,1,1]).
func BenchmarkBinaryAddPerVolume(b *testing.B) { benchBinary(b, []int{16, 1, 1, 1, 1}) }

// BenchmarkBinaryAddNaive is the conformance test's multi-index loop
// (refBinary) on the same shapes.
func BenchmarkBinaryAddNaive(b *testing.B) {
	shape := []int{16, 1, 96, 96, 96}
	n := prod(shape)
	rng := rand.New(rand.NewPCG(33, 1))
	x, y := randFloats(rng, n, -1, 1), randFloats(rng, n, -1, 1)
	b.SetBytes(int64(3*n) * 4)
	for b.Loop() {
		refBinary(OpAdd, x, y, shape, shape, shape)
	}
}
