package codec

// Sequential DCT-based JPEG decoder with Huffman coding (ITU-T T.81
// Annex F, processes 1, 2 and 4): DICOM's JPEG Baseline and JPEG Extended
// transfer syntaxes (PS3.5 §A.4.1).

import (
	"encoding/binary"
	"fmt"
	"sync"
)

func init() {
	d := Decoder{Name: "JPEG DCT sequential (pure Go)", Decode: DecodeJPEGDCT, Lossy: true}
	Register("1.2.840.10008.1.2.4.50", d) // JPEG Baseline (Process 1)
	Register("1.2.840.10008.1.2.4.51", d) // JPEG Extended (Process 2 & 4)
}

// DecodeJPEGDCT decodes one frame of the JPEG Baseline or JPEG Extended
// transfer syntax into dst per the package contract. src is a JPEG
// interchange stream (SOI … EOI) of a sequential DCT frame with Huffman
// coding: SOF0 (baseline) or SOF1 (extended), 8- or 12-bit precision, 1
// or 3 components (4 are refused by Frame.Validate) with sampling factors
// 1..4, one or several scans, restart intervals, and 8- or 16-bit
// quantization tables.
//
// 8-bit samples go to 8-bit (or 16-bit) containers, 12-bit samples to
// 16-bit containers. Subsampled components are upsampled to full
// resolution as the IJG library (and so dcmtk's dcmdjpeg) does by
// default: a triangle filter for 2:1 horizontal (4:2:2) and 2:1 in both
// directions (4:2:0), replication for other ratios. Components are
// written as coded, without colour conversion.
//
// Progressive, lossless, hierarchical and arithmetic-coded streams give
// an error wrapping ErrUnsupported; a stream that breaks T.81, ends early
// or does not match f gives one wrapping ErrCorrupt.
func DecodeJPEGDCT(dst, src []byte, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(dst) != f.Size() {
		return fmt.Errorf("JPEG DCT: destination holds %d bytes, the %d×%d frame needs %d", len(dst), f.Columns, f.Rows, f.Size())
	}
	d := dctPool.Get().(*dctDecoder)
	defer d.release()
	if err := d.decode(src, f); err != nil {
		return err
	}
	d.output(dst, f)
	return nil
}

// dctPool recycles decoders and their sample planes between frames, which
// spares the garbage collector a frame-sized allocation per decode.
var dctPool = sync.Pool{New: func() any { return new(dctDecoder) }}

// dctPoolMax is the largest plane (in samples) kept for reuse.
const dctPoolMax = 1 << 24

// release clears d, keeping its planes when not too large, and returns it
// to the pool.
func (d *dctDecoder) release() {
	var keep [4][]uint16
	for i := range d.comps {
		if p := d.comps[i].plane; cap(p) <= dctPoolMax {
			keep[i] = p[:0]
		}
	}
	*d = dctDecoder{spare: keep}
	dctPool.Put(d)
}

// dctNatural maps a zig-zag index (T.81 Figure A.6) to the row-major
// index of the coefficient in its 8×8 block.
var dctNatural = func() (z [64]uint8) {
	// Walk the anti-diagonals x+y = s, alternating direction: up-right on
	// even s, down-left on odd s.
	k := 0
	for s := 0; s < 15; s++ {
		for i := 0; i <= s; i++ {
			x, y := i, s-i
			if s%2 == 1 {
				x, y = s-i, i
			}
			if x < 8 && y < 8 {
				z[k] = uint8(y*8 + x)
				k++
			}
		}
	}
	return z
}()

// dctComp is one frame component and its decoded samples.
type dctComp struct {
	jpegComponent
	cw, ch  int      // component dimensions (A.1.1): ceil(X·H/Hmax) × ceil(Y·V/Vmax)
	stride  int      // samples per plane row: whole MCUs
	plane   []uint16 // decoded samples, stride × (MCU rows × V × 8)
	pred    int32    // DC predictor
	scanned bool     // coded in a scan
}

// dctDecoder holds the state of one frame's decoding.
type dctDecoder struct {
	frame        jpegFrameHeader
	comps        []dctComp
	hmax, vmax   int
	mcusX, mcusY int
	qt           [4][64]int32 // quantization tables, zig-zag order
	qtSet        [4]bool
	huff         jpegHuffTables
	ri           int // restart interval in MCUs
	pass1        uint
	center       int32
	maxval       int32
	blk, ws      [64]int32
	acLUT        [4]dctACTable // by AC table destination, for the current scan
	spare        [4][]uint16   // planes of an earlier frame, for reuse
}

