package dicomio

import (
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom"
)

// ErrHeaderOnly reports an instance that ReadHeader cannot read without
// its whole data set: a deflated transfer syntax (the pixel data's place
// is in the inflated stream), encapsulated (compressed) pixel data, or no
// top-level native Pixel Data element. Callers read the whole file
// instead (ReadInstance, DecodePixels), which also says whether it is
// acceptable.
var ErrHeaderOnly = errors.New("the instance cannot be read from its header alone")

// PixelLocation is where the native pixel data of an instance lies in its
// file, and how its samples are laid out (from the image pixel module).
type PixelLocation struct {
	// Offset is the file offset of the first byte of the Pixel Data
	// value; Length the bytes the image needs (Rows×Columns×Samples×
	// BitsAllocated/8×Frames, rounded up for 1-bit data), all of which
	// the file holds. A pad byte after an odd length is not counted.
	Offset, Length int64
	// FrameSize is the byte length of one frame (Length/Frames), 0 for
	// 1-bit data, whose frames need not start on a byte boundary.
	FrameSize int64

	Rows, Columns, Samples, Frames     int
	BitsAllocated, BitsStored, HighBit int
	Signed                             bool // Pixel Representation 1
	Planar                             bool // Planar Configuration 1 with several samples
	// BigEndian is set for Explicit VR Big Endian: each sample's bytes
	// are stored most significant first (8-bit samples in an OW value as
	// 16-bit words); VR is the Pixel Data element's VR (OB or OW).
	BigEndian bool
	VR        string
}

// headerPrefix is the first read of ReadHeader (most headers are a few
// KiB); it doubles until the top-level Pixel Data element header is
// inside it.
const headerPrefix = 16 << 10

// ReadHeader reads the attributes of one instance of size bytes stored in
// r (a Part 10 file, or a bare data set whose syntax can be inferred)
// without reading its pixel data, and says where its native pixel data
// lies. It reads a prefix of the file (16 KiB, doubled as needed) up to and
// including the header of the top-level Pixel Data element; elements
// after Pixel Data (e.g. trailing padding) are not read.
//
// The Instance is the one ReadInstance gives, with the same validation,
// including the pixel data length: a file that ends before the declared
// pixel data does is refused (ReasonCannotUnderstand), and one whose Pixel
// Data length disagrees with the image pixel module too
// (ReasonDoesNotMatchSOPClass). Unlike ReadInstance, defects after the
// Pixel Data element go unnoticed.
//
// Errors: ErrHeaderOnly (deflated syntax, encapsulated or no pixel data:
// read the whole file instead), *RejectError for an instance ReadInstance
// refuses, and read errors from r.
func ReadHeader(r io.ReaderAt, size int64) (*Instance, *PixelLocation, error) {
	if size < 0 {
		return nil, nil, fmt.Errorf("negative size %d", size)
	}
	n := min(size, headerPrefix)
	for {
		buf := make([]byte, n)
		got, err := r.ReadAt(buf, 0)
		if got < len(buf) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("reading instance header: %w", err)
		}
		in, loc, more, err := readHeader(buf, size)
		if !more || n == size {
			return in, loc, err
		}
		n = min(size, 2*n)
	}
}

