package dicomio

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/charset"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding"
)

// InlineBinaryMax is the longest base64 text (768 value bytes) with which
// WriteMetadataJSON writes a binary value (OB, OW, OF, OD, OL, OV, UN)
// inline; larger values, and Pixel Data always, become a BulkDataURI. The
// threshold is on the encoded length, as in pydicom's to_json_dict.
const InlineBinaryMax = 1024

// WriteMetadataJSON writes the data set of one DICOM instance (size bytes
// from r) as one DICOM JSON object (PS3.18 Annex F.2): tags as 8 uppercase
// hexadecimal digits in ascending order, file meta information (group 0002)
// and group lengths (gggg,0000) left out. The caller writes the array
// around the objects of several instances.
//
// Values follow F.2.3: PN as {"Alphabetic", "Ideographic", "Phonetic"}
// objects; IS, DS and the binary numeric VRs as JSON numbers (an IS or DS
// that does not parse is written as its string, and SV/UV beyond ±2^53 as
// strings, so that nothing is lost); AT as "GGGGEEEE"; SQ as an array of
// objects; empty components as null; no "Value" for an empty element.
// Binary VRs up to InlineBinaryMax base64 characters are InlineBinary (little endian,
// whatever the transfer syntax); larger ones, and Pixel Data always, are
// {"BulkDataURI": bulkURI(tag)} with tag the element's 8-digit tag. With a
// nil bulkURI, Pixel Data is written with its VR only and other large
// values inline.
//
// The input is checked as ReadInstance checks it, and refusals are
// *RejectError; pixel data is not decoded.
func WriteMetadataJSON(w io.Writer, r io.Reader, size int64, bulkURI func(tag string) string) error {
	d, err := load(r, size, dicom.SkipPixelData())
	if err != nil {
		return err
	}
	j := &jsonWriter{bo: d.ts.byteOrder(), bulkURI: bulkURI, implicit: d.ts.implicit}
	for _, e := range d.elems {
		if e.tag == 0x00280103 && len(e.value) >= 2 {
			j.signed = j.bo.Uint16(e.value) == 1
		}
		if e.tag == tagCharset {
			if names := splitValues(string(e.value)); len(names) > 0 {
				// Unknown character sets fall back to UTF-8, as the library does.
				j.cs, _ = charset.ParseSpecificCharacterSet(names)
			}
		}
	}
	bw := bufio.NewWriter(w)
	j.w = bw
	j.object(d.elems, true)
	if j.err != nil {
		return fmt.Errorf("writing DICOM JSON: %w", j.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing DICOM JSON: %w", err)
	}
	return nil
}

type jsonWriter struct {
	w       *bufio.Writer
	bo      binary.ByteOrder
	cs      charset.CodingSystem
	bulkURI func(string) string
	err     error

	implicit bool // implicit VR: VRs come from the dictionary
	signed   bool // Pixel Representation is 1: "US or SS" attributes are SS
}

func (j *jsonWriter) raw(s string) {
	if j.err == nil {
		_, j.err = j.w.WriteString(s)
	}
}

// value writes v with encoding/json (strings escaped correctly).
func (j *jsonWriter) value(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		if j.err == nil {
			j.err = err
		}
		return
	}
	j.raw(string(b))
}

func (j *jsonWriter) object(elems []element, top bool) {
	sorted := slices.Clone(elems)
	slices.SortStableFunc(sorted, func(a, b element) int {
		switch {
		case a.tag < b.tag:
			return -1
		case a.tag > b.tag:
			return 1
		}
		return 0
	})
	j.raw("{")
	first := true
	for i := range sorted {
		e := &sorted[i]
		if e.tag>>16 == 0x0002 || e.tag&0xFFFF == 0 || e.tag>>16 == 0xFFFE {
			continue
		}
		if !first {
			j.raw(",")
		}
		first = false
		j.raw(`"` + e.tagString() + `":`)
		j.element(e)
	}
	j.raw("}")
}

