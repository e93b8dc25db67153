package kernels

// Convolutions and GEMM of the CPU backend. STUB: every method answers
// errNotImplemented until written.

func (c *cpuBackend) PrepareConv(spec ConvSpec, weights, bias []float32) (*Conv, error) {
	return nil, errNotImplemented("PrepareConv")
}

func (c *cpuBackend) RunConv(cv *Conv, dst, src *Buffer) error { return errNotImplemented("RunConv") }

func (c *cpuBackend) ReleaseConv(cv *Conv) {}

func (c *cpuBackend) Gemm(dst, a, b, cm *Buffer, m, n, k int, transA, transB bool, alpha, beta float32, cLen int) error {
	return errNotImplemented("Gemm")
}
