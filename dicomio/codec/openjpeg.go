//go:build cgo && openjpeg

package codec

// JPEG 2000 (ITU-T T.800 | ISO/IEC 15444-1) and High-Throughput JPEG 2000
// (ITU-T T.814 | ISO/IEC 15444-15) through OpenJPEG, for the transfer
// syntaxes of PS3.5 §A.4.4 and §A.4.11. It is cgo because no well-kept
// pure-Go JPEG 2000 decoder exists; build with -tags openjpeg (and the
// libopenjp2 headers, pkg-config libopenjp2) to register it.
//
// Every call runs in one C function that owns the OpenJPEG objects from
// creation to destruction: the Go source and destination slices are only
// lent for that call, as the cgo pointer rules require, and nothing C holds
// survives it. Before OpenJPEG sees the stream, its SIZ marker segment is
// read here and checked against the Frame, so a stream that declares an
// image larger than the instance's is refused without being decoded.
//
// Colour: OpenJPEG applies the inverse multiple-component transform (RCT
// or ICT) itself when the COD segment says one was used, so a three-sample
// frame of an instance whose Photometric Interpretation is YBR_RCT or
// YBR_ICT is written as R, G, B samples. dicomio must treat such frames as
// RGB (PS3.3 C.7.6.3.1.2 describes the transform as part of the
// compression, not of the stored colour space).

