package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

const (
	uidJPEGLossless    = "1.2.840.10008.1.2.4.57"
	uidJPEGLosslessSV1 = "1.2.840.10008.1.2.4.70"
)

// image is the pixel data of one DICOM file: its Frame and, per frame,
// either the compressed bytes or the native samples (interleaved, little
// endian).
type image struct {
	ts     string
	frame  codec.Frame
	frames [][]byte
}

// readImage reads path and returns its frames: the fragments of
// encapsulated pixel data (one frame per fragment, or all fragments
// joined for a single-frame image), or the native frames.
func readImage(tb testing.TB, path string) image {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	in, err := dicomio.ReadInstanceBytes(data)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	im := image{ts: in.TransferSyntaxUID, frame: codec.Frame{
		Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, Signed: in.PixelRepresentation == 1,
	}}
	if !in.Encapsulated {
		frames := make([]int, in.NumberOfFrames)
		for i := range frames {
			frames[i] = i + 1
		}
		im.frames, err = dicomio.NativeFrames(bytes.NewReader(data), int64(len(data)), frames)
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		for i, f := range im.frames {
			im.frames[i] = interleave(f, im.frame, in.PlanarConfiguration)
		}
		return im
	}
	px, err := dicomio.PixelDataBytes(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	items, err := encapsulatedItems(px)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	frags := items[1:] // items[0] is the Basic Offset Table
	if in.NumberOfFrames == 1 && len(frags) > 1 {
		frags = [][]byte{bytes.Join(frags, nil)}
	}
	if len(frags) != in.NumberOfFrames {
		tb.Fatalf("%s: %d fragments for %d frames", path, len(frags), in.NumberOfFrames)
	}
	im.frames = frags
	return im
}

// encapsulatedItems splits an encapsulated Pixel Data value (PS3.5
// A.4) into the values of its items.
func encapsulatedItems(b []byte) ([][]byte, error) {
	var items [][]byte
	for len(b) > 0 {
		if len(b) < 8 || binary.LittleEndian.Uint32(b) != 0xE000FFFE {
			return nil, errors.New("encapsulated pixel data item header expected")
		}
		n := int(binary.LittleEndian.Uint32(b[4:]))
		if n > len(b)-8 {
			return nil, errors.New("encapsulated pixel data item runs past the value")
		}
		items = append(items, b[8:8+n])
		b = b[8+n:]
	}
	if len(items) == 0 {
		return nil, errors.New("no Basic Offset Table item")
	}
	return items, nil
}

// interleave returns a native frame with planar configuration 1 as
// interleaved samples.
func interleave(b []byte, f codec.Frame, planar int) []byte {
	if planar == 0 || f.Samples == 1 {
		return b
	}
	bps := f.BitsAllocated / 8
	n := f.Rows * f.Columns
	out := make([]byte, len(b))
	for c := 0; c < f.Samples; c++ {
		for i := 0; i < n; i++ {
			copy(out[(i*f.Samples+c)*bps:(i*f.Samples+c+1)*bps], b[(c*n+i)*bps:(c*n+i+1)*bps])
		}
	}
	return out
}

// decodeFrame decodes one compressed frame with the registered decoder.
func decodeFrame(ts string, src []byte, f codec.Frame) ([]byte, error) {
	d, ok := codec.Lookup(ts)
	if !ok {
		return nil, errors.New("no decoder registered for " + ts)
	}
	dst := make([]byte, f.Size())
	err := d.Decode(dst, src, f)
	return dst, err
}

// sample returns sample i of a decoded or native frame, masked to
// BitsStored bits (the decoder contract leaves the bits above to dicomio).
func sample(b []byte, f codec.Frame, i int) uint32 {
	var v uint32
	switch f.BitsAllocated {
	case 8:
		v = uint32(b[i])
	case 16:
		v = uint32(binary.LittleEndian.Uint16(b[2*i:]))
	default:
		v = binary.LittleEndian.Uint32(b[4*i:])
	}
	return v & (1<<uint(f.BitsStored) - 1)
}

// compareSamples fails tb at the first sample where got and want differ
// in their low BitsStored bits, after mapping want through fn (nil: as is).
func compareSamples(tb testing.TB, name string, got, want []byte, f codec.Frame, fn func(uint32) uint32) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: decoded %d bytes, reference has %d", name, len(got), len(want))
	}
	n := f.Rows * f.Columns * f.Samples
	for i := 0; i < n; i++ {
		g, w := sample(got, f, i), sample(want, f, i)
		if fn != nil {
			w = fn(w)
		}
		if g != w {
			tb.Fatalf("%s: sample %d (x %d, y %d, component %d) decoded %d, reference %d",
				name, i, i/f.Samples%f.Columns, i/f.Samples/f.Columns, i%f.Samples, g, w)
		}
	}
}

