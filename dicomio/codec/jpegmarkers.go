package codec

// Shared JPEG (ITU-T T.81) stream machinery: marker segment reading, the
// frame, scan, Huffman table and restart interval headers (B.2.2–B.2.4),
// Huffman decoding tables (Annex C, F.2.2.3) and a bit reader for
// byte-stuffed entropy-coded segments (B.1.1.5, F.2.2.5). Used by the
// lossless (jpegll.go) and DCT (jpegdct.go) decoders.

import (
	"encoding/binary"
	"fmt"
)

// JPEG marker codes (T.81 Table B.1), the byte after 0xFF.
const (
	jpegSOF0 = 0xC0 // baseline DCT
	jpegSOF3 = 0xC3 // lossless, Huffman
	jpegDHT  = 0xC4
	jpegDAC  = 0xCC
	jpegRST0 = 0xD0
	jpegRST7 = 0xD7
	jpegSOI  = 0xD8
	jpegEOI  = 0xD9
	jpegSOS  = 0xDA
	jpegDQT  = 0xDB
	jpegDNL  = 0xDC
	jpegDRI  = 0xDD
	jpegDHP  = 0xDE
	jpegEXP  = 0xDF
	jpegTEM  = 0x01
)

// jpegReader walks the marker segments of a JPEG stream held in data.
type jpegReader struct {
	data []byte
	pos  int // offset of the next unread byte
}

// marker reads the marker at pos, skipping fill bytes (0xFF runs, B.1.1.2),
// and returns its code (the byte after the 0xFF). Anything else at pos is
// an error wrapping ErrCorrupt.
func (r *jpegReader) marker() (byte, error) {
	if r.pos >= len(r.data) {
		return 0, fmt.Errorf("%w: JPEG stream ends before its EOI marker", ErrCorrupt)
	}
	if r.data[r.pos] != 0xFF {
		return 0, fmt.Errorf("%w: JPEG stream has byte 0x%02X where a marker must start at offset %d", ErrCorrupt, r.data[r.pos], r.pos)
	}
	for r.pos < len(r.data) && r.data[r.pos] == 0xFF {
		r.pos++
	}
	if r.pos >= len(r.data) {
		return 0, fmt.Errorf("%w: JPEG stream ends inside a marker", ErrCorrupt)
	}
	m := r.data[r.pos]
	r.pos++
	if m == 0 {
		return 0, fmt.Errorf("%w: JPEG stream has a stuffed 0xFF00 where a marker must be at offset %d", ErrCorrupt, r.pos-2)
	}
	return m, nil
}

// segment reads the 2-byte length of the marker segment at pos and returns
// its parameters (the bytes after the length), advancing past them. A
// length below 2 or past the end of data is an error wrapping ErrCorrupt.
func (r *jpegReader) segment() ([]byte, error) {
	if r.pos+2 > len(r.data) {
		return nil, fmt.Errorf("%w: JPEG stream ends inside a marker segment length", ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint16(r.data[r.pos:]))
	if n < 2 || r.pos+n > len(r.data) {
		return nil, fmt.Errorf("%w: JPEG marker segment length %d at offset %d does not fit the %d-byte stream", ErrCorrupt, n, r.pos, len(r.data))
	}
	p := r.data[r.pos+2 : r.pos+n]
	r.pos += n
	return p, nil
}

// jpegHasLength reports whether marker m is followed by a length and
// parameters (all markers but SOI, EOI, RSTn and TEM).
func jpegHasLength(m byte) bool {
	return !(m == jpegSOI || m == jpegEOI || m == jpegTEM || (m >= jpegRST0 && m <= jpegRST7))
}

// jpegComponent is one frame component specification (B.2.2).
type jpegComponent struct {
	id   int // Ci
	h, v int // Hi, Vi sampling factors, 1..4
	tq   int // quantization table selector, 0..3
}

// jpegFrameHeader is a parsed SOFn segment (B.2.2).
type jpegFrameHeader struct {
	marker        byte // 0xC0..0xCF, not DHT/JPG/DAC
	precision     int  // P
	height, width int  // Y (0 when a DNL segment gives it), X
	components    []jpegComponent
}

// parseSOF parses the parameters p of SOFn marker m. It checks the field
// ranges of B.2.2 that hold for every process (1..4 sampling factors,
// X > 0, 1..255 distinct component identifiers) but not the precision,
// which depends on the process and is the caller's to check.
func parseSOF(m byte, p []byte) (jpegFrameHeader, error) {
	f := jpegFrameHeader{marker: m}
	if len(p) < 6 {
		return f, fmt.Errorf("%w: JPEG frame header (SOF) is %d bytes, shorter than 6", ErrCorrupt, len(p))
	}
	f.precision = int(p[0])
	f.height = int(binary.BigEndian.Uint16(p[1:]))
	f.width = int(binary.BigEndian.Uint16(p[3:]))
	nf := int(p[5])
	if nf == 0 || len(p) != 6+3*nf {
		return f, fmt.Errorf("%w: JPEG frame header (SOF) of %d bytes for %d components", ErrCorrupt, len(p), nf)
	}
	if f.width == 0 {
		return f, fmt.Errorf("%w: JPEG frame header (SOF) gives 0 samples per line", ErrCorrupt)
	}
	f.components = make([]jpegComponent, nf)
	for i := range f.components {
		q := p[6+3*i:]
		c := jpegComponent{id: int(q[0]), h: int(q[1] >> 4), v: int(q[1] & 15), tq: int(q[2])}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return f, fmt.Errorf("%w: JPEG frame component %d has sampling factors %d×%d and table %d", ErrCorrupt, c.id, c.h, c.v, c.tq)
		}
		for _, o := range f.components[:i] {
			if o.id == c.id {
				return f, fmt.Errorf("%w: JPEG frame header repeats component identifier %d", ErrCorrupt, c.id)
			}
		}
		f.components[i] = c
	}
	return f, nil
}

