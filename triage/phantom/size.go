package phantom

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a grid size written DxHxW (slices, rows, columns), e.g.
// "32x256x256", each 1 to 2048 (rows and columns at least 16).
func ParseSize(s string) ([3]int, error) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		return [3]int{}, fmt.Errorf("%w: size %q: want DxHxW, e.g. 32x256x256", ErrSpec, s)
	}
	var n [3]int
	for a, t := range parts {
		v, err := strconv.Atoi(t)
		lo := 1
		if a > 0 {
			lo = 16
		}
		if err != nil || v < lo || v > 2048 || t != strconv.Itoa(v) {
			return [3]int{}, fmt.Errorf("%w: size %q: %q is not a whole number from %d to 2048", ErrSpec, s, t, lo)
		}
		n[a] = v
	}
	return n, nil
}