// readHeader reads an instance from buf, the first len(buf) of size bytes.
// more is set when buf ends before the top-level Pixel Data element's
// header: the caller then reads a longer prefix (when buf is the whole
// file, the error stands).
func readHeader(buf []byte, size int64) (in *Instance, loc *PixelLocation, more bool, err error) {
	whole := int64(len(buf)) == size
	d := &instanceData{headerOnly: true}
	if d.meta, err = readFileMeta(buf); err != nil {
		return nil, nil, !whole, reject(ReasonCannotUnderstand, err, "the file meta information (group 0002) is unreadable")
	}
	if !whole && d.meta.datasetOffset+8 > len(buf) {
		// The file meta may go on beyond the prefix.
		return nil, nil, true, errors.New("the file meta information fills the prefix")
	}
	rj := func(e *RejectError) *RejectError {
		if ValidateUID(d.meta.sopInstance) == nil {
			e.SOPClassUID, e.SOPInstanceUID = d.meta.sopClass, d.meta.sopInstance
		}
		return e
	}
	ds := buf[d.meta.datasetOffset:]
	d.tsUID = d.meta.transferSyntax
	if d.tsUID == "" {
		if d.tsUID, err = inferSyntax(ds); err != nil {
			return nil, nil, !whole && len(ds) < 8, rj(reject(ReasonCannotUnderstand, err, "not a DICOM file"))
		}
	}
	ts, ok := lookupTransferSyntax(d.tsUID)
	if !ok {
		return nil, nil, false, rj(reject(ReasonTransferSyntaxNotSupport, nil, "transfer syntax %q is not a known DICOM transfer syntax", d.tsUID))
	}
	d.ts = ts
	if ts.deflated {
		return nil, nil, false, fmt.Errorf("%w: transfer syntax %s is deflated", ErrHeaderOnly, ts.name)
	}
	// The top-level elements one by one, stopping at Pixel Data's header.
	s := &scanner{data: ds, bo: ts.byteOrder(), implicit: ts.implicit}
	pixelStart := -1 // offset of the Pixel Data element header in ds
	var px element
	for s.pos < len(ds) {
		start := s.pos
		t, vr, vl, err := s.header(len(ds))
		if err == nil && t == tagPixelData {
			pixelStart = start
			px = element{tag: t, vr: vr, vl: vl, offset: s.pos}
			break
		}
		s.pos = start
		e, err := s.element(len(ds), 0)
		if err != nil {
			se := (*structError)(nil)
			truncated := errors.As(err, &se) && se.truncated
			if !whole {
				// The prefix may end inside this element (a cut
				// sequence reads as a missing delimiter): read more.
				return nil, nil, true, err
			}
			reason := "the data set is malformed"
			if truncated {
				reason = "the data set is truncated or declares a length beyond the end of the file"
			}
			return nil, nil, false, rj(reject(ReasonCannotUnderstand, err, "%s", reason))
		}
		d.elems = append(d.elems, e)
	}
	if pixelStart < 0 {
		return nil, nil, !whole, fmt.Errorf("%w: no top-level Pixel Data element", ErrHeaderOnly)
	}
	if px.vl == undefinedLength {
		return nil, nil, false, fmt.Errorf("%w: the pixel data is encapsulated", ErrHeaderOnly)
	}
	if px.vr == "SQ" {
		// Read as a sequence by the whole-file pass; let it decide.
		return nil, nil, false, fmt.Errorf("%w: Pixel Data has VR SQ", ErrHeaderOnly)
	}
	valueOffset := int64(d.meta.datasetOffset) + int64(px.offset)
	if avail := size - valueOffset; int64(px.vl) > avail {
		err := &structError{offset: px.offset, truncated: true,
			msg: fmt.Sprintf("(7FE0,0010) %s value needs %d bytes but only %d are left (truncated or corrupt length)", px.vr, px.vl, avail)}
		return nil, nil, false, rj(reject(ReasonCannotUnderstand, err, "the data set is truncated or declares a length beyond the end of the file"))
	}
	d.dataset = ds[:pixelStart]
	d.pixel = &px
	if d.lib, err = parse(libraryVRs(charsetAsCS(d.dataset, d.elems, ts), d.dataset, d.elems, ts), ts, dicom.SkipPixelData()); err != nil {
		return nil, nil, false, rj(reject(ReasonCannotUnderstand, err, "the DICOM parser could not read the data set"))
	}
	if in, err = d.instance(); err != nil {
		return nil, nil, false, err
	}
	want, err := nativeLength(in) // checked by instance()
	if err != nil {
		return nil, nil, false, err
	}
	loc = &PixelLocation{
		Offset: valueOffset, Length: int64(want), FrameSize: int64(frameLength(in)),
		Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel, Frames: in.NumberOfFrames,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, HighBit: in.HighBit,
		Signed:    in.PixelRepresentation == 1,
		Planar:    in.PlanarConfiguration == 1 && in.SamplesPerPixel > 1,
		BigEndian: ts.bigEndian, VR: px.vr,
	}
	return in, loc, false, nil
}
