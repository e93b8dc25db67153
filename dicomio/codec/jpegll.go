package codec

// JPEG Lossless, non-hierarchical, Huffman coded (ITU-T T.81 Annex H,
// Process 14: SOF3), for the DICOM transfer syntaxes JPEG Lossless
// (1.2.840.10008.1.2.4.57, any selection value) and JPEG Lossless SV1
// (1.2.840.10008.1.2.4.70).
//
// Scope: predictors (selection values) 1..7, point transform Pt, sample
// precision P 2..16, difference category 16, reconstruction modulo 2^16,
// restart intervals of whole lines, one or several components in one
// interleaved scan (all sampling factors 1) or in several non-interleaved
// scans. Arithmetic coding, hierarchical and DCT frames, a number of lines
// given by a DNL segment, subsampled components and restart intervals
// that end inside a line (which dcmtk's IJG decoder refuses too) are
// refused with ErrUnsupported.
//
// Speed: differences are decoded a line at a time from a 64-bit bit
// buffer filled eight bytes at once where no 0xFF is near, through a table
// that resolves a Huffman code and its additional bits together from the
// next 12 bits (llTable), with the 9-bit code table and the canonical
// slow path behind it; the predictor is then applied to the line in a
// loop specialised for it.
//
// Precision rule: the frame's P must lie in 2..16 and not exceed the
// Frame's BitsAllocated. P may differ from BitsStored: real files carry
// P = 16 with Bits Stored 12, or P = 8 for 12-bit data. The decoder writes
// each reconstructed sample, shifted left by Pt, in full into its
// container; masking to Bits Stored is dicomio's, per the package contract.
//
// The 1.2.840.10008.1.2.4.70 decoder also accepts selection values other
// than 1: the stream says which predictor it used, and decoding it
// faithfully is safer than refusing a mislabelled file.

import (
	"encoding/binary"
	"fmt"
)

func init() {
	d := Decoder{Name: "JPEG Lossless (pure Go)", Decode: decodeJPEGLossless}
	Register("1.2.840.10008.1.2.4.57", d)
	Register("1.2.840.10008.1.2.4.70", d)
}

// decodeJPEGLossless decodes one JPEG Lossless (Process 14) frame src into
// dst per the package contract.
func decodeJPEGLossless(dst, src []byte, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(dst) != f.Size() {
		return fmt.Errorf("JPEG Lossless: destination is %d bytes, the frame needs %d", len(dst), f.Size())
	}
	d := llDecoder{dst: dst, f: f}
	return d.decode(src)
}

// llDecoder holds the state of one lossless frame decode.
type llDecoder struct {
	dst    []byte
	f      Frame
	frame  jpegFrameHeader
	sof    bool
	tables jpegHuffTables
	ri     int     // restart interval in MCUs
	done   [4]bool // frame components decoded by a scan
	// Work buffers, reused across scans.
	prev, cur []uint16
	diff      []int32
	lookups   map[*jpegHuffman]*llTable // difference lookups by Huffman table
}

