// Package benchio holds the small file helpers the triage benchmarks
// (modelbench, triagebench) share with their Python and Node
// counterparts: raw little-endian float32 tensors.
package benchio

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// Numel is the number of elements of a shape.
func Numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// ReadF32 reads a file of exactly n little-endian float32 values.
func ReadF32(name string, n int) ([]float32, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(raw) != 4*n {
		return nil, fmt.Errorf("%s: %d bytes, want %d (%d float32)", name, len(raw), 4*n, n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, nil
}

// WriteF32 writes v as little-endian float32 values.
func WriteF32(name string, v []float32) error {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return os.WriteFile(name, raw, 0o644)
}
