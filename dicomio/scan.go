package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// This file holds radtriage's own structural pass over DICOM bytes. It runs
// before github.com/suyashkumar/dicom sees anything, for three reasons:
//
//   - the library allocates a value's buffer from the declared value length
//     before it reads a byte (make([]byte, vl) for strings, OB/UN, pixel
//     data and fragments; make([]int, 0, vl/2) for numbers), so a 12-byte
//     header claiming 4 GiB allocates 4 GiB; the pass checks every length
//     against the bytes that are actually left, and caps nesting depth so
//     that the library's recursion cannot exhaust the stack;
//   - the library swallows truncation inside the last element (it treats a
//     wrapped io.EOF as the end of the data set), so a truncated file reads
//     "successfully" without its pixel data;
//   - the JSON model and frame extraction need the raw value bytes, which
//     the library does not keep for every VR.
//
// The pass mirrors the library's reading rules (implicit VR from the
// library's dictionary, explicit 4-byte lengths only for the VRs it
// treats that way, undefined-length UN read as a sequence in the current
// syntax, item tags read as implicit VR). Where the library is lenient
// (unknown tags among pixel data fragments, a fragment that fails to read)
// the pass refuses instead: it may be stricter than the library, never
// looser.

const (
	undefinedLength = 0xFFFFFFFF
	maxNesting      = 64 // sequence nesting depth the pass allows

	tagItem          = 0xFFFEE000
	tagItemDelim     = 0xFFFEE00D
	tagSequenceDelim = 0xFFFEE0DD
	tagPixelData     = 0x7FE00010
	tagCharset       = 0x00080005
)

// structError is a structural defect found by the pass; it becomes a
// RejectError with ReasonCannotUnderstand.
type structError struct {
	offset    int
	msg       string
	truncated bool // a length runs past the end of the data
}

func (e *structError) Error() string {
	return fmt.Sprintf("at byte %d of the data set: %s", e.offset, e.msg)
}

// element is one data element as found by the pass. value aliases the
// input (the inflated data set for deflated syntaxes).
type element struct {
	tag       uint32
	vr        string // as the library sees it: explicit, or from its dictionary
	vl        uint32 // declared length; undefinedLength for undefined
	offset    int    // offset of the value in the data set
	value     []byte // defined-length non-sequence values
	items     [][]element
	fragments [][]byte // encapsulated pixel data: fragments after the offset table
	offsets   []byte   // encapsulated pixel data: the basic offset table item value
	encaps    bool     // undefined-length pixel data (or OB/OW/UN read as raw items)
	encapsEnd int      // end of the encapsulated value, before the sequence delimiter
}

func (e *element) tagString() string { return fmt.Sprintf("%08X", e.tag) }

// scanner walks a data set the way the library reads it.
type scanner struct {
	data     []byte
	pos      int
	bo       binary.ByteOrder
	implicit bool
}

func (s *scanner) fail(format string, args ...any) error {
	return &structError{offset: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) u16() uint16 { v := s.bo.Uint16(s.data[s.pos:]); s.pos += 2; return v }
func (s *scanner) u32() uint32 { v := s.bo.Uint32(s.data[s.pos:]); s.pos += 4; return v }

// need checks that n more bytes exist before end.
func (s *scanner) need(n uint64, end int, what string) error {
	if uint64(end-s.pos) < n {
		err := s.fail("%s needs %d bytes but only %d are left (truncated or corrupt length)", what, n, end-s.pos)
		err.(*structError).truncated = true
		return err
	}
	return nil
}

// longVL are the explicit VRs written with a reserved field and a 32-bit
// length (PS3.5 §7.1.2): the ones the library reads that way (read.go
// readVL in suyashkumar/dicom v1.1.0), and OV, SV and UV (added to DICOM
// in 2019), which the library does not know; libraryVRs rewrites those
// before it parses.
func longVL(vr string) bool {
	switch vr {
	case "NA", "OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT":
		return true
	}
	return newLongVR(vr)
}

// newLongVR are the 64-bit VRs the library reads with a short header.
func newLongVR(vr string) bool { return vr == "OV" || vr == "SV" || vr == "UV" }

// implicitVR is the library's dictionary lookup for implicit VR.
func implicitVR(t uint32) string {
	tg := tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}
	info, err := tag.Find(tg)
	if err != nil {
		return "UN"
	}
	if tg == tag.PixelData || tg == tag.OverlayData {
		return "OW"
	}
	if len(info.VRs) == 0 {
		return "UN"
	}
	return info.VRs[0]
}

