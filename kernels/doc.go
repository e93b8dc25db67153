// Package kernels holds the compute backends: a pure-Go CPU implementation
// always compiled, and a CUDA one behind the cuda build tag (issue: kernels).
package kernels