// checkPair decodes every frame of the compressed file and compares it
// with the reference file's native frames.
func checkPair(t *testing.T, compressed, reference string) {
	t.Helper()
	c, r := readImage(t, compressed), readImage(t, reference)
	if c.ts != uidJPEGLossless && c.ts != uidJPEGLosslessSV1 {
		t.Fatalf("%s: transfer syntax %s is not JPEG Lossless", compressed, c.ts)
	}
	if c.frame != r.frame {
		t.Fatalf("%s: frame %+v, reference %+v", compressed, c.frame, r.frame)
	}
	if len(c.frames) != len(r.frames) {
		t.Fatalf("%s: %d frames, reference %d", compressed, len(c.frames), len(r.frames))
	}
	for i := range c.frames {
		got, err := decodeFrame(c.ts, c.frames[i], c.frame)
		if err != nil {
			t.Fatalf("%s frame %d: %v", compressed, i+1, err)
		}
		compareSamples(t, filepath.Base(compressed), got, r.frames[i], c.frame, nil)
	}
}

func TestJPEGLosslessRegistered(t *testing.T) {
	for _, uid := range []string{uidJPEGLossless, uidJPEGLosslessSV1} {
		d, ok := codec.Lookup(uid)
		if !ok || d.Decode == nil || d.Lossy {
			t.Errorf("transfer syntax %s: decoder %+v, registered %v; want a lossless decoder", uid, d, ok)
		}
	}
}

func TestJPEGLosslessWG04(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "wg04")
	names, err := filepath.Glob(filepath.Join(dir, "JPLL", "*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no WG04 JPLL files in %s (%v)", dir, err)
	}
	for _, name := range names {
		stem := strings.TrimSuffix(filepath.Base(name), "_JPLL")
		t.Run(stem, func(t *testing.T) {
			checkPair(t, name, filepath.Join(dir, "REF", stem+"_UNC"))
		})
	}
}

func TestJPEGLosslessCTHead(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	names, err := filepath.Glob(filepath.Join(dir, "ct-head-5mm.jpll", "*.dcm"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no ct-head-5mm.jpll files (%v)", err)
	}
	for _, name := range names {
		checkPair(t, name, filepath.Join(dir, "ct-head-5mm", strings.TrimSuffix(filepath.Base(name), ".dcm")))
	}
}

func TestJPEGLosslessTransferSyntaxes(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "transfer-syntaxes", "In")
	for _, n := range []string{"5.dcm", "6.dcm"} {
		t.Run(n, func(t *testing.T) { checkPair(t, filepath.Join(dir, n), filepath.Join(dir, "1.dcm")) })
	}
}

// runTool runs a dcmtk command, failing the test with its output.
func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

func TestJPEGLosslessRobustnessVsDcmtk(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "robustness")
	dcmdjpeg := testenv.Tool(t, "dcmdjpeg", "dcmtk")
	for _, n := range []string{"JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG-LL.dcm"} {
		t.Run(n, func(t *testing.T) {
			in := filepath.Join(dir, n)
			out := filepath.Join(t.TempDir(), n)
			runTool(t, dcmdjpeg, in, out)
			checkPair(t, in, out)
		})
	}
}

// firstScan returns the number of components, the selection value and
// the point transform of the first scan header (SOS) of a JPEG stream.
func firstScan(t *testing.T, src []byte) (ns, ss, al int) {
	t.Helper()
	i := bytes.Index(src, []byte{0xFF, 0xDA})
	if i < 0 || i+5 > len(src) {
		t.Fatal("no scan header in the JPEG stream")
	}
	ns = int(src[i+4])
	j := i + 5 + 2*ns
	if j+3 > len(src) {
		t.Fatal("short scan header")
	}
	return ns, int(src[j]), int(src[j+2] & 15)
}

