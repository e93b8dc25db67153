package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

// The sequential DCT decoder is checked against three references: the
// uncompressed originals of the WG04 lossy images (PSNR), and dcmtk's
// dcmdjpeg (IJG library, islow IDCT, default upsampling) decoding the same
// streams, both the fixtures and streams made in the test by dcmcjpeg and,
// where installed, libjpeg-turbo's cjpeg (restart intervals, 4:2:0).

const (
	dctBaselineUID = "1.2.840.10008.1.2.4.50"
	dctExtendedUID = "1.2.840.10008.1.2.4.51"
)

// dctRun runs a command and fails the test with its output on error.
func dctRun(tb testing.TB, name string, args ...string) {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// dctImage is an instance's pixel description and its frames: compressed
// (from the encapsulated Pixel Data items) or native.
type dctImage struct {
	ts     string
	frame  codec.Frame
	frames [][]byte
}

// dctRead reads a DICOM file. Encapsulated frames are taken from the
// Pixel Data items: the first is the Basic Offset Table, then one
// fragment per frame (all fragments when there is one frame).
func dctRead(tb testing.TB, path string) dctImage {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	in, err := dicomio.ReadInstance(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	im := dctImage{ts: in.TransferSyntaxUID, frame: codec.Frame{
		Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, Signed: in.PixelRepresentation == 1,
	}}
	if !in.Encapsulated {
		nums := make([]int, in.NumberOfFrames)
		for i := range nums {
			nums[i] = i + 1
		}
		im.frames, err = dicomio.NativeFrames(bytes.NewReader(b), int64(len(b)), nums)
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		return im
	}
	pd, err := dicomio.PixelDataBytes(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	var items [][]byte
	for len(pd) > 0 {
		if len(pd) < 8 || binary.LittleEndian.Uint32(pd) != 0xE000FFFE {
			tb.Fatalf("%s: malformed encapsulated pixel data item", path)
		}
		n := int(binary.LittleEndian.Uint32(pd[4:]))
		if n > len(pd)-8 {
			tb.Fatalf("%s: item of %d bytes overruns the pixel data", path, n)
		}
		items = append(items, pd[8:8+n])
		pd = pd[8+n:]
	}
	if len(items) < 2 {
		tb.Fatalf("%s: no fragments", path)
	}
	switch {
	case in.NumberOfFrames == 1:
		im.frames = [][]byte{bytes.Join(items[1:], nil)}
	case len(items)-1 == in.NumberOfFrames:
		im.frames = items[1:]
	default:
		tb.Fatalf("%s: %d fragments for %d frames", path, len(items)-1, in.NumberOfFrames)
	}
	return im
}

// dctDecode decodes every frame of a JPEG DCT instance with the
// registered decoder and returns the frames concatenated.
func dctDecode(tb testing.TB, im dctImage) []byte {
	tb.Helper()
	d, ok := codec.Lookup(im.ts)
	if !ok {
		tb.Fatalf("no decoder registered for %s", im.ts)
	}
	var out []byte
	for i, src := range im.frames {
		dst := make([]byte, im.frame.Size())
		if err := d.Decode(dst, src, im.frame); err != nil {
			tb.Fatalf("frame %d: %v", i+1, err)
		}
		out = append(out, dst...)
	}
	return out
}

// dctSamples reads samples from 8-bit or 16-bit little-endian containers,
// as two's complement when signed.
func dctSamples(b []byte, bitsAllocated int, signed bool) []int {
	if bitsAllocated == 8 {
		s := make([]int, len(b))
		for i, v := range b {
			s[i] = int(v)
		}
		return s
	}
	s := make([]int, len(b)/2)
	for i := range s {
		v := binary.LittleEndian.Uint16(b[2*i:])
		if signed {
			s[i] = int(int16(v))
		} else {
			s[i] = int(v)
		}
	}
	return s
}

// dctDiff compares two sample sets and returns the largest absolute
// difference, how many samples differ and the PSNR (dB) for the given
// peak value.
func dctDiff(tb testing.TB, got, want []int, peak float64) (maxAbs, differ int, psnr float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%d samples decoded, the reference has %d", len(got), len(want))
	}
	var se float64
	for i := range got {
		d := got[i] - want[i]
		if d < 0 {
			d = -d
		}
		if d != 0 {
			differ++
		}
		maxAbs = max(maxAbs, d)
		se += float64(d) * float64(d)
	}
	mse := se / float64(len(got))
	if mse == 0 {
		return maxAbs, differ, math.Inf(1)
	}
	return maxAbs, differ, 10 * math.Log10(peak*peak/mse)
}

// dctDcmdjpeg decodes a compressed DICOM file with dcmdjpeg, without
// colour conversion and colour-by-pixel, and returns its frames
// concatenated with their description.
func dctDcmdjpeg(tb testing.TB, path string) ([]byte, codec.Frame) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "dcmdjpeg.dcm")
	dctRun(tb, testenv.Tool(tb, "dcmdjpeg", "dcmtk"), "+cn", "+px", path, out)
	im := dctRead(tb, out)
	return bytes.Join(im.frames, nil), im.frame
}

