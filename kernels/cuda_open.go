//go:build cuda

package kernels

// A cuda build links libcuda.so.1 (the driver library) and imports
// gorgonia.org/cu, whose package init calls cuInit(0) and, when that
// fails, prints an error and calls os.Exit(1) before main runs. So that a
// cuda binary started where the driver library is installed but no device
// answers (no GPU, CUDA_VISIBLE_DEVICES="", a driver/library mismatch)
// still runs, on the CPU backend, this file defines cuInit in the
// executable: the definition shadows libcuda's for the whole process, calls
// the real one (found with dlsym(RTLD_NEXT)), records its result and
// reports success to cu. openCUDA then answers with the recorded error
// (ErrNoDevice from Open("cuda"), the CPU from Open("auto")).
//
// What no code of ours can change: where libcuda.so.1 itself is missing,
// the dynamic loader refuses to start the binary ("error while loading
// shared libraries: libcuda.so.1"); the cuda build is for GPU machines, and
// make build gives the CPU-only binary for the others.

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <cuda.h>

static CUresult radtriageCuInitResult = CUDA_ERROR_NOT_INITIALIZED;

CUresult CUDAAPI cuInit(unsigned int flags) {
	typedef CUresult (*initFn)(unsigned int);
	initFn real = (initFn)dlsym(RTLD_NEXT, "cuInit");
	if (real == NULL) {
		radtriageCuInitResult = CUDA_ERROR_NOT_FOUND;
		return CUDA_SUCCESS;
	}
	radtriageCuInitResult = real(flags);
	return CUDA_SUCCESS;
}

static int radtriageCuInitStatus(void) { return (int)radtriageCuInitResult; }
static const char *radtriageErrorName(int r) {
	const char *s = NULL;
	typedef CUresult (*nameFn)(CUresult, const char **);
	nameFn fn = (nameFn)dlsym(RTLD_DEFAULT, "cuGetErrorString");
	if (fn == NULL || fn((CUresult)r, &s) != CUDA_SUCCESS) return NULL;
	return s;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
)

func init() { openCUDA = openCUDABackend }

// cuInitError is the driver's answer to cuInit, or nil.
func cuInitError() error {
	r := int(C.radtriageCuInitStatus())
	if r == 0 {
		return nil
	}
	msg := "code " + strconv.Itoa(r)
	if s := C.radtriageErrorName(C.int(r)); s != nil {
		msg = C.GoString(s) + " (" + msg + ")"
	}
	if r == int(C.CUDA_ERROR_NOT_FOUND) {
		msg = "libcuda has no cuInit"
	}
	return fmt.Errorf("cuInit: %s", msg)
}

// openCUDABackend opens device RADTRIAGE_CUDA_DEVICE (default 0).
func openCUDABackend() (Backend, error) {
	if err := cuInitError(); err != nil {
		return nil, err
	}
	ord := 0
	if s := os.Getenv("RADTRIAGE_CUDA_DEVICE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("RADTRIAGE_CUDA_DEVICE=%q: want a device number", s)
		}
		ord = n
	}
	return newCUDA(ord)
}
