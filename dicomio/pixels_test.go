package dicomio

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

// decodeFile decodes one fixture. A syntax without a decoder in this
// build skips the test (naming the missing decoder), unless
// RADTRIAGE_REQUIRE_CODECS=1.
func decodeFile(t testing.TB, path string) (*Instance, *Pixels) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, p, err := DecodePixels(b)
	if errors.Is(err, ErrUnsupportedTransferSyntax) {
		if os.Getenv("RADTRIAGE_REQUIRE_CODECS") == "1" {
			t.Fatalf("%s: %v (RADTRIAGE_REQUIRE_CODECS=1)", filepath.Base(path), err)
		}
		t.Skipf("skipping %s: %v", filepath.Base(path), err)
	}
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return in, p
}

// samples returns every frame's values as Int32 gives them.
func samples(t testing.TB, p *Pixels) [][]int32 {
	t.Helper()
	out := make([][]int32, p.Frames)
	for i := range out {
		out[i] = make([]int32, p.Rows*p.Columns*p.Samples)
		if err := p.Int32(i, out[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	return out
}

// sameGeometry fails unless got and want describe the same image.
func sameGeometry(t testing.TB, got, want *Pixels) {
	t.Helper()
	if got.Rows != want.Rows || got.Columns != want.Columns || got.Samples != want.Samples || got.Frames != want.Frames {
		t.Fatalf("image %d×%d×%d samples, %d frames; want %d×%d×%d, %d frames",
			got.Columns, got.Rows, got.Samples, got.Frames, want.Columns, want.Rows, want.Samples, want.Frames)
	}
}

// equalPixels fails with the first differing sample unless got and want
// hold the same values.
func equalPixels(t testing.TB, got, want *Pixels) {
	t.Helper()
	sameGeometry(t, got, want)
	g, w := samples(t, got), samples(t, want)
	for f := range g {
		for i := range g[f] {
			if g[f][i] != w[f][i] {
				t.Fatalf("frame %d sample %d (row %d, column %d) is %d, want %d",
					f, i, i/want.Samples/want.Columns, i/want.Samples%want.Columns, g[f][i], w[f][i])
			}
		}
	}
}

func TestDecodeTransferSyntaxes(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "transfer-syntaxes", "In")
	_, ref := decodeFile(t, filepath.Join(dir, "1.dcm"))
	for i := 2; i <= 9; i++ {
		name := fmt.Sprintf("%d.dcm", i)
		t.Run(name, func(t *testing.T) {
			in, p := decodeFile(t, filepath.Join(dir, name))
			t.Logf("%s: %s", name, in.TransferSyntaxUID)
			equalPixels(t, p, ref)
		})
	}
}

// bySOP decodes every instance in dir with pixel data, keyed by SOP
// Instance UID (non-image objects such as DIRFILE are left out).
func bySOP(t *testing.T, dir string) map[string]*Pixels {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Pixels{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "LICENSE") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		in, p, err := DecodePixels(b)
		var rj *RejectError
		switch {
		case errors.As(err, &rj) && rj.Code == ReasonSOPClassNotSupported, errors.Is(err, ErrNoPixelData):
			continue
		case errors.Is(err, ErrUnsupportedTransferSyntax):
			if os.Getenv("RADTRIAGE_REQUIRE_CODECS") == "1" {
				t.Fatalf("%s: %v (RADTRIAGE_REQUIRE_CODECS=1)", e.Name(), err)
			}
			t.Skipf("skipping %s: %v", filepath.Base(dir), err)
		case err != nil:
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out[in.SOPInstanceUID] = p
	}
	return out
}

func TestDecodeCTHead(t *testing.T) {
	root := testenv.SharedDICOM(t)
	ref := bySOP(t, filepath.Join(root, "ct-head-5mm"))
	if len(ref) != 28 {
		t.Fatalf("ct-head-5mm has %d images, want 28", len(ref))
	}
	for _, enc := range []string{"rle", "deflate", "jpll", "jlsl", "j2kr"} {
		t.Run(enc, func(t *testing.T) {
			got := bySOP(t, filepath.Join(root, "ct-head-5mm."+enc))
			if len(got) != len(ref) {
				t.Fatalf("%d images, want %d", len(got), len(ref))
			}
			for uid, p := range got {
				w, ok := ref[uid]
				if !ok {
					t.Fatalf("SOP Instance %s is not in the native series", uid)
				}
				equalPixels(t, p, w)
			}
		})
	}
}

func TestDecodeWG04(t *testing.T) {
	root := filepath.Join(testenv.SharedDICOM(t), "wg04")
	for _, img := range []string{"CT1", "CT2", "MR1", "MR2", "MR3", "MR4"} {
		_, ref := decodeFile(t, filepath.Join(root, "REF", img+"_UNC"))
		for _, enc := range []string{"RLE", "JPLL", "JLSL", "J2KR"} {
			t.Run(enc+"/"+img, func(t *testing.T) {
				_, p := decodeFile(t, filepath.Join(root, enc, img+"_"+enc))
				equalPixels(t, p, ref)
			})
		}
		t.Run("JLSN/"+img, func(t *testing.T) {
			path := filepath.Join(root, "JLSN", img+"_JLSN")
			_, p := decodeFile(t, path)
			b, _ := os.ReadFile(path)
			near, err := jpeglsNear(b)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxAbsError(t, p, ref); e > near {
				t.Fatalf("maximum absolute error %d exceeds the stream's NEAR %d", e, near)
			} else {
				t.Logf("maximum absolute error %d, NEAR %d", e, near)
			}
		})
		for _, enc := range []string{"J2KI", "JPLY"} {
			if enc == "JPLY" && strings.HasPrefix(img, "CT") {
				continue // the set has no lossy JPEG of the CT images
			}
			t.Run(enc+"/"+img, func(t *testing.T) {
				_, p := decodeFile(t, filepath.Join(root, enc, img+"_"+enc))
				db := psnr(t, p, ref)
				t.Logf("PSNR %.1f dB", db)
				if db <= 40 {
					t.Fatalf("PSNR %.1f dB, want > 40", db)
				}
			})
		}
	}
}

// jpeglsNear reads NEAR from the first JPEG-LS start-of-scan header
// (ITU T.87 §C.2.3: Ls, Ns, Ns×(Ci, Tmi), NEAR) found in the data.
func jpeglsNear(b []byte) (int, error) {
	i := bytes.Index(b, []byte{0xFF, 0xDA})
	if i < 0 || i+5 > len(b) {
		return 0, errors.New("no JPEG-LS start-of-scan marker")
	}
	ns := int(b[i+4])
	at := i + 5 + 2*ns
	if at >= len(b) {
		return 0, errors.New("truncated JPEG-LS start-of-scan header")
	}
	return int(b[at]), nil
}

func maxAbsError(t *testing.T, got, want *Pixels) int {
	t.Helper()
	sameGeometry(t, got, want)
	g, w := samples(t, got), samples(t, want)
	m := 0
	for f := range g {
		for i := range g[f] {
			m = max(m, int(math.Abs(float64(g[f][i])-float64(w[f][i]))))
		}
	}
	return m
}

// psnr is 10·log10(peak²/MSE) with peak 2^BitsStored − 1 of the reference.
func psnr(t *testing.T, got, want *Pixels) float64 {
	t.Helper()
	sameGeometry(t, got, want)
	g, w := samples(t, got), samples(t, want)
	var se float64
	n := 0
	for f := range g {
		for i := range g[f] {
			d := float64(g[f][i]) - float64(w[f][i])
			se += d * d
			n++
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	peak := math.Exp2(float64(want.BitsStored)) - 1
	return 10 * math.Log10(peak*peak/(se/float64(n)))
}

func TestDecodeRobustness(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "robustness")
	for _, c := range []struct{ ref, other string }{
		{"MR_small.dcm", "MR_small_RLE.dcm"},
		{"MR_small.dcm", "MR_small_bigendian.dcm"},
		{"MR_small.dcm", "MR_small_implicit.dcm"},
		{"emri_small.dcm", "emri_small_RLE.dcm"},
		{"emri_small.dcm", "emri_small_big_endian.dcm"},
		{"emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"},
		{"emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"},
	} {
		t.Run(c.other, func(t *testing.T) {
			_, ref := decodeFile(t, filepath.Join(dir, c.ref))
			_, p := decodeFile(t, filepath.Join(dir, c.other))
			equalPixels(t, p, ref)
		})
	}
	t.Run("emri_small frames", func(t *testing.T) {
		in, p := decodeFile(t, filepath.Join(dir, "emri_small.dcm"))
		if p.Frames != 10 || in.NumberOfFrames != 10 || len(p.Data) != 10*p.FrameSize() {
			t.Fatalf("%d frames, %d bytes; want 10 frames of %d bytes", p.Frames, len(p.Data), p.FrameSize())
		}
	})
}

// dcmtkRGB renders frame 1 of an RGB instance with dcmtk's dcmj2pnm as a
// raw PPM and returns its samples (8-bit RGB is written unchanged).
func dcmtkRGB(t *testing.T, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "frame.ppm")
	cmd := exec.Command(testenv.Tool(t, "dcmj2pnm", "dcmtk"), "--write-raw-pnm", path, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcmj2pnm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// P6\n<w> <h>\n<max>\n, then the samples.
	for nl, i := 0, 0; i < len(b); i++ {
		if b[i] == '\n' {
			if nl++; nl == 3 {
				return b[i+1:]
			}
		}
	}
	t.Fatalf("dcmj2pnm wrote no PPM header")
	return nil
}

func TestDecodeColourPlanar(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "robustness")
	for _, name := range []string{"color-pl.dcm", "ExplVR_BigEnd.dcm"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			in, p := decodeFile(t, path)
			if in.PlanarConfiguration != 1 || p.Samples != 3 {
				t.Fatalf("planar configuration %d, %d samples; the fixture should be planar RGB", in.PlanarConfiguration, p.Samples)
			}
			want := dcmtkRGB(t, path)
			got := p.Frame(0)
			if len(got) != len(want) {
				t.Fatalf("frame 1 is %d bytes; dcmj2pnm wrote %d", len(got), len(want))
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("byte %d (pixel %d, sample %d) is %d; dcmj2pnm says %d", i, i/3, i%3, got[i], want[i])
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestDecodeBigEndianDcmconv compares each big-endian fixture with dcmtk's
// conversion of it to explicit VR little endian.
func TestDecodeBigEndianDcmconv(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "robustness")
	dcmconv := testenv.Tool(t, "dcmconv", "dcmtk")
	for _, name := range []string{"ExplVR_BigEnd.dcm", "MR_small_bigendian.dcm", "emri_small_big_endian.dcm"} {
		t.Run(name, func(t *testing.T) {
			le := filepath.Join(t.TempDir(), "le.dcm")
			if b, err := exec.Command(dcmconv, "+te", filepath.Join(dir, name), le).CombinedOutput(); err != nil {
				t.Fatalf("dcmconv: %v\n%s", err, b)
			}
			_, want := decodeFile(t, le)
			_, got := decodeFile(t, filepath.Join(dir, name))
			equalPixels(t, got, want)
		})
	}
}

// pydicomBits returns the unpacked 1-bit pixel data of an instance as
// pydicom (pydicom.pixel_data_handlers.util.unpack_bits) computes it: one
// byte per pixel, frames back to back.
func pydicomBits(t *testing.T, path string) []byte {
	t.Helper()
	const script = `import sys, pydicom
from pydicom.pixel_data_handlers.util import unpack_bits
ds = pydicom.dcmread(sys.argv[1])
n = ds.Rows * ds.Columns * ds.SamplesPerPixel * int(getattr(ds, "NumberOfFrames", 1) or 1)
sys.stdout.write(unpack_bits(ds.PixelData, as_array=False)[:n].hex())
`
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if _, err := exec.LookPath(py); err != nil {
			continue
		}
		if exec.Command(py, "-c", "import pydicom").Run() != nil {
			continue
		}
		out, err := exec.Command(py, "-c", script, path).Output()
		if err != nil {
			t.Fatalf("pydicom on %s: %v", path, err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3 with pydicom is required under CI=true")
	}
	t.Skip("skipping: python3 with pydicom not installed")
	return nil
}

func TestDecodeBitmap(t *testing.T) {
	root := testenv.SharedDICOM(t)
	for _, rel := range []string{
		"seg-sr/segmentations/23x38x3/seg/label.seg", // 874-pixel frames: not byte aligned
		"seg-sr/segmentations/partial_overlaps.dcm",
		"robustness/liver.dcm",
	} {
		t.Run(rel, func(t *testing.T) {
			path := filepath.Join(root, rel)
			in, p := decodeFile(t, path)
			if in.BitsAllocated != 1 || p.BitsAllocated != 8 || p.BitsStored != 1 {
				t.Fatalf("bits allocated %d → %d, stored %d; want a 1-bit fixture unpacked to 8", in.BitsAllocated, p.BitsAllocated, p.BitsStored)
			}
			want := pydicomBits(t, path)
			if i := firstDiff(p.Data, want); i >= 0 {
				t.Fatalf("pixel %d (frame %d) is %d; pydicom says %d (%d vs %d pixels)", i, i/p.FrameSize(), at(p.Data, i), at(want, i), len(p.Data), len(want))
			}
			ones := bytes.Count(p.Data, []byte{1})
			if ones == 0 {
				t.Fatal("no pixel is set; the fixture should hold a segment")
			}
			// Int32 of a bitmap gives the same 0/1 values.
			v := make([]int32, p.Rows*p.Columns)
			if err := p.Int32(p.Frames-1, v); err != nil {
				t.Fatal(err)
			}
			for i, x := range v {
				if x != int32(p.Frame(p.Frames - 1)[i]) {
					t.Fatalf("Int32 sample %d is %d, byte is %d", i, x, p.Frame(p.Frames - 1)[i])
				}
			}
		})
	}
	t.Run("liver frame 1", func(t *testing.T) {
		_, all := decodeFile(t, filepath.Join(root, "robustness/liver.dcm"))
		_, one := decodeFile(t, filepath.Join(root, "robustness/liver_1frame.dcm"))
		if one.Frames != 1 || !bytes.Equal(all.Frame(0), one.Frame(0)) {
			t.Fatal("frame 1 of liver.dcm differs from liver_1frame.dcm")
		}
	})
}

func at(b []byte, i int) int {
	if i < len(b) {
		return int(b[i])
	}
	return -1
}

// TestDecodeNativeAliases checks that little-endian interleaved native
// pixel data is not copied.
func TestDecodeNativeAliases(t *testing.T) {
	b := testenv.Fixture(t, "robustness/MR_small.dcm")
	_, p, err := DecodePixels(b)
	if err != nil {
		t.Fatal(err)
	}
	if !aliases(b, p.Data) {
		t.Fatal("Pixels.Data is a copy of the input, not a view of it")
	}
}

// aliases reports whether sub lies inside b's memory.
func aliases(b, sub []byte) bool {
	for i := range b {
		if &b[i] == &sub[0] {
			return len(b)-i >= len(sub)
		}
	}
	return false
}

func TestDecodeFrames(t *testing.T) {
	for _, rel := range []string{"robustness/emri_small.dcm", "robustness/emri_small_RLE.dcm", "robustness/emri_small_big_endian.dcm", "robustness/liver.dcm"} {
		t.Run(rel, func(t *testing.T) {
			b := testenv.Fixture(t, rel)
			_, all, err := DecodePixels(b)
			if err != nil {
				t.Fatal(err)
			}
			want := []int{all.Frames, 1, 2, all.Frames}
			_, some, err := DecodeFrames(b, want)
			if err != nil {
				t.Fatal(err)
			}
			if some.Frames != len(want) {
				t.Fatalf("%d frames, want %d", some.Frames, len(want))
			}
			for i, f := range want {
				if !bytes.Equal(some.Frame(i), all.Frame(f-1)) {
					t.Fatalf("frame %d (asked %d) differs from DecodePixels' frame", i, f)
				}
			}
			if _, _, err := DecodeFrames(b, []int{all.Frames + 1}); !errors.Is(err, ErrFrameRange) {
				t.Fatalf("frame %d: error %v, want ErrFrameRange", all.Frames+1, err)
			}
		})
	}
}

// naiveSample is the reference for Int32 (the loop in its doc comment).
func naiveSample(c uint32, stored, high int, signed bool) int64 {
	v := int64(c>>(high+1-stored)) & (1<<stored - 1)
	if signed && v&(1<<(stored-1)) != 0 {
		v -= 1 << stored
	}
	return v
}

func TestInt32Float32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, alloc := range []int{8, 16, 32} {
		for stored := 1; stored <= alloc; stored++ {
			for _, high := range []int{stored - 1, alloc - 1} {
				for _, signed := range []bool{false, true} {
					name := fmt.Sprintf("a%d_s%d_h%d_signed=%v", alloc, stored, high, signed)
					p := &Pixels{Rows: 3, Columns: 5, Samples: 1, Frames: 2, BitsAllocated: alloc,
						BitsStored: stored, HighBit: high, Signed: signed}
					p.Data = make([]byte, 2*p.FrameSize())
					for i := range p.Data {
						p.Data[i] = byte(rng.Uint32())
					}
					n := p.Rows * p.Columns
					iv := make([]int32, n)
					fv := make([]float32, n)
					err := p.Int32(1, iv)
					if !signed && stored == 32 {
						if err == nil {
							t.Fatalf("%s: Int32 accepted unsigned 32-bit values", name)
						}
					} else if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if err := p.Float32(1, fv, 0.5, -3); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					src := p.Frame(1)
					size := alloc / 8
					for i := range n {
						var c uint32
						for k := size - 1; k >= 0; k-- {
							c = c<<8 | uint32(src[i*size+k])
						}
						want := naiveSample(c, stored, high, signed)
						if !(!signed && stored == 32) && int64(iv[i]) != want {
							t.Fatalf("%s: sample %d (container %#x) Int32 %d, want %d", name, i, c, iv[i], want)
						}
						if wf := float32(float64(want)*0.5 - 3); fv[i] != wf {
							t.Fatalf("%s: sample %d Float32 %v, want %v", name, i, fv[i], wf)
						}
					}
				}
			}
		}
	}
	bad := &Pixels{Rows: 1, Columns: 1, Samples: 1, Frames: 1, BitsAllocated: 16, BitsStored: 12, HighBit: 16, Data: make([]byte, 2)}
	if err := bad.Int32(0, make([]int32, 1)); err == nil {
		t.Fatal("high bit 16 in a 16-bit container was accepted")
	}
}

// --- hostile input ---

// rleLiteral encodes an 8-bit single-sample RLE frame with literal runs
// only.
func rleLiteral(px []byte) []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b, 1)
	binary.LittleEndian.PutUint32(b[4:], 64)
	for len(px) > 0 {
		n := min(len(px), 128)
		b = append(b, byte(n-1))
		b = append(b, px[:n]...)
		px = px[n:]
	}
	return b
}

func u32s(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func u64s(v ...uint64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

func TestDecodeHostile(t *testing.T) {
	const rle = "1.2.840.10008.1.2.5"
	f1 := rleLiteral([]byte{1, 2, 3, 4})
	f2 := rleLiteral([]byte{5, 6, 7, 8})
	item := uint32(8 + len(f1))
	badHeader := bytes.Clone(f1)
	binary.LittleEndian.PutUint32(badHeader, 3)
	pastEnd := bytes.Clone(f1)
	binary.LittleEndian.PutUint32(pastEnd[4:], 1000)
	for _, c := range []struct {
		name string
		file []byte
		want string // in the error
		is   error
	}{
		{"truncated RLE segment", part10(rle, identity(), image(2, 2, 1), encapsulatedPixels(f1[:len(f1)-2])), "truncated inside a literal run", codec.ErrCorrupt},
		{"bad RLE header", part10(rle, identity(), image(2, 2, 1), encapsulatedPixels(badHeader)), "declares 3 segments", codec.ErrCorrupt},
		{"RLE offset past the end", part10(rle, identity(), image(2, 2, 1), encapsulatedPixels(pastEnd)), "past the end", codec.ErrCorrupt},
		{"short RLE header", part10(rle, identity(), image(2, 2, 1), encapsulatedPixels(f1[:20])), "shorter than its 64-byte header", codec.ErrCorrupt},
		{"BOT with wrong count", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(0), f1, f2)), "has 1 entries but Number of Frames is 2", nil},
		{"BOT past the end", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(0, 5000), f1, f2)), "points past the end", nil},
		{"BOT not increasing", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(0, 0), f1, f2)), "not increasing", nil},
		{"BOT not at an item", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(0, item-2), f1, f2)), "not the start of a fragment item", nil},
		{"BOT first not 0", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(item, item+1), f1, f2)), "first offset", nil},
		{"BOT odd length", part10(rle, identity(), image(2, 2, 2), encapsulatedTable([]byte{0, 0, 0, 0, 0, 0}, f1, f2)), "not a multiple of 4", nil},
		{"frame count mismatch", part10(rle, identity(), image(2, 2, 3), encapsulatedPixels(f1, f2)), "each frame of this syntax must be one fragment", nil},
		{"empty fragments", part10(rle, identity(), image(2, 2, 2), encapsulatedPixels(nil, nil)), "has no bytes", nil},
		{"JPEG markers mismatch", part10("1.2.840.10008.1.2.4.50", identity(), image(2, 2, 2), encapsulatedPixels([]byte{0xFF, 0xD8, 1, 2}, []byte{3, 4}, []byte{5, 6})), "", nil},
		{"native data truncated", part10(uidExplicitVRLittleEndian, identity(), image(2, 2, 2), ele(0x7FE00010, "OB", []byte{1, 2, 3, 4, 5, 6})), "truncated or inconsistent", nil},
		{"EOT length mismatch", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2),
			ele(tagExtendedOffsetTable, "OB", u64s(0, 12)), ele(tagExtendedOffsetTableLengths, "OB", u64s(4, 5)),
			encapsulatedPixels([]byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})), "gives frame 2 a length of 5 bytes but its fragment holds 4", nil},
		{"EOT wrong count", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2),
			ele(tagExtendedOffsetTable, "OB", u64s(0)), ele(tagExtendedOffsetTableLengths, "OB", u64s(4)),
			encapsulatedPixels([]byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})), "has 1 entries but Number of Frames is 2", nil},
		{"huge image in a tiny fragment", part10(rle, identity(), image(65535, 65535, 1), encapsulatedPixels(f1)), "limit", nil},
		{"uncompressed frame too short", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 1), encapsulatedPixels([]byte{1, 2})), "holds 2 bytes, not 4", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := DecodePixels(c.file)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %q does not wrap %v", err, c.is)
			}
			t.Log(err)
		})
	}
}

