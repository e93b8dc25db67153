package kernels

import "testing"

// Benchmarks of the nn operations on the activation sizes of a small 3D
// U-Net (16 channels at 96^3, 32 at 48^3) on the CPU backend. SetBytes
// counts the bytes each call reads and writes once, so GB/s compares
// with the memory bandwidth. kernels/bench/bench_nn.py times PyTorch
// (CPU, 2 threads) on the same InstanceNorm shapes.

// benchNNBuffers allocates float32 buffers of the given lengths on be,
// the first filled with random values.
func benchNNBuffers(b *testing.B, be Backend, lens ...int) []*Buffer {
	b.Helper()
	var seed uint32 = 9
	bufs := make([]*Buffer, len(lens))
	for i, n := range lens {
		buf, err := be.Alloc(Float32, n)
		if err != nil {
			b.Fatal(err)
		}
		x := make([]float32, n)
		if i == 0 {
			// Uniform in [-1, 1) from a xorshift: cheap, since the
			// framework calls each benchmark several times.
			for j := range x {
				seed ^= seed << 13
				seed ^= seed >> 17
				seed ^= seed << 5
				x[j] = float32(seed)/(1<<31) - 1
			}
		}
		if err := be.Upload(buf, x); err != nil {
			b.Fatal(err)
		}
		bufs[i] = buf
	}
	b.Cleanup(func() {
		for _, buf := range bufs {
			be.Free(buf)
		}
	})
	return bufs
}

// benchNN times run, which moves bytes per call.
func benchNN(b *testing.B, bytes int, run func() error) {
	b.Helper()
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for range b.N {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchInstanceNorm(b *testing.B, c, side int) {
	be := CPU()
	n := c * side * side * side
	bufs := benchNNBuffers(b, be, n, n, c, c)
	for _, p := range bufs[2:] {
		if err := be.Fill(p, c, 1); err != nil {
			b.Fatal(err)
		}
	}
	act := Activation{Kind: ActLeakyReLU, Alpha: 0.01}
	benchNN(b, 8*n, func() error {
		return be.InstanceNorm(bufs[1], bufs[0], bufs[2], bufs[3], 1, c, n/c, 1e-5, act)
	})
}

func BenchmarkInstanceNormLeaky16x96(b *testing.B) { benchInstanceNorm(b, 16, 96) }
func BenchmarkInstanceNormLeaky32x48(b *testing.B) { benchInstanceNorm(b, 32, 48) }

func BenchmarkBatchNormReLU16x96(b *testing.B) {
	be := CPU()
	const c, n = 16, 16 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n, n, c, c, c, c)
	for _, p := range bufs[2:] {
		if err := be.Fill(p, c, 1); err != nil {
			b.Fatal(err)
		}
	}
	benchNN(b, 8*n, func() error {
		return be.BatchNorm(bufs[1], bufs[0], bufs[2], bufs[3], bufs[4], bufs[5], 1, c, n/c, 1e-5, Activation{Kind: ActReLU})
	})
}

func BenchmarkMaxPool2x16x96(b *testing.B) {
	be := CPU()
	p := PoolSpec{Kind: MaxPool, N: 1, C: 16, In: [3]int{96, 96, 96}, Kernel: [3]int{2, 2, 2}, Stride: [3]int{2, 2, 2}}
	n := 16 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n, n/8)
	benchNN(b, 4*n+4*n/8, func() error { return be.Pool(bufs[1], bufs[0], p) })
}

func BenchmarkSoftmax2x96(b *testing.B) {
	be := CPU()
	n := 2 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n, n)
	benchNN(b, 8*n, func() error { return be.Softmax(bufs[1], bufs[0], 1, 2, n/2) })
}

func BenchmarkArgmax2x96(b *testing.B) {
	be := CPU()
	n := 2 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n)
	dst, err := be.Alloc(Uint8, n/2)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Free(dst)
	benchNN(b, 4*n+n/2, func() error { return be.Argmax(dst, bufs[0], 1, 2, n/2) })
}

func BenchmarkResizeLinearX2_32x48(b *testing.B) {
	be := CPU()
	r := ResizeSpec{N: 1, C: 32, In: [3]int{48, 48, 48}, Out: [3]int{96, 96, 96}, Mode: Linear, Coord: CoordHalfPixel}
	n := 32 * 48 * 48 * 48
	bufs := benchNNBuffers(b, be, n, 8*n)
	benchNN(b, 4*n+32*n, func() error { return be.Resize(bufs[1], bufs[0], r) })
}

func BenchmarkResizeNearestX2_32x48(b *testing.B) {
	be := CPU()
	r := ResizeSpec{N: 1, C: 32, In: [3]int{48, 48, 48}, Out: [3]int{96, 96, 96}, Mode: Nearest, Coord: CoordAsymmetric, Nearest: NearestFloor}
	n := 32 * 48 * 48 * 48
	bufs := benchNNBuffers(b, be, n, 8*n)
	benchNN(b, 4*n+32*n, func() error { return be.Resize(bufs[1], bufs[0], r) })
}

// BenchmarkConcat16x96: a U-Net skip connection, 16+16 channels at 96^3.
func BenchmarkConcat16x96(b *testing.B) {
	be := CPU()
	n := 16 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n, n, 2*n)
	benchNN(b, 16*n, func() error {
		return be.Concat(bufs[2], bufs[:2], 1, []int{n, n})
	})
}

func BenchmarkSum16x96(b *testing.B) {
	be := CPU()
	n := 16 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n)
	benchNN(b, 4*n, func() error { _, err := be.Sum(bufs[0], n); return err })
}

func BenchmarkCountAbove16x96(b *testing.B) {
	be := CPU()
	n := 16 * 96 * 96 * 96
	bufs := benchNNBuffers(b, be, n)
	benchNN(b, 4*n, func() error { _, err := be.CountAbove(bufs[0], n, 0.5); return err })
}
