package dicomio

import (
	"encoding/binary"
	"fmt"
)

// transferSyntax describes how a transfer syntax encodes the data set and
// its pixel data.
type transferSyntax struct {
	name         string
	bigEndian    bool
	implicit     bool
	deflated     bool // the data set after the file meta is a raw deflate stream
	encapsulated bool // pixel data is encapsulated (fragments), not native
}

func (ts transferSyntax) byteOrder() binary.ByteOrder {
	if ts.bigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Transfer syntax UIDs radtriage reads directly.
const (
	uidImplicitVRLittleEndian = "1.2.840.10008.1.2"
	uidExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	uidDeflatedExplicitVRLE   = "1.2.840.10008.1.2.1.99"
	uidExplicitVRBigEndian    = "1.2.840.10008.1.2.2"
)

// Media Storage Directory Storage: a DICOMDIR, not a composite instance.
const uidMediaStorageDirectory = "1.2.840.10008.1.3.10"

// transferSyntaxes lists the standard transfer syntaxes (PS3.5 §10 and
// Annex A, PS3.6 Table A-1) that may appear in a stored instance. A syntax
// listed here is accepted for storage even when radtriage cannot decode its
// pixel data; any other UID is refused with ReasonTransferSyntaxNotSupport.
// The RFC 2557 MIME, XML and SMPTE ST 2110 syntaxes are not encodings of a
// stored Part 10 file and are absent on purpose.
var transferSyntaxes = map[string]transferSyntax{
	uidImplicitVRLittleEndian: {name: "Implicit VR Little Endian", implicit: true},
	uidExplicitVRLittleEndian: {name: "Explicit VR Little Endian"},
	"1.2.840.10008.1.2.1.98":  {name: "Encapsulated Uncompressed Explicit VR Little Endian", encapsulated: true},
	uidDeflatedExplicitVRLE:   {name: "Deflated Explicit VR Little Endian", deflated: true},
	uidExplicitVRBigEndian:    {name: "Explicit VR Big Endian (retired)", bigEndian: true},

	"1.2.840.10008.1.2.4.50": {name: "JPEG Baseline (Process 1)", encapsulated: true},
	"1.2.840.10008.1.2.4.51": {name: "JPEG Extended (Process 2 & 4)", encapsulated: true},
	"1.2.840.10008.1.2.4.52": {name: "JPEG Extended (Process 3 & 5) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.53": {name: "JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.54": {name: "JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.55": {name: "JPEG Full Progression, Non-Hierarchical (Process 10 & 12) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.56": {name: "JPEG Full Progression, Non-Hierarchical (Process 11 & 13) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.57": {name: "JPEG Lossless, Non-Hierarchical (Process 14)", encapsulated: true},
	"1.2.840.10008.1.2.4.58": {name: "JPEG Lossless, Non-Hierarchical (Process 15) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.59": {name: "JPEG Extended, Hierarchical (Process 16 & 18) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.60": {name: "JPEG Extended, Hierarchical (Process 17 & 19) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.61": {name: "JPEG Spectral Selection, Hierarchical (Process 20 & 22) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.62": {name: "JPEG Spectral Selection, Hierarchical (Process 21 & 23) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.63": {name: "JPEG Full Progression, Hierarchical (Process 24 & 26) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.64": {name: "JPEG Full Progression, Hierarchical (Process 25 & 27) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.65": {name: "JPEG Lossless, Hierarchical (Process 28) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.66": {name: "JPEG Lossless, Hierarchical (Process 29) (retired)", encapsulated: true},
	"1.2.840.10008.1.2.4.70": {name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 SV1)", encapsulated: true},
	"1.2.840.10008.1.2.4.80": {name: "JPEG-LS Lossless", encapsulated: true},
	"1.2.840.10008.1.2.4.81": {name: "JPEG-LS Lossy (Near-Lossless)", encapsulated: true},
	"1.2.840.10008.1.2.4.90": {name: "JPEG 2000 (Lossless Only)", encapsulated: true},
	"1.2.840.10008.1.2.4.91": {name: "JPEG 2000", encapsulated: true},
	"1.2.840.10008.1.2.4.92": {name: "JPEG 2000 Part 2 Multi-component (Lossless Only)", encapsulated: true},
	"1.2.840.10008.1.2.4.93": {name: "JPEG 2000 Part 2 Multi-component", encapsulated: true},
	// JPIP referenced syntaxes carry a Pixel Data Provider URL, no pixels.
	"1.2.840.10008.1.2.4.94":    {name: "JPIP Referenced"},
	"1.2.840.10008.1.2.4.95":    {name: "JPIP Referenced Deflate", deflated: true},
	"1.2.840.10008.1.2.4.100":   {name: "MPEG2 Main Profile / Main Level", encapsulated: true},
	"1.2.840.10008.1.2.4.100.1": {name: "Fragmentable MPEG2 Main Profile / Main Level", encapsulated: true},
	"1.2.840.10008.1.2.4.101":   {name: "MPEG2 Main Profile / High Level", encapsulated: true},
	"1.2.840.10008.1.2.4.101.1": {name: "Fragmentable MPEG2 Main Profile / High Level", encapsulated: true},
	"1.2.840.10008.1.2.4.102":   {name: "MPEG-4 AVC/H.264 High Profile / Level 4.1", encapsulated: true},
	"1.2.840.10008.1.2.4.102.1": {name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1", encapsulated: true},
	"1.2.840.10008.1.2.4.103":   {name: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", encapsulated: true},
	"1.2.840.10008.1.2.4.103.1": {name: "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", encapsulated: true},
	"1.2.840.10008.1.2.4.104":   {name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", encapsulated: true},
	"1.2.840.10008.1.2.4.104.1": {name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", encapsulated: true},
	"1.2.840.10008.1.2.4.105":   {name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", encapsulated: true},
	"1.2.840.10008.1.2.4.105.1": {name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", encapsulated: true},
	"1.2.840.10008.1.2.4.106":   {name: "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", encapsulated: true},
	"1.2.840.10008.1.2.4.106.1": {name: "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", encapsulated: true},
	"1.2.840.10008.1.2.4.107":   {name: "HEVC/H.265 Main Profile / Level 5.1", encapsulated: true},
	"1.2.840.10008.1.2.4.108":   {name: "HEVC/H.265 Main 10 Profile / Level 5.1", encapsulated: true},
	"1.2.840.10008.1.2.4.110":   {name: "JPEG XL Lossless", encapsulated: true},
	"1.2.840.10008.1.2.4.111":   {name: "JPEG XL JPEG Recompression", encapsulated: true},
	"1.2.840.10008.1.2.4.112":   {name: "JPEG XL", encapsulated: true},
	"1.2.840.10008.1.2.4.201":   {name: "High-Throughput JPEG 2000 (Lossless Only)", encapsulated: true},
	"1.2.840.10008.1.2.4.202":   {name: "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)", encapsulated: true},
	"1.2.840.10008.1.2.4.203":   {name: "High-Throughput JPEG 2000", encapsulated: true},
	"1.2.840.10008.1.2.5":       {name: "RLE Lossless", encapsulated: true},
}

// lookupTransferSyntax returns the description of a transfer syntax UID.
func lookupTransferSyntax(uid string) (transferSyntax, bool) {
	ts, ok := transferSyntaxes[uid]
	return ts, ok
}

// ValidateUID reports whether uid is a valid DICOM UID (PS3.5 §9.1): 1 to
// 64 characters, digits and '.' only, components separated by single dots,
// and no component with a leading zero (a component that is just "0" is
// allowed). The error says what is wrong. Callers validate UIDs before
// they touch a path or a key.
func ValidateUID(uid string) error {
	switch {
	case uid == "":
		return fmt.Errorf("UID is empty")
	case len(uid) > 64:
		return fmt.Errorf("UID is %d characters long, more than 64", len(uid))
	case uid[0] == '.':
		return fmt.Errorf("UID %q starts with a dot", uid)
	case uid[len(uid)-1] == '.':
		return fmt.Errorf("UID %q ends with a dot", uid)
	}
	start := 0 // first byte of the current component
	for i := 0; i < len(uid); i++ {
		c := uid[i]
		switch {
		case c == '.':
			if i == start {
				return fmt.Errorf("UID %q has an empty component at offset %d", uid, i)
			}
			start = i + 1
		case c >= '0' && c <= '9':
			if c == '0' && i == start && i+1 < len(uid) && uid[i+1] != '.' {
				return fmt.Errorf("UID %q has a component with a leading zero at offset %d", uid, i)
			}
		default:
			return fmt.Errorf("UID %q has the character %q at offset %d; only digits and '.' are allowed", uid, rune(c), i)
		}
	}
	return nil
}