// decode parses src and decodes every scan of its frame into the planes.
func (d *dctDecoder) decode(src []byte, f Frame) error {
	r := jpegReader{data: src}
	if m, err := r.marker(); err != nil || m != jpegSOI {
		return fmt.Errorf("%w: JPEG DCT: the frame does not start with an SOI marker", ErrCorrupt)
	}
	for {
		m, err := r.marker()
		if err != nil {
			if r.pos >= len(src) && d.complete() {
				return nil // every component decoded; only the EOI is missing
			}
			return err
		}
		switch {
		case m == jpegEOI:
			if d.comps == nil {
				return fmt.Errorf("%w: JPEG DCT: EOI before any frame header", ErrCorrupt)
			}
			if !d.complete() {
				return fmt.Errorf("%w: JPEG DCT: the stream ends before every component has been coded in a scan", ErrCorrupt)
			}
			return nil
		case m == jpegSOI:
			return fmt.Errorf("%w: JPEG DCT: a second SOI marker inside the stream", ErrCorrupt)
		case m >= jpegRST0 && m <= jpegRST7:
			return fmt.Errorf("%w: JPEG DCT: restart marker RST%d outside a scan", ErrCorrupt, m-jpegRST0)
		case m == jpegTEM:
			continue
		}
		p, err := r.segment()
		if err != nil {
			return err
		}
		switch {
		case m == jpegSOF0 || m == jpegSOF0+1:
			if err := d.startFrame(m, p, f); err != nil {
				return err
			}
		case m >= jpegSOF0+2 && m <= 0xCF && m != jpegDHT && m != 0xC8 && m != jpegDAC:
			return fmt.Errorf("%w: JPEG DCT: %s frames (SOF%d) are not supported, only sequential DCT with Huffman coding", ErrUnsupported, dctProcess(m), m-jpegSOF0)
		case m == jpegDAC:
			return fmt.Errorf("%w: JPEG DCT: arithmetic coding conditioning (DAC) is not supported", ErrUnsupported)
		case m == jpegDHP || m == jpegEXP:
			return fmt.Errorf("%w: JPEG DCT: hierarchical JPEG (DHP/EXP markers) is not supported", ErrUnsupported)
		case m == jpegDHT:
			if err := d.huff.parseDHT(p); err != nil {
				return err
			}
		case m == jpegDQT:
			if err := d.parseDQT(p); err != nil {
				return err
			}
		case m == jpegDRI:
			if d.ri, err = parseDRI(p); err != nil {
				return err
			}
		case m == jpegSOS:
			if d.comps == nil {
				return fmt.Errorf("%w: JPEG DCT: scan (SOS) before the frame header (SOF)", ErrCorrupt)
			}
			s, err := parseSOS(p, &d.frame)
			if err != nil {
				return err
			}
			end, err := d.decodeScan(src, r.pos, &s)
			if err != nil {
				return err
			}
			r.pos = end
		}
		// APPn, COM, DNL and reserved segments are skipped.
	}
}

// dctProcess names the coding process of an unsupported SOF marker.
func dctProcess(m byte) string {
	switch m {
	case 0xC2:
		return "progressive DCT"
	case 0xC3:
		return "lossless (use the JPEG Lossless transfer syntax decoder)"
	case 0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF:
		return "hierarchical (differential)"
	default:
		return "arithmetic-coded"
	}
}

// complete reports whether a frame has been read and each of its
// components coded in a scan.
func (d *dctDecoder) complete() bool {
	if d.comps == nil {
		return false
	}
	for i := range d.comps {
		if !d.comps[i].scanned {
			return false
		}
	}
	return true
}