// header reads a tag, VR and length.
func (s *scanner) header(end int) (t uint32, vr string, vl uint32, err error) {
	if err := s.need(8, end, "element header"); err != nil {
		return 0, "", 0, err
	}
	g, el := s.u16(), s.u16()
	t = uint32(g)<<16 | uint32(el)
	implicit := s.implicit || t == tagItem
	if implicit {
		vr = implicitVR(t)
		vl = s.u32()
		return t, vr, vl, nil
	}
	vr = string(s.data[s.pos : s.pos+2])
	s.pos += 2
	if longVL(vr) {
		if err := s.need(6, end, "element length"); err != nil {
			return 0, "", 0, err
		}
		s.pos += 2
		vl = s.u32()
		if vl == undefinedLength && (vr == "UC" || vr == "UR" || vr == "UT" || newLongVR(vr)) {
			return 0, "", 0, s.fail("(%04X,%04X) %s has undefined length", g, el, vr)
		}
		return t, vr, vl, nil
	}
	vl = uint32(s.u16())
	if vl == 0xFFFF {
		vl = undefinedLength
	}
	return t, vr, vl, nil
}

// elements reads elements until end, or, when delim is non-zero, until an
// element with tag delim (which is consumed and not returned).
func (s *scanner) elements(end int, delim uint32, depth int) ([]element, error) {
	if depth > maxNesting {
		return nil, s.fail("sequences nested more than %d deep", maxNesting)
	}
	var out []element
	for s.pos < end {
		e, err := s.element(end, depth)
		if err != nil {
			return nil, err
		}
		if delim != 0 && e.tag == delim {
			return out, nil
		}
		out = append(out, e)
	}
	if delim != 0 {
		return nil, s.fail("missing delimiter (%04X,%04X)", delim>>16, delim&0xFFFF)
	}
	return out, nil
}

func (s *scanner) element(end int, depth int) (element, error) {
	t, vr, vl, err := s.header(end)
	if err != nil {
		return element{}, err
	}
	e := element{tag: t, vr: vr, vl: vl, offset: s.pos}
	name := fmt.Sprintf("(%04X,%04X) %s", t>>16, t&0xFFFF, vr)
	switch {
	case t == tagItem:
		items, err := s.container(end, vl, tagItemDelim, depth, name)
		if err != nil {
			return e, err
		}
		e.items = [][]element{items}
	case t == tagPixelData && vl == undefinedLength:
		return e, s.encapsulated(&e, end, name)
	case vr == "SQ" || (vr == "UN" && vl == undefinedLength):
		if err := s.sequence(&e, end, depth, name); err != nil {
			return e, err
		}
	case (vr == "OB" || vr == "OW") && vl == undefinedLength:
		// The library reads these as raw items concatenated.
		return e, s.encapsulated(&e, end, name)
	default:
		if err := s.need(uint64(vl), end, name+" value"); err != nil {
			return e, err
		}
		e.value = s.data[s.pos : s.pos+int(vl)]
		s.pos += int(vl)
	}
	return e, nil
}

// container reads the elements of an item or of a sequence.
func (s *scanner) container(end int, vl uint32, delim uint32, depth int, name string) ([]element, error) {
	if vl == undefinedLength {
		return s.elements(end, delim, depth+1)
	}
	if err := s.need(uint64(vl), end, name+" value"); err != nil {
		return nil, err
	}
	return s.elements(s.pos+int(vl), 0, depth+1)
}

func (s *scanner) sequence(e *element, end int, depth int, name string) error {
	items, err := s.container(end, e.vl, tagSequenceDelim, depth, name)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.tag != tagItem {
			return s.fail("%s holds (%04X,%04X) where an item was expected", name, it.tag>>16, it.tag&0xFFFF)
		}
		e.items = append(e.items, it.items[0])
	}
	return nil
}

// encapsulated reads undefined-length pixel data (or OB/OW): an offset
// table item, then fragment items, then a sequence delimiter.
func (s *scanner) encapsulated(e *element, end int, name string) error {
	e.encaps = true
	first := true
	for {
		if err := s.need(8, end, name+" item header"); err != nil {
			return err
		}
		g, el := s.u16(), s.u16()
		t := uint32(g)<<16 | uint32(el)
		vl := s.u32()
		if t == tagSequenceDelim {
			if vl != 0 {
				// The library accepts this but logs it.
				return s.fail("%s ends with a sequence delimiter of length %d, not 0", name, vl)
			}
			e.encapsEnd = s.pos - 8
			return nil
		}
		if t != tagItem {
			return s.fail("%s holds (%04X,%04X) where a fragment item was expected", name, g, el)
		}
		if vl == undefinedLength {
			return s.fail("%s has a fragment of undefined length", name)
		}
		if err := s.need(uint64(vl), end, name+" fragment"); err != nil {
			return err
		}
		v := s.data[s.pos : s.pos+int(vl)]
		s.pos += int(vl)
		if first && t == tagItem && e.tag == tagPixelData {
			e.offsets = v
		} else {
			e.fragments = append(e.fragments, v)
		}
		first = false
	}
}

