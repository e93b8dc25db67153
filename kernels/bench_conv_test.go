package kernels

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchLayer is one entry of bench/layers.json: a cubic convolution of
// batch 1 with the same kernel, stride and padding on every axis.
type benchLayer struct {
	Name             string
	Cin, Cout, In, K int
	Stride, Pad      int
	Transpose        bool
}

func (l benchLayer) spec() ConvSpec {
	c := func(v int) [3]int { return [3]int{v, v, v} }
	return ConvSpec{N: 1, Cin: l.Cin, Cout: l.Cout, In: c(l.In), Kernel: c(l.K), Stride: c(l.Stride),
		PadBegin: c(l.Pad), PadEnd: c(l.Pad), Transpose: l.Transpose, Bias: true}
}

func readBenchLayers(b *testing.B) []benchLayer {
	raw, err := os.ReadFile(filepath.Join("bench", "layers.json"))
	if err != nil {
		b.Fatal(err)
	}
	var doc struct{ Layers []benchLayer }
	if err := json.Unmarshal(raw, &doc); err != nil {
		b.Fatal(err)
	}
	return doc.Layers
}

// BenchmarkConvUNet runs the conv layers of a small 3D U-Net at 96^3
// (bench/layers.json) on the CPU backend, reporting GFLOP/s (2 flops per
// multiply-add of the layer, no work on padding counted) and ms per layer.
// .ci/bench-kernels-conv.sh compares it with PyTorch and onnxruntime.
func BenchmarkConvUNet(b *testing.B) {
	be := NewCPU()
	defer be.Close()
	benchConvLayers(b, be)
}

// benchConvLayers runs each layer of bench/layers.json on be as a
// sub-benchmark, with random weights, bias and input: one warm-up run,
// then b.N runs, timed up to the Sync that waits for them.
func benchConvLayers(b *testing.B, be Backend) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, l := range readBenchLayers(b) {
		b.Run(l.Name, func(b *testing.B) {
			s := l.spec()
			cv, err := be.PrepareConv(s, randVals(rng, s.WeightLen(), 0.1), randVals(rng, s.Cout, 0.1))
			if err != nil {
				b.Fatal(err)
			}
			defer be.ReleaseConv(cv)
			inVox, outVox := Voxels(s.In), Voxels(cv.Out)
			src, err := be.Alloc(Float32, s.Cin*inVox)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Free(src)
			if err := be.Upload(src, randVals(rng, s.Cin*inVox, 1)); err != nil {
				b.Fatal(err)
			}
			dst, err := be.Alloc(Float32, s.Cout*outVox)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Free(dst)
			macs := float64(s.WeightLen()) * float64(outVox)
			if s.Transpose {
				macs = float64(s.WeightLen()) * float64(inVox)
			}
			benchSynced(b, be, func() error { return be.RunConv(cv, dst, src) })
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*macs/sec/1e9, "GFLOP/s")
			b.ReportMetric(sec*1e3, "ms/layer")
		})
	}
}

// benchSynced times op on be: one warm-up call (on a GPU, also the JIT's
// first launch), then b.N calls, the clock stopped after the Sync that
// waits for them.
func benchSynced(b *testing.B, be Backend, op func() error) {
	if err := op(); err != nil {
		b.Fatal(err)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}
