package kernels

import "testing"

// Benchmarks of the denoise filters on a CT-sized slab (16 slices of
// 256×256), parameters as the denoise benchmark (kernels/bench) uses
// for 20 HU noise.
func benchDenoise(b *testing.B, run func(be Backend, dst, src *Buffer, size [3]int) error) {
	size := [3]int{16, 256, 256}
	n := size[0] * size[1] * size[2]
	be := NewCPU()
	defer be.Close()
	src, err := be.Alloc(Float32, n)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := be.Alloc(Float32, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(src, denoiseVol(1, size)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * n))
	b.ResetTimer()
	for range b.N {
		if err := run(be, dst, src, size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGaussian(b *testing.B) {
	benchDenoise(b, func(be Backend, dst, src *Buffer, size [3]int) error {
		return be.Gaussian(dst, src, size, [3]float64{0, 1, 1}, 4)
	})
}

func BenchmarkBilateral(b *testing.B) {
	benchDenoise(b, func(be Backend, dst, src *Buffer, size [3]int) error {
		return be.Bilateral(dst, src, size, BilateralParams{SigmaSpatial: [3]float64{0, 1, 1}, SigmaRange: 40})
	})
}

func BenchmarkNLM(b *testing.B) {
	benchDenoise(b, func(be Backend, dst, src *Buffer, size [3]int) error {
		return be.NLM(dst, src, size, NLMParams{PatchRadius: 2, SearchRadius: 2, H: 16, Sigma: 20})
	})
}