// startFrame checks the frame header against f and allocates the planes.
func (d *dctDecoder) startFrame(m byte, p []byte, f Frame) error {
	if d.comps != nil {
		return fmt.Errorf("%w: JPEG DCT: a second frame header (SOF) in one frame's stream", ErrCorrupt)
	}
	fh, err := parseSOF(m, p)
	if err != nil {
		return err
	}
	if fh.precision != 8 && fh.precision != 12 {
		return fmt.Errorf("%w: JPEG DCT: sample precision %d bits (8 or 12 allowed)", ErrCorrupt, fh.precision)
	}
	if fh.height == 0 {
		return fmt.Errorf("%w: JPEG DCT: the number of lines is defined by a DNL marker", ErrUnsupported)
	}
	if fh.width != f.Columns || fh.height != f.Rows || len(fh.components) != f.Samples {
		return fmt.Errorf("%w: JPEG DCT: the stream is %d×%d with %d components, the frame is %d×%d with %d samples per pixel",
			ErrCorrupt, fh.width, fh.height, len(fh.components), f.Columns, f.Rows, f.Samples)
	}
	if fh.precision > f.BitsAllocated {
		return fmt.Errorf("%w: JPEG DCT: %d-bit samples do not fit the frame's %d-bit containers", ErrCorrupt, fh.precision, f.BitsAllocated)
	}
	if f.BitsAllocated == 32 {
		return fmt.Errorf("%w: JPEG DCT: 32-bit containers for %d-bit samples", ErrUnsupported, fh.precision)
	}
	d.frame = fh
	for _, c := range fh.components {
		d.hmax = max(d.hmax, c.h)
		d.vmax = max(d.vmax, c.v)
	}
	for _, c := range fh.components {
		if d.hmax%c.h != 0 || d.vmax%c.v != 0 {
			return fmt.Errorf("%w: JPEG DCT: component %d has sampling factors %d×%d, not a divisor of the largest %d×%d",
				ErrUnsupported, c.id, c.h, c.v, d.hmax, d.vmax)
		}
	}
	d.mcusX = (fh.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (fh.height + 8*d.vmax - 1) / (8 * d.vmax)
	d.comps = make([]dctComp, len(fh.components))
	for i, c := range fh.components {
		dc := &d.comps[i]
		dc.jpegComponent = c
		dc.cw = (fh.width*c.h + d.hmax - 1) / d.hmax
		dc.ch = (fh.height*c.v + d.vmax - 1) / d.vmax
		dc.stride = d.mcusX * c.h * 8
		// Every sample of the plane that output reads is written by a
		// scan, so a reused plane needs no clearing.
		if n := dc.stride * d.mcusY * c.v * 8; cap(d.spare[i]) >= n {
			dc.plane = d.spare[i][:n]
		} else {
			dc.plane = make([]uint16, n)
		}
	}
	d.pass1 = 2
	if fh.precision == 12 {
		d.pass1 = 1
	}
	d.center = 1 << (fh.precision - 1)
	d.maxval = 1<<fh.precision - 1
	return nil
}

// parseDQT parses a DQT segment (B.2.4.1), which may define several
// tables with 8-bit (Pq 0) or 16-bit (Pq 1) entries.
func (d *dctDecoder) parseDQT(p []byte) error {
	for len(p) > 0 {
		pq, tq := p[0]>>4, p[0]&15
		if pq > 1 || tq > 3 {
			return fmt.Errorf("%w: JPEG DCT: quantization table precision %d destination %d (precision 0..1, destination 0..3 allowed)", ErrCorrupt, pq, tq)
		}
		n := 1 + 64*int(pq+1)
		if len(p) < n {
			return fmt.Errorf("%w: JPEG DCT: quantization table segment (DQT) ends inside table %d", ErrCorrupt, tq)
		}
		q := &d.qt[tq]
		for k := range q {
			if pq == 0 {
				q[k] = int32(p[1+k])
			} else {
				q[k] = int32(p[1+2*k])<<8 | int32(p[2+2*k])
			}
		}
		d.qtSet[tq] = true
		p = p[n:]
	}
	return nil
}

// dctScanComp is a component of the scan being decoded, with its tables.
type dctScanComp struct {
	c      *dctComp
	dc, ac *jpegHuffman
	acLUT  *dctACTable
	q      *[64]int32
}

// dctACTable resolves, from the next jpegFastBits bits, an AC code and its
// additional bits together when both fit: value<<16 | run<<8 | bits
// consumed; 0 when they do not (or for EOB and ZRL).
type dctACTable [1 << jpegFastBits]int32

// build fills t from Huffman table h.
func (t *dctACTable) build(h *jpegHuffman) {
	for p := range t {
		t[p] = 0
		e := h.fast[p]
		if e == 0 {
			continue
		}
		l, rs := uint(e>>8), uint(e&0xFF)
		r, s := rs>>4, rs&15
		if s == 0 || l+s > jpegFastBits {
			continue
		}
		v := dctExtend(uint64(p>>(jpegFastBits-l-s))&(1<<s-1), s)
		t[p] = v<<16 | int32(r)<<8 | int32(l+s)
	}
}

// decodeScan decodes the entropy-coded segment (with its restart
// intervals) that starts at src[pos] for scan s, and returns the offset
// of the marker that ends it.
func (d *dctDecoder) decodeScan(src []byte, pos int, s *jpegScanHeader) (int, error) {
	var sc [4]dctScanComp
	blocks := 0
	for i, c := range s.components {
		comp := &d.comps[c.index]
		if !d.qtSet[comp.tq] {
			return 0, fmt.Errorf("%w: JPEG DCT: component %d uses quantization table %d, which no DQT segment defines", ErrCorrupt, comp.id, comp.tq)
		}
		if d.huff.dc[c.td] == nil || d.huff.ac[c.ta] == nil {
			return 0, fmt.Errorf("%w: JPEG DCT: component %d uses Huffman tables DC %d / AC %d, which no DHT segment defines", ErrCorrupt, comp.id, c.td, c.ta)
		}
		sc[i] = dctScanComp{c: comp, dc: d.huff.dc[c.td], ac: d.huff.ac[c.ta], acLUT: &d.acLUT[c.ta], q: &d.qt[comp.tq]}
		sc[i].acLUT.build(sc[i].ac)
		comp.scanned = true
		comp.pred = 0
		blocks += comp.h * comp.v
	}
	n := len(s.components)
	if n > 1 && blocks > 10 {
		return 0, fmt.Errorf("%w: JPEG DCT: an interleaved scan with %d blocks per MCU (at most 10 allowed)", ErrCorrupt, blocks)
	}
	// Ss, Se, Ah and Al mean nothing to a sequential scan and are ignored,
	// as the IJG library ignores them (the WG04 JPLY images have Se = 0).
	b := newJPEGBits(src, pos)
	rst := 0
	// An MCU is one block of a non-interleaved scan (A.2.2), or H×V
	// blocks of each component of an interleaved one (A.2.3).
	mcusX, mcusY := d.mcusX, d.mcusY
	if n == 1 {
		c := sc[0].c
		mcusX, mcusY = (c.cw+7)/8, (c.ch+7)/8
	}
	mcu := 0
	for my := 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx++ {
			if d.ri > 0 && mcu > 0 && mcu%d.ri == 0 {
				if err := b.restart(rst); err != nil {
					return 0, err
				}
				rst++
				for i := 0; i < n; i++ {
					sc[i].c.pred = 0
				}
			}
			mcu++
			if n == 1 {
				c := sc[0].c
				if err := d.decodeBlock(&b, &sc[0], c.plane[my*8*c.stride+mx*8:]); err != nil {
					return 0, err
				}
			} else {
				for i := 0; i < n; i++ {
					c := sc[i].c
					for v := 0; v < c.v; v++ {
						row := (my*c.v + v) * 8 * c.stride
						for h := 0; h < c.h; h++ {
							if err := d.decodeBlock(&b, &sc[i], c.plane[row+(mx*c.h+h)*8:]); err != nil {
								return 0, err
							}
						}
					}
				}
			}
			if b.overrun() {
				return 0, fmt.Errorf("%w: JPEG DCT: entropy-coded data ends before MCU %d of %d", ErrCorrupt, mcu, mcusX*mcusY)
			}
		}
	}
	return b.end(), nil
}

