package dicomio

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/suyashkumar/dicom"

	"github.com/radtriage/radtriage/dicomio/codec"
)

// Pixels is the decoded pixel data of one instance, all frames.
//
// Data holds the frames back to back, each FrameSize bytes: rows top to
// bottom, samples interleaved (R,G,B,R,G,B… whatever the stored Planar
// Configuration), each sample little endian in a BitsAllocated container.
// Values are as stored or decoded: the container may hold bits above High
// Bit or below the stored bits (PS3.5 §8.1.1), and signed values are not
// sign extended; Int32 and Float32 apply Bits Stored, High Bit and Pixel
// Representation. HighBit is the instance's, except for pixel data
// decoded by an image codec (JPEG, JPEG-LS, JPEG 2000), whose values sit
// in the low BitsStored bits: there HighBit is BitsStored−1. Colour samples are as stored or coded (a YBR_FULL image
// stays YBR_FULL; see RGB).
//
// For little-endian native pixel data with Planar Configuration 0, Data
// aliases the bytes handed to DecodePixels: callers must not modify
// either while they use the other.
type Pixels struct {
	Rows, Columns, Samples, Frames int
	// BitsAllocated is the container size of each sample in Data: 8, 16
	// or 32. 1-bit pixel data is unpacked to one byte per sample (0 or
	// 1), so BitsAllocated is 8, BitsStored 1 and HighBit 0.
	BitsAllocated       int
	BitsStored, HighBit int
	Signed              bool   // PixelRepresentation 1 (two's complement)
	Photometric         string // PhotometricInterpretation as in the instance
	// Data holds the frames back to back; samples interleaved;
	// little-endian containers; values as stored or decoded (not yet
	// masked or sign-extended).
	Data []byte
}

// FrameSize is the byte length of one frame in Data:
// Rows×Columns×Samples×BitsAllocated/8.
func (p *Pixels) FrameSize() int { return p.Rows * p.Columns * p.Samples * p.BitsAllocated / 8 }

// Frame returns the bytes of frame i (0-based) in Data. It panics when i
// is outside 0..Frames-1.
func (p *Pixels) Frame(i int) []byte {
	if i < 0 || i >= p.Frames {
		panic("dicomio: Pixels.Frame index out of range")
	}
	n := p.FrameSize()
	return p.Data[i*n : (i+1)*n : (i+1)*n]
}

// Int32 writes the sample values of frame (0-based) to dst, which must
// hold Rows×Columns×Samples values (interleaved samples): each container's
// BitsStored bits ending at HighBit, sign extended when Signed (PS3.5
// §8.1.1, PS3.3 C.7.6.3.1). The naive reference for one 16-bit sample c:
//
//	v := (c >> (HighBit + 1 - BitsStored)) & (1<<BitsStored - 1)
//	if Signed && v&(1<<(BitsStored-1)) != 0 { v -= 1 << BitsStored }
//
// It panics when len(dst) is wrong or frame is out of range; it returns an
// error when the bit layout is invalid or when unsigned 32-bit values may
// not fit an int32 (use Float32 for those).
func (p *Pixels) Int32(frame int, dst []int32) error {
	src, lsh, rsh, err := p.sampleLayout(frame, len(dst))
	if err != nil {
		return err
	}
	if !p.Signed && p.BitsStored == 32 {
		return errors.New("unsigned 32-bit sample values do not fit an int32; use Float32")
	}
	unpackInt32(dst, src, p.BitsAllocated/8, lsh, rsh, p.Signed)
	return nil
}

// Float32 is Int32 followed by the linear transform v*slope+intercept
// (Modality LUT rescale), computed in float64 and stored as float32, in
// the same loop. Unsigned 32-bit values are supported here.
func (p *Pixels) Float32(frame int, dst []float32, slope, intercept float64) error {
	src, lsh, rsh, err := p.sampleLayout(frame, len(dst))
	if err != nil {
		return err
	}
	unpackFloat32(dst, src, p.BitsAllocated/8, lsh, rsh, p.Signed, slope, intercept)
	return nil
}

// sampleLayout checks the bit layout and dst length and returns the frame's
// bytes and the two shifts that extract a value: shift the 32-bit
// container left by lsh so that HighBit becomes bit 31, then right
// (arithmetic when signed) by rsh to keep BitsStored bits.
func (p *Pixels) sampleLayout(frame, n int) (src []byte, lsh, rsh uint, err error) {
	if err := checkBits(p.BitsAllocated, p.BitsStored, p.HighBit); err != nil {
		return nil, 0, 0, err
	}
	if n != p.Rows*p.Columns*p.Samples {
		panic("dicomio: destination length is not Rows×Columns×Samples")
	}
	src = p.Frame(frame)
	if len(src) != n*p.BitsAllocated/8 {
		return nil, 0, 0, fmt.Errorf("frame %d holds %d bytes, not %d", frame, len(src), n*p.BitsAllocated/8)
	}
	return src, uint(31 - p.HighBit), uint(32 - p.BitsStored), nil
}

