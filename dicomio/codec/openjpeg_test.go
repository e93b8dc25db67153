//go:build cgo && openjpeg

package codec_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

const (
	tsJ2KLossless = "1.2.840.10008.1.2.4.90"
	tsJ2K         = "1.2.840.10008.1.2.4.91"
)

func TestOpenJPEGRegistered(t *testing.T) {
	for uid, lossy := range map[string]bool{
		tsJ2KLossless: false, tsJ2K: true,
		"1.2.840.10008.1.2.4.201": false, "1.2.840.10008.1.2.4.202": false, "1.2.840.10008.1.2.4.203": true,
	} {
		d, ok := codec.Lookup(uid)
		if !ok {
			t.Errorf("no decoder for %s", uid)
			continue
		}
		if d.Lossy != lossy || !strings.Contains(d.Name, "OpenJPEG") {
			t.Errorf("%s: decoder %q lossy=%v, want OpenJPEG lossy=%v", uid, d.Name, d.Lossy, lossy)
		}
	}
}

func TestOpenJPEGLossless(t *testing.T) {
	for _, c := range cgoLosslessCases(t, "J2KR", "ct-head-5mm.j2kr",
		[2]string{"transfer-syntaxes/In/9.dcm", "transfer-syntaxes/In/1.dcm"},
		[2]string{"robustness/emri_small_jpeg_2k_lossless.dcm", "robustness/emri_small.dcm"},
	) {
		t.Run(c[0], func(t *testing.T) { cgoCompareExact(t, c[0], c[1]) })
	}
}

// TestOpenJPEGLossy compares the WG04 lossy JPEG 2000 images with their
// originals. The bound: PSNR against the full BitsStored range of at
// least 50 dB, i.e. an RMS error under 0.32% of that range, far tighter
// than a decoder bug (wrong sign, wrong shift, wrong wavelet, swapped
// rows) could meet, and looser than the measured 53-77 dB of these
// encodings, whose quantisation is the encoder's choice. Each image must
// also differ from the original somewhere, or the test would not show
// that the lossy path ran.
func TestOpenJPEGLossy(t *testing.T) {
	for _, n := range []string{"CT1", "CT2", "MR1", "MR2", "MR3", "MR4"} {
		rel, ref := "wg04/J2KI/"+n+"_J2KI", "wg04/REF/"+n+"_UNC"
		t.Run(rel, func(t *testing.T) {
			e := cgoReadEncoded(t, rel)
			if e.in.TransferSyntaxUID != tsJ2K {
				t.Fatalf("transfer syntax %s", e.in.TransferSyntaxUID)
			}
			got := cgoDecodeAll(t, rel, e)
			_, want := cgoReadNative(t, ref)
			g, w := cgoSamples(got[0], e.frame), cgoSamples(want[0], e.frame)
			var se float64
			differ := false
			for i := range w {
				d := float64(g[i] - w[i])
				se += d * d
				differ = differ || d != 0
			}
			peak := float64(int64(1)<<e.frame.BitsStored - 1)
			psnr := 10 * math.Log10(peak*peak/(se/float64(len(w))))
			t.Logf("%s: PSNR %.1f dB (peak %v)", rel, psnr, peak)
			if !differ {
				t.Errorf("lossy image equals the original exactly")
			}
			if psnr < 50 {
				t.Errorf("PSNR %.1f dB < 50 dB", psnr)
			}
		})
	}
}

// j2kFrame returns the codestream of the first WG04 CT1 lossless frame.
func j2kFrame(t testing.TB) ([]byte, codec.Frame) {
	e := cgoReadEncoded(t, "wg04/J2KR/CT1_J2KR")
	return e.frames[0], e.frame
}

func TestOpenJPEGJP2Wrapper(t *testing.T) {
	cs, f := j2kFrame(t)
	box := func(typ string, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		return append(append(b, typ...), body...)
	}
	jp2 := box("jP  ", []byte{0x0D, 0x0A, 0x87, 0x0A})
	jp2 = append(jp2, box("ftyp", []byte("jp2 \x00\x00\x00\x00jp2 "))...)
	jp2 = append(jp2, box("jp2c", cs)...)
	want := make([]byte, f.Size())
	if err := codec.DecodeJPEG2000(want, cs, f); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, f.Size())
	if err := codec.DecodeJPEG2000(got, jp2, f); err != nil {
		t.Fatalf("JP2-wrapped: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Error("JP2-wrapped codestream decodes differently")
	}
	if err := codec.DecodeJPEG2000(got, jp2[:30], f); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("truncated JP2: %v, want ErrCorrupt", err)
	}
}

