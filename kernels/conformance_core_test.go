package kernels

import "testing"

func confCore(t *testing.T, b Backend) {}