// ctSlice is the 16-bit fixture the dcmcjpeg tests encode.
const ctSlice = "ct-head-5mm/I100"

// eightBit returns an 8-bit native fixture: the dcmtk-decoded 8-bit
// lossless robustness file.
func eightBit(t *testing.T, dcmdjpeg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "8bit.dcm")
	runTool(t, dcmdjpeg, filepath.Join(testenv.SharedDICOM(t), "robustness", "JPGLosslessP14SV1_1s_1f_8b.dcm"), out)
	return out
}

func TestJPEGLosslessPredictorsVsDcmcjpeg(t *testing.T) {
	dcmcjpeg := testenv.Tool(t, "dcmcjpeg", "dcmtk")
	dcmdjpeg := testenv.Tool(t, "dcmdjpeg", "dcmtk")
	sources := map[string]string{
		"16bit": filepath.Join(testenv.SharedDICOM(t), ctSlice),
		"8bit":  eightBit(t, dcmdjpeg),
		"rgb":   filepath.Join(testenv.SharedDICOM(t), "robustness", "color-pl.dcm"),
	}
	for label, src := range sources {
		ref := readImage(t, src)
		for sv := 1; sv <= 7; sv++ {
			for _, pt := range []int{0, 1, 3} {
				name := label + "/sv" + strconv.Itoa(sv) + "/pt" + strconv.Itoa(pt)
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "out.dcm")
					runTool(t, dcmcjpeg, "+el", "+sv", strconv.Itoa(sv), "+pt", strconv.Itoa(pt), src, out)
					c := readImage(t, out)
					ns, ss, al := firstScan(t, c.frames[0])
					if ns != c.frame.Samples || ss != sv || al != pt {
						t.Fatalf("dcmcjpeg wrote a scan of %d components with selection value %d and point transform %d", ns, ss, al)
					}
					got, err := decodeFrame(c.ts, c.frames[0], c.frame)
					if err != nil {
						t.Fatal(err)
					}
					shift := func(v uint32) uint32 { return v >> uint(pt) << uint(pt) }
					compareSamples(t, name, got, ref.frames[0], c.frame, shift)
				})
			}
		}
	}
}

// testPlanes returns nc planes of width×height samples of precision P:
// smooth gradients with noise, plus a few full-range jumps so that every
// difference category, 16 included for P = 16, occurs.
func testPlanes(nc, width, height, precision int, seed uint64) [][]uint16 {
	rng := rand.New(rand.NewPCG(seed, 1))
	max := 1<<uint(precision) - 1
	planes := make([][]uint16, nc)
	for c := range planes {
		pl := make([]uint16, width*height)
		for y := 0; y < height; y++ {
			for x := 0; x < width; x++ {
				v := (x*7 + y*13 + c*1000) % (max + 1)
				v += rng.IntN(1 + max/16)
				switch rng.IntN(50) {
				case 0:
					v = 0
				case 1:
					v = max
				case 2:
					v = rng.IntN(max + 1)
				case 3:
					v ^= 1 << uint(precision-1)
				}
				pl[y*width+x] = uint16(v & max)
			}
		}
		planes[c] = pl
	}
	return planes
}