func TestOpenJPEGFrameMismatch(t *testing.T) {
	cs, f := j2kFrame(t)
	cgoFrameMismatch(t, codec.DecodeJPEG2000, cs, f)
	// A SIZ that declares a huge image is refused before decoding.
	huge := bytes.Clone(cs)
	binary.BigEndian.PutUint32(huge[8:], 1<<30)
	binary.BigEndian.PutUint32(huge[12:], 1<<30)
	if err := codec.DecodeJPEG2000(make([]byte, f.Size()), huge, f); !errors.Is(err, codec.ErrCorrupt) ||
		!strings.Contains(err.Error(), "1073741824×1073741824") {
		t.Errorf("huge SIZ: %v", err)
	}
	// Subsampled components are unsupported, not corrupt.
	sub := bytes.Clone(cs)
	sub[4+38+1] = 2 // XRsiz of component 0
	if err := codec.DecodeJPEG2000(make([]byte, f.Size()), sub, f); !errors.Is(err, codec.ErrUnsupported) {
		t.Errorf("subsampled: %v, want ErrUnsupported", err)
	}
	if err := codec.DecodeJPEG2000(make([]byte, f.Size()-1), cs, f); err == nil {
		t.Error("short destination accepted")
	}
}

func TestOpenJPEGCorrupt(t *testing.T) {
	cs, f := j2kFrame(t)
	dst := make([]byte, f.Size())
	for name, b := range cgoMutations(cs) {
		err := codec.DecodeJPEG2000(dst, b, f)
		t.Logf("%s: %v", name, err)
		if strings.HasPrefix(name, "truncated") || name == "empty" || name == "two bytes" || name == "last 64 bytes dropped" {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("%s: %v, want ErrCorrupt", name, err)
			}
		}
		// A flipped byte inside code-block data need not be detectable
		// (JPEG 2000 has no checksum); the call must only return.
	}
}