// jpegScanComponent is one scan component specification (B.2.3).
type jpegScanComponent struct {
	index  int // position of the component in jpegFrameHeader.components
	td, ta int // DC (lossless: the only) and AC entropy table selectors, 0..3
}

// jpegScanHeader is a parsed SOS segment (B.2.3). For lossless processes
// ss is the predictor selection value and al the point transform.
type jpegScanHeader struct {
	components     []jpegScanComponent
	ss, se, ah, al int
}

// parseSOS parses the parameters p of an SOS marker for frame f, resolving
// component selectors to frame component indexes. Unknown or repeated
// components, and table selectors above 3, are errors wrapping ErrCorrupt.
func parseSOS(p []byte, f *jpegFrameHeader) (jpegScanHeader, error) {
	var s jpegScanHeader
	if len(p) < 1 {
		return s, fmt.Errorf("%w: empty JPEG scan header (SOS)", ErrCorrupt)
	}
	ns := int(p[0])
	if ns < 1 || ns > 4 || len(p) != 4+2*ns {
		return s, fmt.Errorf("%w: JPEG scan header (SOS) of %d bytes for %d components", ErrCorrupt, len(p), ns)
	}
	s.components = make([]jpegScanComponent, ns)
	for i := range s.components {
		cs, t := int(p[1+2*i]), p[2+2*i]
		idx := -1
		for j, c := range f.components {
			if c.id == cs {
				idx = j
			}
		}
		if idx < 0 {
			return s, fmt.Errorf("%w: JPEG scan selects component %d, absent from the frame", ErrCorrupt, cs)
		}
		for _, o := range s.components[:i] {
			if o.index == idx {
				return s, fmt.Errorf("%w: JPEG scan selects component %d twice", ErrCorrupt, cs)
			}
		}
		sc := jpegScanComponent{index: idx, td: int(t >> 4), ta: int(t & 15)}
		if sc.td > 3 || sc.ta > 3 {
			return s, fmt.Errorf("%w: JPEG scan component %d selects Huffman tables %d/%d (0..3 allowed)", ErrCorrupt, cs, sc.td, sc.ta)
		}
		s.components[i] = sc
	}
	q := p[1+2*ns:]
	s.ss, s.se, s.ah, s.al = int(q[0]), int(q[1]), int(q[2]>>4), int(q[2]&15)
	return s, nil
}

// parseDRI parses the parameters of a DRI segment (B.2.4.4) and returns
// the restart interval Ri in MCUs (0: no restart markers).
func parseDRI(p []byte) (int, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("%w: JPEG restart interval segment (DRI) is %d bytes, not 2", ErrCorrupt, len(p))
	}
	return int(binary.BigEndian.Uint16(p)), nil
}

// jpegFastBits is the number of leading bits a Huffman lookup resolves in
// one step; longer codes take the slow path.
const jpegFastBits = 9

