package dicomio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// instanceData is one instance after the structural pass and the library
// parse: the pieces ReadInstance, the JSON model and frame extraction
// share.
type instanceData struct {
	meta    fileMeta
	ts      transferSyntax
	tsUID   string
	dataset []byte    // the data set after the file meta (inflated if deflated)
	elems   []element // the structural pass's view of dataset
	pixel   *element  // top-level Pixel Data, or nil
	lib     dicom.Dataset
	// headerOnly is set by ReadHeader: dataset ends before Pixel Data,
	// and pixel is its header alone (no value).
	headerOnly bool
}

// reject builds a *RejectError.
func reject(code FailureReason, err error, format string, args ...any) *RejectError {
	return &RejectError{Code: code, Reason: fmt.Sprintf(format, args...), Err: err}
}

// readAll reads up to size bytes of r into memory. It allocates size bytes
// up front only up to 64 MiB and grows beyond that as data arrives, so a
// wrong size costs nothing. A reader that ends early gives a shorter slice.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	buf := make([]byte, 0, min(size, 64<<20))
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(size-int64(len(buf)), int64(cap(buf)))))
		}
		end := int(min(int64(cap(buf)), size))
		n, err := io.ReadFull(r, buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading instance: %w", err)
		}
	}
	return buf, nil
}

// load reads, checks and parses one instance. opt is the library's pixel
// data option (dicom.SkipProcessingPixelDataValue or dicom.SkipPixelData).
// Errors about the input are *RejectError; read errors from r are returned
// wrapped as they are.
func load(r io.Reader, size int64, opt dicom.ParseOption) (*instanceData, error) {
	data, err := readAll(r, size)
	if err != nil {
		return nil, err
	}
	return loadBytes(data, opt)
}

// loadBytes is load on an instance already in memory. data is only read,
// never modified or retained past the parse (rewrites work on copies).
func loadBytes(data []byte, opt dicom.ParseOption) (*instanceData, error) {
	var err error
	d := &instanceData{}
	if d.meta, err = readFileMeta(data); err != nil {
		return nil, reject(ReasonCannotUnderstand, err, "the file meta information (group 0002) is unreadable")
	}
	rj := func(e *RejectError) *RejectError { // name the instance when the file meta can
		if ValidateUID(d.meta.sopInstance) == nil {
			e.SOPClassUID, e.SOPInstanceUID = d.meta.sopClass, d.meta.sopInstance
		}
		return e
	}
	d.dataset = data[d.meta.datasetOffset:]
	d.tsUID = d.meta.transferSyntax
	if d.tsUID == "" {
		// No file meta, or file meta without a transfer syntax: infer it.
		if d.tsUID, err = inferSyntax(d.dataset); err != nil {
			return nil, rj(reject(ReasonCannotUnderstand, err, "not a DICOM file"))
		}
	}
	ts, ok := lookupTransferSyntax(d.tsUID)
	if !ok {
		return nil, rj(reject(ReasonTransferSyntaxNotSupport, nil, "transfer syntax %q is not a known DICOM transfer syntax", d.tsUID))
	}
	d.ts = ts
	if ts.deflated {
		if d.dataset, err = inflate(d.dataset); err != nil {
			if errors.Is(err, errDeflateBomb) {
				return nil, rj(reject(ReasonOutOfResources, err, "deflate bomb: the deflated data set inflates beyond the limit"))
			}
			return nil, rj(reject(ReasonCannotUnderstand, err, "the deflated data set is corrupt"))
		}
	}
	s := &scanner{data: d.dataset, bo: ts.byteOrder(), implicit: ts.implicit}
	if d.elems, err = s.elements(len(d.dataset), 0, 0); err != nil {
		reason := "the data set is malformed"
		if se := (*structError)(nil); errors.As(err, &se) && se.truncated {
			reason = "the data set is truncated or declares a length beyond the end of the file"
		}
		return nil, rj(reject(ReasonCannotUnderstand, err, "%s", reason))
	}
	for i := range d.elems {
		if d.elems[i].tag == tagPixelData {
			d.pixel = &d.elems[i]
		}
	}
	if d.lib, err = parse(libraryVRs(charsetAsCS(d.dataset, d.elems, ts), d.dataset, d.elems, ts), ts, opt); err != nil {
		return nil, rj(reject(ReasonCannotUnderstand, err, "the DICOM parser could not read the data set"))
	}
	return d, nil
}

