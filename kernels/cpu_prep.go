package kernels

// Preprocessing and element-wise operations of the CPU backend.
// STUB: owned by the preprocessing work; every method answers
// errNotImplemented until written.

func (c *cpuBackend) Rescale(dst, src *Buffer, n int, slope, intercept float32, w Window) error {
	return errNotImplemented("Rescale")
}

func (c *cpuBackend) Resample(dst, src *Buffer, dstSize, srcSize [3]int, m AxisMap, mode Interp, fill float32) error {
	return errNotImplemented("Resample")
}

func (c *cpuBackend) Flip(dst, src *Buffer, n, ch int, size [3]int, axes [3]bool) error {
	return errNotImplemented("Flip")
}

func (c *cpuBackend) CropPad(dst, src *Buffer, n, ch int, srcSize, dstSize [3]int, offset [3]int, fill float32) error {
	return errNotImplemented("CropPad")
}

func (c *cpuBackend) Activate(dst, src *Buffer, n int, act Activation) error {
	return errNotImplemented("Activate")
}

func (c *cpuBackend) Binary(op BinOp, dst, a, b *Buffer, outShape, aShape, bShape []int) error {
	return errNotImplemented("Binary")
}
