package kernels

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUNetNorm runs the "norms" of bench/layers.json on the CPU
// backend: InstanceNorm with its LeakyReLU fused, over one batch of C
// channels of In^3 voxels, reporting ms per layer.
// .ci/bench-kernels-conv.sh compares it with PyTorch and onnxruntime
// (InstanceNormalization followed by LeakyRelu).
func BenchmarkUNetNorm(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("bench", "layers.json"))
	if err != nil {
		b.Fatal(err)
	}
	var doc struct {
		Norms []struct {
			Name    string
			Cin, In int
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		b.Fatal(err)
	}
	be := NewCPU()
	defer be.Close()
	act := Activation{Kind: ActLeakyReLU, Alpha: 0.01}
	for _, l := range doc.Norms {
		b.Run(l.Name, func(b *testing.B) {
			c, sp := l.Cin, l.In*l.In*l.In
			x, y := make([]float32, c*sp), make([]float32, c*sp)
			scale, shift := make([]float32, c), make([]float32, c)
			for i := range x {
				x[i] = float32(i%97) * 0.01
			}
			for i := range scale {
				scale[i], shift[i] = 1+0.01*float32(i), 0.1
			}
			bx, by := normBenchUpload(b, be, x), normBenchUpload(b, be, y)
			bs, bb := normBenchUpload(b, be, scale), normBenchUpload(b, be, shift)
			run := func() {
				if err := be.InstanceNorm(by, bx, bs, bb, 1, c, sp, 1e-5, act); err != nil {
					b.Fatal(err)
				}
			}
			run()
			b.SetBytes(int64(8 * c * sp))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/layer")
		})
	}
}

// normBenchUpload allocates a buffer on be holding data.
func normBenchUpload(b *testing.B, be Backend, data []float32) *Buffer {
	buf, err := be.Alloc(Float32, len(data))
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(buf, data); err != nil {
		b.Fatal(err)
	}
	return buf
}
