package kernels

// Denoising filters of the CPU backend. STUB: every method answers
// errNotImplemented until written.

func (c *cpuBackend) Gaussian(dst, src *Buffer, size [3]int, sigma [3]float64, truncate float64) error {
	return errNotImplemented("Gaussian")
}

func (c *cpuBackend) Bilateral(dst, src *Buffer, size [3]int, p BilateralParams) error {
	return errNotImplemented("Bilateral")
}

func (c *cpuBackend) NLM(dst, src *Buffer, size [3]int, p NLMParams) error {
	return errNotImplemented("NLM")
}
