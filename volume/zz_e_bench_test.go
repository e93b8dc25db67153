package volume

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestELevels(t *testing.T) {
	v, _ := ReadNIfTIFile("../../shared/dicom/ct-head-5mm.ref/ct-head-5mm.nii.gz")
	b, _ := niftiEncode(v, NIfTIOptions{})
	for _, l := range []int{1, 2, 3, 6, -2, 1, 2} {
		best := time.Hour
		var n int
		for range 6 {
			var out bytes.Buffer
			t0 := time.Now()
			writeGzip(&out, b, l)
			best = min(best, time.Since(t0))
			n = out.Len()
		}
		fmt.Println("level", l, best, n)
	}
}