// checkBits validates a container layout: BitsAllocated 8, 16 or 32,
// 1 ≤ BitsStored ≤ HighBit+1 ≤ BitsAllocated.
func checkBits(allocated, stored, high int) error {
	switch {
	case allocated != 8 && allocated != 16 && allocated != 32:
		return fmt.Errorf("bits allocated %d is not 8, 16 or 32", allocated)
	case stored < 1 || stored > allocated:
		return fmt.Errorf("bits stored %d is not between 1 and bits allocated %d", stored, allocated)
	case high < stored-1 || high >= allocated:
		return fmt.Errorf("high bit %d is not between bits stored − 1 (%d) and bits allocated − 1 (%d)", high, stored-1, allocated-1)
	}
	return nil
}

// ErrUnsupportedTransferSyntax reports pixel data in a transfer syntax
// this build cannot decode (no registered decoder). Errors wrapping it
// also wrap codec.ErrUnsupported and name the syntax. Storage is not
// affected: such instances are archived and served as stored.
var ErrUnsupportedTransferSyntax = errors.New("unsupported transfer syntax")

// unsupportedSyntaxError is the error for a syntax without a decoder.
type unsupportedSyntaxError struct {
	uid, name, why string
}

func (e *unsupportedSyntaxError) Error() string {
	return fmt.Sprintf("pixel data in %s (%s) cannot be decoded: %s", e.name, e.uid, e.why)
}

func (e *unsupportedSyntaxError) Unwrap() []error {
	return []error{ErrUnsupportedTransferSyntax, codec.ErrUnsupported}
}

// unsupportedSyntax explains why a syntax has no decoder in this build.
func unsupportedSyntax(uid, name string) error {
	why := "radtriage has no decoder for this transfer syntax"
	switch {
	case strings.HasPrefix(name, "JPEG 2000"):
		why = "this build has no JPEG 2000 decoder (build with make build on a machine with libopenjp2-7-dev)"
	case strings.HasPrefix(name, "JPEG-LS"):
		why = "this build has no JPEG-LS decoder (build with make build on a machine with libcharls-dev)"
	case strings.HasPrefix(name, "JPEG ") && !strings.HasPrefix(name, "JPEG XL"):
		why = "this build has no decoder for this JPEG process"
	}
	return &unsupportedSyntaxError{uid: uid, name: name, why: why}
}

// DecodePixels parses and validates one instance held in memory (as
// ReadInstanceBytes does) and decodes every frame of its Pixel Data. data
// is not modified; the returned Pixels may alias it (see Pixels).
//
// Errors: *RejectError for an instance ReadInstanceBytes refuses,
// ErrNoPixelData, an error wrapping ErrUnsupportedTransferSyntax (and
// codec.ErrUnsupported) for a syntax without a decoder in this build, and
// errors naming the frame and syntax for corrupt or inconsistent pixel
// data (wrapping codec.ErrCorrupt when a decoder found the stream corrupt).
// Whenever the instance itself was readable it is returned with the error,
// so that callers can name it.
func DecodePixels(data []byte) (*Instance, *Pixels, error) {
	return decodeFrames(data, nil)
}

// DecodeFrames is DecodePixels for the given 1-based frame numbers only
// (as WADO-RS /frames/{n} asks), in the order given; frames may repeat.
// The returned Pixels holds len(frames) frames. A frame number outside
// 1..NumberOfFrames gives an error wrapping ErrFrameRange.
func DecodeFrames(data []byte, frames []int) (*Instance, *Pixels, error) {
	if len(frames) == 0 {
		return nil, nil, errors.New("no frames requested")
	}
	return decodeFrames(data, frames)
}

// decodeFrames decodes the 1-based frames (all when nil).
func decodeFrames(data []byte, frames []int) (*Instance, *Pixels, error) {
	d, err := loadBytes(data, dicom.SkipPixelData())
	if err != nil {
		return nil, nil, err
	}
	in, err := d.instance()
	if err != nil {
		return nil, nil, err
	}
	if !in.HasPixelData {
		return in, nil, ErrNoPixelData
	}
	for _, f := range frames {
		if f < 1 || f > in.NumberOfFrames {
			return in, nil, fmt.Errorf("frame %d of %d: %w", f, in.NumberOfFrames, ErrFrameRange)
		}
	}
	if n, ok := decodedSize(in, frames); !ok {
		return in, nil, fmt.Errorf("decoded pixel data would be %d bytes (%d×%d×%d samples of %d bits, %d frames), more than the %d-byte limit",
			n, in.Columns, in.Rows, in.SamplesPerPixel, in.BitsAllocated, in.NumberOfFrames, maxDecodedBytes)
	}
	var px *Pixels
	if in.Encapsulated {
		px, err = decodeEncapsulated(d, in, frames)
	} else {
		px, err = decodeNative(d.pixel, d.ts, in, frames)
	}
	if err != nil {
		return in, nil, err
	}
	return in, px, nil
}

