package dicomio

import (
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom"
)

var (
	// ErrNotNative reports pixel data in an encapsulated (compressed)
	// transfer syntax where native pixel data is required.
	ErrNotNative = errors.New("pixel data is encapsulated, not native")
	// ErrFrameRange reports a frame number outside 1..NumberOfFrames.
	ErrFrameRange = errors.New("frame number out of range")
	// ErrNoPixelData reports an instance without Pixel Data (7FE0,0010).
	ErrNoPixelData = errors.New("instance has no pixel data")
)

// NativeFrames returns the raw bytes of the given 1-based frames of an
// instance (size bytes from r) with native pixel data, in the order asked
// and as stored: the transfer syntax's byte order (big endian only for the
// retired Explicit VR Big Endian), samples interleaved or planar as
// Planar Configuration says. Each frame is Rows×Columns×SamplesPerPixel×
// BitsAllocated/8 bytes; the returned slices share one backing array with
// the input and must not be modified.
//
// Errors: ErrNotNative for an encapsulated syntax, ErrNoPixelData, an
// error wrapping ErrFrameRange for a frame outside 1..NumberOfFrames,
// *RejectError for input ReadInstance refuses, and an error for 1-bit
// pixel data, whose frames need not start on a byte boundary.
func NativeFrames(r io.Reader, size int64, frames []int) ([][]byte, error) {
	d, in, err := loadInstance(r, size)
	if err != nil {
		return nil, err
	}
	if !in.HasPixelData {
		return nil, ErrNoPixelData
	}
	if in.Encapsulated {
		return nil, fmt.Errorf("%w (transfer syntax %s)", ErrNotNative, d.ts.name)
	}
	n := frameLength(in)
	if n == 0 {
		return nil, errors.New("1-bit pixel data frames are not byte aligned; use PixelDataBytes")
	}
	out := make([][]byte, len(frames))
	for i, f := range frames {
		if f < 1 || f > in.NumberOfFrames {
			return nil, fmt.Errorf("frame %d of %d: %w", f, in.NumberOfFrames, ErrFrameRange)
		}
		start := uint64(f-1) * n
		out[i] = d.pixel.value[start : start+n : start+n]
	}
	return out, nil
}

// PixelDataBytes returns the value of the top-level Pixel Data element of
// an instance (size bytes from r), for a bulk data response. Native pixel
// data comes as stored (see NativeFrames). Encapsulated pixel data comes as
// the whole encapsulated value: the Basic Offset Table item and every
// fragment item, each with its 8-byte item header, without the closing
// Sequence Delimitation Item; test Instance.Encapsulated (from
// ReadInstance) to tell the two apart. The slice shares memory with the
// input read from r. Errors: ErrNoPixelData, or *RejectError for input
// ReadInstance refuses.
func PixelDataBytes(r io.Reader, size int64) ([]byte, error) {
	d, in, err := loadInstance(r, size)
	if err != nil {
		return nil, err
	}
	if !in.HasPixelData {
		return nil, ErrNoPixelData
	}
	if in.Encapsulated {
		return d.dataset[d.pixel.offset:d.pixel.encapsEnd:d.pixel.encapsEnd], nil
	}
	return d.pixel.value, nil
}

// loadInstance loads and validates an instance, leaving pixel data to the
// structural pass (the library skips it).
func loadInstance(r io.Reader, size int64) (*instanceData, *Instance, error) {
	d, err := load(r, size, dicom.SkipPixelData())
	if err != nil {
		return nil, nil, err
	}
	in, err := d.instance()
	if err != nil {
		return nil, nil, err
	}
	return d, in, nil
}