// checkEncoded decodes a stream made by encodeLossless and compares it
// with the planes it was made from.
func checkEncoded(t *testing.T, name string, planes [][]uint16, p llParams, bitsAllocated int) {
	t.Helper()
	src := encodeLossless(planes, p)
	f := codec.Frame{Rows: p.height, Columns: p.width, Samples: len(planes), BitsAllocated: bitsAllocated, BitsStored: p.precision}
	got, err := decodeFrame(uidJPEGLossless, src, f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	want := make([]byte, f.Size())
	for i := 0; i < p.width*p.height; i++ {
		for c := range planes {
			v := planes[c][i] >> uint(p.pt) << uint(p.pt)
			j := i*len(planes) + c
			switch bitsAllocated {
			case 8:
				want[j] = byte(v)
			case 16:
				binary.LittleEndian.PutUint16(want[2*j:], v)
			default:
				binary.LittleEndian.PutUint32(want[4*j:], uint32(v))
			}
		}
	}
	compareSamples(t, name, got, want, f, nil)
}

func TestJPEGLosslessOwnEncoder(t *testing.T) {
	type tc struct {
		name  string
		nc    int
		p     llParams
		alloc int
	}
	var cases []tc
	for sv := 1; sv <= 7; sv++ {
		s := strconv.Itoa(sv)
		cases = append(cases,
			tc{"rgb8-interleaved/sv" + s, 3, llParams{width: 37, height: 23, precision: 8, predictor: sv, interleaved: true}, 8},
			tc{"rgb8-scans/sv" + s, 3, llParams{width: 37, height: 23, precision: 8, predictor: sv}, 8},
			tc{"p16/sv" + s, 1, llParams{width: 64, height: 20, precision: 16, predictor: sv}, 16},
			tc{"rgb16-interleaved-restart-row/sv" + s, 3, llParams{width: 33, height: 17, precision: 16, predictor: sv, ri: 33, interleaved: true}, 16},
			tc{"p12-pt2-restart-2-lines/sv" + s, 1, llParams{width: 50, height: 19, precision: 12, pt: 2, predictor: sv, ri: 100}, 16},
		)
	}
	cases = append(cases,
		tc{"p2", 1, llParams{width: 40, height: 9, precision: 2, predictor: 4}, 8},
		tc{"p2-pt1", 1, llParams{width: 40, height: 9, precision: 2, pt: 1, predictor: 7}, 8},
		tc{"p16-pt15", 1, llParams{width: 40, height: 9, precision: 16, pt: 15, predictor: 5}, 16},
		tc{"restart-every-line", 1, llParams{width: 31, height: 11, precision: 10, predictor: 6, ri: 31}, 16},
		tc{"restart-3-rows", 1, llParams{width: 31, height: 11, precision: 16, predictor: 2, ri: 93}, 16},
		tc{"restart-218-lines", 1, llParams{width: 300, height: 300, precision: 16, predictor: 1, ri: 65400}, 16},
		tc{"rgb-scans-restart", 3, llParams{width: 30, height: 10, precision: 12, predictor: 3, ri: 60}, 16},
		tc{"32-bit-container", 1, llParams{width: 20, height: 5, precision: 16, predictor: 1}, 32},
		tc{"single-sample", 1, llParams{width: 1, height: 1, precision: 8, predictor: 1}, 8},
		tc{"single-column", 3, llParams{width: 1, height: 20, precision: 8, predictor: 5, interleaved: true}, 8},
	)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planes := testPlanes(c.nc, c.p.width, c.p.height, c.p.precision, uint64(i))
			checkEncoded(t, c.name, planes, c.p, c.alloc)
		})
	}
}

// TestJPEGLosslessCategory16 checks a stream whose differences include
// category 16 (difference 32768, no additional bits): samples alternate
// between 0 and 32768 under predictor 1, and the first sample differs by
// 32768 from the initial prediction 2^15.
func TestJPEGLosslessCategory16(t *testing.T) {
	const w, h = 16, 4
	pl := make([]uint16, w*h)
	for i := range pl {
		if i%2 == 1 {
			pl[i] = 32768
		}
	}
	checkEncoded(t, "category16", [][]uint16{pl}, llParams{width: w, height: h, precision: 16, predictor: 1}, 16)
}

// checkDecodeError decodes src and returns its error, failing the test
// when the decoder panics, takes long, or returns an error that wraps
// neither ErrCorrupt nor ErrUnsupported.
func checkDecodeError(t *testing.T, name string, src []byte, f codec.Frame) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: decoder panicked: %v", name, r)
		}
	}()
	start := time.Now()
	_, err = decodeFrame(uidJPEGLossless, src, f)
	if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("%s: error %q wraps neither ErrCorrupt nor ErrUnsupported", name, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("%s: decoding took %v", name, d)
	}
	return err
}

// corpus returns JPEG Lossless streams with their frames: a CT slice from
// the fixtures (when present) and streams of the test encoder.
func corpus(tb testing.TB) (srcs [][]byte, frames []codec.Frame) {
	tb.Helper()
	for _, p := range []llParams{
		{width: 29, height: 13, precision: 8, predictor: 4, interleaved: true, ri: 58},
		{width: 40, height: 16, precision: 16, predictor: 7, pt: 1},
	} {
		nc := 1
		alloc := 16
		if p.interleaved {
			nc, alloc = 3, 8
		}
		srcs = append(srcs, encodeLossless(testPlanes(nc, p.width, p.height, p.precision, 7), p))
		frames = append(frames, codec.Frame{Rows: p.height, Columns: p.width, Samples: nc, BitsAllocated: alloc, BitsStored: p.precision})
	}
	return srcs, frames
}