func TestDecodeEncapsulatedLayouts(t *testing.T) {
	const rle = "1.2.840.10008.1.2.5"
	a, b := []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}
	f1, f2 := rleLiteral(a), rleLiteral(b)
	item := uint32(8 + len(f1))
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"one fragment per frame", part10(rle, identity(), image(2, 2, 2), encapsulatedPixels(f1, f2))},
		{"basic offset table", part10(rle, identity(), image(2, 2, 2), encapsulatedTable(u32s(0, item), f1, f2))},
		{"uncompressed, split fragments", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2), encapsulatedTable(u32s(0, 8+2+8+2), a[:2], a[2:], b))},
		{"uncompressed, extended offset table", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2),
			ele(tagExtendedOffsetTable, "OB", binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 0), 12)),
			ele(tagExtendedOffsetTableLengths, "OB", binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 4), 4)),
			encapsulatedPixels(a, b))},
		// The real VRs: OV has a 12-byte header the DICOM library does not
		// know (read.go libraryVRs).
		{"uncompressed, extended offset table as OV", part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2),
			ele(tagExtendedOffsetTable, "OV", binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 0), 12)),
			ele(tagExtendedOffsetTableLengths, "OV", binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 4), 4)),
			encapsulatedPixels(a, b))},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, p, err := DecodePixels(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Data, append(bytes.Clone(a), b...)) {
				t.Fatalf("data %v, want %v then %v", p.Data, a, b)
			}
		})
	}
}