// decode walks the marker segments of src, decoding each scan into d.dst.
func (d *llDecoder) decode(src []byte) error {
	if len(src) < 2 || src[0] != 0xFF || src[1] != jpegSOI {
		return fmt.Errorf("%w: JPEG Lossless stream does not start with an SOI marker", ErrCorrupt)
	}
	r := jpegReader{data: src, pos: 2}
	for {
		if r.pos >= len(src) && d.sof && d.complete() {
			return nil // all components decoded; tolerate a missing EOI
		}
		m, err := r.marker()
		if err != nil {
			return err
		}
		switch {
		case m == jpegEOI:
			if !d.sof {
				return fmt.Errorf("%w: JPEG Lossless stream has no frame header (SOF3) before EOI", ErrCorrupt)
			}
			if !d.complete() {
				return fmt.Errorf("%w: JPEG Lossless stream ends (EOI) before every component has been decoded", ErrCorrupt)
			}
			return nil
		case m == jpegSOI:
			return fmt.Errorf("%w: JPEG Lossless stream has a second SOI marker", ErrCorrupt)
		case m >= jpegRST0 && m <= jpegRST7:
			return fmt.Errorf("%w: JPEG Lossless stream has restart marker RST%d outside a scan", ErrCorrupt, m-jpegRST0)
		case m == jpegTEM:
			continue
		}
		p, err := r.segment()
		if err != nil {
			return err
		}
		switch {
		case m == jpegSOF3:
			if d.sof {
				return fmt.Errorf("%w: JPEG Lossless stream has a second frame header", ErrCorrupt)
			}
			if err := d.startFrame(p); err != nil {
				return err
			}
		case m == jpegDHP || m == jpegEXP || m == 0xC5 || m == 0xC6 || m == 0xC7:
			return fmt.Errorf("%w: hierarchical JPEG (marker 0x%02X) is not decoded", ErrUnsupported, m)
		case m >= 0xC9 && m <= 0xCF: // SOF9..SOF15 and DAC (0xCC)
			return fmt.Errorf("%w: arithmetic-coded JPEG (marker 0x%02X) is not decoded", ErrUnsupported, m)
		case m == jpegSOF0 || m == 0xC1 || m == 0xC2:
			return fmt.Errorf("%w: DCT JPEG frame (SOF%d) in a JPEG Lossless stream", ErrUnsupported, m-jpegSOF0)
		case m == 0xC8:
			return fmt.Errorf("%w: JPEG extension frame (JPG marker 0xC8) is not decoded", ErrUnsupported)
		case m == jpegDHT:
			if err := d.tables.parseDHT(p); err != nil {
				return err
			}
		case m == jpegDRI:
			if d.ri, err = parseDRI(p); err != nil {
				return err
			}
		case m == jpegDNL:
			return fmt.Errorf("%w: JPEG Lossless DNL segment in a frame whose header gives its number of lines", ErrCorrupt)
		case m == jpegSOS:
			if !d.sof {
				return fmt.Errorf("%w: JPEG Lossless scan (SOS) before the frame header (SOF3)", ErrCorrupt)
			}
			end, err := d.scan(src, r.pos, p)
			if err != nil {
				return err
			}
			r.pos = end
		}
		// Other segments (APPn, COM, DQT, reserved) carry nothing to decode.
	}
}

// complete reports whether every frame component has been decoded.
func (d *llDecoder) complete() bool {
	for i := range d.frame.components {
		if !d.done[i] {
			return false
		}
	}
	return true
}

// startFrame parses the SOF3 parameters p and checks them against the
// Frame the stream must decode to.
func (d *llDecoder) startFrame(p []byte) error {
	fr, err := parseSOF(jpegSOF3, p)
	if err != nil {
		return err
	}
	switch {
	case fr.precision < 2 || fr.precision > 16:
		return fmt.Errorf("%w: JPEG Lossless sample precision %d (2..16 allowed)", ErrCorrupt, fr.precision)
	case fr.precision > d.f.BitsAllocated:
		return fmt.Errorf("%w: JPEG Lossless sample precision %d does not fit %d-bit pixel data", ErrCorrupt, fr.precision, d.f.BitsAllocated)
	case fr.height == 0:
		return fmt.Errorf("%w: JPEG Lossless frame takes its number of lines from a DNL segment", ErrUnsupported)
	case fr.width != d.f.Columns || fr.height != d.f.Rows:
		return fmt.Errorf("%w: JPEG Lossless frame is %d×%d, the image %d×%d", ErrCorrupt, fr.width, fr.height, d.f.Columns, d.f.Rows)
	case len(fr.components) != d.f.Samples:
		return fmt.Errorf("%w: JPEG Lossless frame has %d components, the image %d samples per pixel", ErrCorrupt, len(fr.components), d.f.Samples)
	}
	for _, c := range fr.components {
		if c.h != fr.components[0].h || c.v != fr.components[0].v {
			return fmt.Errorf("%w: JPEG Lossless frame with subsampled components", ErrUnsupported)
		}
	}
	d.frame, d.sof = fr, true
	return nil
}

