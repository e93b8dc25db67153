//go:build cgo && charls

package codec

// JPEG-LS (ITU-T T.87 | ISO/IEC 14495-1) through CharLS 2.x, for the
// transfer syntaxes of PS3.5 §A.4.3. It is cgo because no well-kept
// pure-Go JPEG-LS decoder exists; build with -tags charls (and the CharLS
// headers, charls/charls.h) to register it.
//
// Each C helper creates its CharLS decoder, uses it and destroys it within
// one call, so the Go slices it reads and writes are only lent for that
// call, as the cgo pointer rules require. The frame header is read and
// checked against the Frame before any sample is decoded.
//
// CharLS writes one byte per sample for P ≤ 8 bits and a native-endian
// 16-bit word for P > 8; it writes pixel-interleaved samples for the line
// and sample interleave modes and one plane per component for interleave
// mode none, which is converted here to the interleaved order of the
// package contract.

/*
#cgo pkg-config: charls
#include <stdlib.h>
#include <charls/charls.h>

typedef struct {
	uint32_t width, height;
	int32_t bits, components, near, interleave, transform;
} rt_jls_info;

static charls_jpegls_errc rt_jls_header(const void *src, size_t n, rt_jls_info *info) {
	charls_jpegls_decoder *d = charls_jpegls_decoder_create();
	if (d == NULL) return CHARLS_JPEGLS_ERRC_NOT_ENOUGH_MEMORY;
	charls_frame_info fi;
	charls_interleave_mode ilv;
	charls_color_transformation ct;
	charls_jpegls_errc e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_read_header(d);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_get_frame_info(d, &fi);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_get_near_lossless(d, 0, &info->near);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_get_interleave_mode(d, &ilv);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_get_color_transformation(d, &ct);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) {
		info->width = fi.width;
		info->height = fi.height;
		info->bits = fi.bits_per_sample;
		info->components = fi.component_count;
		info->interleave = (int32_t)ilv;
		info->transform = (int32_t)ct;
	}
	charls_jpegls_decoder_destroy(d);
	return e;
}

static charls_jpegls_errc rt_jls_decode(const void *src, size_t n, void *dst, size_t dstlen) {
	charls_jpegls_decoder *d = charls_jpegls_decoder_create();
	if (d == NULL) return CHARLS_JPEGLS_ERRC_NOT_ENOUGH_MEMORY;
	charls_jpegls_errc e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_read_header(d);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS) e = charls_jpegls_decoder_decode_to_buffer(d, dst, dstlen, 0);
	charls_jpegls_decoder_destroy(d);
	return e;
}

// rt_jls_encode is for the package's tests: it encodes w×h samples of
// 'bits' bits (1 or 2 bytes each, pixel-interleaved when components > 1)
// with the given NEAR and interleave mode into dst and stores the length.
static charls_jpegls_errc rt_jls_encode(const void *src, size_t n, uint32_t w, uint32_t h, int32_t bits,
		int32_t comps, int32_t near, int32_t ilv, void *dst, size_t dstlen, size_t *written) {
	charls_jpegls_encoder *e = charls_jpegls_encoder_create();
	if (e == NULL) return CHARLS_JPEGLS_ERRC_NOT_ENOUGH_MEMORY;
	charls_frame_info fi = { w, h, bits, comps };
	charls_jpegls_errc r = charls_jpegls_encoder_set_frame_info(e, &fi);
	if (r == CHARLS_JPEGLS_ERRC_SUCCESS) r = charls_jpegls_encoder_set_near_lossless(e, near);
	if (r == CHARLS_JPEGLS_ERRC_SUCCESS) r = charls_jpegls_encoder_set_interleave_mode(e, (charls_interleave_mode)ilv);
	if (r == CHARLS_JPEGLS_ERRC_SUCCESS) r = charls_jpegls_encoder_set_destination_buffer(e, dst, dstlen);
	if (r == CHARLS_JPEGLS_ERRC_SUCCESS) r = charls_jpegls_encoder_encode_from_buffer(e, src, n, 0);
	if (r == CHARLS_JPEGLS_ERRC_SUCCESS) r = charls_jpegls_encoder_get_bytes_written(e, written);
	charls_jpegls_encoder_destroy(e);
	return r;
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

func init() {
	v := C.GoString(C.charls_get_version_string())
	name := "JPEG-LS (CharLS " + v + ", cgo)"
	Register("1.2.840.10008.1.2.4.80", Decoder{Name: name, Decode: DecodeJPEGLS})
	Register("1.2.840.10008.1.2.4.81", Decoder{Name: name, Decode: DecodeJPEGLS, Lossy: true})
}

// jlsHeader is what a JPEG-LS stream's frame and scan headers declare.
type jlsHeader struct {
	Width, Height int
	BitsPerSample int // P, 2..16
	Components    int
	Near          int // NEAR of the first scan; 0 is lossless
	Interleave    int // ILV: 0 none (planar), 1 line, 2 sample
}

// readJPEGLSHeader reads the header of a JPEG-LS stream without decoding
// its samples. Errors wrap ErrCorrupt or ErrUnsupported.
func readJPEGLSHeader(src []byte) (jlsHeader, error) {
	if len(src) == 0 {
		return jlsHeader{}, fmt.Errorf("%w: JPEG-LS: the frame is empty", ErrCorrupt)
	}
	var info C.rt_jls_info
	if e := C.rt_jls_header(unsafe.Pointer(&src[0]), C.size_t(len(src)), &info); e != C.CHARLS_JPEGLS_ERRC_SUCCESS {
		return jlsHeader{}, jlsError("cannot read the stream header", e)
	}
	if info.transform != C.CHARLS_COLOR_TRANSFORMATION_NONE {
		return jlsHeader{}, fmt.Errorf("%w: JPEG-LS: the stream uses an HP colour transformation, which DICOM does not allow", ErrUnsupported)
	}
	return jlsHeader{
		Width: int(info.width), Height: int(info.height), BitsPerSample: int(info.bits),
		Components: int(info.components), Near: int(info.near), Interleave: int(info.interleave),
	}, nil
}

// DecodeJPEGLS decodes one frame of a JPEG-LS transfer syntax (lossless
// or near-lossless) into dst per the package contract, after checking the
// stream's header against f: same size and component count, and a sample
// precision no wider than f.BitsAllocated.
func DecodeJPEGLS(dst, src []byte, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(dst) != f.Size() {
		return fmt.Errorf("JPEG-LS: destination holds %d bytes, the %d×%d frame needs %d", len(dst), f.Columns, f.Rows, f.Size())
	}
	h, err := readJPEGLSHeader(src)
	if err != nil {
		return err
	}
	if !endsWithEOI(src) {
		// CharLS decodes a truncated stream by reading zero bits past its
		// end, which takes seconds for a 512×512 frame before it fails.
		return fmt.Errorf("%w: JPEG-LS: the stream does not end with an EOI marker (truncated?)", ErrCorrupt)
	}
	if h.Width != f.Columns || h.Height != f.Rows || h.Components != f.Samples {
		return fmt.Errorf("%w: JPEG-LS: the stream is %d×%d with %d components, the frame is %d×%d with %d samples per pixel",
			ErrCorrupt, h.Width, h.Height, h.Components, f.Columns, f.Rows, f.Samples)
	}
	if h.BitsPerSample > f.BitsAllocated {
		return fmt.Errorf("%w: JPEG-LS: the stream has %d-bit samples, the frame allocates %d bits", ErrCorrupt, h.BitsPerSample, f.BitsAllocated)
	}
	bps := 1 // bytes per sample in CharLS's output
	if h.BitsPerSample > 8 {
		bps = 2
	}
	planar := h.Components > 1 && h.Interleave == 0
	native := bps == 1 || binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	if bps*8 == f.BitsAllocated && !planar && native {
		return jlsDecode(dst, src)
	}
	tmp := make([]byte, f.Rows*f.Columns*f.Samples*bps)
	if err := jlsDecode(tmp, src); err != nil {
		return err
	}
	n, c := f.Rows*f.Columns, f.Samples
	out := f.BitsAllocated / 8
	for i := 0; i < n; i++ {
		for k := 0; k < c; k++ {
			j := i*c + k
			if planar {
				j = k*n + i
			}
			var v uint32
			if bps == 1 {
				v = uint32(tmp[j])
			} else {
				v = uint32(binary.NativeEndian.Uint16(tmp[2*j:]))
			}
			o := dst[(i*c+k)*out:]
			switch out {
			case 1:
				o[0] = byte(v)
			case 2:
				binary.LittleEndian.PutUint16(o, uint16(v))
			default:
				binary.LittleEndian.PutUint32(o, v)
			}
		}
	}
	return nil
}

// jlsDecode decodes src into exactly len(dst) bytes of CharLS output.
//
// Some encoders put 0x00 bytes between the last entropy-coded byte and EOI
// (the WG04 sample MR1_JLSL has one), which T.87 does not allow and which
// CharLS 2.3 and later reject with "start byte (0xFF) for a JPEG marker
// not found". Only after that error, and only when the stream ends in
// 00…00 FF D9, the zero bytes are dropped and the stream decoded again;
// a stream that still fails keeps the first error.
func jlsDecode(dst, src []byte) error {
	e := C.rt_jls_decode(unsafe.Pointer(&src[0]), C.size_t(len(src)), unsafe.Pointer(&dst[0]), C.size_t(len(dst)))
	if e == C.CHARLS_JPEGLS_ERRC_JPEG_MARKER_START_BYTE_NOT_FOUND {
		if t := trimPaddingBeforeEOI(src); t != nil {
			if C.rt_jls_decode(unsafe.Pointer(&t[0]), C.size_t(len(t)), unsafe.Pointer(&dst[0]), C.size_t(len(dst))) == C.CHARLS_JPEGLS_ERRC_SUCCESS {
				return nil
			}
		}
	}
	if e != C.CHARLS_JPEGLS_ERRC_SUCCESS {
		return jlsError("cannot decode the stream", e)
	}
	return nil
}

// endsWithEOI reports whether src ends with the EOI marker FF D9, allowing
// a few trailing 0x00 or 0xFF bytes after it (encoders pad fragments to
// even length with either).
func endsWithEOI(src []byte) bool {
	n := len(src)
	for k := 0; k < 4 && n > 0 && (src[n-1] == 0x00 || src[n-1] == 0xFF); k++ {
		n--
	}
	return n >= 2 && src[n-2] == 0xFF && src[n-1] == 0xD9
}

// trimPaddingBeforeEOI returns a copy of src without the 0x00 bytes just
// before its final EOI marker, or nil when there are none.
func trimPaddingBeforeEOI(src []byte) []byte {
	n := len(src)
	if n < 4 || src[n-2] != 0xFF || src[n-1] != 0xD9 || src[n-3] != 0x00 {
		return nil
	}
	i := n - 3
	for i > 0 && src[i-1] == 0x00 {
		i--
	}
	out := make([]byte, 0, i+2)
	return append(append(out, src[:i]...), 0xFF, 0xD9)
}

// jlsError turns a CharLS error code into an error wrapping ErrCorrupt,
// or ErrUnsupported for a valid stream CharLS does not decode.
func jlsError(what string, e C.charls_jpegls_errc) error {
	msg := C.GoString(C.charls_get_error_message(e))
	kind := ErrCorrupt
	switch e {
	case C.CHARLS_JPEGLS_ERRC_ENCODING_NOT_SUPPORTED, C.CHARLS_JPEGLS_ERRC_PARAMETER_VALUE_NOT_SUPPORTED,
		C.CHARLS_JPEGLS_ERRC_BIT_DEPTH_FOR_TRANSFORM_NOT_SUPPORTED, C.CHARLS_JPEGLS_ERRC_COLOR_TRANSFORM_NOT_SUPPORTED:
		kind = ErrUnsupported
	case C.CHARLS_JPEGLS_ERRC_NOT_ENOUGH_MEMORY:
		return fmt.Errorf("JPEG-LS: %s: CharLS ran out of memory", what)
	}
	return fmt.Errorf("%w: JPEG-LS: %s: %s (CharLS error %d)", kind, what, msg, int(e))
}

// encodeJPEGLS encodes w×h pixels of comps interleaved samples (1 byte
// each for bits ≤ 8, else 2 native-endian bytes) with the given NEAR and
// interleave mode. It exists for the package's tests, which cannot use cgo
// themselves, to make colour and near-lossless streams.
func encodeJPEGLS(src []byte, w, h, bits, comps, near, ilv int) ([]byte, error) {
	dst := make([]byte, len(src)*2+1024)
	var n C.size_t
	e := C.rt_jls_encode(unsafe.Pointer(&src[0]), C.size_t(len(src)), C.uint32_t(w), C.uint32_t(h), C.int32_t(bits),
		C.int32_t(comps), C.int32_t(near), C.int32_t(ilv), unsafe.Pointer(&dst[0]), C.size_t(len(dst)), &n)
	if e != C.CHARLS_JPEGLS_ERRC_SUCCESS {
		return nil, jlsError("cannot encode", e)
	}
	return dst[:n], nil
}