// dctVsDcmdjpeg decodes path with the registered decoder and with
// dcmdjpeg and requires the samples to differ by at most tol.
func dctVsDcmdjpeg(t *testing.T, path string, tol int) {
	t.Helper()
	im := dctRead(t, path)
	got := dctDecode(t, im)
	want, wf := dctDcmdjpeg(t, path)
	if wf.BitsAllocated != im.frame.BitsAllocated || wf.Samples != im.frame.Samples {
		t.Fatalf("dcmdjpeg wrote %d-bit containers with %d samples, the decoder %d with %d", wf.BitsAllocated, wf.Samples, im.frame.BitsAllocated, im.frame.Samples)
	}
	maxAbs, differ, _ := dctDiff(t, dctSamples(got, im.frame.BitsAllocated, false), dctSamples(want, wf.BitsAllocated, false), 1)
	t.Logf("%s: %d×%d×%d, %d frame(s): max |decoder − dcmdjpeg| = %d, %d of %d samples differ",
		t.Name(), im.frame.Columns, im.frame.Rows, im.frame.Samples, len(im.frames), maxAbs, differ, len(got)*8/im.frame.BitsAllocated)
	if maxAbs > tol {
		t.Errorf("%s: decoder differs from dcmdjpeg by up to %d (tolerance %d)", path, maxAbs, tol)
	}
}

func TestJPEGDCTRegistered(t *testing.T) {
	for _, uid := range []string{dctBaselineUID, dctExtendedUID} {
		d, ok := codec.Lookup(uid)
		if !ok || d.Decode == nil || !d.Lossy || d.Name == "" {
			t.Errorf("Lookup(%s) = %+v, %v; want a lossy decoder", uid, d, ok)
		}
	}
}

// TestJPEGDCTWG04 decodes the WG04 12-bit lossy MR images and compares
// them with their uncompressed originals and with dcmdjpeg.
//
// The PSNR bound: these images were coded by the WG04 vendors at moderate
// quality and measure 48.6 to 59.7 dB against their originals (peak
// 4095). 45 dB, an RMS error of about 23, leaves room for a different but
// accurate IDCT, yet fails a wrong IDCT scale, a misplaced block, a
// zig-zag error or a wrong level shift, which give well under 30 dB. The
// comparison with dcmdjpeg is the tight one.
func TestJPEGDCTWG04(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	for _, name := range []string{"MR1", "MR2", "MR3", "MR4"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "wg04", "JPLY", name+"_JPLY")
			im := dctRead(t, path)
			if im.ts != dctExtendedUID {
				t.Fatalf("transfer syntax %s, want JPEG Extended", im.ts)
			}
			got := dctDecode(t, im)
			ref := dctRead(t, filepath.Join(dir, "wg04", "REF", name+"_UNC"))
			if ref.frame.Rows != im.frame.Rows || ref.frame.Columns != im.frame.Columns {
				t.Fatalf("reference is %d×%d, the lossy image %d×%d", ref.frame.Columns, ref.frame.Rows, im.frame.Columns, im.frame.Rows)
			}
			maxAbs, _, psnr := dctDiff(t, dctSamples(got, 16, false), dctSamples(bytes.Join(ref.frames, nil), ref.frame.BitsAllocated, ref.frame.Signed), 4095)
			t.Logf("%s: vs original: max abs error %d, PSNR %.2f dB (peak 4095)", name, maxAbs, psnr)
			if psnr < 45 {
				t.Errorf("%s: PSNR %.2f dB against the original, want at least 45", name, psnr)
			}
			dctVsDcmdjpeg(t, path, 1)
		})
	}
}