// scan decodes the scan whose SOS parameters are p and whose entropy-coded
// data starts at src[pos]; it returns the offset of the marker after it.
func (d *llDecoder) scan(src []byte, pos int, p []byte) (int, error) {
	fr := &d.frame
	s, err := parseSOS(p, fr)
	if err != nil {
		return 0, err
	}
	ns := len(s.components)
	predictor, pt := s.ss, s.al
	switch {
	case predictor < 1 || predictor > 7:
		return 0, fmt.Errorf("%w: JPEG Lossless scan has selection value %d (1..7 allowed)", ErrCorrupt, predictor)
	case pt >= fr.precision:
		return 0, fmt.Errorf("%w: JPEG Lossless point transform %d with precision %d", ErrCorrupt, pt, fr.precision)
	case ns > 1 && fr.components[0].h*fr.components[0].v != 1:
		return 0, fmt.Errorf("%w: interleaved JPEG Lossless scan with sampling factors above 1", ErrUnsupported)
	}
	var hs [4]*jpegHuffman
	var ts [4]*llTable
	for j, c := range s.components {
		if d.done[c.index] {
			return 0, fmt.Errorf("%w: JPEG Lossless component %d is coded in two scans", ErrCorrupt, fr.components[c.index].id)
		}
		h := d.tables.dc[c.td]
		if h == nil {
			return 0, fmt.Errorf("%w: JPEG Lossless scan uses Huffman table %d, which is not defined", ErrCorrupt, c.td)
		}
		if h.maxSym > 16 {
			return 0, fmt.Errorf("%w: JPEG Lossless Huffman table %d codes difference category %d (0..16 allowed)", ErrCorrupt, c.td, h.maxSym)
		}
		hs[j] = h
		if d.lookups == nil {
			d.lookups = map[*jpegHuffman]*llTable{}
		}
		if d.lookups[h] == nil {
			d.lookups[h] = newLLTable(h)
		}
		ts[j] = d.lookups[h]
	}

	width, height := fr.width, fr.height
	n := width * ns
	if cap(d.cur) < n {
		d.cur, d.prev, d.diff = make([]uint16, n), make([]uint16, n), make([]int32, n)
	}
	cur, prev, diff := d.cur[:n], d.prev[:n], d.diff[:n]
	initial := uint16(1) << uint(fr.precision-pt-1)
	b := newJPEGBits(src, pos)
	ri := d.ri
	// A restart interval counts MCUs, here one sample of each scan
	// component; lossless restarts fall on line boundaries (dcmtk's IJG
	// code refuses other intervals too), so ri must be whole lines.
	if ri > 0 && ri%width != 0 {
		return 0, fmt.Errorf("%w: JPEG Lossless restart interval of %d MCUs is not a whole number of %d-MCU lines", ErrUnsupported, ri, width)
	}
	linesPerInterval := 0
	if ri > 0 {
		linesPerInterval = ri / width
	}
	rst := 0 // number of the next restart marker
	for y := 0; y < height; y++ {
		restart := y > 0 && linesPerInterval > 0 && y%linesPerInterval == 0
		if restart {
			if err := b.restart(rst); err != nil {
				return 0, err
			}
			rst++
		}
		if err := b.decodeDiffs(diff, &hs, &ts, ns); err != nil {
			return 0, err
		}
		switch {
		case y == 0 || restart:
			// First line of the scan or of a restart interval (H.1.2.1):
			// the first sample is predicted by 2^(P-Pt-1), the others by Ra.
			for j := 0; j < ns; j++ {
				cur[j] = initial + uint16(diff[j])
			}
			predictLeft(cur, diff, ns, n, ns)
		default:
			// First column: Rb; the rest: the scan's predictor.
			for j := 0; j < ns; j++ {
				cur[j] = uint16(int32(prev[j]) + diff[j])
			}
			predict(cur, prev, diff, ns, n, ns, predictor)
		}
		if b.overrun() {
			return 0, fmt.Errorf("%w: JPEG Lossless entropy-coded data ends at line %d of %d", ErrCorrupt, y+1, height)
		}
		d.emit(cur, y, s.components, pt)
		cur, prev = prev, cur
	}
	for _, c := range s.components {
		d.done[c.index] = true
	}
	return b.end(), nil
}

