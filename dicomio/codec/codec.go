// Package codec holds radtriage's pixel data decoders for the encapsulated
// DICOM transfer syntaxes (PS3.5 §8.2 and Annex A). Each decoder turns the
// compressed bytes of one frame into native samples; it knows nothing of
// DICOM data sets, which package dicomio parses.
//
// Output contract (every decoder): dst has exactly
// Rows×Columns×Samples×BitsAllocated/8 bytes; samples are interleaved
// (R,G,B,R,G,B… as Planar Configuration 0, whatever the stream's layout),
// rows top to bottom, each sample little endian in a BitsAllocated
// container holding the decoded value's low BitsStored bits. Sign
// extension and masking are not the decoder's job: dicomio applies Pixel
// Representation, Bits Stored and High Bit uniformly to native and decoded
// data. Colour components are written as coded (a JPEG with YCbCr
// components yields Y, Cb, Cr samples); conversion to RGB is dicomio's.
//
// Errors wrap ErrCorrupt for a stream that breaks its standard (or does
// not match the Frame it must decode to) and ErrUnsupported for a valid
// stream using a feature this decoder does not implement. A decoder never
// panics and never loops without consuming input, whatever src holds.
package codec

import (
	"errors"
	"fmt"
	"sync"
)

// Frame describes the image one compressed frame must decode to, from the
// Image Pixel module of its instance.
type Frame struct {
	Rows, Columns int
	Samples       int  // SamplesPerPixel: 1 or 3
	BitsAllocated int  // 8 or 16 (32 where a codec allows it)
	BitsStored    int  // 1..BitsAllocated
	Signed        bool // PixelRepresentation 1
}

// Size is the byte length of a decoded frame.
func (f Frame) Size() int { return f.Rows * f.Columns * f.Samples * f.BitsAllocated / 8 }

// Validate reports a Frame no decoder can fill.
func (f Frame) Validate() error {
	switch {
	case f.Rows <= 0 || f.Columns <= 0 || f.Rows > 65535 || f.Columns > 65535:
		return fmt.Errorf("%w: image size %d×%d", ErrUnsupported, f.Columns, f.Rows)
	case f.Samples != 1 && f.Samples != 3:
		return fmt.Errorf("%w: %d samples per pixel", ErrUnsupported, f.Samples)
	case f.BitsAllocated != 8 && f.BitsAllocated != 16 && f.BitsAllocated != 32:
		return fmt.Errorf("%w: bits allocated %d", ErrUnsupported, f.BitsAllocated)
	case f.BitsStored < 1 || f.BitsStored > f.BitsAllocated:
		return fmt.Errorf("%w: bits stored %d with bits allocated %d", ErrUnsupported, f.BitsStored, f.BitsAllocated)
	}
	return nil
}

var (
	// ErrCorrupt reports a compressed stream that breaks its standard or
	// does not match the image it must decode to.
	ErrCorrupt = errors.New("corrupt compressed pixel data")
	// ErrUnsupported reports a valid stream using a feature, or a
	// transfer syntax, that radtriage does not decode.
	ErrUnsupported = errors.New("unsupported compressed pixel data")
)

// DecodeFunc decodes one frame's compressed bytes src into dst
// (len(dst) == f.Size()), per the package contract.
type DecodeFunc func(dst, src []byte, f Frame) error

// Decoder is a registered decoder for one transfer syntax.
type Decoder struct {
	Name   string // e.g. "JPEG Lossless (pure Go)", "JPEG 2000 (OpenJPEG 2.5.0, cgo)"
	Decode DecodeFunc
	// Lossy reports a syntax whose decoded pixels may differ from the
	// original image.
	Lossy bool
}

var (
	mu       sync.RWMutex
	registry = map[string]Decoder{}
)

// Register makes d the decoder for transfer syntax uid. Decoders register
// in init functions; the cgo-backed ones only when built with their tags.
func Register(uid string, d Decoder) {
	mu.Lock()
	defer mu.Unlock()
	registry[uid] = d
}

// Lookup returns the decoder for transfer syntax uid.
func Lookup(uid string) (Decoder, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registry[uid]
	return d, ok
}