// TestJPEGDCTRobustnessFixtures compares the 12-bit NM image and the 8-bit
// YCbCr baseline image with dcmdjpeg (no colour conversion).
func TestJPEGDCTRobustnessFixtures(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	for _, name := range []string{"JPEG-lossy.dcm", "SC_rgb_jpeg_dcmtk.dcm"} {
		t.Run(name, func(t *testing.T) {
			dctVsDcmdjpeg(t, filepath.Join(dir, "robustness", name), 1)
		})
	}
}

// TestJPEGDCTDcmcjpeg compresses native fixtures with dcmcjpeg (baseline
// and extended, 8 and 12 bits, 4:4:4, 4:2:2 and 4:1:1, several
// qualities) and compares the decoder with dcmdjpeg on each stream.
func TestJPEGDCTDcmcjpeg(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	dcmcjpeg := testenv.Tool(t, "dcmcjpeg", "dcmtk")
	cases := []struct {
		src  string
		args []string
		ts   string
		tol  int
	}{
		{"color-pl.dcm", []string{"+eb", "+s4"}, dctBaselineUID, 1},
		{"color-pl.dcm", []string{"+eb", "+s2"}, dctBaselineUID, 2},
		{"color-pl.dcm", []string{"+eb", "+n2", "+q", "40"}, dctBaselineUID, 2},
		{"color-pl.dcm", []string{"+eb", "+n1"}, dctBaselineUID, 2},
		{"color-pl.dcm", []string{"+ee", "+s2", "-ho"}, dctExtendedUID, 2},
		{"ExplVR_BigEnd.dcm", []string{"+eb", "+s2"}, dctBaselineUID, 2},
		{"ExplVR_BigEnd.dcm", []string{"+eb", "+np", "+q", "100"}, dctBaselineUID, 2},
		{"image_dfl.dcm", []string{"+eb", "-ho"}, dctBaselineUID, 1},
		{"image_dfl.dcm", []string{"+ee", "+q", "20"}, dctExtendedUID, 1},
		{"color-pl.dcm", []string{"+ee", "+bt", "+s2"}, dctExtendedUID, 2}, // 12-bit colour, 4:2:2
		{"color-pl.dcm", []string{"+ee", "+bt", "+n1", "+q", "60"}, dctExtendedUID, 2},
		{"image_dfl.dcm", []string{"+ee", "+bt"}, dctExtendedUID, 1},
		{"emri_small.dcm", []string{"+ee"}, dctExtendedUID, 1},
		{"emri_small.dcm", []string{"+ee", "+q", "3"}, dctExtendedUID, 1}, // 16-bit DQT entries
	}
	for _, c := range cases {
		name := strings.TrimSuffix(c.src, ".dcm") + strings.Join(c.args, "")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "c.dcm")
			dctRun(t, dcmcjpeg, append(append([]string{}, c.args...), filepath.Join(dir, "robustness", c.src), out)...)
			if ts := dctRead(t, out).ts; ts != c.ts {
				t.Fatalf("dcmcjpeg wrote transfer syntax %s, want %s", ts, c.ts)
			}
			dctVsDcmdjpeg(t, out, c.tol)
		})
	}
}