// fileMeta is what radtriage takes from the file meta information.
type fileMeta struct {
	present        bool
	transferSyntax string
	sopClass       string // Media Storage SOP Class UID
	sopInstance    string // Media Storage SOP Instance UID
	datasetOffset  int
}

// readFileMeta parses the preamble and group 0002 (always explicit VR
// little endian). A file without the "DICM" prefix but starting with group
// 0002 is read too. Without file meta, present is false and the data set
// starts at offset 0.
func readFileMeta(data []byte) (fileMeta, error) {
	var m fileMeta
	pos := 0
	if len(data) >= 132 && string(data[128:132]) == "DICM" {
		pos = 132
		m.present = true
	} else if len(data) >= 8 && binary.LittleEndian.Uint16(data) == 0x0002 {
		m.present = true
	} else {
		return m, nil
	}
	s := &scanner{data: data, pos: pos, bo: binary.LittleEndian}
	for s.pos+2 <= len(data) && binary.LittleEndian.Uint16(data[s.pos:]) == 0x0002 {
		e, err := s.element(len(data), 0)
		if err != nil {
			return m, fmt.Errorf("file meta information: %w", err)
		}
		v := trimValue(string(e.value))
		switch e.tag {
		case 0x00020010:
			m.transferSyntax = v
		case 0x00020002:
			m.sopClass = v
		case 0x00020003:
			m.sopInstance = v
		}
	}
	m.datasetOffset = s.pos
	return m, nil
}

// inferSyntax guesses the transfer syntax of a data set that has no file
// meta information, from its first element: explicit VR when bytes 4-5 are
// a VR, big endian when the group reads sensibly only that way.
func inferSyntax(ds []byte) (string, error) {
	if len(ds) < 8 {
		return "", errors.New("too short to hold a DICOM data set")
	}
	le := binary.LittleEndian.Uint16(ds)
	be := binary.BigEndian.Uint16(ds)
	explicit := isVR(string(ds[4:6]))
	switch {
	case le >= 0x0008 && le <= 0x00FF && explicit:
		return uidExplicitVRLittleEndian, nil
	case le >= 0x0008 && le <= 0x00FF:
		return uidImplicitVRLittleEndian, nil
	case be >= 0x0008 && be <= 0x00FF && explicit:
		return uidExplicitVRBigEndian, nil
	}
	return "", errors.New("no DICOM preamble, no file meta information, and the first bytes are not a DICOM element")
}

func isVR(s string) bool {
	switch s {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
		"OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV":
		return true
	}
	return false
}

// trimValue strips DICOM padding (spaces and NULs) from both ends.
func trimValue(s string) string { return strings.Trim(s, " \x00") }

// inflateLimit is the most a deflated data set of n compressed bytes may
// inflate to: 64 MiB, or 50 times the compressed size for larger inputs,
// and never more than 1 GiB (the inflated data set is held in memory).
func inflateLimit(n int) int64 {
	const floor, ceiling = 64 << 20, 1 << 30
	return min(max(int64(n)*50, floor), ceiling)
}

// errDeflateBomb reports a deflated data set that inflates beyond the limit.
var errDeflateBomb = errors.New("deflated data set inflates beyond the limit")

// inflate decompresses a raw deflate stream, refusing output beyond
// inflateLimit(len(comp)). Ordinary data sets (up to 3 times their
// compressed size, or 1 MiB) inflate in one pass into a buffer.
// Anything larger is suspect: the rest of the stream is inflated into
// io.Discard and only counted, so a bomb costs bounded time and memory,
// and only when it is within the limit is it inflated again into a buffer
// of exactly the measured size.
func inflate(comp []byte) ([]byte, error) {
	limit := inflateLimit(len(comp))
	soft := min(max(int64(len(comp))*3, 1<<20), limit)
	zr := flate.NewReader(bytes.NewReader(comp))
	buf := bytes.NewBuffer(make([]byte, 0, soft+bytes.MinRead))
	n, err := buf.ReadFrom(io.LimitReader(zr, soft))
	if err == nil && n == soft {
		// Beyond the soft bound: count the rest.
		var m int64
		m, err = io.Copy(io.Discard, io.LimitReader(zr, limit+1-n))
		n += m
	}
	zr.Close()
	if n > limit {
		return nil, fmt.Errorf("%w of %d bytes (%d compressed)", errDeflateBomb, limit, len(comp))
	}
	// A stream cut short is tolerated as far as it goes (the structural
	// pass then finds the truncation).
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("inflating data set: %w", err)
	}
	if n == int64(buf.Len()) {
		return buf.Bytes(), nil
	}
	out := make([]byte, n)
	zr = flate.NewReader(bytes.NewReader(comp))
	defer zr.Close()
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, fmt.Errorf("inflating data set: %w", err)
	}
	return out, nil
}