// parse hands a checked data set to github.com/suyashkumar/dicom behind a
// recover. The library gets a synthetic file meta header naming one of the
// three syntaxes it can read (the data set is already inflated), so it never
// meets a transfer syntax it does not know (on which it panics) and never
// guesses one.
func parse(ds []byte, ts transferSyntax, opt dicom.ParseOption) (out dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("dicom parser panicked: %v", p)
		}
	}()
	uid := uidExplicitVRLittleEndian
	switch {
	case ts.implicit:
		uid = uidImplicitVRLittleEndian
	case ts.bigEndian:
		uid = uidExplicitVRBigEndian
	}
	hdr := syntheticHeader(uid)
	in := io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(ds))
	return dicom.Parse(in, int64(len(hdr)+len(ds)), nil, opt, dicom.AllowUnknownSpecificCharacterSet())
}

// charsetAsCS works around a library panic: it calls MustGetStrings on a
// top-level Specific Character Set (0008,0005), which panics when the
// element was written with a VR the library does not read as text (VR UN
// in pydicom's explicit_VR-UN.dcm). It returns a copy of ds in which that
// element is re-encoded in place as CS, so nothing after it moves: a VR
// with a 12-byte header becomes an 8-byte CS header and the value gains 4
// trailing spaces; a VR with an 8-byte header just has its VR replaced.
// Otherwise it returns ds itself.
func charsetAsCS(ds []byte, elems []element, ts transferSyntax) []byte {
	if ts.implicit {
		return ds
	}
	for _, e := range elems {
		if e.tag != tagCharset || e.items != nil || e.encaps {
			continue
		}
		switch tag.GetVRKind(tag.SpecificCharacterSet, e.vr) {
		case tag.VRStringList, tag.VRString, tag.VRDate:
			return ds
		}
		bo := ts.byteOrder()
		switch {
		case longVL(e.vr) && e.vl <= 0xFFFF-4 && e.offset >= 12:
			out := bytes.Clone(ds)
			h := e.offset - 12 // start of the element
			copy(out[h+4:], "CS")
			bo.PutUint16(out[h+6:], uint16(e.vl+4))
			copy(out[h+8:], e.value)
			copy(out[h+8+int(e.vl):], "    ")
			return out
		case !longVL(e.vr) && e.offset >= 8:
			out := bytes.Clone(ds)
			copy(out[e.offset-4:], "CS")
			return out
		}
		return ds
	}
	return ds
}

// libraryVRs works around the library's ignorance of the 64-bit VRs OV,
// SV and UV (the Extended Offset Table (7FE0,0001) is OV): it reads their
// explicit-VR header as a short one and loses its place. In a copy of ds
// (unless ds is already a copy of orig, from charsetAsCS) each such VR is
// renamed OB, which has the same 12-byte header, so nothing moves; the
// value stays as raw bytes. radtriage reads the Extended Offset Table from
// its own structural pass, not from the library.
func libraryVRs(ds, orig []byte, elems []element, ts transferSyntax) []byte {
	if ts.implicit {
		return ds
	}
	copied := len(ds) > 0 && len(orig) > 0 && &ds[0] != &orig[0]
	var walk func([]element)
	walk = func(elems []element) {
		for _, e := range elems {
			if newLongVR(e.vr) && e.offset >= 12 {
				if !copied {
					ds, copied = bytes.Clone(ds), true
				}
				copy(ds[e.offset-8:], "OB")
			}
			for _, item := range e.items {
				walk(item)
			}
		}
	}
	walk(elems)
	return ds
}