// jpegHuffman is a Huffman decoding table (C.2, F.2.2.3).
type jpegHuffman struct {
	// fast maps the next jpegFastBits bits to length<<8 | symbol for codes
	// of at most jpegFastBits bits; 0 means a longer (or absent) code.
	fast [1 << jpegFastBits]uint16
	// maxcode[l] is the largest code of length l (-1: none); valptr[l]
	// the index in vals of the first code of length l, whose value is
	// mincode[l] (F.2.2.3).
	maxcode [17]int32
	mincode [17]int32
	valptr  [17]int32
	vals    []byte // symbols in code order
	maxSym  byte   // largest symbol in vals
}

// newJPEGHuffman builds a decoding table from the BITS counts (counts[i]:
// number of codes of length i+1) and HUFFVAL symbols of a DHT segment.
// Counts that overflow the code space (more codes than lengths allow) or
// whose total is not len(vals) are errors wrapping ErrCorrupt.
func newJPEGHuffman(counts *[16]byte, vals []byte) (*jpegHuffman, error) {
	h := &jpegHuffman{vals: append([]byte(nil), vals...)}
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	if total != len(vals) || total > 256 {
		return nil, fmt.Errorf("%w: JPEG Huffman table counts %d codes for %d symbols", ErrCorrupt, total, len(vals))
	}
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l] = k
		h.mincode[l] = code
		h.maxcode[l] = -1
		if n > 0 {
			h.maxcode[l] = code + n - 1
			// The all-ones code of each length is reserved (C.2, Annex K
			// note): a table using it overflows.
			if code+n > 1<<l || (code+n == 1<<l && l == 16) {
				return nil, fmt.Errorf("%w: JPEG Huffman table has more codes of length %d than fit", ErrCorrupt, l)
			}
			if l <= jpegFastBits {
				for i := int32(0); i < n; i++ {
					c := code + i
					shift := uint(jpegFastBits - l)
					e := uint16(l)<<8 | uint16(vals[k+i])
					for j := c << shift; j < (c+1)<<shift; j++ {
						h.fast[j] = e
					}
				}
			}
		}
		k += n
		code = (code + n) << 1
	}
	for _, v := range vals {
		if v > h.maxSym {
			h.maxSym = v
		}
	}
	return h, nil
}

// jpegHuffTables holds the Huffman tables defined so far in a stream, by
// class (DC/lossless = 0, AC = 1) and destination 0..3.
type jpegHuffTables struct {
	dc, ac [4]*jpegHuffman
}

// parseDHT parses a DHT segment (B.2.4.2), which may define several
// tables, replacing earlier tables with the same class and destination.
func (t *jpegHuffTables) parseDHT(p []byte) error {
	for len(p) > 0 {
		if len(p) < 17 {
			return fmt.Errorf("%w: JPEG Huffman table segment (DHT) ends inside a table header", ErrCorrupt)
		}
		tc, th := p[0]>>4, p[0]&15
		if tc > 1 || th > 3 {
			return fmt.Errorf("%w: JPEG Huffman table class %d destination %d (class 0..1, destination 0..3 allowed)", ErrCorrupt, tc, th)
		}
		var counts [16]byte
		copy(counts[:], p[1:17])
		n := 0
		for _, c := range counts {
			n += int(c)
		}
		if len(p) < 17+n {
			return fmt.Errorf("%w: JPEG Huffman table segment (DHT) ends inside a table's %d symbols", ErrCorrupt, n)
		}
		h, err := newJPEGHuffman(&counts, p[17:17+n])
		if err != nil {
			return err
		}
		if tc == 0 {
			t.dc[th] = h
		} else {
			t.ac[th] = h
		}
		p = p[17+n:]
	}
	return nil
}

// jpegBits reads bits, most significant first, from the entropy-coded
// segment starting at data[pos], removing stuffed zero bytes (0xFF00).
// At a marker or at the end of data it supplies zero bits and counts them
// in pad; overrun reports when the decoder has consumed any of them.
type jpegBits struct {
	data   []byte
	pos    int    // next byte of data to load
	acc    uint64 // buffered bits, left aligned
	n      uint   // number of buffered bits
	pad    uint   // zero bits buffered past the end of the segment
	marker bool   // a marker (or the end of data) stopped loading at pos
}

// newJPEGBits returns a bit reader for the entropy-coded segment that
// starts at data[pos].
func newJPEGBits(data []byte, pos int) jpegBits {
	return jpegBits{data: data, pos: pos}
}