// decodeBlock decodes one block's coefficients (F.2.2), dequantizes them
// and writes its inverse DCT to out (stride c.stride). The bit buffer is
// worked on in locals, refilled (at least 57 bits) whenever fewer than 32
// bits remain: enough for a code of up to 16 bits and its up to 16
// additional bits.
func (d *dctDecoder) decodeBlock(b *jpegBits, sc *dctScanComp, out []uint16) error {
	c := sc.c
	if b.n < 32 {
		b.fill()
	}
	acc, n := b.acc, b.n
	var t uint
	if e := sc.dc.fast[acc>>(64-jpegFastBits)]; e != 0 {
		t = uint(e & 0xFF)
		acc <<= e >> 8
		n -= uint(e >> 8)
	} else if sym, l := dctHuffSlow(sc.dc, acc); l > 0 {
		t = sym
		acc <<= l
		n -= l
	} else {
		return fmt.Errorf("%w: JPEG DCT: invalid DC Huffman code in component %d", ErrCorrupt, c.id)
	}
	if t > 16 {
		return fmt.Errorf("%w: JPEG DCT: DC difference category %d in component %d (at most 16)", ErrCorrupt, t, c.id)
	}
	if t > 0 {
		c.pred += dctExtend(acc>>(64-t), t)
		acc <<= t
		n -= t
	}
	blk, q, ac, lut := &d.blk, sc.q, sc.ac, sc.acLUT
	// The coefficient is kept in 16 bits, as the IJG library keeps it.
	blk[0] = int32(int16(c.pred)) * q[0]
	acs := false
	for k := 1; k < 64; k++ {
		if n < 32 {
			b.acc, b.n = acc, n
			b.fill()
			acc, n = b.acc, b.n
		}
		if e := lut[acc>>(64-jpegFastBits)]; e != 0 {
			k += int(e >> 8 & 0xFF)
			acc <<= uint(e & 0xFF)
			n -= uint(e & 0xFF)
			if k > 63 {
				b.acc, b.n = acc, n
				return fmt.Errorf("%w: JPEG DCT: AC coefficients run past the end of a block in component %d", ErrCorrupt, c.id)
			}
			blk[dctNatural[k&63]] = e >> 16 * q[k&63]
			acs = true
			continue
		}
		var rs uint
		if e := ac.fast[acc>>(64-jpegFastBits)]; e != 0 {
			rs = uint(e & 0xFF)
			acc <<= e >> 8
			n -= uint(e >> 8)
		} else if sym, l := dctHuffSlow(ac, acc); l > 0 {
			rs = sym
			acc <<= l
			n -= l
		} else {
			b.acc, b.n = acc, n
			return fmt.Errorf("%w: JPEG DCT: invalid AC Huffman code in component %d", ErrCorrupt, c.id)
		}
		r, s := int(rs>>4), uint(rs&15)
		if s == 0 {
			if r != 15 {
				break // EOB
			}
			k += 15 // ZRL: sixteen zeros
			continue
		}
		k += r
		if k > 63 {
			b.acc, b.n = acc, n
			return fmt.Errorf("%w: JPEG DCT: AC coefficients run past the end of a block in component %d", ErrCorrupt, c.id)
		}
		blk[dctNatural[k&63]] = dctExtend(acc>>(64-s), s) * q[k&63]
		acc <<= s
		n -= s
		acs = true
	}
	b.acc, b.n = acc, n
	if acs {
		dctIDCT(out, c.stride, blk, &d.ws, d.pass1, d.center, d.maxval)
		*blk = [64]int32{}
	} else {
		dctIDCTDC(out, c.stride, blk[0], d.pass1, d.center, d.maxval)
	}
	return nil
}

