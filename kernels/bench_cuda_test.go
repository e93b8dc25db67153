//go:build cuda

package kernels

import (
	"math/rand/v2"
	"testing"
	"time"
)

// GPU benchmarks (kernels/bench/GPU.md runs them). Memory-bound kernels
// report their effective bandwidth (the bytes an ideal kernel reads and
// writes once, per second) beside the bandwidth of a device-to-device copy
// measured in the same run (copyGB/s) and the ratio (%copy; the target is
// 60 or more). Timing: kernels are queued b.N times, then Sync; the clock
// covers the queueing and the wait.

// cudaBenchN is the elements of a memory-bound benchmark: 128 MiB of
// float32, well beyond the L2 cache.
const cudaBenchN = 1 << 25

// cudaBenchBackend opens the device (skipping without one) and allocates
// float32 buffers of n elements filled with values in [-1, 1).
func cudaBenchBackend(b *testing.B, nbuf, n int) (Backend, []*Buffer) {
	be := openCUDATest(b)
	rng := rand.New(rand.NewPCG(3, 3))
	vals := randVals(rng, n, 1)
	bufs := make([]*Buffer, nbuf)
	for i := range bufs {
		buf, err := be.Alloc(Float32, n)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Upload(buf, vals); err != nil {
			b.Fatal(err)
		}
		bufs[i] = buf
	}
	return be, bufs
}

// copyBandwidth times device-to-device copies of n float32 (GB/s, read
// plus write).
func copyBandwidth(b *testing.B, be Backend, dst, src *Buffer, n int) float64 {
	const reps = 30
	if err := be.Copy(dst, src, n); err != nil {
		b.Fatal(err)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := 0; i < reps; i++ {
		if err := be.Copy(dst, src, n); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	return 8 * float64(n) * reps / time.Since(t0).Seconds() / 1e9
}

// benchBandwidth times op, which moves bytes per call, and reports GB/s
// against copyGBs.
func benchBandwidth(b *testing.B, be Backend, bytes, copyGBs float64, op func() error) {
	benchSynced(b, be, op)
	gbs := bytes * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gbs, "GB/s")
	b.ReportMetric(copyGBs, "copyGB/s")
	b.ReportMetric(100*gbs/copyGBs, "%copy")
	b.SetBytes(int64(bytes))
}

func BenchmarkCUDABandwidth(b *testing.B) {
	const n = cudaBenchN
	be, bufs := cudaBenchBackend(b, 3, n)
	x, y, z := bufs[0], bufs[1], bufs[2]
	i16, err := be.Alloc(Int16, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(i16, make([]int16, n)); err != nil {
		b.Fatal(err)
	}
	// A 512 x 256 x 256 volume (2 x 256^3 for the channel benchmarks).
	vol := [3]int{512, 256, 256}
	half := [3]int{256, 256, 256}
	// Per-channel parameters (scale, bias, mean, variance): ones.
	par, err := be.Alloc(Float32, 64)
	if err != nil {
		b.Fatal(err)
	}
	ones := make([]float32, 64)
	for i := range ones {
		ones[i] = 1
	}
	if err := be.Upload(par, ones); err != nil {
		b.Fatal(err)
	}
	labels, err := be.Alloc(Uint8, n/2)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		bytes float64
		op    func() error
	}{
		{"Copy", 8 * n, func() error { return be.Copy(y, x, n) }},
		{"Fill", 4 * n, func() error { return be.Fill(y, n, 1) }},
		{"RescaleInt16", 6 * n, func() error {
			return be.Rescale(y, i16, n, 1, -1024, Window{Center: 40, Width: 400, Clip: true})
		}},
		{"RescaleFloat32", 8 * n, func() error { return be.Rescale(y, x, n, 2, 1, Window{}) }},
		{"ActivateReLU", 8 * n, func() error { return be.Activate(y, x, n, Activation{Kind: ActReLU}) }},
		{"ActivateSigmoid", 8 * n, func() error { return be.Activate(y, x, n, Activation{Kind: ActSigmoid}) }},
		{"BinaryAdd", 12 * n, func() error {
			sh := []int{n}
			return be.Binary(OpAdd, z, x, y, sh, sh, sh)
		}},
		{"BinaryAddChannelBias", 8 * n, func() error { // [1,32,D,H,W] + [1,32,1,1,1]
			out := []int{1, 32, n / 32}
			return be.Binary(OpAdd, z, x, y, out, out, []int{1, 32, 1})
		}},
		{"FlipW", 8 * n, func() error { return be.Flip(y, x, 1, 1, vol, [3]bool{false, false, true}) }},
		{"FlipDHW", 8 * n, func() error { return be.Flip(y, x, 1, 1, vol, [3]bool{true, true, true}) }},
		{"CropPad", 8 * n, func() error {
			return be.CropPad(y, x, 1, 1, vol, vol, [3]int{3, -2, 5}, 0)
		}},
		{"ResampleLinear", 8 * n, func() error {
			m := AxisMap{Scale: [3]float64{0.99, 0.99, 0.99}, Offset: [3]float64{0.3, 0.4, 0.5}}
			return be.Resample(y, x, vol, vol, m, Linear, 0)
		}},
		{"ResampleNearest", 8 * n, func() error {
			m := AxisMap{Scale: [3]float64{0.99, 0.99, 0.99}, Offset: [3]float64{0.3, 0.4, 0.5}}
			return be.Resample(y, x, vol, vol, m, Nearest, 0)
		}},
		{"Softmax2", 8 * n, func() error { return be.Softmax(y, x, 1, 2, Voxels(half)) }},
		{"Argmax2", 5 * n, func() error {
			return be.Argmax(labels, x, 1, 2, Voxels(half))
		}},
		{"InstanceNorm2", 8 * n, func() error {
			return be.InstanceNorm(y, x, par, par, 1, 2, Voxels(half), 1e-5, Activation{Kind: ActLeakyReLU, Alpha: 0.01})
		}},
		{"InstanceNorm32", 8 * n, func() error {
			return be.InstanceNorm(y, x, par, par, 1, 32, n/32, 1e-5, Activation{Kind: ActReLU})
		}},
		{"BatchNorm32", 8 * n, func() error {
			return be.BatchNorm(y, x, par, par, par, par, 1, 32, n/32, 1e-5, Activation{})
		}},
		{"Sum", 4 * n, func() error { _, err := be.Sum(x, n); return err }},
		{"CountAbove", 4 * n, func() error { _, err := be.CountAbove(x, n, 0.5); return err }},
	}
	copyGBs := copyBandwidth(b, be, y, x, n)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchBandwidth(b, be, c.bytes, copyGBs, c.op) })
	}
}