func (j *jsonWriter) element(e *element) {
	vr := e.vr
	if e.items != nil || (vr == "UN" && e.vl == undefinedLength) {
		vr = "SQ"
	}
	if !isVR(vr) {
		vr = "UN"
	}
	if vr == "UN" && e.items == nil && !e.encaps {
		// A standard attribute written as UN gets its dictionary VR, as
		// pydicom does; its value is in the same byte order.
		if info, err := tag.Find(tag.Tag{Group: uint16(e.tag >> 16), Element: uint16(e.tag)}); err == nil &&
			len(info.VRs) > 0 && isVR(info.VRs[0]) && info.VRs[0] != "SQ" {
			vr = info.VRs[0]
		}
	}
	if (j.implicit || e.vr == "UN") && vr == "US" && j.signed && usOrSS(e.tag) {
		vr = "SS"
	}
	j.raw(`{"vr":"` + vr + `"`)
	defer j.raw("}")
	switch vr {
	case "SQ":
		if len(e.items) == 0 {
			return
		}
		j.raw(`,"Value":[`)
		for i, it := range e.items {
			if i > 0 {
				j.raw(",")
			}
			j.object(it, false)
		}
		j.raw("]")
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		j.binary(e, vr)
	case "PN":
		j.values(j.strings(e, vr), func(s string) {
			groups := strings.SplitN(s, "=", 3)
			j.raw("{")
			n := 0
			for i, name := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
				if i >= len(groups) || groups[i] == "" {
					continue
				}
				if n > 0 {
					j.raw(",")
				}
				n++
				j.raw(`"` + name + `":`)
				j.value(j.decode(groups[i], i))
			}
			j.raw("}")
		})
	case "IS", "DS":
		j.values(j.strings(e, vr), func(s string) {
			if n, ok := jsonNumber(s, vr == "IS"); ok {
				j.raw(n)
				return
			}
			j.value(s)
		})
	case "AT":
		var vals []string
		for b := e.value; len(b) >= 4; b = b[4:] {
			vals = append(vals, fmt.Sprintf("%04X%04X", j.bo.Uint16(b), j.bo.Uint16(b[2:])))
		}
		j.values(vals, func(s string) { j.value(s) })
	case "US", "SS", "UL", "SL", "SV", "UV", "FL", "FD":
		j.values(j.numbers(e.value, vr), func(s string) { j.raw(s) })
	default: // string VRs
		j.values(j.strings(e, vr), func(s string) { j.value(j.decode(s, 0)) })
	}
}

// values writes ,"Value":[...] with null for empty strings; nothing when
// vals is empty.
func (j *jsonWriter) values(vals []string, write func(string)) {
	if len(vals) == 0 {
		return
	}
	j.raw(`,"Value":[`)
	for i, v := range vals {
		if i > 0 {
			j.raw(",")
		}
		if v == "" {
			j.raw("null")
			continue
		}
		write(v)
	}
	j.raw("]")
}

// strings splits a string value into its values, trimmed of padding.
// LT, ST, UT and UR hold one value, backslashes included, and keep their
// leading spaces.
func (j *jsonWriter) strings(e *element, vr string) []string {
	s := strings.TrimRight(string(e.value), " \x00")
	switch vr {
	case "LT", "ST", "UT", "UR":
		if s == "" {
			return nil
		}
		return []string{s}
	}
	return splitValues(s)
}