// maxDecodedBytes bounds the decoded pixel data of one instance. Native
// data is bounded by the input already; a compressed frame of a few bytes
// can claim a 65535×65535 image, which must not allocate gigabytes.
const maxDecodedBytes = 2 << 30

// decodedSize is the byte length of the decoded frames asked for (all
// when nil), and whether it is within maxDecodedBytes.
func decodedSize(in *Instance, frames []int) (uint64, bool) {
	nf := uint64(in.NumberOfFrames)
	if frames != nil {
		nf = uint64(len(frames))
	}
	if in.Rows <= 0 || in.Columns <= 0 || in.SamplesPerPixel <= 0 || in.BitsAllocated <= 0 {
		return 0, true // refused with a clearer error later
	}
	n := uint64(in.Rows) * uint64(in.Columns) * uint64(in.SamplesPerPixel) // < 2^48 for 16-bit values
	n *= uint64(max(in.BitsAllocated, 8)/8) & 0xFF
	if nf != 0 && n > maxDecodedBytes/nf {
		return n * min(nf, 1<<15), false
	}
	return n * nf, n*nf <= maxDecodedBytes
}

// newPixels fills the Pixels header from the instance, without Data.
func newPixels(in *Instance, frames int) *Pixels {
	return &Pixels{
		Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel, Frames: frames,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, HighBit: in.HighBit,
		Signed: in.PixelRepresentation == 1, Photometric: in.PhotometricInterpretation,
	}
}

// parallelFrames runs fn(i) for i in 0..n-1, on up to GOMAXPROCS
// goroutines when there are several frames of work. It returns the error
// of the lowest i that failed, whatever the scheduling, and skips frames
// after a failed one.
func parallelFrames(n, bytesPerFrame int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 || n*bytesPerFrame < 1<<20 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next    atomic.Int64
		failed  atomic.Int64 // lowest failed frame, n when none
		mu      sync.Mutex
		errs    = make(map[int]error)
		wg      sync.WaitGroup
		lowestE error
	)
	failed.Store(int64(n))
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || int64(i) > failed.Load() {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					errs[i] = err
					for {
						f := failed.Load()
						if int64(i) >= f || failed.CompareAndSwap(f, int64(i)) {
							break
						}
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if f := int(failed.Load()); f < n {
		lowestE = errs[f]
	}
	return lowestE
}

// RGB returns the image with colour samples as RGB, leaving p untouched.
// YBR_FULL and YBR_FULL_422 (which decoders return at full resolution,
// as Y, Cb, Cr per pixel) are converted with the inverse of the PS3.3
// C.7.6.3.1.2 equations, rounded and clamped:
//
//	R = Y + 1.402 (Cr−128)
//	G = Y − 0.344136 (Cb−128) − 0.714136 (Cr−128)
//	B = Y + 1.772 (Cb−128)
//
// RGB is returned as is; so are YBR_RCT and YBR_ICT, whose inverse
// component transform JPEG 2000 decoders apply while decoding (their
// result is relabelled RGB). Only 8-bit unsigned three-sample images are
// converted; anything else is an error.
func (p *Pixels) RGB() (*Pixels, error) {
	if p.Samples != 3 {
		return nil, fmt.Errorf("photometric interpretation %s with %d samples per pixel is not colour", p.Photometric, p.Samples)
	}
	switch p.Photometric {
	case "RGB":
		return p, nil
	case "YBR_RCT", "YBR_ICT":
		q := *p
		q.Photometric = "RGB"
		return &q, nil
	case "YBR_FULL", "YBR_FULL_422":
	default:
		return nil, fmt.Errorf("conversion from photometric interpretation %q to RGB is not supported", p.Photometric)
	}
	if p.BitsAllocated != 8 || p.BitsStored != 8 || p.Signed {
		return nil, fmt.Errorf("YBR to RGB needs 8-bit unsigned samples, not %d bits stored in %d (signed %v)", p.BitsStored, p.BitsAllocated, p.Signed)
	}
	q := *p
	q.Photometric = "RGB"
	q.Data = make([]byte, len(p.Data))
	// Fixed point, 16 fractional bits.
	const (
		one  = 1 << 16
		crR  = 91881 // 1.402 × 2^16
		cbG  = 22554 // 0.344136 × 2^16
		crG  = 46802 // 0.714136 × 2^16
		cbB  = 116130
		half = one / 2
	)
	src, dst := p.Data[:len(p.Data)/3*3], q.Data
	for i := 0; i+2 < len(src); i += 3 {
		s := src[i : i+3 : i+3]
		y, cb, cr := int32(s[0])<<16+half, int32(s[1])-128, int32(s[2])-128
		d := dst[i : i+3 : i+3]
		d[0] = clamp8((y + crR*cr) >> 16)
		d[1] = clamp8((y - cbG*cb - crG*cr) >> 16)
		d[2] = clamp8((y + cbB*cb) >> 16)
	}
	return &q, nil
}

func clamp8(v int32) byte {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}
