//go:build cgo && (openjpeg || charls)

package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

// cgoEncoded is one encapsulated fixture split into its frames.
type cgoEncoded struct {
	in     *dicomio.Instance
	frame  codec.Frame
	frames [][]byte
}

// cgoReadEncoded reads a fixture with encapsulated pixel data and splits its
// value into frames: item headers are parsed here (PS3.5 §A.4), the first
// item is the Basic Offset Table, and the fixtures hold one fragment per
// frame (or, for a single frame, fragments that are concatenated).
func cgoReadEncoded(tb testing.TB, rel string) cgoEncoded {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.SharedDICOM(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	in, err := dicomio.ReadInstanceBytes(b)
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	if !in.Encapsulated {
		tb.Fatalf("%s: pixel data is not encapsulated", rel)
	}
	v, err := dicomio.PixelDataBytes(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	var items [][]byte
	for len(v) > 0 {
		if len(v) < 8 || binary.LittleEndian.Uint16(v) != 0xFFFE || binary.LittleEndian.Uint16(v[2:]) != 0xE000 {
			tb.Fatalf("%s: malformed item in encapsulated pixel data", rel)
		}
		n := int(binary.LittleEndian.Uint32(v[4:]))
		if n > len(v)-8 {
			tb.Fatalf("%s: item of %d bytes overruns the pixel data", rel, n)
		}
		items = append(items, v[8:8+n])
		v = v[8+n:]
	}
	if len(items) < 2 {
		tb.Fatalf("%s: no fragments", rel)
	}
	frags := items[1:]
	e := cgoEncoded{in: in, frame: cgoFrameOf(in)}
	switch {
	case len(frags) == in.NumberOfFrames:
		e.frames = frags
	case in.NumberOfFrames == 1:
		e.frames = [][]byte{bytes.Join(frags, nil)}
	default:
		tb.Fatalf("%s: %d fragments for %d frames", rel, len(frags), in.NumberOfFrames)
	}
	return e
}

// cgoFrameOf is the codec.Frame of an instance's Image Pixel module.
func cgoFrameOf(in *dicomio.Instance) codec.Frame {
	return codec.Frame{Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, Signed: in.PixelRepresentation == 1}
}

// cgoReadNative returns the frames of a native little-endian fixture.
func cgoReadNative(tb testing.TB, rel string) (*dicomio.Instance, [][]byte) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.SharedDICOM(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	in, err := dicomio.ReadInstanceBytes(b)
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	nums := make([]int, in.NumberOfFrames)
	for i := range nums {
		nums[i] = i + 1
	}
	frames, err := dicomio.NativeFrames(bytes.NewReader(b), int64(len(b)), nums)
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	return in, frames
}

// cgoSamples returns the frame's samples, each masked to BitsStored and
// sign-extended when Signed: the values dicomio derives from decoder
// output and from native data alike.
func cgoSamples(b []byte, f codec.Frame) []int64 {
	out := make([]int64, 0, len(b)*8/f.BitsAllocated)
	mask := uint64(1)<<f.BitsStored - 1
	for i := 0; i < len(b); i += f.BitsAllocated / 8 {
		var u uint64
		switch f.BitsAllocated {
		case 8:
			u = uint64(b[i])
		case 16:
			u = uint64(binary.LittleEndian.Uint16(b[i:]))
		default:
			u = uint64(binary.LittleEndian.Uint32(b[i:]))
		}
		u &= mask
		v := int64(u)
		if f.Signed && u>>(f.BitsStored-1) != 0 {
			v -= int64(1) << f.BitsStored
		}
		out = append(out, v)
	}
	return out
}

// cgoDecodeAll decodes every frame of e with the decoder registered for its
// transfer syntax.
func cgoDecodeAll(tb testing.TB, rel string, e cgoEncoded) [][]byte {
	tb.Helper()
	d, ok := codec.Lookup(e.in.TransferSyntaxUID)
	if !ok {
		tb.Fatalf("%s: no decoder registered for %s", rel, e.in.TransferSyntaxUID)
	}
	out := make([][]byte, len(e.frames))
	for i, src := range e.frames {
		dst := make([]byte, e.frame.Size())
		if err := d.Decode(dst, src, e.frame); err != nil {
			tb.Fatalf("%s frame %d: %v", rel, i+1, err)
		}
		out[i] = dst
	}
	return out
}

// cgoCompareExact checks that the decoded frames of rel equal the native
// frames of ref, value for value.
func cgoCompareExact(t *testing.T, rel, ref string) {
	t.Helper()
	e := cgoReadEncoded(t, rel)
	got := cgoDecodeAll(t, rel, e)
	rin, want := cgoReadNative(t, ref)
	if len(want) != len(got) {
		t.Fatalf("%s has %d frames, %s has %d", rel, len(got), ref, len(want))
	}
	if rf := cgoFrameOf(rin); rf != e.frame {
		t.Fatalf("%s frame %+v, %s frame %+v", rel, e.frame, ref, rf)
	}
	for i := range got {
		g, w := cgoSamples(got[i], e.frame), cgoSamples(want[i], e.frame)
		for j := range w {
			if g[j] != w[j] {
				t.Fatalf("%s frame %d sample %d = %d, %s has %d", rel, i+1, j, g[j], ref, w[j])
			}
		}
	}
}

// cgoMutations returns damaged copies of a valid frame: truncations,
// flipped bytes in the header and in the entropy-coded data, and an empty
// frame.
func cgoMutations(src []byte) map[string][]byte {
	m := map[string][]byte{"empty": {}, "two bytes": src[:2]}
	for _, frac := range []int{2, 4, 10, 50} {
		m["truncated to 1/"+strconv.Itoa(frac)] = src[:len(src)/frac]
	}
	m["last 64 bytes dropped"] = src[:len(src)-64]
	m["truncated to 1/2, end marker kept"] = append(bytes.Clone(src[:len(src)/2]), src[len(src)-2:]...)
	for _, at := range []int{5, 9, 20, 40, 60, len(src) / 3, len(src) / 2, len(src) - 3} {
		if at >= len(src) {
			continue
		}
		b := bytes.Clone(src)
		b[at] ^= 0xFF
		m["byte "+strconv.Itoa(at)+" flipped"] = b
	}
	return m
}

// cgoDecodePixelsEqual decodes two instances with dicomio.DecodePixels,
// the pipeline that uses the registered decoders, and checks that their
// sample values (after Bits Stored, High Bit and Pixel Representation)
// are equal.
func cgoDecodePixelsEqual(t *testing.T, rel, ref string) {
	t.Helper()
	values := func(rel string) []int32 {
		b, err := os.ReadFile(filepath.Join(testenv.SharedDICOM(t), rel))
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := dicomio.DecodePixels(b)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		n := p.Rows * p.Columns * p.Samples
		out := make([]int32, n*p.Frames)
		for i := range p.Frames {
			if err := p.Int32(i, out[i*n:(i+1)*n]); err != nil {
				t.Fatalf("%s frame %d: %v", rel, i+1, err)
			}
		}
		return out
	}
	got, want := values(rel), values(ref)
	if len(got) != len(want) {
		t.Fatalf("%s has %d samples, %s has %d", rel, len(got), ref, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s sample %d = %d, %s has %d", rel, i, got[i], ref, want[i])
		}
	}
}

// cgoLosslessCases lists (encoded, reference) fixture pairs that must
// decode to exactly the same pixels: extra, the six WG04 images of
// wg04/{wg04Dir} against wg04/REF, and the 28 slices of ctDir (a
// re-encoding of ct-head-5mm) against the native series.
func cgoLosslessCases(t *testing.T, wg04Dir, ctDir string, extra ...[2]string) [][2]string {
	t.Helper()
	cases := extra
	for _, n := range []string{"CT1", "CT2", "MR1", "MR2", "MR3", "MR4"} {
		cases = append(cases, [2]string{"wg04/" + wg04Dir + "/" + n + "_" + wg04Dir, "wg04/REF/" + n + "_UNC"})
	}
	names, err := filepath.Glob(filepath.Join(testenv.SharedDICOM(t), ctDir, "*.dcm"))
	if err != nil || len(names) != 28 {
		t.Fatalf("%s: %d files, %v", ctDir, len(names), err)
	}
	for _, n := range names {
		b := filepath.Base(n)
		cases = append(cases, [2]string{ctDir + "/" + b, "ct-head-5mm/" + strings.TrimSuffix(b, ".dcm")})
	}
	return cases
}

// cgoFrameMismatch checks that decode refuses src, a valid stream for f,
// with ErrCorrupt when the Frame it must fill differs from the stream:
// fewer rows, more columns, three samples, an 8-bit container.
func cgoFrameMismatch(t *testing.T, decode codec.DecodeFunc, src []byte, f codec.Frame) {
	t.Helper()
	bad := map[string]codec.Frame{}
	g := f
	g.Rows--
	bad["rows"] = g
	g = f
	g.Columns *= 2
	bad["columns"] = g
	g = f
	g.Samples = 3
	bad["samples"] = g
	g = f
	g.BitsAllocated, g.BitsStored = 8, 8
	bad["8-bit container"] = g
	for name, g := range bad {
		if err := decode(make([]byte, g.Size()), src, g); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
