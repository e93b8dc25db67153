package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

// rlePackBits encodes src as a PackBits segment (PS3.5 G.3.1): runs of 3 or
// more equal bytes as replicate runs, the rest as literal runs, none
// longer than 128 bytes.
func rlePackBits(src []byte) []byte {
	var out []byte
	for i := 0; i < len(src); {
		j := i + 1
		for j < len(src) && j-i < 128 && src[j] == src[i] {
			j++
		}
		if j-i >= 3 {
			out = append(out, byte(int8(1-(j-i))), src[i])
			i = j
			continue
		}
		// Literal run up to the next run of 3.
		j = i
		for j < len(src) && j-i < 128 {
			if j+2 < len(src) && src[j] == src[j+1] && src[j] == src[j+2] {
				break
			}
			j++
		}
		out = append(out, byte(j-i-1))
		out = append(out, src[i:j]...)
		i = j
	}
	return out
}

// rleEncode encodes interleaved little-endian samples as an RLE frame:
// one segment per byte of each sample, most significant byte first.
func rleEncode(px []byte, f Frame) []byte {
	bps := f.BitsAllocated / 8
	n := f.Rows * f.Columns
	nseg := f.Samples * bps
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, uint32(nseg))
	body := []byte{}
	for s := range f.Samples {
		for b := range bps {
			seg := make([]byte, n)
			for p := range n {
				seg[p] = px[(p*f.Samples+s)*bps+bps-1-b]
			}
			binary.LittleEndian.PutUint32(hdr[4+4*(s*bps+b):], uint32(64+len(body)))
			body = append(body, rlePackBits(seg)...)
			if len(body)%2 == 1 {
				body = append(body, 0) // G.5: even-length segments
			}
		}
	}
	return append(hdr, body...)
}

// rleRandomImage makes samples with long runs and noise.
func rleRandomImage(rng *rand.Rand, size int) []byte {
	px := make([]byte, size)
	for i := 0; i < size; {
		n := min(size-i, 1+rng.IntN(300))
		if rng.IntN(2) == 0 {
			v := byte(rng.Uint32())
			for j := range n {
				px[i+j] = v
			}
		} else {
			for j := range n {
				px[i+j] = byte(rng.Uint32())
			}
		}
		i += n
	}
	return px
}

func TestDecodeRLERoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []Frame{
		{Rows: 1, Columns: 1, Samples: 1, BitsAllocated: 8, BitsStored: 8},
		{Rows: 7, Columns: 13, Samples: 1, BitsAllocated: 8, BitsStored: 8},
		{Rows: 64, Columns: 33, Samples: 1, BitsAllocated: 16, BitsStored: 12},
		{Rows: 17, Columns: 300, Samples: 1, BitsAllocated: 16, BitsStored: 16, Signed: true},
		{Rows: 20, Columns: 21, Samples: 3, BitsAllocated: 8, BitsStored: 8},
		{Rows: 9, Columns: 10, Samples: 3, BitsAllocated: 16, BitsStored: 16},
		{Rows: 5, Columns: 50, Samples: 1, BitsAllocated: 32, BitsStored: 32},
		{Rows: 4, Columns: 6, Samples: 3, BitsAllocated: 32, BitsStored: 24},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_%dbit", f.Columns, f.Rows, f.Samples, f.BitsAllocated), func(t *testing.T) {
			want := rleRandomImage(rng, f.Size())
			src := rleEncode(want, f)
			got := make([]byte, f.Size())
			if err := DecodeRLE(got, src, f); err != nil {
				t.Fatal(err)
			}
			if i := rleFirstDiff(got, want); i >= 0 {
				t.Fatalf("byte %d is %d, want %d", i, got[i], want[i])
			}
		})
	}
}

func rleFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestDecodeRLERegistered(t *testing.T) {
	d, ok := Lookup(UIDRLELossless)
	if !ok || d.Lossy || d.Decode == nil {
		t.Fatalf("RLE Lossless is not registered as a lossless decoder: %+v, %v", d, ok)
	}
}

func TestDecodeRLECorrupt(t *testing.T) {
	f := Frame{Rows: 4, Columns: 4, Samples: 1, BitsAllocated: 16, BitsStored: 16}
	px := make([]byte, f.Size())
	for i := range px {
		px[i] = byte(i * 7)
	}
	good := rleEncode(px, f)
	mod := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(good)) }
	seg2 := int(binary.LittleEndian.Uint32(good[8:]))
	for _, c := range []struct {
		name, want string
		src        []byte
	}{
		{"empty", "shorter than its 64-byte header", nil},
		{"header only", "past the end", good[:64]},
		{"segment count", "declares 3 segments", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 3); return b })},
		{"segment count 16", "declares 16 segments", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 16); return b })},
		{"first offset", "not 64", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 66); return b })},
		{"offsets not increasing", "not after segment 1", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 64); return b })},
		{"offset past the end", "past the end", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<31); return b })},
		{"truncated segment", "segment 2", good[:len(good)-3]},
		{"segment 1 too short", "segment 1 is truncated", mod(func(b []byte) []byte {
			// Move segment 2 earlier so that segment 1 loses its end.
			binary.LittleEndian.PutUint32(b[8:], uint32(seg2-2))
			return b
		})},
		{"run crossing the end", "crossing the end", mod(func(b []byte) []byte {
			// Segment 1 of 16 bytes as one replicate run of 17.
			s := append(b[:64:64], 0xF0 /* −16: repeat 17 times */, 9)
			binary.LittleEndian.PutUint32(s[8:], uint32(len(s)))
			return append(s, good[seg2:]...)
		})},
		{"too many bytes", "more than its 16 bytes", mod(func(b []byte) []byte {
			s := append(b[:64:64], 0xF1 /* −15: repeat 16 times */, 9, 0, 1, 2)
			binary.LittleEndian.PutUint32(s[8:], uint32(len(s)))
			return append(s, good[seg2:]...)
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := DecodeRLE(make([]byte, f.Size()), c.src, f)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not wrap ErrCorrupt and say %q", err, c.want)
			}
		})
	}
	t.Run("padding allowed", func(t *testing.T) {
		for _, tail := range [][]byte{{0}, {0x80, 0x80, 0x80}} {
			s := append(bytes.Clone(good[:64]), 0xF1 /* −15: repeat 16 times */, 9)
			binary.LittleEndian.PutUint32(s[8:], uint32(len(s)+len(tail)))
			s = append(append(s, tail...), good[seg2:]...)
			if err := DecodeRLE(make([]byte, f.Size()), s, f); err != nil {
				t.Fatalf("tail %v: %v", tail, err)
			}
		}
	})
}