// dctTestPicture writes a w×h binary PNM picture (P5 grey, P6 colour)
// with smooth gradients, sharp edges and noise, and returns its path.
func dctTestPicture(tb testing.TB, w, h, channels int) string {
	tb.Helper()
	r := rand.New(rand.NewSource(int64(w*h*channels + 1)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "P%d\n%d %d\n255\n", map[int]int{1: 5, 3: 6}[channels], w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < channels; c++ {
				v := (x*(3+c) + y*(5-c)) % 256
				if (x/7+y/5+c)%4 == 0 {
					v = 255 - v
				}
				v += r.Intn(21) - 10
				b.WriteByte(byte(min(max(v, 0), 255)))
			}
		}
	}
	ext := map[int]string{1: ".pgm", 3: ".ppm"}[channels]
	p := filepath.Join(tb.TempDir(), "picture"+ext)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// dctCjpegRaw encodes a test picture with libjpeg-turbo's cjpeg and
// returns the path of the JPEG file; it skips the test when cjpeg is not
// installed (it is not part of dcmtk). A "-scans" argument is followed by
// the text of a scan script, written to a file here.
func dctCjpegRaw(tb testing.TB, w, h, channels int, args ...string) string {
	tb.Helper()
	cjpeg := testenv.Tool(tb, "cjpeg", "libjpeg-turbo-progs")
	dir := tb.TempDir()
	args = append([]string{}, args...)
	for i, a := range args {
		if a == "-scans" && i+1 < len(args) {
			script := filepath.Join(dir, "scans.txt")
			if err := os.WriteFile(script, []byte(args[i+1]), 0o644); err != nil {
				tb.Fatal(err)
			}
			args[i+1] = script
		}
	}
	jpg := filepath.Join(dir, "p.jpg")
	dctRun(tb, cjpeg, append(args, "-outfile", jpg, dctTestPicture(tb, w, h, channels))...)
	return jpg
}

// dctCjpeg encodes a test picture with cjpeg (see dctCjpegRaw) and wraps
// the stream in a DICOM file with dcmtk's img2dcm.
func dctCjpeg(tb testing.TB, w, h, channels int, args ...string) string {
	tb.Helper()
	jpg := dctCjpegRaw(tb, w, h, channels, args...)
	img2dcm := testenv.Tool(tb, "img2dcm", "dcmtk")
	dcm := filepath.Join(filepath.Dir(jpg), "p.dcm")
	dctRun(tb, img2dcm, "-i", "JPEG", jpg, dcm)
	return dcm
}

// TestJPEGDCTCjpeg covers what dcmcjpeg cannot make: restart intervals,
// 4:2:0 and 1×2 subsampling, odd image sizes, multiple scans.
func TestJPEGDCTCjpeg(t *testing.T) {
	testenv.SharedDICOM(t)
	cases := []struct {
		w, h, ch int
		args     []string
		tol      int
	}{
		{67, 45, 1, []string{"-restart", "1B"}, 1},
		{130, 75, 1, []string{"-restart", "1", "-quality", "95"}, 1},
		{101, 77, 3, []string{"-sample", "2x2", "-restart", "3B"}, 2},
		{101, 77, 3, []string{"-sample", "2x1", "-restart", "2"}, 2},
		{64, 50, 3, []string{"-sample", "1x2"}, 2},
		{33, 17, 3, []string{"-sample", "2x2", "-optimize"}, 2},
		{35, 9, 3, []string{"-sample", "1x1", "-restart", "5B", "-quality", "30"}, 1},
		{16, 16, 3, []string{"-sample", "2x2", "-quality", "100"}, 2},
		{3, 2, 3, []string{"-sample", "2x2"}, 2},                     // chroma 2 samples wide: replicated
		{37, 21, 1, []string{"-sample", "2x2", "-restart", "1B"}, 1}, // lone component: sampling factors ignored
		{57, 41, 3, []string{"-sample", "4x1"}, 2},
		{43, 37, 3, []string{"-sample", "4x2", "-restart", "2B"}, 2},
		{40, 37, 3, []string{"-sample", "1x4"}, 2},
		// Sequential streams with one scan per component (non-interleaved
		// MCUs of single blocks), or luma then both chroma components.
		{45, 37, 3, []string{"-sample", "2x2", "-scans", "0;\n1;\n2;\n"}, 2},
		{45, 37, 3, []string{"-sample", "2x1", "-restart", "1B", "-scans", "0;\n1 2;\n"}, 2},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dx%dx%d%s", c.w, c.h, c.ch, strings.Join(c.args, "")), func(t *testing.T) {
			dctVsDcmdjpeg(t, dctCjpeg(t, c.w, c.h, c.ch, c.args...), c.tol)
		})
	}
}

