// Package kernels holds the compute backends of the triage path: one
// Backend interface, a pure-Go CPU implementation that is always compiled
// (CPU), and a CUDA one behind the cuda build tag that launches the
// project's own kernels (.cu sources beside this file, compiled to PTX
// that is committed and embedded) through gorgonia.org/cu. Open picks the
// CUDA backend when it is built in and a device answers, else the CPU one.
//
// # Layout and conventions
//
// Tensors are dense, row-major float32 arrays in NCDHW order (batch,
// channel, depth, height, width), as in ONNX and PyTorch. A Buffer is
// memory owned by a backend; shapes travel with each call, so one buffer
// can be read under several shapes (Reshape and Flatten are free).
//
// Every per-axis array ([3]int, [3]float64) is in (D, H, W) order: index 0
// is the slowest axis. For a volume.Volume, whose voxel (i, j, k) sits at
// i + Size[0]*(j + Size[1]*k), that is (D, H, W) = (Size[2], Size[1],
// Size[0]): the k axis is D and the i axis is W.
//
// Weights follow ONNX: a convolution's are [Cout, Cin, kD, kH, kW], a
// transposed convolution's [Cin, Cout, kD, kH, kW].
//
// Every operation may run asynchronously on a device; Download and Sync
// wait for it. Source and destination buffers of one call must not
// overlap unless the operation says it works in place.
package kernels
