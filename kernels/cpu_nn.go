package kernels

// Pooling, normalisation, softmax, concat, resize and reductions of the
// CPU backend. STUB: every method answers errNotImplemented until written.

func (c *cpuBackend) Pool(dst, src *Buffer, p PoolSpec) error { return errNotImplemented("Pool") }

func (c *cpuBackend) GlobalAvgPool(dst, src *Buffer, n, ch, spatial int) error {
	return errNotImplemented("GlobalAvgPool")
}

func (c *cpuBackend) InstanceNorm(dst, src, scale, bias *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	return errNotImplemented("InstanceNorm")
}

func (c *cpuBackend) BatchNorm(dst, src, scale, bias, mean, variance *Buffer, n, ch, spatial int, eps float32, act Activation) error {
	return errNotImplemented("BatchNorm")
}

func (c *cpuBackend) Softmax(dst, src *Buffer, n, ch, spatial int) error {
	return errNotImplemented("Softmax")
}

func (c *cpuBackend) Concat(dst *Buffer, srcs []*Buffer, outer int, inner []int) error {
	return errNotImplemented("Concat")
}

func (c *cpuBackend) Resize(dst, src *Buffer, r ResizeSpec) error { return errNotImplemented("Resize") }

func (c *cpuBackend) Sum(src *Buffer, n int) (float64, error) { return 0, errNotImplemented("Sum") }

func (c *cpuBackend) Max(src *Buffer, n int) (float32, error) { return 0, errNotImplemented("Max") }

func (c *cpuBackend) Argmax(dst, src *Buffer, n, ch, spatial int) error {
	return errNotImplemented("Argmax")
}

func (c *cpuBackend) CountAbove(src *Buffer, n int, threshold float32) (int64, error) {
	return 0, errNotImplemented("CountAbove")
}
