package codec_test

// A test-only JPEG Lossless (T.81 Annex H, Process 14) encoder, written
// from the standard, for streams dcmcjpeg cannot make: restart intervals,
// difference category 16, several components interleaved or in separate
// scans, unusual precisions.

import (
	"encoding/binary"
)

// llParams describes a stream for encodeLossless.
type llParams struct {
	width, height int
	precision     int  // P
	pt            int  // point transform
	predictor     int  // selection value 1..7
	ri            int  // restart interval in MCUs, 0 for none
	interleaved   bool // all components in one scan, else one scan each
}

// testHuffman is the Huffman table the encoder uses for every component:
// code lengths from 2 to 16 bits so decoding takes both the lookup and
// the slow path. bits[l-1] codes of length l; symbols in code order.
var (
	testBits = [16]byte{0, 1, 2, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 2}
	testVals = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

// canonicalCodes returns each symbol's code and length (T.81 Annex C).
func canonicalCodes(bits [16]byte, vals []byte) (code [256]uint16, size [256]uint8) {
	c, k := 0, 0
	for l := 1; l <= 16; l++ {
		for i := 0; i < int(bits[l-1]); i++ {
			code[vals[k]], size[vals[k]] = uint16(c), uint8(l)
			c++
			k++
		}
		c <<= 1
	}
	return code, size
}

// bitWriter writes an entropy-coded segment with byte stuffing.
type bitWriter struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (w *bitWriter) put(v uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | v>>uint(i)&1
		w.nacc++
		if w.nacc == 8 {
			b := byte(w.acc)
			w.out = append(w.out, b)
			if b == 0xFF {
				w.out = append(w.out, 0)
			}
			w.acc, w.nacc = 0, 0
		}
	}
}

// flush pads the last byte with 1 bits (F.1.2.3).
func (w *bitWriter) flush() {
	for w.nacc != 0 {
		w.put(1, 1)
	}
}

func segment(out []byte, marker byte, p []byte) []byte {
	out = append(out, 0xFF, marker)
	out = binary.BigEndian.AppendUint16(out, uint16(len(p)+2))
	return append(out, p...)
}

// encodeLossless encodes planes (one per component, width×height samples
// of precision P each) as a JPEG Lossless stream.
func encodeLossless(planes [][]uint16, p llParams) []byte {
	nc := len(planes)
	out := []byte{0xFF, 0xD8}
	sof := []byte{byte(p.precision)}
	sof = binary.BigEndian.AppendUint16(sof, uint16(p.height))
	sof = binary.BigEndian.AppendUint16(sof, uint16(p.width))
	sof = append(sof, byte(nc))
	for c := 0; c < nc; c++ {
		sof = append(sof, byte(c+1), 0x11, 0)
	}
	out = segment(out, 0xC3, sof)
	dht := append([]byte{0x00}, testBits[:]...)
	dht = append(dht, testVals...)
	out = segment(out, 0xC4, dht)
	if p.ri > 0 {
		out = segment(out, 0xDD, binary.BigEndian.AppendUint16(nil, uint16(p.ri)))
	}
	var scans [][]int
	if p.interleaved {
		all := make([]int, nc)
		for c := range all {
			all[c] = c
		}
		scans = [][]int{all}
	} else {
		for c := 0; c < nc; c++ {
			scans = append(scans, []int{c})
		}
	}
	code, size := canonicalCodes(testBits, testVals)
	for _, comps := range scans {
		sos := []byte{byte(len(comps))}
		for _, c := range comps {
			sos = append(sos, byte(c+1), 0x00)
		}
		sos = append(sos, byte(p.predictor), 0, byte(p.pt))
		out = segment(out, 0xDA, sos)
		w := bitWriter{out: out}
		initial := 1 << uint(p.precision-p.pt-1)
		at := func(c, x, y int) int { return int(planes[c][y*p.width+x]) >> uint(p.pt) }
		mcu, rst := 0, 0
		first := true // the current row follows the first-line rules
		resetAt := 0  // column of the last scan start or restart in this row
		for y := 0; y < p.height; y++ {
			if y > 0 {
				first = false
			}
			for x := 0; x < p.width; x++ {
				if p.ri > 0 && mcu > 0 && mcu%p.ri == 0 {
					w.flush()
					w.out = append(w.out, 0xFF, byte(0xD0+rst%8))
					rst++
					first, resetAt = true, x
				} else if mcu == 0 {
					resetAt = 0
				}
				for _, c := range comps {
					var px int
					switch {
					case first && x == resetAt:
						px = initial
					case first:
						px = at(c, x-1, y)
					case x == 0:
						px = at(c, x, y-1)
					default:
						ra, rb, rc := at(c, x-1, y), at(c, x, y-1), at(c, x-1, y-1)
						switch p.predictor {
						case 1:
							px = ra
						case 2:
							px = rb
						case 3:
							px = rc
						case 4:
							px = ra + rb - rc
						case 5:
							px = ra + (rb-rc)>>1
						case 6:
							px = rb + (ra-rc)>>1
						case 7:
							px = (ra + rb) >> 1
						}
					}
					d := (at(c, x, y) - px) & 0xFFFF // modulo 2^16 (H.1.2.2)
					if d >= 0x8000 {
						d -= 0x10000
					}
					if d == -0x8000 {
						d = 0x8000
					}
					ssss := 0
					for a := d; a != 0; a /= 2 {
						ssss++
					}
					if d < 0 {
						ssss = 0
						for a := -d; a != 0; a >>= 1 {
							ssss++
						}
					}
					w.put(uint32(code[ssss]), uint(size[ssss]))
					if ssss > 0 && ssss < 16 {
						v := d
						if v < 0 {
							v--
						}
						w.put(uint32(v)&(1<<uint(ssss)-1), uint(ssss))
					}
				}
				mcu++
			}
		}
		w.flush()
		out = w.out
	}
	return append(out, 0xFF, 0xD9)
}