func TestDecodeUnsupported(t *testing.T) {
	const j2k = "1.2.840.10008.1.2.4.90"
	if _, ok := codec.Lookup(j2k); ok {
		t.Skip("this build has a JPEG 2000 decoder")
	}
	_, _, err := DecodePixels(part10(j2k, identity(), image(2, 2, 1), encapsulatedPixels([]byte{0xFF, 0x4F, 0, 0})))
	if !errors.Is(err, ErrUnsupportedTransferSyntax) || !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("error %v does not wrap ErrUnsupportedTransferSyntax and codec.ErrUnsupported", err)
	}
	want := "pixel data in JPEG 2000 (Lossless Only) (1.2.840.10008.1.2.4.90) cannot be decoded: this build has no JPEG 2000 decoder (build with make build on a machine with libopenjp2-7-dev)"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func FuzzDecodePixels(f *testing.F) {
	if root, err := testenv.FindSharedDICOM(); err == nil {
		for _, rel := range []string{
			"robustness/MR_small_RLE.dcm", "robustness/MR_small_bigendian.dcm", "robustness/color-pl.dcm",
			"robustness/ExplVR_BigEnd.dcm", "robustness/liver_1frame.dcm", "robustness/image_dfl.dcm",
			"seg-sr/segmentations/23x38x3/seg/label.seg",
		} {
			if b, err := os.ReadFile(filepath.Join(root, rel)); err == nil {
				f.Add(b)
			}
		}
	}
	f1, f2 := rleLiteral([]byte{1, 2, 3, 4}), rleLiteral([]byte{5, 6, 7, 8})
	f.Add(part10("1.2.840.10008.1.2.5", identity(), image(2, 2, 2), encapsulatedTable(u32s(0, uint32(8+len(f1))), f1, f2)))
	f.Add(part10(uidEncapsulatedUncompressed, identity(), image(2, 2, 2), encapsulatedPixels([]byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})))
	f.Add(part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 2), ele(0x7FE00010, "OB", make([]byte, 32))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := ReadInstanceBytes(b); err != nil || uint64(in.Rows)*uint64(in.Columns)*uint64(in.SamplesPerPixel)*uint64(in.NumberOfFrames) > 1<<22 {
			return // refused anyway, or too large to decode quickly
		}
		in, p, err := DecodePixels(b)
		if err != nil {
			return
		}
		if p.Frames != in.NumberOfFrames || len(p.Data) != p.Frames*p.FrameSize() {
			t.Fatalf("%d frames of %d bytes in %d bytes of data; the instance has %d frames", p.Frames, p.FrameSize(), len(p.Data), in.NumberOfFrames)
		}
		n := p.Rows * p.Columns * p.Samples
		if n > 1<<22 {
			return
		}
		fv := make([]float32, n)
		for i := range p.Frames {
			if err := p.Float32(i, fv, 1, 0); err != nil {
				t.Fatalf("frame %d of a decoded image: %v", i, err)
			}
		}
	})
}