// syntheticHeader is a preamble, "DICM" and a file meta group holding only
// the group length and the transfer syntax UID.
func syntheticHeader(tsUID string) []byte {
	if len(tsUID)%2 == 1 {
		tsUID += "\x00"
	}
	var b []byte
	b = append(b, make([]byte, 128)...)
	b = append(b, "DICM"...)
	b = append(b, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(8+len(tsUID)))
	b = append(b, 0x02, 0x00, 0x10, 0x00, 'U', 'I')
	b = binary.LittleEndian.AppendUint16(b, uint16(len(tsUID)))
	return append(b, tsUID...)
}

// ReadInstance reads one DICOM instance of size bytes (a Part 10 file, or
// a bare data set whose syntax can be inferred) from r, validates it and
// returns the attributes radtriage indexes.
//
// Refusals are *RejectError:
//   - ReasonCannotUnderstand (0xC000): not DICOM, malformed or truncated
//     structure, a length beyond the end of the data, pixel data in the
//     wrong form for the transfer syntax, or a parser failure;
//   - ReasonTransferSyntaxNotSupport (0xC122): a transfer syntax UID that is
//     not a standard one (a standard syntax whose pixels radtriage cannot
//     decode is still accepted for storage);
//   - ReasonOutOfResources (0xA700): a deflated data set that inflates
//     beyond max(64 MiB, 50 × its compressed size), capped at 1 GiB;
//   - ReasonSOPClassNotSupported (0x0122): a DICOMDIR (Media Storage
//     Directory), which is not a composite instance;
//   - ReasonDoesNotMatchSOPClass (0xA900): a missing or invalid SOP Class,
//     SOP Instance, Study or Series Instance UID (this is a data set that
//     does not satisfy its SOP class, not unreadable bytes), or pixel data
//     whose length disagrees with the image pixel module (including an image
//     whose pixel data is missing).
//
// Other errors come from reading r. ReadInstance holds the whole instance
// in memory; callers bound size.
func ReadInstance(r io.Reader, size int64) (*Instance, error) {
	d, err := load(r, size, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return nil, err
	}
	return d.instance()
}

// ReadInstanceBytes is ReadInstance on an instance already in memory,
// without the copy ReadInstance makes. data is not retained.
func ReadInstanceBytes(data []byte) (*Instance, error) {
	d, err := loadBytes(data, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return nil, err
	}
	return d.instance()
}