// dctHuffSlow decodes a symbol whose code is longer than jpegFastBits
// from the left-aligned bit buffer acc (at least 16 bits) with table h
// (F.2.2.3) and returns it with its code length, 0 for a code absent from
// the table.
func dctHuffSlow(h *jpegHuffman, acc uint64) (sym, length uint) {
	code := int32(acc >> 48)
	for l := jpegFastBits + 1; l <= 16; l++ {
		if c := code >> uint(16-l); c <= h.maxcode[l] {
			return uint(h.vals[h.valptr[l]+c-h.mincode[l]]), uint(l)
		}
	}
	return 0, 0
}

// dctExtend turns the s (1..16) additional bits v into the signed value
// they code (F.2.2.1, EXTEND).
func dctExtend(v uint64, s uint) int32 {
	x := int32(v)
	if x < 1<<(s-1) {
		x += -1<<s + 1
	}
	return x
}

// output upsamples the planes to full resolution and writes them
// interleaved to dst.
func (d *dctDecoder) output(dst []byte, f Frame) {
	w, h, n := d.frame.width, d.frame.height, len(d.comps)
	rows := make([][]uint16, n)
	bufs := make([][]uint16, n)
	var sums []int32
	for i := range d.comps {
		c := &d.comps[i]
		if c.h != d.hmax || c.v != d.vmax {
			bufs[i] = make([]uint16, c.stride*(d.hmax/c.h))
			if len(sums) < c.cw {
				sums = make([]int32, c.cw)
			}
		}
	}
	wide := f.BitsAllocated == 16
	for y := 0; y < h; y++ {
		for i := range d.comps {
			c := &d.comps[i]
			hx, vy := d.hmax/c.h, d.vmax/c.v
			switch {
			case hx == 1 && vy == 1:
				rows[i] = c.plane[y*c.stride : y*c.stride+w]
			case hx == 2 && vy == 1 && c.cw > 2:
				dctFancyH2V1(bufs[i], c.plane[y*c.stride:y*c.stride+c.cw])
				rows[i] = bufs[i][:w]
			case hx == 2 && vy == 2 && c.cw > 2:
				// Each input row makes two output rows, each weighted 3:1
				// with the nearer of the rows above and below it (the
				// edge rows repeat at the image's top and bottom).
				near := y / 2
				far := near - 1
				if y%2 == 1 {
					far = near + 1
				}
				far = min(max(far, 0), c.ch-1)
				dctFancyH2V2(bufs[i], sums[:c.cw], c.plane[near*c.stride:near*c.stride+c.cw], c.plane[far*c.stride:far*c.stride+c.cw])
				rows[i] = bufs[i][:w]
			default:
				in := c.plane[(y/vy)*c.stride:]
				out := bufs[i][:w]
				for x := range out {
					out[x] = in[x/hx]
				}
				rows[i] = out
			}
		}
		dctInterleave(dst[y*w*n*f.BitsAllocated/8:(y+1)*w*n*f.BitsAllocated/8], rows, wide)
	}
}