// BenchmarkDecodeNative parses and decodes one native ct-head-5mm slice
// (DecodePixels) and converts it to float32 Hounsfield units (Float32);
// MB/s counts the decoded pixel bytes (2 per pixel), as dcmtk's tools
// would write them.
func BenchmarkDecodeNative(b *testing.B) {
	benchDecode(b, "ct-head-5mm")
}

// BenchmarkDecodeRLE is BenchmarkDecodeNative on ct-head-5mm.rle.
func BenchmarkDecodeRLE(b *testing.B) {
	benchDecode(b, "ct-head-5mm.rle")
}

func benchDecode(b *testing.B, dir string) {
	root := filepath.Join(testenv.SharedDICOM(b), dir)
	ents, err := os.ReadDir(root)
	if err != nil {
		b.Fatal(err)
	}
	var files [][]byte
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(root, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := DecodePixels(data); err == nil {
			files = append(files, data)
		}
	}
	if len(files) == 0 {
		b.Fatalf("no decodable file in %s", dir)
	}
	in, p, _ := DecodePixels(files[0])
	dst := make([]float32, p.Rows*p.Columns*p.Samples)
	b.SetBytes(int64(p.FrameSize()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, p, err := DecodePixels(files[i%len(files)])
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Float32(0, dst, in.RescaleSlope, in.RescaleIntercept); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRGB(t *testing.T) {
	// Forward equations of PS3.3 C.7.6.3.1.2, then RGB must come back
	// within 1 (both directions round).
	rng := rand.New(rand.NewPCG(7, 8))
	p := &Pixels{Rows: 16, Columns: 16, Samples: 3, Frames: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "YBR_FULL"}
	rgb := make([]byte, p.FrameSize())
	for i := range rgb {
		rgb[i] = byte(rng.Uint32())
	}
	rgb[0], rgb[1], rgb[2] = 0, 0, 0
	rgb[3], rgb[4], rgb[5] = 255, 255, 255
	p.Data = make([]byte, len(rgb))
	for i := 0; i < len(rgb); i += 3 {
		r, g, b := float64(rgb[i]), float64(rgb[i+1]), float64(rgb[i+2])
		ybr := [3]float64{.2990*r + .5870*g + .1140*b, -.1687*r - .3313*g + .5*b + 128, .5*r - .4187*g - .0813*b + 128}
		for k, v := range ybr {
			p.Data[i+k] = byte(math.Round(math.Min(255, math.Max(0, v))))
		}
	}
	q, err := p.RGB()
	if err != nil {
		t.Fatal(err)
	}
	if q.Photometric != "RGB" || p.Photometric != "YBR_FULL" {
		t.Fatalf("photometric %s → %s", p.Photometric, q.Photometric)
	}
	for i := range rgb {
		if d := int(q.Data[i]) - int(rgb[i]); d < -1 || d > 1 {
			t.Fatalf("byte %d (pixel %d, sample %d) is %d, want %d ± 1", i, i/3, i%3, q.Data[i], rgb[i])
		}
	}
	mono := &Pixels{Rows: 1, Columns: 1, Samples: 1, Frames: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "MONOCHROME2", Data: []byte{1}}
	if _, err := mono.RGB(); err == nil {
		t.Fatal("a monochrome image was converted to RGB")
	}
}

// TestRGBJPEG compares a decoded YBR_FULL baseline JPEG, converted to RGB,
// with dcmtk's rendering of it.
func TestRGBJPEG(t *testing.T) {
	path := filepath.Join(testenv.SharedDICOM(t), "robustness", "SC_rgb_jpeg_dcmtk.dcm")
	_, p := decodeFile(t, path)
	q, err := p.RGB()
	if err != nil {
		t.Fatal(err)
	}
	want := dcmtkRGB(t, path)
	if len(want) != len(q.Frame(0)) {
		t.Fatalf("frame is %d bytes; dcmj2pnm wrote %d", len(q.Frame(0)), len(want))
	}
	worst := 0
	for i, v := range q.Frame(0) {
		worst = max(worst, int(math.Abs(float64(v)-float64(want[i]))))
	}
	t.Logf("largest difference from dcmj2pnm: %d", worst)
	if worst > 2 {
		t.Fatalf("largest difference from dcmj2pnm is %d, more than 2", worst)
	}
}

// TestDecodeParallel decodes enough RLE frames to run in parallel and
// checks the result, and that the reported error is always the lowest
// corrupt frame's.
func TestDecodeParallel(t *testing.T) {
	const n, side = 40, 200 // 1.6 MB of output: above the parallel threshold
	rng := rand.New(rand.NewPCG(9, 10))
	var want []byte
	frags := make([][]byte, n)
	for i := range frags {
		px := make([]byte, side*side)
		for j := range px {
			px[j] = byte(rng.Uint32())
		}
		want = append(want, px...)
		frags[i] = rleLiteral(px)
	}
	_, p, err := DecodePixels(part10("1.2.840.10008.1.2.5", identity(), image(side, side, n), encapsulatedPixels(frags...)))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(p.Data, want); i >= 0 {
		t.Fatalf("byte %d (frame %d) is %d, want %d", i, i/(side*side), p.Data[i], want[i])
	}
	for _, bad := range []int{5, 30, 40} {
		frags[bad-1] = frags[bad-1][:100]
	}
	file := part10("1.2.840.10008.1.2.5", identity(), image(side, side, n), encapsulatedPixels(frags...))
	for range 20 {
		_, _, err := DecodePixels(file)
		if err == nil || !strings.Contains(err.Error(), "frame 5 of 40") {
			t.Fatalf("error %v, want one about frame 5 of 40", err)
		}
	}
}

// BenchmarkFloat32 converts one decoded ct-head-5mm slice (512×512 signed
// 16-bit) to float32 Hounsfield units; MB/s counts input pixel bytes.
func BenchmarkFloat32(b *testing.B) {
	in, p := decodeFile(b, filepath.Join(testenv.SharedDICOM(b), "ct-head-5mm", "I10"))
	dst := make([]float32, p.Rows*p.Columns*p.Samples)
	b.SetBytes(int64(p.FrameSize()))
	for b.Loop() {
		if err := p.Float32(0, dst, in.RescaleSlope, in.RescaleIntercept); err != nil {
			b.Fatal(err)
		}
	}
}