// instance fills and validates an Instance from d.
func (d *instanceData) instance() (*Instance, error) {
	ds := d.lib.Elements
	in := &Instance{
		TransferSyntaxUID: d.tsUID,
		SOPClassUID:       str(ds, tag.SOPClassUID),
		SOPInstanceUID:    str(ds, tag.SOPInstanceUID),
		StudyInstanceUID:  str(ds, tag.StudyInstanceUID),
		SeriesInstanceUID: str(ds, tag.SeriesInstanceUID),

		PatientID:        str(ds, tag.PatientID),
		PatientName:      str(ds, tag.PatientName),
		PatientBirthDate: str(ds, tag.PatientBirthDate),
		PatientSex:       str(ds, tag.PatientSex),

		StudyDate:                  str(ds, tag.StudyDate),
		StudyTime:                  str(ds, tag.StudyTime),
		AccessionNumber:            str(ds, tag.AccessionNumber),
		StudyID:                    str(ds, tag.StudyID),
		StudyDescription:           str(ds, tag.StudyDescription),
		ReferringPhysicianName:     str(ds, tag.ReferringPhysicianName),
		RequestedProcedurePriority: str(ds, tag.RequestedProcedurePriority),

		Modality:          str(ds, tag.Modality),
		SeriesNumber:      integer(ds, tag.SeriesNumber),
		SeriesDescription: str(ds, tag.SeriesDescription),
		SeriesDate:        str(ds, tag.SeriesDate),
		SeriesTime:        str(ds, tag.SeriesTime),
		BodyPartExamined:  str(ds, tag.BodyPartExamined),

		InstanceNumber: integer(ds, tag.InstanceNumber),
		ContentDate:    str(ds, tag.ContentDate),
		ContentTime:    str(ds, tag.ContentTime),

		Rows:                      integer(ds, tag.Rows),
		Columns:                   integer(ds, tag.Columns),
		NumberOfFrames:            integer(ds, tag.NumberOfFrames),
		SamplesPerPixel:           integer(ds, tag.SamplesPerPixel),
		BitsAllocated:             integer(ds, tag.BitsAllocated),
		BitsStored:                integer(ds, tag.BitsStored),
		HighBit:                   integer(ds, tag.HighBit),
		PixelRepresentation:       integer(ds, tag.PixelRepresentation),
		PlanarConfiguration:       integer(ds, tag.PlanarConfiguration),
		PhotometricInterpretation: str(ds, tag.PhotometricInterpretation),

		ImagePositionPatient:    floatsN(ds, tag.ImagePositionPatient, 3),
		ImageOrientationPatient: floatsN(ds, tag.ImageOrientationPatient, 6),
		PixelSpacing:            floatsN(ds, tag.PixelSpacing, 2),
		SliceThickness:          float(ds, tag.SliceThickness),
		RescaleSlope:            1,

		HasPixelData: d.pixel != nil,
		Encapsulated: d.pixel != nil && d.pixel.encaps,
	}
	if e := find(ds, tag.RescaleSlope); e != nil {
		in.HasRescale = true
		if v, ok := firstFloat(e); ok && v != 0 {
			in.RescaleSlope = v
		}
	}
	if e := find(ds, tag.RescaleIntercept); e != nil {
		in.HasRescale = true
		in.RescaleIntercept, _ = firstFloat(e)
	}
	in.functionalGroups(ds)
	in.volumeAttributes(ds)
	if in.NumberOfFrames <= 0 && (in.HasPixelData || in.Rows > 0) {
		in.NumberOfFrames = 1
	}
	if in.SamplesPerPixel == 0 && in.HasPixelData {
		in.SamplesPerPixel = 1
	}
	if err := d.validate(in); err != nil {
		err.SOPClassUID, err.SOPInstanceUID = in.SOPClassUID, in.SOPInstanceUID
		if err.SOPInstanceUID == "" {
			err.SOPClassUID, err.SOPInstanceUID = d.meta.sopClass, d.meta.sopInstance
		}
		if ValidateUID(err.SOPInstanceUID) != nil {
			err.SOPInstanceUID = ""
		}
		return nil, err
	}
	return in, nil
}

// functionalGroups fills geometry absent at top level (enhanced multi-frame
// objects) from the shared functional groups, then from the first frame's
// per-frame functional groups.
func (in *Instance) functionalGroups(ds []*dicom.Element) {
	var groups [][]*dicom.Element
	for _, t := range []tag.Tag{tag.SharedFunctionalGroupsSequence, tag.PerFrameFunctionalGroupsSequence} {
		if items := seqItems(find(ds, t)); len(items) > 0 {
			groups = append(groups, items[0])
		}
	}
	for _, g := range groups {
		if m := seqItems(find(g, tag.PixelMeasuresSequence)); len(m) > 0 {
			if in.PixelSpacing == nil {
				in.PixelSpacing = floatsN(m[0], tag.PixelSpacing, 2)
			}
			if in.SliceThickness == 0 {
				in.SliceThickness = float(m[0], tag.SliceThickness)
			}
		}
		if o := seqItems(find(g, tag.PlaneOrientationSequence)); len(o) > 0 && in.ImageOrientationPatient == nil {
			in.ImageOrientationPatient = floatsN(o[0], tag.ImageOrientationPatient, 6)
		}
		if p := seqItems(find(g, tag.PlanePositionSequence)); len(p) > 0 && in.ImagePositionPatient == nil {
			in.ImagePositionPatient = floatsN(p[0], tag.ImagePositionPatient, 3)
		}
		if t := seqItems(find(g, tag.PixelValueTransformationSequence)); len(t) > 0 && !in.HasRescale {
			if e := find(t[0], tag.RescaleSlope); e != nil {
				in.HasRescale = true
				if v, ok := firstFloat(e); ok && v != 0 {
					in.RescaleSlope = v
				}
			}
			if e := find(t[0], tag.RescaleIntercept); e != nil {
				in.HasRescale = true
				in.RescaleIntercept, _ = firstFloat(e)
			}
		}
	}
}

