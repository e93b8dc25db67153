package kernels

import "fmt"

// openCUDA is set by the cuda build (cuda_open.go); nil otherwise.
var openCUDA func() (Backend, error)

// Open returns the backend named by want: "cpu", "cuda", or "auto" (or
// ""), which is CUDA when this binary was built with -tags cuda and a
// device answers, else the CPU. reason says why auto chose the CPU. Asking
// for "cuda" where there is none is an error wrapping ErrNoDevice.
func Open(want string) (b Backend, reason string, err error) {
	switch want {
	case "cpu":
		return CPU(), "asked for", nil
	case "cuda", "auto", "":
		if openCUDA == nil {
			reason = "this binary was built without CUDA (make build-cuda builds one with it)"
		} else if cb, cerr := openCUDA(); cerr == nil {
			return cb, "CUDA device found", nil
		} else {
			reason = cerr.Error()
		}
		if want == "cuda" {
			return nil, reason, fmt.Errorf("%w: %s", ErrNoDevice, reason)
		}
		return CPU(), reason, nil
	}
	return nil, "", fmt.Errorf("%w: backend %q (want cpu, cuda or auto)", ErrShape, want)
}
