package kernels

import "fmt"

// errNotImplemented is the answer of an operation still being written.
// (Temporary: removed when every operation exists.)
func errNotImplemented(op string) error { return fmt.Errorf("kernels: %s not implemented yet", op) }
