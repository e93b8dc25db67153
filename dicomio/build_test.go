package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Helpers that build small DICOM files for tests and fuzz seeds.

// ele encodes one explicit VR little endian element; string values are
// padded to even length.
func ele(tag uint32, vr string, val []byte) []byte {
	if len(val)%2 == 1 {
		pad := byte(' ')
		if vr == "UI" || vr == "OB" || vr == "UN" {
			pad = 0
		}
		val = append(val[:len(val):len(val)], pad)
	}
	b := binary.LittleEndian.AppendUint16(nil, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	b = append(b, vr...)
	// PS3.5 §7.1.2's list, not longVL, so the builder checks the scanner.
	if strings.Contains("OB OD OF OL OV OW SQ SV UC UN UR UT UV", vr) {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(val)))
	}
	return append(b, val...)
}

// rawHeader encodes an element header with an arbitrary length.
func rawHeader(tag uint32, vr string, vl uint32) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	b = append(b, vr...)
	b = append(b, 0, 0)
	return binary.LittleEndian.AppendUint32(b, vl)
}

func us(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

// part10 wraps a data set in a preamble and file meta with the given
// transfer syntax.
func part10(ts string, dataset ...[]byte) []byte {
	meta := bytes.Join([][]byte{
		ele(0x00020001, "OB", []byte{0, 1}),
		ele(0x00020002, "UI", []byte("1.2.840.10008.5.1.4.1.1.7")),
		ele(0x00020003, "UI", []byte("1.2.3.4.5")),
		ele(0x00020010, "UI", []byte(ts)),
	}, nil)
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	b.Write(ele(0x00020000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(meta)))))
	b.Write(meta)
	for _, e := range dataset {
		b.Write(e)
	}
	return b.Bytes()
}

// identity is the four identifying UIDs of a secondary capture instance.
func identity() []byte {
	return bytes.Join([][]byte{
		ele(0x00080016, "UI", []byte("1.2.840.10008.5.1.4.1.1.7")),
		ele(0x00080018, "UI", []byte("1.2.3.4.5")),
		ele(0x0020000D, "UI", []byte("1.2.3.4")),
		ele(0x0020000E, "UI", []byte("1.2.3.4.1")),
	}, nil)
}

// image is a rows×cols, 8-bit, frames-frame image module.
func image(rows, cols, frames int) []byte {
	b := bytes.Join([][]byte{
		ele(0x00280002, "US", us(1)),
		ele(0x00280004, "CS", []byte("MONOCHROME2")),
	}, nil)
	if frames > 0 {
		b = append(b, ele(0x00280008, "IS", []byte(strconv.Itoa(frames)))...)
	}
	return append(b, bytes.Join([][]byte{
		ele(0x00280010, "US", us(uint16(rows))),
		ele(0x00280011, "US", us(uint16(cols))),
		ele(0x00280100, "US", us(8)),
		ele(0x00280101, "US", us(8)),
		ele(0x00280102, "US", us(7)),
		ele(0x00280103, "US", us(0)),
	}, nil)...)
}

// deflated compresses a data set with raw deflate.
func deflated(ds []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(ds)
	w.Close()
	return b.Bytes()
}

// encapsulatedPixels is undefined-length Pixel Data with an empty offset
// table and the given fragments.
func encapsulatedPixels(frags ...[]byte) []byte { return encapsulatedTable(nil, frags...) }

// encapsulatedTable is undefined-length Pixel Data with the given Basic
// Offset Table value and fragments.
func encapsulatedTable(bot []byte, frags ...[]byte) []byte {
	b := rawHeader(0x7FE00010, "OB", undefinedLength)
	item := func(v []byte) {
		b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
		b = binary.LittleEndian.AppendUint16(b, 0xE000)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	item(bot)
	for _, f := range frags {
		item(f)
	}
	b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, 0xE0DD)
	return binary.LittleEndian.AppendUint32(b, 0)
}

func dicomSkipProcessing() dicom.ParseOption { return dicom.SkipProcessingPixelDataValue() }

// libPixelBytes returns the library's unprocessed Pixel Data value.
func libPixelBytes(d *instanceData) []byte {
	e := find(d.lib.Elements, tag.PixelData)
	if e == nil {
		return nil
	}
	info := dicom.MustGetPixelDataInfo(e.Value)
	return info.UnprocessedValueData
}

// zeroBomb hand-builds a raw deflate stream that inflates to at least n
// zero bytes: one fixed-Huffman block holding a literal 0 and then
// back-references of length 258 at distance 1 (13 bits per 258 bytes),
// which is far quicker to make than compressing n zeros.
func zeroBomb(n int) []byte {
	var out []byte
	var acc uint64
	var nacc uint
	put := func(v uint64, bits uint) { // LSB first
		acc |= v << nacc
		nacc += bits
		for nacc >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			nacc -= 8
		}
	}
	code := func(c uint64, bits uint) { // Huffman codes go MSB first
		var r uint64
		for i := range bits {
			r |= (c >> i & 1) << (bits - 1 - i)
		}
		put(r, bits)
	}
	put(1, 1)     // BFINAL
	put(1, 2)     // BTYPE 01: fixed Huffman
	code(0x30, 8) // literal 0
	for m := 1; m < n; m += 258 {
		code(0xC5, 8) // length 258 (symbol 285)
		code(0, 5)    // distance 1
	}
	code(0, 7) // end of block
	put(0, 7)  // flush
	return out
}