func TestJPEGLosslessCorrupt(t *testing.T) {
	srcs, frames := corpus(t)
	ct := readImage(t, filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm.jpll", "I100.dcm"))
	srcs, frames = append(srcs, ct.frames[0]), append(frames, ct.frame)
	for k, src := range srcs {
		f := frames[k]
		if err := checkDecodeError(t, "intact", src, f); err != nil {
			t.Fatalf("stream %d: intact stream fails: %v", k, err)
		}
		eoi := bytes.LastIndex(src, []byte{0xFF, 0xD9})
		for n := 0; n < len(src); n += 97 {
			err := checkDecodeError(t, "truncated", src[:n], f)
			if n < eoi && err == nil {
				t.Errorf("stream %d truncated to %d of %d bytes: no error", k, n, len(src))
			}
		}
		rng := rand.New(rand.NewPCG(uint64(k), 2))
		for i := 0; i < 200; i++ {
			b := bytes.Clone(src)
			for j := 0; j <= i%4; j++ {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			checkDecodeError(t, "flipped", b, f)
		}
	}
}

// TestJPEGLosslessErrors checks the error of each kind of broken or
// unsupported stream.
func TestJPEGLosslessErrors(t *testing.T) {
	p := llParams{width: 16, height: 8, precision: 12, predictor: 1, ri: 16}
	good := encodeLossless(testPlanes(1, p.width, p.height, p.precision, 3), p)
	f := codec.Frame{Rows: 8, Columns: 16, Samples: 1, BitsAllocated: 16, BitsStored: 12}
	find := func(marker byte) int {
		i := bytes.Index(good, []byte{0xFF, marker})
		if i < 0 {
			t.Fatalf("test stream lacks marker 0x%02X", marker)
		}
		return i
	}
	cut := func(marker byte) []byte { // drop the whole segment
		i := find(marker)
		n := int(binary.BigEndian.Uint16(good[i+2:]))
		return append(bytes.Clone(good[:i]), good[i+2+n:]...)
	}
	with := func(i int, b ...byte) []byte {
		s := bytes.Clone(good)
		copy(s[i:], b)
		return s
	}
	sof, sos, dht := find(0xC3), find(0xDA), find(0xC4)
	// A restart interval of 16 MCUs with the stream's RST markers removed.
	noRST := bytes.Clone(good[:sos])
	for i := sos; i < len(good); i++ {
		if good[i] == 0xFF && i+1 < len(good) && good[i+1] >= 0xD0 && good[i+1] <= 0xD7 {
			i++
			continue
		}
		noRST = append(noRST, good[i])
	}
	// A restart interval that is not a whole number of lines, which
	// dcmtk refuses too.
	midLine := encodeLossless(testPlanes(1, p.width, p.height, p.precision, 3), llParams{width: 16, height: 8, precision: 12, predictor: 1, ri: 7})
	// A code absent from the table: a table with one 1-bit code (0), and
	// entropy data of 1 bits.
	oneCode := append(bytes.Clone(good[:dht]), 0xFF, 0xC4, 0, 20, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	oneCode = append(oneCode, good[sos:sos+2+int(binary.BigEndian.Uint16(good[sos+2:]))]...)
	oneCode = append(oneCode, 0xFE, 0xFE, 0xFF, 0xD9)
	cases := []struct {
		name string
		src  []byte
		f    codec.Frame
		want error
	}{
		{"empty", nil, f, codec.ErrCorrupt},
		{"no SOI", good[2:], f, codec.ErrCorrupt},
		{"no SOF", cut(0xC3), f, codec.ErrCorrupt},
		{"no SOS", append(bytes.Clone(good[:sos]), 0xFF, 0xD9), f, codec.ErrCorrupt},
		{"no DHT", cut(0xC4), f, codec.ErrCorrupt},
		{"table selector 1 undefined", with(sos+6, 0x10), f, codec.ErrCorrupt},
		{"DHT length past end", with(dht+2, 0xFF, 0xF0), f, codec.ErrCorrupt},
		{"SOF length 1", with(sof+2, 0, 1), f, codec.ErrCorrupt},
		{"SOS length short", with(sos+2, 0, 7), f, codec.ErrCorrupt},
		{"precision 17", with(sof+4, 17), f, codec.ErrCorrupt},
		{"precision 1", with(sof+4, 1), f, codec.ErrCorrupt},
		{"predictor 0", with(sos+7, 0), f, codec.ErrCorrupt},
		{"predictor 8", with(sos+7, 8), f, codec.ErrCorrupt},
		{"point transform 12", with(sos+9, 12), f, codec.ErrCorrupt},
		{"rows mismatch", good, codec.Frame{Rows: 9, Columns: 16, Samples: 1, BitsAllocated: 16, BitsStored: 12}, codec.ErrCorrupt},
		{"columns mismatch", good, codec.Frame{Rows: 8, Columns: 15, Samples: 1, BitsAllocated: 16, BitsStored: 12}, codec.ErrCorrupt},
		{"samples mismatch", good, codec.Frame{Rows: 8, Columns: 16, Samples: 3, BitsAllocated: 16, BitsStored: 12}, codec.ErrCorrupt},
		{"precision above bits allocated", good, codec.Frame{Rows: 8, Columns: 16, Samples: 1, BitsAllocated: 8, BitsStored: 8}, codec.ErrCorrupt},
		{"restart markers missing", noRST, f, codec.ErrCorrupt},
		{"code not in table", oneCode, f, codec.ErrCorrupt},
		{"restart interval ends mid-line", midLine, f, codec.ErrUnsupported},
		{"symbol 17 in table", with(dht+4+17+16, 17), f, codec.ErrCorrupt},
		{"DNL height", with(sof+5, 0, 0), f, codec.ErrUnsupported},
		{"baseline SOF0", with(sof+1, 0xC0), f, codec.ErrUnsupported},
		{"hierarchical SOF7", with(sof+1, 0xC7), f, codec.ErrUnsupported},
		{"arithmetic SOF11", with(sof+1, 0xCB), f, codec.ErrUnsupported},
		{"DHP", with(sof+1, 0xDE), f, codec.ErrUnsupported},
		{"no EOI and data cut", good[:len(good)-4], f, codec.ErrCorrupt},
	}
	if _, err := decodeFrame(uidJPEGLossless, good, f); err != nil {
		t.Fatalf("intact stream: %v", err)
	}
	for _, c := range cases {
		err := checkDecodeError(t, c.name, c.src, c.f)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want one wrapping %v", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

func FuzzJPEGLossless(f *testing.F) {
	srcs, frames := corpus(f)
	for i, s := range srcs {
		fr := frames[i]
		f.Add(s, uint16(fr.Rows), uint16(fr.Columns), fr.Samples == 3, fr.BitsAllocated == 8)
	}
	// Real encoders' headers and tables, cut to the first 4 lines (the
	// fixtures' full frames make the fuzzer's minimisation crawl).
	if dir, err := testenv.FindSharedDICOM(); err == nil {
		for _, rel := range []string{"ct-head-5mm.jpll/I100.dcm", "robustness/JPGLosslessP14SV1_1s_1f_8b.dcm", "wg04/JPLL/MR1_JPLL", "robustness/JPEG-LL.dcm"} {
			if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
				continue
			}
			im := readImage(f, filepath.Join(dir, rel))
			src := im.frames[0]
			sof, sos := bytes.Index(src, []byte{0xFF, 0xC3}), bytes.Index(src, []byte{0xFF, 0xDA})
			if sof < 0 || sos < 0 || sof+7 > len(src) {
				continue
			}
			const lines = 4
			seed := bytes.Clone(src[:min(len(src), sos+lines*im.frame.Columns*im.frame.Samples)])
			binary.BigEndian.PutUint16(seed[sof+5:], lines)
			seed = append(seed, 0xFF, 0xD9)
			f.Add(seed, uint16(lines), uint16(im.frame.Columns), im.frame.Samples == 3, im.frame.BitsAllocated == 8)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, rows, cols uint16, rgb, eight bool) {
		fr := codec.Frame{Rows: int(rows), Columns: int(cols), Samples: 1, BitsAllocated: 16, BitsStored: 16}
		if rgb {
			fr.Samples = 3
		}
		if eight {
			fr.BitsAllocated, fr.BitsStored = 8, 8
		}
		if fr.Validate() != nil || fr.Size() > 1<<22 {
			return
		}
		dst := make([]byte, fr.Size())
		d, _ := codec.Lookup(uidJPEGLossless)
		err := d.Decode(dst, src, fr)
		if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) {
			t.Fatalf("error %q wraps neither ErrCorrupt nor ErrUnsupported", err)
		}
		if err == nil {
			again := make([]byte, fr.Size())
			if err := d.Decode(again, src, fr); err != nil || !bytes.Equal(dst, again) {
				t.Fatalf("second decode differs (%v)", err)
			}
		}
	})
}

// BenchmarkJPEGLossless decodes the 28 JPEG Lossless SV1 slices of
// ct-head-5mm.jpll (512×512, 16 bits allocated); bytes/s counts decoded
// bytes.
func BenchmarkJPEGLossless(b *testing.B) {
	names, err := filepath.Glob(filepath.Join(testenv.SharedDICOM(b), "ct-head-5mm.jpll", "*.dcm"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no ct-head-5mm.jpll files (%v)", err)
	}
	var ims []image
	size := 0
	for _, n := range names {
		im := readImage(b, n)
		ims = append(ims, im)
		size += im.frame.Size()
	}
	d, _ := codec.Lookup(uidJPEGLosslessSV1)
	dst := make([]byte, ims[0].frame.Size())
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, im := range ims {
			if err := d.Decode(dst[:im.frame.Size()], im.frames[0], im.frame); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestJPEGLosslessOwnEncoderVsDcmdjpeg checks the test encoder (and so
// the restart handling the other tests rely on) against dcmtk: it
// re-encodes a CT slice with restart intervals of one or more lines,
// splices the stream into the slice's DICOM file and has dcmdjpeg and
// this decoder decode it; both must give the original pixels.
func TestJPEGLosslessOwnEncoderVsDcmdjpeg(t *testing.T) {
	dcmdjpeg := testenv.Tool(t, "dcmdjpeg", "dcmtk")
	dir := testenv.SharedDICOM(t)
	path := filepath.Join(dir, "ct-head-5mm.jpll", "I100.dcm")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	px, err := dicomio.PixelDataBytes(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.LastIndex(file, px)
	if off < 0 {
		t.Fatal("encapsulated pixel data not found in the file")
	}
	ref := readImage(t, filepath.Join(dir, ctSlice))
	f := ref.frame
	plane := make([]uint16, f.Rows*f.Columns)
	for i := range plane {
		plane[i] = binary.LittleEndian.Uint16(ref.frames[0][2*i:])
	}
	for _, c := range []struct{ sv, ri int }{{1, 512}, {4, 512}, {6, 1024}, {7, 3 * 512}, {5, 127 * 512}} {
		name := "sv" + strconv.Itoa(c.sv) + "/ri" + strconv.Itoa(c.ri)
		t.Run(name, func(t *testing.T) {
			src := encodeLossless([][]uint16{plane}, llParams{width: f.Columns, height: f.Rows, precision: 16, predictor: c.sv, ri: c.ri})
			if len(src)%2 == 1 {
				src = append(src, 0)
			}
			dcm := bytes.Clone(file[:off])
			dcm = append(dcm, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0)
			dcm = binary.LittleEndian.AppendUint32(dcm, uint32(len(src)))
			dcm = append(dcm, src...)
			dcm = append(dcm, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
			tmp := t.TempDir()
			in, out := filepath.Join(tmp, "in.dcm"), filepath.Join(tmp, "out.dcm")
			if err := os.WriteFile(in, dcm, 0o644); err != nil {
				t.Fatal(err)
			}
			runTool(t, dcmdjpeg, in, out)
			compareSamples(t, name+" dcmdjpeg", readImage(t, out).frames[0], ref.frames[0], f, nil)
			got, err := decodeFrame(uidJPEGLossless, src, f)
			if err != nil {
				t.Fatal(err)
			}
			compareSamples(t, name, got, ref.frames[0], f, nil)
		})
	}
}
