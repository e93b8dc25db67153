//go:build cgo && charls

package codec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestCharLSColourInterleave encodes a synthetic RGB image in each of the
// three interleave modes, and 12-bit and 8-bit grey images, and checks
// that every stream decodes to the interleaved samples it was made from:
// the planar-to-interleaved conversion and the 8-bit and 16-bit paths.
func TestCharLSColourInterleave(t *testing.T) {
	const w, h = 37, 23 // odd sizes catch stride mistakes
	rgb := make([]byte, w*h*3)
	for i := range w * h {
		x, y := i%w, i/w
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = byte(x*7), byte(y*11), byte((x*y)^0x5A)
	}
	// CharLS takes (and gives) one plane per component in interleave
	// mode none.
	planar := make([]byte, len(rgb))
	for i := range w * h {
		for c := range 3 {
			planar[c*w*h+i] = rgb[3*i+c]
		}
	}
	for ilv, mode := range []string{"none", "line", "sample"} {
		in := rgb
		if ilv == 0 {
			in = planar
		}
		src, err := encodeJPEGLS(in, w, h, 8, 3, 0, ilv)
		if err != nil {
			t.Fatal(err)
		}
		if hd, err := readJPEGLSHeader(src); err != nil || hd.Interleave != ilv || hd.Components != 3 {
			t.Fatalf("%s: header %+v, %v", mode, hd, err)
		}
		dst := make([]byte, len(rgb))
		if err := DecodeJPEGLS(dst, src, Frame{Rows: h, Columns: w, Samples: 3, BitsAllocated: 8, BitsStored: 8}); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if !bytes.Equal(dst, rgb) {
			t.Errorf("interleave %s: decoded samples differ from the original", mode)
		}
	}

	grey := make([]byte, w*h*2)
	for i := range w * h {
		binary.NativeEndian.PutUint16(grey[2*i:], uint16((i*37)%4096))
	}
	src, err := encodeJPEGLS(grey, w, h, 12, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, w*h*2)
	if err := DecodeJPEGLS(dst, src, Frame{Rows: h, Columns: w, Samples: 1, BitsAllocated: 16, BitsStored: 12}); err != nil {
		t.Fatal(err)
	}
	for i := range w * h {
		if got, want := binary.LittleEndian.Uint16(dst[2*i:]), uint16((i*37)%4096); got != want {
			t.Fatalf("12-bit sample %d = %d, want %d", i, got, want)
		}
	}

	// 8-bit samples in a 16-bit container (Bits Allocated 16, Stored 8).
	g8 := make([]byte, w*h)
	for i := range g8 {
		g8[i] = byte(i * 13)
	}
	if src, err = encodeJPEGLS(g8, w, h, 8, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	dst = make([]byte, w*h*2)
	if err := DecodeJPEGLS(dst, src, Frame{Rows: h, Columns: w, Samples: 1, BitsAllocated: 16, BitsStored: 8}); err != nil {
		t.Fatal(err)
	}
	for i := range g8 {
		if got := binary.LittleEndian.Uint16(dst[2*i:]); got != uint16(g8[i]) {
			t.Fatalf("8-in-16 sample %d = %d, want %d", i, got, g8[i])
		}
	}

	// Near-lossless colour, planar: every sample within NEAR.
	const near = 3
	if src, err = encodeJPEGLS(planar, w, h, 8, 3, near, 0); err != nil {
		t.Fatal(err)
	}
	dst = make([]byte, len(rgb))
	if err := DecodeJPEGLS(dst, src, Frame{Rows: h, Columns: w, Samples: 3, BitsAllocated: 8, BitsStored: 8}); err != nil {
		t.Fatal(err)
	}
	for i := range rgb {
		if d := int(dst[i]) - int(rgb[i]); d > near || d < -near {
			t.Fatalf("near-lossless sample %d = %d, original %d", i, dst[i], rgb[i])
		}
	}
}

// TestCharLSZeroBeforeEOI: a 0x00 byte between the entropy-coded data and
// EOI (non-conforming, but in the WG04 sample MR1_JLSL) is tolerated, and
// a stream without EOI is refused before CharLS reads past its end.
func TestCharLSZeroBeforeEOI(t *testing.T) {
	const w, h = 64, 48
	img := make([]byte, w*h*2)
	for i := range w * h {
		binary.NativeEndian.PutUint16(img[2*i:], uint16(i*i%65536))
	}
	src, err := encodeJPEGLS(img, w, h, 16, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := Frame{Rows: h, Columns: w, Samples: 1, BitsAllocated: 16, BitsStored: 16}
	padded := append(append(bytes.Clone(src[:len(src)-2]), 0x00), 0xFF, 0xD9)
	for name, s := range map[string][]byte{"as encoded": src, "zero before EOI": padded, "even-length pad after EOI": append(bytes.Clone(src), 0)} {
		dst := make([]byte, f.Size())
		if err := DecodeJPEGLS(dst, s, f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range w * h {
			if got, want := binary.LittleEndian.Uint16(dst[2*i:]), uint16(i*i%65536); got != want {
				t.Fatalf("%s: sample %d = %d, want %d", name, i, got, want)
			}
		}
	}
	if err := DecodeJPEGLS(make([]byte, f.Size()), src[:len(src)-2], f); err == nil || !bytes.Contains([]byte(err.Error()), []byte("EOI")) {
		t.Errorf("stream without EOI: %v", err)
	}
}