// dctFixtureFrame returns the first frame of a fixture.
func dctFixtureFrame(tb testing.TB, rel string) ([]byte, codec.Frame) {
	tb.Helper()
	im := dctRead(tb, filepath.Join(testenv.SharedDICOM(tb), rel))
	return im.frames[0], im.frame
}

// dctMustFail decodes src and requires an error wrapping want, returned
// promptly and without a panic.
func dctMustFail(t *testing.T, what string, src []byte, f codec.Frame, want error) {
	t.Helper()
	err := dctTry(t, what, src, f)
	if err == nil {
		t.Errorf("%s: decoded without error", what)
	} else if !errors.Is(err, want) {
		t.Errorf("%s: error %q does not wrap %q", what, err, want)
	}
}

// dctTry decodes src, turning a panic into a test failure and requiring
// the decoder to return within a second; it returns the decoder's error.
func dctTry(t *testing.T, what string, src []byte, f codec.Frame) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", what, r)
		}
	}()
	start := time.Now()
	err = codec.DecodeJPEGDCT(make([]byte, f.Size()), src, f)
	if d := time.Since(start); d > time.Second {
		t.Errorf("%s: decoding took %v", what, d)
	}
	if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) {
		t.Errorf("%s: error %q wraps neither ErrCorrupt nor ErrUnsupported", what, err)
	}
	return err
}

// dctSegments lists the offsets of the marker segments before the first
// SOS of a JPEG stream: marker code → offset of its 0xFF.
func dctSegments(src []byte) map[byte][]int {
	segs := map[byte][]int{}
	for p := 2; p+4 <= len(src) && src[p] == 0xFF; {
		m := src[p+1]
		segs[m] = append(segs[m], p)
		if m == 0xDA {
			break
		}
		p += 2 + int(binary.BigEndian.Uint16(src[p+2:]))
	}
	return segs
}

// dctCut returns src without the marker segment at offset p.
func dctCut(src []byte, p int) []byte {
	n := 2 + int(binary.BigEndian.Uint16(src[p+2:]))
	return append(append([]byte{}, src[:p]...), src[p+n:]...)
}

func TestJPEGDCTCorrupt(t *testing.T) {
	for _, rel := range []string{"wg04/JPLY/MR4_JPLY", "robustness/SC_rgb_jpeg_dcmtk.dcm"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			src, f := dctFixtureFrame(t, rel)
			if err := dctTry(t, "intact", src, f); err != nil {
				t.Fatalf("intact stream: %v", err)
			}
			eoi := bytes.LastIndex(src, []byte{0xFF, 0xD9})
			if eoi < 0 {
				t.Fatal("no EOI marker")
			}
			// Every cut before the EOI loses header or entropy-coded data.
			step := max(1, eoi/400)
			for n := 0; n < eoi; n += step {
				dctMustFail(t, fmt.Sprintf("cut at %d of %d", n, len(src)), src[:n], f, codec.ErrCorrupt)
			}
			for n := max(0, eoi-64); n < eoi; n++ {
				dctMustFail(t, fmt.Sprintf("cut at %d of %d", n, len(src)), src[:n], f, codec.ErrCorrupt)
			}
			// Only the EOI missing: the image is whole.
			if err := dctTry(t, "no EOI", src[:eoi], f); err != nil {
				t.Errorf("stream without its EOI: %v", err)
			}
			segs := dctSegments(src)
			for _, m := range []byte{0xC4, 0xDB} {
				if len(segs[m]) == 0 {
					t.Fatalf("no %02X segment", m)
				}
				b := src
				for i := len(segs[m]) - 1; i >= 0; i-- {
					b = dctCut(b, segs[m][i])
				}
				dctMustFail(t, fmt.Sprintf("without %02X segments", m), b, f, codec.ErrCorrupt)
			}
			sof := segs[0xC0]
			if len(sof) == 0 {
				sof = segs[0xC1]
			}
			for _, m := range []byte{0xC2, 0xC3, 0xC5, 0xC9, 0xCA} {
				b := bytes.Clone(src)
				b[sof[0]+1] = m
				dctMustFail(t, fmt.Sprintf("SOF marker %02X", m), b, f, codec.ErrUnsupported)
			}
			wrong := f
			wrong.Rows++
			dctMustFail(t, "frame one row taller", src, wrong, codec.ErrCorrupt)
			if f.BitsAllocated == 16 {
				wrong = f
				wrong.BitsAllocated, wrong.BitsStored = 8, 8
				dctMustFail(t, "12-bit stream in 8-bit containers", src, wrong, codec.ErrCorrupt)
			}
			dctMustFail(t, "empty", nil, f, codec.ErrCorrupt)
			dctMustFail(t, "not JPEG", bytes.Repeat([]byte{0xFF}, 100), f, codec.ErrCorrupt)
			// Random byte changes: any outcome but a panic, an error of
			// another kind or a slow decode.
			r := rand.New(rand.NewSource(3))
			for i := 0; i < 300; i++ {
				b := bytes.Clone(src)
				for j := r.Intn(4); j >= 0; j-- {
					b[r.Intn(len(b))] ^= byte(1 + r.Intn(255))
				}
				dctTry(t, fmt.Sprintf("mutation %d", i), b, f)
			}
		})
	}
}