// BenchmarkCUDAConvUNet runs the layers of bench/layers.json (a small 3D
// U-Net at 96^3) on the GPU: GFLOP/s and ms per layer. bench/bench_cuda.py
// times the same layers with PyTorch + cuDNN.
func BenchmarkCUDAConvUNet(b *testing.B) {
	benchConvLayers(b, openCUDATest(b))
}

// BenchmarkCUDADenoise times the denoising filters on a 256^3 volume.
func BenchmarkCUDADenoise(b *testing.B) {
	size := [3]int{256, 256, 256}
	n := Voxels(size)
	be, bufs := cudaBenchBackend(b, 2, n)
	x, y := bufs[0], bufs[1]
	cases := []struct {
		name string
		op   func() error
	}{
		{"Gaussian_s1", func() error { return be.Gaussian(y, x, size, [3]float64{1, 1, 1}, 4) }},
		{"Gaussian_s3", func() error { return be.Gaussian(y, x, size, [3]float64{3, 3, 3}, 4) }},
		{"Bilateral_s1", func() error {
			return be.Bilateral(y, x, size, BilateralParams{SigmaSpatial: [3]float64{1, 1, 1}, SigmaRange: 0.1})
		}},
		{"NLM_p1s3", func() error { // shared-memory tiles
			return be.NLM(y, x, size, NLMParams{PatchRadius: 1, SearchRadius: 3, H: 0.1, Sigma: 0.05})
		}},
		{"NLM_p2s2", func() error { // radtriage denoise's default
			return be.NLM(y, x, size, NLMParams{PatchRadius: 2, SearchRadius: 2, H: 0.1, Sigma: 0.05})
		}},
		{"NLM_p2s3", func() error { // beyond the tiles' halo: the direct kernel
			return be.NLM(y, x, size, NLMParams{PatchRadius: 2, SearchRadius: 3, H: 0.1, Sigma: 0.05})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			benchSynced(b, be, c.op)
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gvox/s")
		})
	}
}