// predictLeft reconstructs cur[lo:hi] with predictor 1 (Ra), as the first
// line of a scan or restart interval does.
func predictLeft(cur []uint16, diff []int32, lo, hi, ns int) {
	for i := lo; i < hi; i++ {
		cur[i] = uint16(int32(cur[i-ns]) + diff[i])
	}
}

// predict reconstructs cur[lo:hi] (lo ≥ ns) from the differences with the
// given predictor (T.81 Table H.1), prev being the line above. Samples of
// the ns scan components are interleaved, so Ra is ns samples back.
// Reconstruction is modulo 2^16 (H.2.1), which the uint16 conversion does.
func predict(cur, prev []uint16, diff []int32, lo, hi, ns, predictor int) {
	if lo >= hi {
		return
	}
	cur, prev, diff = cur[:hi], prev[:hi], diff[:hi]
	switch predictor {
	case 1: // Ra
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(cur[i-ns]) + diff[i])
		}
	case 2: // Rb
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(prev[i]) + diff[i])
		}
	case 3: // Rc
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(prev[i-ns]) + diff[i])
		}
	case 4: // Ra + Rb - Rc
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(cur[i-ns]) + int32(prev[i]) - int32(prev[i-ns]) + diff[i])
		}
	case 5: // Ra + ((Rb - Rc) >> 1)
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(cur[i-ns]) + (int32(prev[i])-int32(prev[i-ns]))>>1 + diff[i])
		}
	case 6: // Rb + ((Ra - Rc) >> 1)
		for i := lo; i < hi; i++ {
			cur[i] = uint16(int32(prev[i]) + (int32(cur[i-ns])-int32(prev[i-ns]))>>1 + diff[i])
		}
	case 7: // (Ra + Rb) / 2
		for i := lo; i < hi; i++ {
			cur[i] = uint16((int32(cur[i-ns])+int32(prev[i]))>>1 + diff[i])
		}
	}
}

// llFastBits is the number of leading bits llTable resolves at once.
const llFastBits = 12

// llTable maps the next llFastBits bits of entropy-coded data to a whole
// difference, Huffman code and additional bits together, as
// difference<<8 | bits used; 0 where the code and its additional bits are
// longer (or the code is absent), for the slow path.
type llTable [1 << llFastBits]int32

// newLLTable builds the difference lookup for Huffman table h, whose
// symbols are at most 16.
func newLLTable(h *jpegHuffman) *llTable {
	t := new(llTable)
	for l := 1; l <= llFastBits; l++ {
		if h.maxcode[l] < 0 {
			continue
		}
		for code := h.mincode[l]; code <= h.maxcode[l]; code++ {
			s := int(h.vals[int(h.valptr[l])+int(code-h.mincode[l])])
			if s == 16 { // difference 32768, no additional bits
				fillLL(t, int(code)<<(llFastBits-l), llFastBits-l, 32768<<8|int32(l))
				continue
			}
			if l+s > llFastBits {
				continue
			}
			for v := 0; v < 1<<s; v++ {
				d := int32(v)
				if s > 0 && d < 1<<(s-1) {
					d += -1<<s + 1
				}
				free := llFastBits - l - s
				fillLL(t, (int(code)<<s|v)<<free, free, d<<8|int32(l+s))
			}
		}
	}
	return t
}

// fillLL sets the 2^free entries of t from index i to e.
func fillLL(t *llTable, i, free int, e int32) {
	for j := 0; j < 1<<free; j++ {
		t[i+j] = e
	}
}