// validate checks identification and pixel data consistency.
func (d *instanceData) validate(in *Instance) *RejectError {
	if in.SOPClassUID == uidMediaStorageDirectory || d.meta.sopClass == uidMediaStorageDirectory {
		return reject(ReasonSOPClassNotSupported, nil, "this is a DICOMDIR (Media Storage Directory), a file-set index, not a storable instance")
	}
	for _, u := range []struct{ name, v string }{
		{"SOP Class UID (0008,0016)", in.SOPClassUID},
		{"SOP Instance UID (0008,0018)", in.SOPInstanceUID},
		{"Study Instance UID (0020,000D)", in.StudyInstanceUID},
		{"Series Instance UID (0020,000E)", in.SeriesInstanceUID},
	} {
		if u.v == "" {
			return reject(ReasonDoesNotMatchSOPClass, nil, "%s is missing", u.name)
		}
		if err := ValidateUID(u.v); err != nil {
			return reject(ReasonDoesNotMatchSOPClass, err, "%s is not a valid UID", u.name)
		}
	}
	px := d.pixel
	if px == nil {
		if in.Rows > 0 && in.Columns > 0 && find(d.lib.Elements, tag.FloatPixelData) == nil &&
			find(d.lib.Elements, tag.DoubleFloatPixelData) == nil {
			return reject(ReasonDoesNotMatchSOPClass, nil,
				"the instance declares a %d×%d image but has no Pixel Data (7FE0,0010): truncated or incomplete", in.Rows, in.Columns)
		}
		return nil
	}
	if px.encaps != d.ts.encapsulated {
		if d.ts.encapsulated {
			return reject(ReasonCannotUnderstand, nil, "Pixel Data has a defined length but transfer syntax %s requires encapsulated pixel data", d.ts.name)
		}
		return reject(ReasonCannotUnderstand, nil, "Pixel Data is encapsulated but transfer syntax %s is native", d.ts.name)
	}
	if px.encaps {
		if len(px.fragments) == 0 {
			return reject(ReasonCannotUnderstand, nil, "encapsulated Pixel Data holds no fragments")
		}
		return nil
	}
	want, err := nativeLength(in)
	if err != nil {
		return reject(ReasonDoesNotMatchSOPClass, err, "Pixel Data cannot be checked against the image pixel module")
	}
	got := uint64(len(px.value))
	if d.headerOnly {
		got = uint64(px.vl) // ReadHeader checked it against the file size
	}
	if got != want && !(want%2 == 1 && got == want+1) {
		return reject(ReasonDoesNotMatchSOPClass, nil,
			"Pixel Data length is %d bytes but Rows×Columns×SamplesPerPixel×BitsAllocated×Frames (%d×%d×%d×%d×%d) needs %d: truncated or inconsistent",
			got, in.Rows, in.Columns, in.SamplesPerPixel, in.BitsAllocated, in.NumberOfFrames, want)
	}
	return nil
}

// nativeLength is the byte length native pixel data must have:
// rows·cols·samples·frames·bitsAllocated/8, rounded up for 1-bit data.
func nativeLength(in *Instance) (uint64, error) {
	if in.Rows <= 0 || in.Columns <= 0 || in.SamplesPerPixel <= 0 || in.NumberOfFrames <= 0 {
		return 0, fmt.Errorf("rows %d, columns %d, samples per pixel %d, frames %d must all be positive",
			in.Rows, in.Columns, in.SamplesPerPixel, in.NumberOfFrames)
	}
	if in.BitsAllocated != 1 && (in.BitsAllocated <= 0 || in.BitsAllocated%8 != 0 || in.BitsAllocated > 64) {
		return 0, fmt.Errorf("bits allocated %d is not 1 or a multiple of 8 up to 64", in.BitsAllocated)
	}
	// Each factor is below 2^32, so two multiplications cannot overflow
	// uint64; guard the rest.
	n := uint64(in.Rows) * uint64(in.Columns)
	for _, f := range []uint64{uint64(in.SamplesPerPixel), uint64(in.NumberOfFrames)} {
		if f != 0 && n > math.MaxUint64/f/64 {
			return 0, errors.New("image dimensions overflow")
		}
		n *= f
	}
	if in.BitsAllocated == 1 {
		return (n + 7) / 8, nil
	}
	return n * uint64(in.BitsAllocated/8), nil
}