// TestJPEGDCTUnsupportedProcesses checks progressive and arithmetic-coded
// streams, made by cjpeg, are refused as unsupported.
func TestJPEGDCTUnsupportedProcesses(t *testing.T) {
	f := codec.Frame{Rows: 24, Columns: 40, Samples: 3, BitsAllocated: 8, BitsStored: 8}
	for _, args := range [][]string{{"-progressive"}, {"-arithmetic"}, {"-progressive", "-arithmetic"}} {
		t.Run(strings.Join(args, ""), func(t *testing.T) {
			src, err := os.ReadFile(dctCjpegRaw(t, f.Columns, f.Rows, f.Samples, args...))
			if err != nil {
				t.Fatal(err)
			}
			dctMustFail(t, strings.Join(args, " "), src, f, codec.ErrUnsupported)
		})
	}
}

// dctFrameOf derives the Frame a stream decodes to from its SOF0/SOF1
// header, for fuzzing; ok is false for anything else or a large image.
func dctFrameOf(src []byte) (f codec.Frame, ok bool) {
	for p := 2; p+4 <= len(src) && src[p] == 0xFF; {
		m := src[p+1]
		n := int(binary.BigEndian.Uint16(src[p+2:]))
		if (m == 0xC0 || m == 0xC1) && p+10 <= len(src) {
			f.BitsStored = int(src[p+4])
			f.Rows = int(binary.BigEndian.Uint16(src[p+5:]))
			f.Columns = int(binary.BigEndian.Uint16(src[p+7:]))
			f.Samples = int(src[p+9])
			f.BitsAllocated = 8
			if f.BitsStored > 8 {
				f.BitsAllocated = 16
			}
			return f, f.Validate() == nil && f.Rows*f.Columns <= 1<<20
		}
		p += 2 + n
	}
	return f, false
}

func FuzzJPEGDCT(f *testing.F) {
	dir := testenv.SharedDICOM(f)
	// Small seeds: the fuzzer minimises every new interesting input, which
	// takes long for frames of tens of kilobytes. The 12-bit MR frame
	// contributes its headers and the start of its entropy-coded data.
	for _, seed := range []struct {
		rel string
		max int
	}{
		{"robustness/SC_rgb_jpeg_dcmtk.dcm", 1 << 20},
		{"robustness/JPEG-lossy.dcm", 1 << 20},
		{"wg04/JPLY/MR4_JPLY", 2048},
	} {
		im := dctRead(f, filepath.Join(dir, seed.rel))
		src := im.frames[0]
		f.Add(src[:min(len(src), seed.max)])
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		fr, ok := dctFrameOf(src)
		if !ok {
			fr = codec.Frame{Rows: 8, Columns: 8, Samples: 1, BitsAllocated: 8, BitsStored: 8}
		}
		err := codec.DecodeJPEGDCT(make([]byte, fr.Size()), src, fr)
		if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) {
			t.Fatalf("error %q wraps neither ErrCorrupt nor ErrUnsupported", err)
		}
	})
}