// decodeDiffs decodes len(d) Huffman-coded differences (H.1.2.2, Table
// H.2) into d, sample i with tables hs[i%ns] and their lookups ts[i%ns].
// The tables' symbols are known to be at most 16.
func (b *jpegBits) decodeDiffs(d []int32, hs *[4]*jpegHuffman, ts *[4]*llTable, ns int) error {
	if ns == 1 {
		return b.decodeDiffs1(d, hs[0], ts[0])
	}
	acc, n := b.acc, b.n
	c := 0
	for i := range d {
		if n < 32 { // room for a 16-bit code and 15 additional bits
			b.acc, b.n = acc, n
			b.fill()
			acc, n = b.acc, b.n
		}
		t := ts[c]
		h := hs[c]
		if c++; c == ns {
			c = 0
		}
		if e := t[acc>>(64-llFastBits)]; e != 0 {
			l := uint(e & 0xFF)
			acc <<= l
			n -= l
			d[i] = e >> 8
			continue
		}
		b.acc, b.n = acc, n
		v, err := b.decodeDiff(h)
		if err != nil {
			return err
		}
		acc, n = b.acc, b.n
		d[i] = v
	}
	b.acc, b.n = acc, n
	return nil
}

// decodeDiffs1 is decodeDiffs for a single-component scan.
func (b *jpegBits) decodeDiffs1(d []int32, h *jpegHuffman, t *llTable) error {
	acc, n := b.acc, b.n
	for i := range d {
		if n < 32 {
			b.acc, b.n = acc, n
			b.fill()
			acc, n = b.acc, b.n
		}
		if e := t[acc>>(64-llFastBits)]; e != 0 {
			l := uint(e & 0xFF)
			acc <<= l
			n -= l
			d[i] = e >> 8
			continue
		}
		b.acc, b.n = acc, n
		v, err := b.decodeDiff(h)
		if err != nil {
			return err
		}
		acc, n = b.acc, b.n
		d[i] = v
	}
	b.acc, b.n = acc, n
	return nil
}

// decodeDiff decodes one difference the slow way: Huffman code, then
// additional bits. The buffer holds at least 32 bits.
func (b *jpegBits) decodeDiff(h *jpegHuffman) (int32, error) {
	var s uint
	if e := h.fast[b.acc>>(64-jpegFastBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		s = uint(e & 0xFF)
	} else {
		sym, ok := b.decodeSlow(h)
		if !ok {
			return 0, fmt.Errorf("%w: JPEG Lossless entropy-coded data has a code absent from its Huffman table", ErrCorrupt)
		}
		s = uint(sym)
	}
	switch {
	case s == 0:
		return 0, nil
	case s < 16:
		v := int32(b.acc >> (64 - s))
		b.acc <<= s
		b.n -= s
		if v < 1<<(s-1) {
			v += -1<<s + 1
		}
		return v, nil
	default: // SSSS 16: difference 32768, no additional bits (H.1.2.2)
		return 32768, nil
	}
}

// emit writes line y of the scan components comps, held interleaved in
// cur, into the output frame, shifted left by the point transform.
func (d *llDecoder) emit(cur []uint16, y int, comps []jpegScanComponent, pt int) {
	spp := d.f.Samples
	ns := len(comps)
	width := d.f.Columns
	pts := uint(pt)
	inOrder := ns == spp
	for j, c := range comps {
		inOrder = inOrder && c.index == j
	}
	switch d.f.BitsAllocated {
	case 8:
		row := d.dst[y*width*spp : (y+1)*width*spp]
		if inOrder {
			for i, v := range cur {
				row[i] = byte(v << pts)
			}
			return
		}
		for j, c := range comps {
			for x := 0; x < width; x++ {
				row[x*spp+c.index] = byte(cur[x*ns+j] << pts)
			}
		}
	case 16:
		row := d.dst[2*y*width*spp : 2*(y+1)*width*spp]
		if inOrder {
			row = row[:2*len(cur)]
			for i, v := range cur {
				binary.LittleEndian.PutUint16(row[2*i:], v<<pts)
			}
			return
		}
		for j, c := range comps {
			for x := 0; x < width; x++ {
				binary.LittleEndian.PutUint16(row[2*(x*spp+c.index):], cur[x*ns+j]<<pts)
			}
		}
	default: // 32
		row := d.dst[4*y*width*spp : 4*(y+1)*width*spp]
		for j, c := range comps {
			for x := 0; x < width; x++ {
				binary.LittleEndian.PutUint32(row[4*(x*spp+c.index):], uint32(cur[x*ns+j]<<pts))
			}
		}
	}
}