// FuzzOpenJPEG feeds arbitrary codestreams to the decoder with the frame
// of the seed they came from; it must return, never crash.
func FuzzOpenJPEG(f *testing.F) {
	dir := testenv.SharedDICOM(f)
	for _, rel := range []string{"wg04/J2KR/CT1_J2KR", "wg04/J2KI/MR1_J2KI", "robustness/emri_small_jpeg_2k_lossless.dcm"} {
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			f.Fatal(err)
		}
		e := cgoReadEncoded(f, rel)
		fr := e.frame
		f.Add(e.frames[0], uint16(fr.Rows), uint16(fr.Columns), uint8(fr.BitsStored))
	}
	f.Fuzz(func(t *testing.T, src []byte, rows, cols uint16, bits uint8) {
		fr := codec.Frame{Rows: int(rows%1024) + 1, Columns: int(cols%1024) + 1, Samples: 1, BitsAllocated: 16, BitsStored: int(bits%16) + 1}
		if err := codec.DecodeJPEG2000(make([]byte, fr.Size()), src, fr); err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

// htj2kStream is a 33×21 12-bit HTJ2K (ITU-T T.814) codestream of the
// image (x*97 + y*131 + x*y) mod 4096, made with OpenJPH's ojph_compress
// 0.9 (-num_comps 1 -bit_depth 12 -signed false -reversible true).
// OpenJPEG cannot encode HTJ2K, and no DICOM fixture uses it.
const htj2kStream = "ff4fff5100294000000000210000001500000000000000000000002100000015000000000000000000010b0101ff5000" +
	"08000200000008ff52000c00020001000504044001ff5c00132070787880787880787880787878707078ff6400160001" +
	"4f70656e4a50482056657220302e392e302eff90000a0000000001c10001ff93c001380783e500a23400c00096000544" +
	"0004c0b8028774000cba7bfe00e23400eafa03077400c000aa800155000138e1d103f5effe014734004d82b8d1000900" +
	"f6360095c39100e23400c000b4a0005b900016b0eb0b1485eb910042eda76a01fa7c6227d70021b8f0f2f5b56ca5a524" +
	"0815fb6bc40cf900a0b4bdcce178c4f75b0003a0e40bcf6db87138000a617919e101fb9962085700c000ba5800175300" +
	"02e8401758b12d383a60bf2d271f6dd60ff8cfdb5eeccd4d6f1834f0e495ae476180858414835c0017fc5cc3b6c08d57" +
	"ed37889b7c0e67f03107f801433cae4deee480009d820fb85173c10538746350015fe0156f2ff0e60ffc571f7bd0cf1e" +
	"f8071edb17bee1e48968f8a04f0c14c35b00c00176f0005dac000babff7dff7f7ffefddf7fff79bfff7cf7efff7def3f" +
	"ff7bcfbfff617ffdff4fff7eff777ffea63801c0c531f8196120b8b2434d8c1480b401ff613fff77df3ffdeb3ffed73f" +
	"fee33ff8877fff737ffef1efdfff78bffef71fff75fee6310d818c133c0b2c00342305388cc0b301ff77ff7fff7ffee7" +
	"7fff7f3fff7b3fff7b7ffcefff7c3fff77fea6300e09a1b21a07cb2844ed9414c0b201ffd9"

// rctStream is a 17×11 8-bit RGB J2K codestream of R = 15x mod 256,
// G = 23y mod 256, B = (7xy + 40) mod 256, coded with the reversible
// colour transform (opj_compress 2.5.0 -mct 1 -n 2 from a PPM).
const rctStream = "ff4fff51002f0000000000110000000b0000000000000000000000110000000b00000000000000000003070101070101" +
	"070101ff52000c00000001010104040001ff5c00074040484850ff640025000143726561746564206279204f70656e4a" +
	"5045472076657273696f6e20322e352e30ff90000a0000000001720001ff93cfb4dc111db652f6fc8b926e49bcb1b128" +
	"4b129259f5cfc607757a6000125a6cadc5d3b73d425a0fcb152c54ecdb6279d3532ddd9df7b931457fdf81b823bc754a" +
	"4c5e10501dbb903bc9a79999b7d23914a47974929eb37d90c1849c0ff2335fb78936c222c31ec0df4e9e2bcf99100003" +
	"42ba87df8198012085a70259728ca581de1b3c3b81ceb156fa38b6d9ec114116ff711d38b257b8e17079c0d4bfbb4948" +
	"4bea912ab42d90187fc3ea1f87d44507d43e4b62bf26f2b4940862c987b9b0ba8a028f070a9ed47027f8eaddd71f5d2b" +
	"7f2f2edc02bd093fe61685f48c6533adb7f674e702be38123ae515e31d770ecb50007f1f78a0784c538117fd4e771a4b" +
	"2e7b17e5b9fd16b2629132cb5dfcb8b93bb3cfc0667e0331f80a804b62bf26f2b4940862c5be527079a78e23bd0e0745" +
	"ff7fff7f2f2ed339905b560aa402787870585916361faea21ab52e46031f78a0784c5375c44948b8da7e36bf6454def8" +
	"88bf80ffd9"

func cgoUnhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenJPEGHTJ2K decodes a High-Throughput JPEG 2000 codestream (Rsiz
// bit 14 set) through the decoder registered for 1.2.840.10008.1.2.4.201.
func TestOpenJPEGHTJ2K(t *testing.T) {
	src := cgoUnhex(t, htj2kStream)
	if binary.BigEndian.Uint16(src[6:])&0x4000 == 0 {
		t.Fatal("test stream is not marked HTJ2K in Rsiz")
	}
	d, ok := codec.Lookup("1.2.840.10008.1.2.4.201")
	if !ok {
		t.Fatal("no HTJ2K decoder")
	}
	const w, h = 33, 21
	f := codec.Frame{Rows: h, Columns: w, Samples: 1, BitsAllocated: 16, BitsStored: 12}
	dst := make([]byte, f.Size())
	if err := d.Decode(dst, src, f); err != nil {
		t.Fatal(err)
	}
	for y := range h {
		for x := range w {
			got := binary.LittleEndian.Uint16(dst[2*(y*w+x):])
			if want := uint16((x*97 + y*131 + x*y) % 4096); got != want {
				t.Fatalf("(%d,%d) = %d, want %d", x, y, got, want)
			}
		}
	}
}

// TestOpenJPEGColourTransform: a stream coded with the reversible colour
// transform decodes to interleaved R, G, B (OpenJPEG inverts the RCT).
func TestOpenJPEGColourTransform(t *testing.T) {
	const w, h = 17, 11
	f := codec.Frame{Rows: h, Columns: w, Samples: 3, BitsAllocated: 8, BitsStored: 8}
	dst := make([]byte, f.Size())
	if err := codec.DecodeJPEG2000(dst, cgoUnhex(t, rctStream), f); err != nil {
		t.Fatal(err)
	}
	for y := range h {
		for x := range w {
			i := 3 * (y*w + x)
			want := [3]byte{byte(x * 15), byte(y * 23), byte(x*y*7 + 40)}
			if got := [3]byte(dst[i : i+3]); got != want {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

// BenchmarkOpenJPEG decodes the first ct-head-5mm.j2kr frame; bytes/s is
// decoded output.
func BenchmarkOpenJPEG(b *testing.B) {
	e := cgoReadEncoded(b, "ct-head-5mm.j2kr/I10.dcm")
	dst := make([]byte, e.frame.Size())
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		if err := codec.DecodeJPEG2000(dst, e.frames[0], e.frame); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenJPEGDecodePixels runs JPEG 2000 instances through
// dicomio.DecodePixels.
func TestOpenJPEGDecodePixels(t *testing.T) {
	cgoDecodePixelsEqual(t, "transfer-syntaxes/In/9.dcm", "transfer-syntaxes/In/1.dcm")
	cgoDecodePixelsEqual(t, "robustness/emri_small_jpeg_2k_lossless.dcm", "robustness/emri_small.dcm")
	cgoDecodePixelsEqual(t, "wg04/J2KR/MR2_J2KR", "wg04/REF/MR2_UNC")
}
