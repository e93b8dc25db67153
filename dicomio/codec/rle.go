package codec

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// UIDRLELossless is the RLE Lossless transfer syntax (PS3.5 Annex G).
const UIDRLELossless = "1.2.840.10008.1.2.5"

func init() {
	Register(UIDRLELossless, Decoder{Name: "RLE Lossless (pure Go)", Decode: DecodeRLE})
}

// rleScratch recycles the buffers that hold decoded segments before they
// are interleaved.
var rleScratch = sync.Pool{New: func() any { return new([]byte) }}

// DecodeRLE decodes one RLE Lossless frame (PS3.5 Annex G) into dst per
// the package contract.
//
// A frame is a 64-byte header (little-endian uint32 segment count, then
// fifteen uint32 segment offsets from the start of the frame) followed by
// the segments. There is one segment per byte of each sample: sample 0's
// most significant byte first, then its next byte, …, then sample 1's.
// Each segment is a PackBits stream (G.3.1) of Rows×Columns bytes: a
// header byte n in 0..127 copies the next n+1 bytes, n in −127..−1 repeats
// the next byte 1−n times, and −128 does nothing.
//
// DecodeRLE refuses (ErrCorrupt) a segment count other than
// Samples×BitsAllocated/8, a first offset other than 64, offsets that do
// not increase or lie past the end of src, a segment that ends before
// its Rows×Columns bytes, and a run that crosses that end. Bytes after a
// segment's last run are allowed only when they decode to nothing: one
// pad byte (G.5 pads each segment to an even length; encoders pad with a
// zero byte, which would read as a one-byte literal header without its
// byte) or no-op bytes (−128); any further run is refused as a segment
// that decodes to too many bytes.
func DecodeRLE(dst, src []byte, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(dst) != f.Size() {
		panic("codec: DecodeRLE destination is not Frame.Size bytes")
	}
	bps := f.BitsAllocated / 8
	nseg := f.Samples * bps
	if len(src) < 64 {
		return fmt.Errorf("%w: RLE frame is %d bytes, shorter than its 64-byte header", ErrCorrupt, len(src))
	}
	if n := binary.LittleEndian.Uint32(src); n != uint32(nseg) {
		return fmt.Errorf("%w: RLE header declares %d segments but a frame of %d samples of %d bits needs %d",
			ErrCorrupt, n, f.Samples, f.BitsAllocated, nseg)
	}
	if nseg > 15 {
		return fmt.Errorf("%w: a frame of %d samples of %d bits needs %d RLE segments, more than 15", ErrUnsupported, f.Samples, f.BitsAllocated, nseg)
	}
	var offs [16]int
	for i := range nseg {
		o := binary.LittleEndian.Uint32(src[4+4*i:])
		switch {
		case uint64(o) >= uint64(len(src)):
			return fmt.Errorf("%w: RLE segment %d starts at offset %d, past the end of the %d-byte frame", ErrCorrupt, i+1, o, len(src))
		case i == 0 && o != 64:
			return fmt.Errorf("%w: RLE segment 1 starts at offset %d, not 64", ErrCorrupt, o)
		case i > 0 && int(o) <= offs[i-1]:
			return fmt.Errorf("%w: RLE segment %d starts at offset %d, not after segment %d at %d", ErrCorrupt, i+1, o, i, offs[i-1])
		}
		offs[i] = int(o)
	}
	offs[nseg] = len(src)
	pixels := f.Rows * f.Columns
	if nseg == 1 {
		return rleSegment(dst, src[offs[0]:offs[1]], 1)
	}
	bp := rleScratch.Get().(*[]byte)
	defer rleScratch.Put(bp)
	if cap(*bp) < nseg*pixels {
		*bp = make([]byte, nseg*pixels)
	}
	seg := (*bp)[:nseg*pixels]
	for i := range nseg {
		if err := rleSegment(seg[i*pixels:(i+1)*pixels], src[offs[i]:offs[i+1]], i+1); err != nil {
			return err
		}
	}
	rleInterleave(dst, seg, pixels, f.Samples, bps)
	return nil
}

// rleSegment decodes one PackBits segment (number n, 1-based, for
// errors) into exactly len(dst) bytes.
func rleSegment(dst, src []byte, n int) error {
	o, i := 0, 0
	for o < len(dst) {
		if i >= len(src) {
			return fmt.Errorf("%w: RLE segment %d ends after %d of its %d bytes", ErrCorrupt, n, o, len(dst))
		}
		h := int8(src[i])
		i++
		switch {
		case h >= 0:
			k := int(h) + 1
			if k > len(dst)-o {
				return fmt.Errorf("%w: RLE segment %d has a literal run of %d bytes crossing the end of its %d bytes at %d", ErrCorrupt, n, k, len(dst), o)
			}
			if k > len(src)-i {
				return fmt.Errorf("%w: RLE segment %d is truncated inside a literal run of %d bytes", ErrCorrupt, n, k)
			}
			copy(dst[o:o+k], src[i:i+k])
			o += k
			i += k
		case h != -128:
			k := 1 - int(h)
			if k > len(dst)-o {
				return fmt.Errorf("%w: RLE segment %d has a replicate run of %d bytes crossing the end of its %d bytes at %d", ErrCorrupt, n, k, len(dst), o)
			}
			if i >= len(src) {
				return fmt.Errorf("%w: RLE segment %d is truncated after a replicate run header", ErrCorrupt, n)
			}
			b := src[i]
			i++
			r := dst[o : o+k]
			for j := range r {
				r[j] = b
			}
			o += k
		}
	}
	// Trailing bytes: one pad byte, or no-op headers.
	if rest := src[i:]; len(rest) > 1 {
		for _, c := range rest {
			if c != 0x80 {
				return fmt.Errorf("%w: RLE segment %d decodes to more than its %d bytes (%d bytes left after them)", ErrCorrupt, n, len(dst), len(rest))
			}
		}
	}
	return nil
}

// rleInterleave writes planar-by-byte segments (segment s*bps+b holds byte b,
// most significant first, of sample s) as interleaved little-endian
// samples.
func rleInterleave(dst, seg []byte, pixels, samples, bps int) {
	switch {
	case samples == 1 && bps == 2:
		hi, lo := seg[:pixels], seg[pixels:2*pixels]
		dst = dst[:2*pixels]
		for p := range pixels {
			d := dst[2*p : 2*p+2 : 2*p+2]
			d[0], d[1] = lo[p], hi[p]
		}
	case samples == 3 && bps == 1:
		r, g, b := seg[:pixels], seg[pixels:2*pixels], seg[2*pixels:3*pixels]
		dst = dst[:3*pixels]
		for p := range pixels {
			d := dst[3*p : 3*p+3 : 3*p+3]
			d[0], d[1], d[2] = r[p], g[p], b[p]
		}
	default:
		stride := samples * bps
		for s := range samples {
			for b := range bps {
				src := seg[(s*bps+b)*pixels : (s*bps+b+1)*pixels]
				j := s*bps + bps - 1 - b // little-endian position
				for p, c := range src {
					dst[p*stride+j] = c
				}
			}
		}
	}
}
