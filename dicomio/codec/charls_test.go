//go:build cgo && charls

package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

const (
	tsJLSLossless = "1.2.840.10008.1.2.4.80"
	tsJLSNear     = "1.2.840.10008.1.2.4.81"
)

func TestCharLSRegistered(t *testing.T) {
	for uid, lossy := range map[string]bool{tsJLSLossless: false, tsJLSNear: true} {
		d, ok := codec.Lookup(uid)
		if !ok {
			t.Errorf("no decoder for %s", uid)
			continue
		}
		if d.Lossy != lossy || !strings.Contains(d.Name, "CharLS") {
			t.Errorf("%s: decoder %q lossy=%v, want CharLS lossy=%v", uid, d.Name, d.Lossy, lossy)
		}
	}
}

func TestCharLSLossless(t *testing.T) {
	for _, c := range cgoLosslessCases(t, "JLSL", "ct-head-5mm.jlsl",
		[2]string{"transfer-syntaxes/In/7.dcm", "transfer-syntaxes/In/1.dcm"},
		[2]string{"transfer-syntaxes/In/8.dcm", "transfer-syntaxes/In/1.dcm"},
		[2]string{"robustness/emri_small_jpeg_ls_lossless.dcm", "robustness/emri_small.dcm"},
	) {
		t.Run(c[0], func(t *testing.T) { cgoCompareExact(t, c[0], c[1]) })
	}
}

// jlsNear returns NEAR from the first start-of-scan segment of a JPEG-LS
// stream (T.87 §C.2.3: FFDA, Ls, Ns, Ns×(Ci, Tmi), NEAR, ILV, Al|Ah),
// walking the marker segments that precede it.
func jlsNear(t *testing.T, b []byte) int {
	t.Helper()
	i := 2 // after SOI
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			t.Fatalf("no marker at offset %d", i)
		}
		m, l := b[i+1], int(binary.BigEndian.Uint16(b[i+2:]))
		if m == 0xDA {
			ns := int(b[i+4])
			return int(b[i+5+2*ns])
		}
		i += 2 + l
	}
	t.Fatal("no SOS segment")
	return 0
}

// TestCharLSNearLossless checks the WG04 near-lossless images against
// their originals: T.87 guarantees |decoded − original| ≤ NEAR for every
// sample, with NEAR read from the stream; the bound is exact, not a
// tolerance. NEAR must be positive, or the test would not exercise the
// near-lossless path.
func TestCharLSNearLossless(t *testing.T) {
	for _, n := range []string{"CT1", "CT2", "MR1", "MR2", "MR3", "MR4"} {
		rel, ref := "wg04/JLSN/"+n+"_JLSN", "wg04/REF/"+n+"_UNC"
		t.Run(rel, func(t *testing.T) {
			e := cgoReadEncoded(t, rel)
			if e.in.TransferSyntaxUID != tsJLSNear {
				t.Fatalf("transfer syntax %s", e.in.TransferSyntaxUID)
			}
			near := jlsNear(t, e.frames[0])
			if near <= 0 {
				t.Fatalf("NEAR = %d", near)
			}
			got := cgoDecodeAll(t, rel, e)
			_, want := cgoReadNative(t, ref)
			g, w := cgoSamples(got[0], e.frame), cgoSamples(want[0], e.frame)
			worst, differ := int64(0), 0
			for i := range w {
				d := g[i] - w[i]
				if d < 0 {
					d = -d
				}
				worst = max(worst, d)
				if d != 0 {
					differ++
				}
			}
			t.Logf("%s: NEAR %d, max abs error %d, %d of %d samples differ", rel, near, worst, differ, len(w))
			if worst > int64(near) {
				t.Errorf("max abs error %d > NEAR %d", worst, near)
			}
			if differ == 0 {
				t.Error("near-lossless image equals the original exactly")
			}
		})
	}
}

// jlsFrame returns the stream of the first WG04 CT1 lossless frame.
func jlsFrame(t testing.TB) ([]byte, codec.Frame) {
	e := cgoReadEncoded(t, "wg04/JLSL/CT1_JLSL")
	return e.frames[0], e.frame
}

func TestCharLSFrameMismatch(t *testing.T) {
	src, f := jlsFrame(t)
	cgoFrameMismatch(t, codec.DecodeJPEGLS, src, f)
	if err := codec.DecodeJPEGLS(make([]byte, f.Size()-1), src, f); err == nil {
		t.Error("short destination accepted")
	}
}

func TestCharLSCorrupt(t *testing.T) {
	src, f := jlsFrame(t)
	dst := make([]byte, f.Size())
	for name, b := range cgoMutations(src) {
		err := codec.DecodeJPEGLS(dst, b, f)
		t.Logf("%s: %v", name, err)
		if strings.HasPrefix(name, "truncated") || name == "empty" || name == "two bytes" || name == "last 64 bytes dropped" {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("%s: %v, want ErrCorrupt", name, err)
			}
		}
		if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) {
			t.Errorf("%s: %v wraps neither ErrCorrupt nor ErrUnsupported", name, err)
		}
	}
}

// FuzzCharLS feeds arbitrary streams to the decoder; it must return,
// never crash.
func FuzzCharLS(f *testing.F) {
	dir := testenv.SharedDICOM(f)
	for _, rel := range []string{"wg04/JLSL/CT1_JLSL", "wg04/JLSN/MR1_JLSN", "robustness/emri_small_jpeg_ls_lossless.dcm"} {
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			f.Fatal(err)
		}
		e := cgoReadEncoded(f, rel)
		fr := e.frame
		f.Add(e.frames[0], uint16(fr.Rows), uint16(fr.Columns), uint8(fr.BitsStored), false)
	}
	f.Fuzz(func(t *testing.T, src []byte, rows, cols uint16, bits uint8, colour bool) {
		fr := codec.Frame{Rows: int(rows%1024) + 1, Columns: int(cols%1024) + 1, Samples: 1, BitsAllocated: 16, BitsStored: int(bits%16) + 1}
		if colour {
			fr.Samples, fr.BitsAllocated, fr.BitsStored = 3, 8, 8
		}
		dst := make([]byte, fr.Size())
		if err := codec.DecodeJPEGLS(dst, bytes.Clone(src), fr); err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

// BenchmarkCharLS decodes the first ct-head-5mm.jlsl frame; bytes/s is
// decoded output.
func BenchmarkCharLS(b *testing.B) {
	e := cgoReadEncoded(b, "ct-head-5mm.jlsl/I10.dcm")
	dst := make([]byte, e.frame.Size())
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		if err := codec.DecodeJPEGLS(dst, e.frames[0], e.frame); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCharLSDecodePixels runs JPEG-LS instances through
// dicomio.DecodePixels.
func TestCharLSDecodePixels(t *testing.T) {
	cgoDecodePixelsEqual(t, "transfer-syntaxes/In/7.dcm", "transfer-syntaxes/In/1.dcm")
	cgoDecodePixelsEqual(t, "transfer-syntaxes/In/8.dcm", "transfer-syntaxes/In/1.dcm")
	cgoDecodePixelsEqual(t, "robustness/emri_small_jpeg_ls_lossless.dcm", "robustness/emri_small.dcm")
	cgoDecodePixelsEqual(t, "wg04/JLSL/MR1_JLSL", "wg04/REF/MR1_UNC")
}