/*
#cgo pkg-config: libopenjp2
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <openjpeg.h>

// rt_opj_src is the memory stream OpenJPEG reads through the callbacks.
typedef struct {
	const unsigned char *p;
	OPJ_SIZE_T n, pos;
} rt_opj_src;

// rt_opj_msgs collects OpenJPEG's error and warning messages.
typedef struct {
	char buf[768];
	size_t n;
} rt_opj_msgs;

static OPJ_SIZE_T rt_opj_read(void *buf, OPJ_SIZE_T nb, void *ud) {
	rt_opj_src *s = (rt_opj_src *)ud;
	if (s->pos >= s->n) return (OPJ_SIZE_T)-1;
	OPJ_SIZE_T k = s->n - s->pos;
	if (k > nb) k = nb;
	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	return k;
}

static OPJ_OFF_T rt_opj_skip(OPJ_OFF_T nb, void *ud) {
	rt_opj_src *s = (rt_opj_src *)ud;
	if (nb < 0) {
		if ((OPJ_SIZE_T)(-nb) > s->pos) return -1;
		s->pos -= (OPJ_SIZE_T)(-nb);
		return nb;
	}
	if ((OPJ_SIZE_T)nb > s->n - s->pos) {
		s->pos = s->n;
		return -1;
	}
	s->pos += (OPJ_SIZE_T)nb;
	return nb;
}

static OPJ_BOOL rt_opj_seek(OPJ_OFF_T nb, void *ud) {
	rt_opj_src *s = (rt_opj_src *)ud;
	if (nb < 0 || (OPJ_SIZE_T)nb > s->n) return OPJ_FALSE;
	s->pos = (OPJ_SIZE_T)nb;
	return OPJ_TRUE;
}

static void rt_opj_append(rt_opj_msgs *m, const char *kind, const char *msg) {
	if (m->n >= sizeof m->buf - 1) return;
	int k = snprintf(m->buf + m->n, sizeof m->buf - m->n, "%s%s: %s", m->n ? "; " : "", kind, msg);
	if (k < 0) return;
	m->n += (size_t)k;
	if (m->n > sizeof m->buf - 1) m->n = sizeof m->buf - 1;
	while (m->n > 0 && (m->buf[m->n-1] == '\n' || m->buf[m->n-1] == ' ')) m->buf[--m->n] = 0;
}

static void rt_opj_error(const char *msg, void *ud) { rt_opj_append((rt_opj_msgs *)ud, "error", msg); }
static void rt_opj_warning(const char *msg, void *ud) { rt_opj_append((rt_opj_msgs *)ud, "warning", msg); }
static void rt_opj_quiet(const char *msg, void *ud) { (void)msg; (void)ud; }

enum { RT_OPJ_OK = 0, RT_OPJ_CORRUPT = 1, RT_OPJ_UNSUPPORTED = 2, RT_OPJ_NOMEM = 3 };

// rt_opj_decode decodes the J2K codestream src[0:n] into dst[0:dstlen] as
// interleaved little-endian samples of 'bytes' bytes each, after checking
// that the decoded image is w×h with ncomp components of precision at most
// bytes*8 and no subsampling. It returns one of the RT_OPJ_ codes; on
// failure msgs says why.
static int rt_opj_decode(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen,
		OPJ_UINT32 w, OPJ_UINT32 h, OPJ_UINT32 ncomp, OPJ_UINT32 bytes, rt_opj_msgs *msgs) {
	rt_opj_src s = { src, n, 0 };
	int rc = RT_OPJ_CORRUPT;
	opj_codec_t *codec = NULL;
	opj_image_t *img = NULL;
	opj_stream_t *st = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
	if (st == NULL) { rt_opj_append(msgs, "error", "cannot create the input stream"); return RT_OPJ_NOMEM; }
	opj_stream_set_user_data(st, &s, NULL);
	opj_stream_set_user_data_length(st, (OPJ_UINT64)n);
	opj_stream_set_read_function(st, rt_opj_read);
	opj_stream_set_skip_function(st, rt_opj_skip);
	opj_stream_set_seek_function(st, rt_opj_seek);

	codec = opj_create_decompress(OPJ_CODEC_J2K);
	if (codec == NULL) { rt_opj_append(msgs, "error", "cannot create the decoder"); rc = RT_OPJ_NOMEM; goto out; }
	opj_set_error_handler(codec, rt_opj_error, msgs);
	opj_set_warning_handler(codec, rt_opj_warning, msgs);
	opj_set_info_handler(codec, rt_opj_quiet, NULL);
	opj_dparameters_t params;
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(codec, &params)) goto out;
	// Strict mode: a truncated codestream is an error, not a partial image.
	opj_decoder_set_strict_mode(codec, OPJ_TRUE);

	if (!opj_read_header(st, codec, &img) || img == NULL) goto out;
	if (img->x1 < img->x0 || img->y1 < img->y0 || img->x1 - img->x0 != w || img->y1 - img->y0 != h || img->numcomps != ncomp) {
		char b[160];
		snprintf(b, sizeof b, "the codestream header declares %ux%u with %u components, the frame needs %ux%u with %u",
			img->x1 - img->x0, img->y1 - img->y0, img->numcomps, w, h, ncomp);
		rt_opj_append(msgs, "error", b);
		goto out;
	}
	for (OPJ_UINT32 c = 0; c < ncomp; c++) {
		opj_image_comp_t *k = &img->comps[c];
		if (k->dx != 1 || k->dy != 1) {
			rt_opj_append(msgs, "error", "subsampled components are not supported");
			rc = RT_OPJ_UNSUPPORTED;
			goto out;
		}
		if (k->prec < 1 || k->prec > bytes * 8) {
			char b[120];
			snprintf(b, sizeof b, "component %u has %u-bit samples, more than the frame's %u-bit container", c, k->prec, bytes * 8);
			rt_opj_append(msgs, "error", b);
			goto out;
		}
	}
	if (!opj_decode(codec, st, img) || !opj_end_decompress(codec, st)) goto out;
	for (OPJ_UINT32 c = 0; c < ncomp; c++) {
		opj_image_comp_t *k = &img->comps[c];
		if (k->data == NULL || k->w != w || k->h != h) {
			rt_opj_append(msgs, "error", "a decoded component does not cover the whole image");
			goto out;
		}
	}
	if ((size_t)w * h * ncomp * bytes != dstlen) {
		rt_opj_append(msgs, "error", "destination size mismatch");
		goto out;
	}
	size_t np = (size_t)w * h;
	for (OPJ_UINT32 c = 0; c < ncomp; c++) {
		const OPJ_INT32 *d = img->comps[c].data;
		unsigned char *o = dst + (size_t)c * bytes;
		size_t step = (size_t)ncomp * bytes;
		switch (bytes) {
		case 1:
			for (size_t i = 0; i < np; i++, o += step) o[0] = (unsigned char)d[i];
			break;
		case 2:
			for (size_t i = 0; i < np; i++, o += step) {
				OPJ_UINT32 v = (OPJ_UINT32)d[i];
				o[0] = (unsigned char)v; o[1] = (unsigned char)(v >> 8);
			}
			break;
		default:
			for (size_t i = 0; i < np; i++, o += step) {
				OPJ_UINT32 v = (OPJ_UINT32)d[i];
				o[0] = (unsigned char)v; o[1] = (unsigned char)(v >> 8);
				o[2] = (unsigned char)(v >> 16); o[3] = (unsigned char)(v >> 24);
			}
		}
	}
	rc = RT_OPJ_OK;
out:
	if (img != NULL) opj_image_destroy(img);
	if (codec != NULL) opj_destroy_codec(codec);
	opj_stream_destroy(st);
	return rc;
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

func init() {
	name := "JPEG 2000 (OpenJPEG " + C.GoString(C.opj_version()) + ", cgo)"
	Register("1.2.840.10008.1.2.4.90", Decoder{Name: name, Decode: DecodeJPEG2000})
	Register("1.2.840.10008.1.2.4.91", Decoder{Name: name, Decode: DecodeJPEG2000, Lossy: true})
	// HTJ2K: OpenJPEG decodes Part 15 codestreams since 2.5.0.
	ht := "HTJ2K (OpenJPEG " + C.GoString(C.opj_version()) + ", cgo)"
	Register("1.2.840.10008.1.2.4.201", Decoder{Name: ht, Decode: DecodeJPEG2000})
	Register("1.2.840.10008.1.2.4.202", Decoder{Name: ht, Decode: DecodeJPEG2000})
	Register("1.2.840.10008.1.2.4.203", Decoder{Name: ht, Decode: DecodeJPEG2000, Lossy: true})
}

// DecodeJPEG2000 decodes one frame of a JPEG 2000 or HTJ2K transfer syntax
// into dst per the package contract. src is a J2K codestream (SOC, SIZ…),
// as DICOM encapsulates it, or a JP2 file whose contiguous codestream box
// is used; any colour specification in JP2 boxes is ignored. Components
// must not be subsampled. A three-component stream coded with the
// reversible or irreversible colour transform comes out as R, G, B.
//
// The SIZ sign flag is not compared with f.Signed: samples are written as
// their low bits, two's complement when negative, so a stream that codes
// the stored bit patterns with the other signedness (a known encoder
// mistake) still yields the stored values once dicomio applies Bits
// Stored and Pixel Representation.
func DecodeJPEG2000(dst, src []byte, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(dst) != f.Size() {
		return fmt.Errorf("JPEG 2000: destination holds %d bytes, the %d×%d frame needs %d", len(dst), f.Columns, f.Rows, f.Size())
	}
	cs, err := j2kCodestream(src)
	if err != nil {
		return err
	}
	siz, err := parseSIZ(cs)
	if err != nil {
		return err
	}
	if err := siz.check(f); err != nil {
		return err
	}
	var msgs C.rt_opj_msgs
	rc := C.rt_opj_decode((*C.uchar)(unsafe.Pointer(&cs[0])), C.size_t(len(cs)),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.size_t(len(dst)),
		C.OPJ_UINT32(f.Columns), C.OPJ_UINT32(f.Rows), C.OPJ_UINT32(f.Samples), C.OPJ_UINT32(f.BitsAllocated/8), &msgs)
	if rc == C.RT_OPJ_OK {
		return nil
	}
	why := C.GoStringN(&msgs.buf[0], C.int(msgs.n))
	if why == "" {
		why = "OpenJPEG gave no reason"
	}
	switch rc {
	case C.RT_OPJ_UNSUPPORTED:
		return fmt.Errorf("%w: JPEG 2000: %s", ErrUnsupported, why)
	case C.RT_OPJ_NOMEM:
		return fmt.Errorf("JPEG 2000: OpenJPEG could not allocate memory: %s", why)
	}
	return fmt.Errorf("%w: JPEG 2000: OpenJPEG could not decode the codestream (%s)", ErrCorrupt, why)
}

// j2kCodestream returns the J2K codestream in src: src itself when it
// starts with SOC and SIZ, or the content of the first contiguous
// codestream box ('jp2c') of a JP2 file (ISO/IEC 15444-1 Annex I).
func j2kCodestream(src []byte) ([]byte, error) {
	if len(src) >= 4 && src[0] == 0xFF && src[1] == 0x4F && src[2] == 0xFF && src[3] == 0x51 {
		return src, nil
	}
	jp2sig := []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}
	if len(src) < len(jp2sig) || string(src[:len(jp2sig)]) != string(jp2sig) {
		return nil, fmt.Errorf("%w: JPEG 2000: the frame starts with neither a codestream (FF4F FF51) nor a JP2 signature box", ErrCorrupt)
	}
	b := src
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil, fmt.Errorf("%w: JPEG 2000: JP2 box %q is truncated", ErrCorrupt, typ)
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, fmt.Errorf("%w: JPEG 2000: JP2 box %q declares %d bytes, %d remain", ErrCorrupt, typ, size, len(b))
		}
		if typ == "jp2c" {
			cs := b[hdr:size]
			if len(cs) < 4 || cs[0] != 0xFF || cs[1] != 0x4F || cs[2] != 0xFF || cs[3] != 0x51 {
				return nil, fmt.Errorf("%w: JPEG 2000: the JP2 codestream box does not start with SOC and SIZ", ErrCorrupt)
			}
			return cs, nil
		}
		b = b[size:]
	}
	return nil, fmt.Errorf("%w: JPEG 2000: the JP2 file has no contiguous codestream box", ErrCorrupt)
}

// j2kSIZ is the image and tile size marker segment (ISO/IEC 15444-1
// §A.5.1).
type j2kSIZ struct {
	rsiz               uint16
	xsiz, ysiz, xo, yo uint32
	xt, yt, xto, yto   uint32
	prec               []int // per component, 1..38
	signed             []bool
	dx, dy             []int
}

// parseSIZ reads the SIZ segment that must follow SOC.
func parseSIZ(cs []byte) (*j2kSIZ, error) {
	if len(cs) < 4+2+36+2 {
		return nil, fmt.Errorf("%w: JPEG 2000: the codestream ends inside its SIZ marker segment", ErrCorrupt)
	}
	b := cs[4:]
	lsiz := int(binary.BigEndian.Uint16(b))
	be := binary.BigEndian
	s := &j2kSIZ{
		rsiz: be.Uint16(b[2:]),
		xsiz: be.Uint32(b[4:]), ysiz: be.Uint32(b[8:]),
		xo: be.Uint32(b[12:]), yo: be.Uint32(b[16:]),
		xt: be.Uint32(b[20:]), yt: be.Uint32(b[24:]),
		xto: be.Uint32(b[28:]), yto: be.Uint32(b[32:]),
	}
	csiz := int(be.Uint16(b[36:]))
	if csiz < 1 || csiz > 16384 || lsiz != 38+3*csiz {
		return nil, fmt.Errorf("%w: JPEG 2000: SIZ declares %d components in a %d-byte segment", ErrCorrupt, csiz, lsiz)
	}
	if len(b) < lsiz {
		return nil, fmt.Errorf("%w: JPEG 2000: the codestream ends inside its SIZ marker segment", ErrCorrupt)
	}
	if s.xsiz <= s.xo || s.ysiz <= s.yo || s.xt == 0 || s.yt == 0 ||
		s.xto > s.xo || s.yto > s.yo || uint64(s.xto)+uint64(s.xt) <= uint64(s.xo) || uint64(s.yto)+uint64(s.yt) <= uint64(s.yo) {
		return nil, fmt.Errorf("%w: JPEG 2000: SIZ declares an inconsistent image or tile grid", ErrCorrupt)
	}
	for c := 0; c < csiz; c++ {
		p := b[38+3*c:]
		s.prec = append(s.prec, int(p[0]&0x7F)+1)
		s.signed = append(s.signed, p[0]&0x80 != 0)
		s.dx = append(s.dx, int(p[1]))
		s.dy = append(s.dy, int(p[2]))
	}
	return s, nil
}

// check compares the SIZ segment with the frame the stream must decode
// to, before any decoding.
func (s *j2kSIZ) check(f Frame) error {
	w, h := uint64(s.xsiz-s.xo), uint64(s.ysiz-s.yo)
	if w != uint64(f.Columns) || h != uint64(f.Rows) || len(s.prec) != f.Samples {
		return fmt.Errorf("%w: JPEG 2000: the codestream is %d×%d with %d components, the frame is %d×%d with %d samples per pixel",
			ErrCorrupt, w, h, len(s.prec), f.Columns, f.Rows, f.Samples)
	}
	tx := (uint64(s.xsiz) - uint64(s.xto) + uint64(s.xt) - 1) / uint64(s.xt)
	ty := (uint64(s.ysiz) - uint64(s.yto) + uint64(s.yt) - 1) / uint64(s.yt)
	if tx*ty > 65535 {
		return fmt.Errorf("%w: JPEG 2000: the codestream declares %d tiles, more than the 65535 the standard allows", ErrCorrupt, tx*ty)
	}
	for c := range s.prec {
		if s.dx[c] != 1 || s.dy[c] != 1 {
			if s.dx[c] == 0 || s.dy[c] == 0 {
				return fmt.Errorf("%w: JPEG 2000: component %d has a zero subsampling factor", ErrCorrupt, c)
			}
			return fmt.Errorf("%w: JPEG 2000: component %d is subsampled %d×%d", ErrUnsupported, c, s.dx[c], s.dy[c])
		}
		if s.prec[c] > f.BitsAllocated {
			return fmt.Errorf("%w: JPEG 2000: component %d has %d-bit samples, the frame allocates %d bits",
				ErrCorrupt, c, s.prec[c], f.BitsAllocated)
		}
		if s.prec[c] > 31 {
			return fmt.Errorf("%w: JPEG 2000: component %d has %d-bit samples; OpenJPEG decodes at most 31", ErrUnsupported, c, s.prec[c])
		}
	}
	return nil
}