// frameLength is the byte length of one native frame; for 1-bit data,
// frames are not byte aligned and frameLength returns 0.
func frameLength(in *Instance) uint64 {
	if in.BitsAllocated == 1 {
		return 0
	}
	return uint64(in.Rows) * uint64(in.Columns) * uint64(in.SamplesPerPixel) * uint64(in.BitsAllocated/8)
}

// find returns the element with tag t among elems, or nil.
func find(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e != nil && e.Tag == t {
			return e
		}
	}
	return nil
}

// seqItems returns the items of a sequence element, or nil.
func seqItems(e *dicom.Element) [][]*dicom.Element {
	if e == nil || e.Value == nil || e.Value.ValueType() != dicom.Sequences {
		return nil
	}
	items, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
	out := make([][]*dicom.Element, 0, len(items))
	for _, it := range items {
		if it == nil {
			continue
		}
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

// strs returns an element's values as trimmed strings.
func strs(e *dicom.Element) []string {
	if e == nil || e.Value == nil {
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = trimValue(s)
		}
		return out
	case []byte: // VR UN in implicit VR data sets
		return strings.Split(trimValue(string(v)), `\`)
	case []int:
		out := make([]string, len(v))
		for i, n := range v {
			out[i] = strconv.Itoa(n)
		}
		return out
	case []float64:
		out := make([]string, len(v))
		for i, f := range v {
			out[i] = strconv.FormatFloat(f, 'g', -1, 64)
		}
		return out
	}
	return nil
}

// str returns the value of tag t, multiple values joined by a backslash.
func str(elems []*dicom.Element, t tag.Tag) string {
	return trimValue(strings.Join(strs(find(elems, t)), `\`))
}

// integer returns the first value of t as an int (US/SS/UL/SL or IS), 0
// when absent or unparseable.
func integer(elems []*dicom.Element, t tag.Tag) int {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return 0
	}
	if v, ok := e.Value.GetValue().([]int); ok {
		if len(v) > 0 {
			return v[0]
		}
		return 0
	}
	if v, ok := e.Value.GetValue().([]byte); ok {
		// A binary integer written with VR UN (little endian, as UN
		// values in practice are).
		if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
			switch {
			case len(v) >= 2 && info.VRs[0] == "US":
				return int(binary.LittleEndian.Uint16(v))
			case len(v) >= 2 && info.VRs[0] == "SS":
				return int(int16(binary.LittleEndian.Uint16(v)))
			case len(v) >= 4 && info.VRs[0] == "UL":
				return int(binary.LittleEndian.Uint32(v))
			case len(v) >= 4 && info.VRs[0] == "SL":
				return int(int32(binary.LittleEndian.Uint32(v)))
			}
		}
	}
	f, ok := firstFloat(e)
	if !ok || math.Abs(f) > math.MaxInt32 {
		return 0
	}
	return int(math.Round(f))
}

// firstFloat returns the first value of e as a float64.
func firstFloat(e *dicom.Element) (float64, bool) {
	v := floats(e)
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// floats parses all values of e (DS/IS strings, leniently, or binary
// numbers). An unparseable value ends the list.
func floats(e *dicom.Element) []float64 {
	if e == nil || e.Value == nil {
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []float64:
		return v
	case []int:
		out := make([]float64, len(v))
		for i, n := range v {
			out[i] = float64(n)
		}
		return out
	}
	ss := strs(e)
	out := make([]float64, 0, len(ss))
	for _, s := range ss {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			break
		}
		out = append(out, f)
	}
	return out
}

func float(elems []*dicom.Element, t tag.Tag) float64 {
	f, _ := firstFloat(find(elems, t))
	return f
}

// floatsN returns exactly n values of t, or nil.
func floatsN(elems []*dicom.Element, t tag.Tag, n int) []float64 {
	v := floats(find(elems, t))
	if len(v) < n {
		return nil
	}
	return v[:n:n]
}