// rleFixtureFrames returns the RLE frames (single-fragment pixel data) of
// the ct-head-5mm.rle files, or nil when ../shared/dicom is absent. It
// reads the encapsulated Pixel Data items directly: the tag (7FE0,0010) OB
// with undefined length, an empty Basic Offset Table item, one fragment.
func rleFixtureFrames(tb testing.TB) [][]byte {
	tb.Helper()
	shared, err := testenv.FindSharedDICOM()
	if err != nil {
		if testenv.CI() {
			tb.Fatalf("%v (required under CI=true)", err)
		}
		return nil
	}
	dir := filepath.Join(shared, "ct-head-5mm.rle")
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		i := bytes.LastIndex(b, hdr)
		if i < 0 {
			continue
		}
		p := i + len(hdr)
		bot := int(binary.LittleEndian.Uint32(b[p+4:]))
		p += 8 + bot
		n := int(binary.LittleEndian.Uint32(b[p+4:]))
		out = append(out, b[p+8:p+8+n])
	}
	if len(out) == 0 {
		tb.Fatal("no RLE frame found in ct-head-5mm.rle")
	}
	return out
}

var rleCTFrame = Frame{Rows: 512, Columns: 512, Samples: 1, BitsAllocated: 16, BitsStored: 16, Signed: true}

// TestDecodeRLEFixture re-encodes each decoded ct-head-5mm.rle frame with
// the test encoder and decodes that again: both decodes must agree (the
// cross-check against the native series is dicomio's TestDecodeCTHead).
func TestDecodeRLEFixture(t *testing.T) {
	frames := rleFixtureFrames(t)
	if frames == nil {
		t.Skip("skipping: DICOM fixtures ../shared/dicom not found next to the repository")
	}
	for i, src := range frames {
		got := make([]byte, rleCTFrame.Size())
		if err := DecodeRLE(got, src, rleCTFrame); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		again := make([]byte, rleCTFrame.Size())
		if err := DecodeRLE(again, rleEncode(got, rleCTFrame), rleCTFrame); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, again) {
			t.Fatalf("frame %d: decode of the re-encoded frame differs", i)
		}
	}
}

func FuzzRLE(f *testing.F) {
	if frames := rleFixtureFrames(f); len(frames) > 0 {
		f.Add(frames[0], 512, 512, 1, 16)
	}
	small := Frame{Rows: 3, Columns: 5, Samples: 3, BitsAllocated: 16, BitsStored: 16}
	f.Add(rleEncode(rleRandomImage(rand.New(rand.NewPCG(5, 6)), small.Size()), small), 3, 5, 3, 16)
	f.Add(rleEncode([]byte{1, 1, 1, 2}, Frame{Rows: 2, Columns: 2, Samples: 1, BitsAllocated: 8, BitsStored: 8}), 2, 2, 1, 8)
	f.Fuzz(func(t *testing.T, src []byte, rows, cols, samples, bits int) {
		fr := Frame{Rows: rows, Columns: cols, Samples: samples, BitsAllocated: bits, BitsStored: max(1, bits)}
		if fr.Validate() != nil || fr.Size() > 1<<20 {
			return
		}
		dst := make([]byte, fr.Size())
		err := DecodeRLE(dst, src, fr)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error %v wraps neither ErrCorrupt nor ErrUnsupported", err)
		}
		if err == nil {
			// A decoded frame re-encodes and decodes to itself.
			again := make([]byte, fr.Size())
			if err := DecodeRLE(again, rleEncode(dst, fr), fr); err != nil || !bytes.Equal(again, dst) {
				t.Fatalf("round trip of a decoded frame failed: %v", err)
			}
		}
	})
}

// BenchmarkRLE decodes ct-head-5mm.rle frames (512×512, 16-bit);
// MB/s counts decoded bytes.
func BenchmarkRLE(b *testing.B) {
	frames := rleFixtureFrames(b)
	if frames == nil {
		b.Skip("skipping: DICOM fixtures ../shared/dicom not found next to the repository")
	}
	dst := make([]byte, rleCTFrame.Size())
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := DecodeRLE(dst, frames[i%len(frames)], rleCTFrame); err != nil {
			b.Fatal(err)
		}
	}
}