// dctInterleave writes one image row: sample x of component i of rows
// goes to pixel x, sample i, in 8-bit or (wide) 16-bit little-endian
// containers.
func dctInterleave(dst []byte, rows [][]uint16, wide bool) {
	n := len(rows)
	switch {
	case n == 1 && !wide:
		r := rows[0]
		dst = dst[:len(r)]
		x := 0
		for ; x+8 <= len(r); x += 8 {
			s := r[x : x+8 : x+8]
			binary.LittleEndian.PutUint64(dst[x:], uint64(s[0]&0xFF)|uint64(s[1]&0xFF)<<8|uint64(s[2]&0xFF)<<16|uint64(s[3]&0xFF)<<24|
				uint64(s[4]&0xFF)<<32|uint64(s[5]&0xFF)<<40|uint64(s[6]&0xFF)<<48|uint64(s[7]&0xFF)<<56)
		}
		for ; x < len(r); x++ {
			dst[x] = byte(r[x])
		}
	case n == 1:
		r := rows[0]
		dst = dst[:2*len(r)]
		x := 0
		for ; x+4 <= len(r); x += 4 {
			s := r[x : x+4 : x+4]
			binary.LittleEndian.PutUint64(dst[2*x:], uint64(s[0])|uint64(s[1])<<16|uint64(s[2])<<32|uint64(s[3])<<48)
		}
		for ; x < len(r); x++ {
			binary.LittleEndian.PutUint16(dst[2*x:], r[x])
		}
	case !wide:
		for i, r := range rows {
			for x, v := range r {
				dst[x*n+i] = byte(v)
			}
		}
	default:
		for i, r := range rows {
			for x, v := range r {
				dst[2*(x*n+i)] = byte(v)
				dst[2*(x*n+i)+1] = byte(v >> 8)
			}
		}
	}
}

// dctFancyH2V1 doubles the row in (at least 3 samples) horizontally into
// out: each output sample is 3/4 of its input sample plus 1/4 of the
// nearer neighbour, with the IJG library's alternating rounding; the
// first and last samples are copied.
func dctFancyH2V1(out, in []uint16) {
	n := len(in)
	out = out[:2*n]
	out[0] = in[0]
	out[1] = uint16((3*int32(in[0]) + int32(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := 3 * int32(in[i])
		out[2*i] = uint16((v + int32(in[i-1]) + 1) >> 2)
		out[2*i+1] = uint16((v + int32(in[i+1]) + 2) >> 2)
	}
	out[2*n-2] = uint16((3*int32(in[n-1]) + int32(in[n-2]) + 1) >> 2)
	out[2*n-1] = in[n-1]
}

// dctFancyH2V2 makes one output row of 2×2 upsampling from the nearer
// input row near and the farther one far (at least 3 samples each): a
// vertical 3:1 sum, then a horizontal 3:1 weighting, with the IJG
// library's rounding. sums is scratch space of len(near).
func dctFancyH2V2(out []uint16, sums []int32, near, far []uint16) {
	n := len(near)
	out, far, sums = out[:2*n], far[:n], sums[:n]
	for i := range near {
		sums[i] = 3*int32(near[i]) + int32(far[i])
	}
	out[0] = uint16((4*sums[0] + 8) >> 4)
	out[1] = uint16((3*sums[0] + sums[1] + 7) >> 4)
	for i := 1; i < n-1; i++ {
		v := 3 * sums[i]
		out[2*i] = uint16((v + sums[i-1] + 8) >> 4)
		out[2*i+1] = uint16((v + sums[i+1] + 7) >> 4)
	}
	out[2*n-2] = uint16((3*sums[n-1] + sums[n-2] + 8) >> 4)
	out[2*n-1] = uint16((4*sums[n-1] + 7) >> 4)
}