// splitValues splits a multi-valued string on backslashes and trims each
// value; an all-empty value gives nil.
func splitValues(s string) []string {
	s = trimValue(s)
	if s == "" {
		return nil
	}
	vals := strings.Split(s, `\`)
	for i, v := range vals {
		vals[i] = trimValue(v)
	}
	return vals
}

// decode converts a string from the data set's character set to UTF-8;
// group selects the PN component group (0 alphabetic, 1 ideographic, 2
// phonetic).
func (j *jsonWriter) decode(s string, group int) string {
	var d *encoding.Decoder
	switch group {
	case 0:
		d = j.cs.Alphabetic
	case 1:
		d = j.cs.Ideographic
	default:
		d = j.cs.Phonetic
	}
	if d == nil {
		return s
	}
	out, err := d.String(s)
	if err != nil {
		return s
	}
	return out
}

// jsonNumber normalises an IS or DS string to a JSON number.
func jsonNumber(s string, isInt bool) (string, bool) {
	s = strings.TrimSpace(s)
	if isInt {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", false
		}
		return strconv.FormatInt(n, 10), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	b, _ := json.Marshal(f)
	return string(b), true
}

// numbers decodes a binary numeric value into JSON number texts.
func (j *jsonWriter) numbers(b []byte, vr string) []string {
	size := map[string]int{"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "SV": 8, "UV": 8, "FD": 8}[vr]
	out := make([]string, 0, len(b)/size)
	const maxSafe = 1 << 53
	for ; len(b) >= size; b = b[size:] {
		var s string
		switch vr {
		case "US":
			s = strconv.FormatUint(uint64(j.bo.Uint16(b)), 10)
		case "SS":
			s = strconv.FormatInt(int64(int16(j.bo.Uint16(b))), 10)
		case "UL":
			s = strconv.FormatUint(uint64(j.bo.Uint32(b)), 10)
		case "SL":
			s = strconv.FormatInt(int64(int32(j.bo.Uint32(b))), 10)
		case "SV":
			v := int64(j.bo.Uint64(b))
			s = strconv.FormatInt(v, 10)
			if v > maxSafe || v < -maxSafe {
				s = strconv.Quote(s)
			}
		case "UV":
			v := j.bo.Uint64(b)
			s = strconv.FormatUint(v, 10)
			if v > maxSafe {
				s = strconv.Quote(s)
			}
		case "FL":
			f := math.Float32frombits(j.bo.Uint32(b))
			s = floatJSON(float64(f), 32)
		case "FD":
			s = floatJSON(math.Float64frombits(j.bo.Uint64(b)), 64)
		}
		out = append(out, s)
	}
	return out
}

// floatJSON formats f as a JSON number; NaN and infinities, which JSON
// cannot hold, as null.
func floatJSON(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// binary writes an InlineBinary or BulkDataURI.
func (j *jsonWriter) binary(e *element, vr string) {
	pixel := e.tag == tagPixelData || e.tag == 0x7FE00008 || e.tag == 0x7FE00009
	v := e.value
	if e.encaps && !pixel {
		for _, f := range e.fragments {
			v = append(v[:len(v):len(v)], f...)
		}
	}
	if pixel || (base64.StdEncoding.EncodedLen(len(v)) > InlineBinaryMax && j.bulkURI != nil) {
		if j.bulkURI != nil {
			j.raw(`,"BulkDataURI":`)
			j.value(j.bulkURI(e.tagString()))
		}
		return
	}
	if len(v) == 0 {
		return
	}
	j.raw(`,"InlineBinary":`)
	j.value(base64.StdEncoding.EncodeToString(littleEndian(v, vr, j.bo)))
}

// littleEndian returns v with its words in little-endian order: binary
// values are written in the Explicit VR Little Endian encoding.
func littleEndian(v []byte, vr string, bo binary.ByteOrder) []byte {
	size := map[string]int{"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}[vr]
	if bo != binary.BigEndian || size == 0 {
		return v
	}
	out := slices.Clone(v)
	for i := 0; i+size <= len(out); i += size {
		slices.Reverse(out[i : i+size])
	}
	return out
}

// usOrSS reports attributes whose VR is "US or SS" in PS3.6, which implicit
// VR data sets resolve by Pixel Representation (the library's dictionary
// always says US).
func usOrSS(t uint32) bool {
	tg := tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}
	info, err := tag.Find(tg)
	return err == nil && slices.Contains(info.VRs, "SS") && slices.Contains(info.VRs, "US")
}