// BenchmarkJPEGDCT decodes the WG04 12-bit lossy MR frames, the 12-bit NM
// fixture and the 8-bit YCbCr fixture; bytes are decoded bytes.
func BenchmarkJPEGDCT(b *testing.B) {
	dir := testenv.SharedDICOM(b)
	for _, rel := range []string{"wg04/JPLY/MR1_JPLY", "wg04/JPLY/MR2_JPLY", "wg04/JPLY/MR3_JPLY", "wg04/JPLY/MR4_JPLY",
		"robustness/JPEG-lossy.dcm", "robustness/SC_rgb_jpeg_dcmtk.dcm"} {
		im := dctRead(b, filepath.Join(dir, rel))
		b.Run(filepath.Base(rel), func(b *testing.B) {
			dst := make([]byte, im.frame.Size())
			b.SetBytes(int64(len(dst)))
			b.ReportAllocs()
			for b.Loop() {
				if err := codec.DecodeJPEGDCT(dst, im.frames[0], im.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestJPEGDCTWideContainers decodes an 8-bit stream into 16-bit
// containers: the same samples, zero-extended.
func TestJPEGDCTWideContainers(t *testing.T) {
	src, f := dctFixtureFrame(t, "robustness/SC_rgb_jpeg_dcmtk.dcm")
	narrow := make([]byte, f.Size())
	if err := codec.DecodeJPEGDCT(narrow, src, f); err != nil {
		t.Fatal(err)
	}
	wf := f
	wf.BitsAllocated = 16
	wide := make([]byte, wf.Size())
	if err := codec.DecodeJPEGDCT(wide, src, wf); err != nil {
		t.Fatal(err)
	}
	for i, v := range narrow {
		if got := binary.LittleEndian.Uint16(wide[2*i:]); got != uint16(v) {
			t.Fatalf("sample %d: %d in 16-bit containers, %d in 8-bit ones", i, got, v)
		}
	}
}

// TestJPEGDCTSequence decodes frames of different sizes and layouts in
// turn, twice, and requires identical results: nothing carries over from
// one frame to the next (decoders and planes are recycled).
func TestJPEGDCTSequence(t *testing.T) {
	rels := []string{"wg04/JPLY/MR2_JPLY", "robustness/SC_rgb_jpeg_dcmtk.dcm", "wg04/JPLY/MR4_JPLY", "robustness/JPEG-lossy.dcm"}
	type frame struct {
		src []byte
		f   codec.Frame
	}
	var frames []frame
	for _, rel := range rels {
		src, f := dctFixtureFrame(t, rel)
		frames = append(frames, frame{src, f})
	}
	var first [][]byte
	for pass := 0; pass < 2; pass++ {
		for i, fr := range frames {
			dst := make([]byte, fr.f.Size())
			if err := codec.DecodeJPEGDCT(dst, fr.src, fr.f); err != nil {
				t.Fatalf("%s: %v", rels[i], err)
			}
			if pass == 0 {
				first = append(first, dst)
				// A corrupt frame in between leaves planes half written.
				_ = codec.DecodeJPEGDCT(make([]byte, fr.f.Size()), fr.src[:len(fr.src)/2], fr.f)
			} else if !bytes.Equal(dst, first[i]) {
				t.Errorf("%s: decoding again gives different samples", rels[i])
			}
		}
	}
}

// TestJPEGDCTThroughDecodePixels checks the decoder as dicomio reaches it:
// DecodePixels gives the same samples as the decoder on the frames read
// here.
func TestJPEGDCTThroughDecodePixels(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	for _, rel := range []string{"wg04/JPLY/MR1_JPLY", "robustness/JPEG-lossy.dcm", "robustness/SC_rgb_jpeg_dcmtk.dcm"} {
		path := filepath.Join(dir, rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, px, err := dicomio.DecodePixels(data)
		if err != nil {
			t.Fatalf("%s: DecodePixels: %v", rel, err)
		}
		if want := dctDecode(t, dctRead(t, path)); !bytes.Equal(px.Data, want) {
			t.Errorf("%s: DecodePixels gives other samples than the decoder", rel)
		}
	}
}