// fill tops the buffer up to at least 57 bits.
func (b *jpegBits) fill() {
	if b.n > 56 {
		return
	}
	// Fast path: eight bytes without 0xFF load at once.
	if !b.marker && b.pos+8 <= len(b.data) {
		x := binary.BigEndian.Uint64(b.data[b.pos:])
		if noFF(x) {
			k := (64 - b.n) >> 3
			bits := k * 8
			b.acc |= x >> (64 - bits) << (64 - bits) >> b.n
			b.n += bits
			b.pos += int(k)
			return
		}
	}
	for b.n <= 56 {
		var c byte
		if !b.marker {
			if b.pos >= len(b.data) {
				b.marker = true
			} else if c = b.data[b.pos]; c != 0xFF {
				b.pos++
			} else if b.pos+1 < len(b.data) && b.data[b.pos+1] == 0 {
				b.pos += 2
			} else {
				b.marker = true // a marker (or a lone 0xFF at the end)
				c = 0
			}
		}
		if b.marker {
			b.pad += 8
		}
		b.acc |= uint64(c) << (56 - b.n)
		b.n += 8
	}
}

// noFF reports whether none of the eight bytes of x is 0xFF.
func noFF(x uint64) bool {
	y := ^x // a 0xFF byte of x is a zero byte of y
	return (y-0x0101010101010101)&^y&0x8080808080808080 == 0
}

// overrun reports whether the decoder has used bits past the end of the
// entropy-coded segment: data ended early.
func (b *jpegBits) overrun() bool { return b.pad > b.n }

// decode reads one Huffman-coded symbol with table h; ok is false for a
// code absent from the table.
func (b *jpegBits) decode(h *jpegHuffman) (sym byte, ok bool) {
	if b.n < 16 {
		b.fill()
	}
	if e := h.fast[b.acc>>(64-jpegFastBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		return byte(e), true
	}
	return b.decodeSlow(h)
}

// decodeSlow decodes a code longer than jpegFastBits bits (F.2.2.3).
func (b *jpegBits) decodeSlow(h *jpegHuffman) (byte, bool) {
	code := int32(b.acc >> 48)
	for l := jpegFastBits + 1; l <= 16; l++ {
		c := code >> uint(16-l)
		if c <= h.maxcode[l] {
			b.acc <<= uint(l)
			b.n -= uint(l)
			return h.vals[h.valptr[l]+c-h.mincode[l]], true
		}
	}
	return 0, false
}

// bits reads s (0..16) bits as an unsigned number.
func (b *jpegBits) bits(s uint) uint32 {
	if s == 0 {
		return 0
	}
	if b.n < s {
		b.fill()
	}
	v := uint32(b.acc >> (64 - s))
	b.acc <<= s
	b.n -= s
	return v
}

// receiveExtend reads s (0..16) additional bits and extends them to the
// signed value they code (F.2.2.1, RECEIVE and EXTEND).
func (b *jpegBits) receiveExtend(s uint) int32 {
	v := int32(b.bits(s))
	if s > 0 && v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// restart ends an interval: it drops the buffered bits and reads the
// restart marker, which must be RSTn with n = want&7 (an error wrapping
// ErrCorrupt otherwise, or when the interval used bits past its end).
func (b *jpegBits) restart(want int) error {
	if b.overrun() {
		return fmt.Errorf("%w: JPEG entropy-coded data ends before restart marker RST%d", ErrCorrupt, want&7)
	}
	p := b.end()
	r := jpegReader{data: b.data, pos: p}
	m, err := r.marker()
	if err != nil {
		return err
	}
	if m != byte(jpegRST0+want&7) {
		return fmt.Errorf("%w: JPEG stream has marker 0x%02X where restart marker RST%d is due", ErrCorrupt, m, want&7)
	}
	*b = newJPEGBits(b.data, r.pos)
	return nil
}

// end returns the offset of the marker that follows the entropy-coded
// segment (len(data) when none does), skipping any bytes the decoder left
// unread.
func (b *jpegBits) end() int {
	p := b.pos
	for p < len(b.data) {
		if b.data[p] == 0xFF {
			q := p + 1
			for q < len(b.data) && b.data[q] == 0xFF {
				q++
			}
			if q < len(b.data) && b.data[q] != 0 {
				return q - 1
			}
			p = q + 1
			continue
		}
		p++
	}
	return len(b.data)
}
