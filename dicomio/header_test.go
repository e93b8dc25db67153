package dicomio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/radtriage/radtriage/internal/testenv"
)

// countingReader is an io.ReaderAt over b that records the bytes read.
type countingReader struct {
	b    []byte
	read int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r := bytes.NewReader(c.b)
	n, err := r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// checkHeader checks ReadHeader on b against ReadInstanceBytes and
// NativeFrames: the same Instance, and a location whose bytes are the
// frames NativeFrames gives. It returns the location.
func checkHeader(t *testing.T, b []byte) *PixelLocation {
	t.Helper()
	want, err := ReadInstanceBytes(b)
	if err != nil {
		t.Fatalf("ReadInstanceBytes: %v", err)
	}
	got, loc, err := ReadHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadHeader's instance differs from ReadInstanceBytes':\n got  %+v\n want %+v", got, want)
	}
	checkLocation(t, b, want, loc)
	return loc
}

// checkLocation checks loc's bytes against NativeFrames and its layout
// against in.
func checkLocation(t *testing.T, b []byte, in *Instance, loc *PixelLocation) {
	t.Helper()
	if loc.Rows != in.Rows || loc.Columns != in.Columns || loc.Frames != in.NumberOfFrames ||
		loc.Samples != in.SamplesPerPixel || loc.BitsAllocated != in.BitsAllocated ||
		loc.BitsStored != in.BitsStored || loc.HighBit != in.HighBit || loc.Signed != (in.PixelRepresentation == 1) {
		t.Fatalf("location layout %+v disagrees with the instance %+v", loc, in)
	}
	if loc.Offset < 0 || loc.Length < 0 || loc.Offset+loc.Length > int64(len(b)) {
		t.Fatalf("location %d+%d is outside the %d-byte file", loc.Offset, loc.Length, len(b))
	}
	if loc.BitsAllocated == 1 {
		if loc.FrameSize != 0 {
			t.Fatalf("1-bit frame size %d, want 0", loc.FrameSize)
		}
		return
	}
	if loc.FrameSize*int64(loc.Frames) != loc.Length {
		t.Fatalf("frame size %d × %d frames is not the length %d", loc.FrameSize, loc.Frames, loc.Length)
	}
	frames := make([]int, in.NumberOfFrames)
	for i := range frames {
		frames[i] = i + 1
	}
	want, err := NativeFrames(bytes.NewReader(b), int64(len(b)), frames)
	if err != nil {
		t.Fatalf("NativeFrames: %v", err)
	}
	for i, w := range want {
		at := loc.Offset + int64(i)*loc.FrameSize
		if g := b[at : at+loc.FrameSize]; !bytes.Equal(g, w) {
			t.Fatalf("frame %d at offset %d differs from NativeFrames'", i+1, at)
		}
	}
}

func TestReadHeaderFixtures(t *testing.T) {
	root := testenv.SharedDICOM(t)
	files, err := filepath.Glob(filepath.Join(root, "ct-head-5mm", "I*"))
	if err != nil || len(files) != 28 {
		t.Fatalf("ct-head-5mm: %d files, %v", len(files), err)
	}
	for _, rel := range []string{
		"robustness/MR_small.dcm", "robustness/MR_small_implicit.dcm", "robustness/MR_small_bigendian.dcm",
		"robustness/CT_small.dcm", "robustness/ExplVR_BigEnd.dcm", "enhanced/In/Philips/IM_0027_fMAP.dcm",
	} {
		files = append(files, filepath.Join(root, rel))
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r := &countingReader{b: b}
			if _, _, err := ReadHeader(r, int64(len(b))); err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			loc := checkHeader(t, b)
			// Only the header is read: a prefix, never the pixel data
			// of a file whose pixels lie beyond it.
			if loc.Offset >= headerPrefix && r.read >= loc.Offset+loc.Length {
				t.Errorf("read %d bytes of a %d-byte file whose pixel data starts at %d", r.read, len(b), loc.Offset)
			}
			if filepath.Base(filepath.Dir(p)) == "ct-head-5mm" && r.read > headerPrefix {
				t.Errorf("read %d bytes, more than the %d-byte prefix", r.read, headerPrefix)
			}
		})
	}
}

// TestReadHeaderFallback: a deflated syntax or encapsulated pixel data
// gives ErrHeaderOnly; the whole-file read decides on those.
func TestReadHeaderFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"deflated", part10(uidDeflatedExplicitVRLE, deflated(bytes.Join([][]byte{identity(), image(2, 2, 0), ele(0x7FE00010, "OB", make([]byte, 4))}, nil)))},
		{"encapsulated", part10("1.2.840.10008.1.2.4.50", identity(), image(2, 2, 0), encapsulatedPixels([]byte{1, 2}))},
		{"no pixel data", part10(uidExplicitVRLittleEndian, identity())},
		{"pixel data as a sequence", part10(uidExplicitVRLittleEndian, identity(), image(2, 2, 0), ele(0x7FE00010, "SQ", nil))},
		{"ct-head-5mm.rle", testenv.Fixture(t, "ct-head-5mm.rle/I10.dcm")},
		{"ct-head-5mm.deflate", testenv.Fixture(t, "ct-head-5mm.deflate/I10.dcm")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, loc, err := ReadHeader(bytes.NewReader(tc.b), int64(len(tc.b)))
			if !errors.Is(err, ErrHeaderOnly) || in != nil || loc != nil {
				t.Fatalf("got %v, %v, %v; want ErrHeaderOnly", in, loc, err)
			}
		})
	}
}

// TestReadHeaderTruncated: a file cut inside its pixel data is refused,
// as ReadInstance refuses it, though ReadHeader never reads the pixels.
func TestReadHeaderTruncated(t *testing.T) {
	full := testenv.Fixture(t, "ct-head-5mm/I10")
	_, loc, err := ReadHeader(bytes.NewReader(full), int64(len(full)))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int64{loc.Offset, loc.Offset + 1, loc.Offset + loc.Length/2, loc.Offset + loc.Length - 1} {
		b := full[:cut]
		if _, err := ReadInstanceBytes(b); AsReject(err) == nil {
			t.Fatalf("cut at %d: ReadInstanceBytes accepted it (%v)", cut, err)
		}
		r := &countingReader{b: b}
		in, _, err := ReadHeader(r, int64(len(b)))
		rj := AsReject(err)
		if in != nil || rj == nil || rj.Code != ReasonCannotUnderstand {
			t.Fatalf("cut at %d of %d: got %v, %v; want a ReasonCannotUnderstand refusal", cut, len(full), in, err)
		}
		if r.read > headerPrefix {
			t.Errorf("cut at %d: read %d bytes to refuse it", cut, r.read)
		}
	}
	// The robustness fixture, truncated by its author.
	b := testenv.Fixture(t, "robustness/MR_truncated.dcm")
	if _, _, err := ReadHeader(bytes.NewReader(b), int64(len(b))); AsReject(err) == nil {
		t.Fatalf("MR_truncated.dcm: got %v, want a refusal", err)
	}
	// A size larger than the reader holds is a read error, not a panic.
	if _, _, err := ReadHeader(bytes.NewReader(full[:100]), int64(len(full))); err == nil || AsReject(err) != nil {
		t.Fatalf("short reader: got %v, want a read error", err)
	}
}

// TestReadHeaderTrailingElements: elements after Pixel Data (trailing
// padding) are not read, and do not move the pixel data.
func TestReadHeaderTrailingElements(t *testing.T) {
	px := make([]byte, 32)
	for i := range px {
		px[i] = byte(i)
	}
	b := part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 2), ele(0x7FE00010, "OB", px),
		ele(0xFFFCFFFC, "OB", make([]byte, 64)))
	loc := checkHeader(t, b)
	if !bytes.Equal(b[loc.Offset:loc.Offset+loc.Length], px) {
		t.Fatalf("pixel bytes at %d differ", loc.Offset)
	}
	// Garbage after the pixel data, which ReadInstance refuses, is not
	// even seen.
	g := append(bytes.Clone(b[:len(b)-64-12]), 0xFC, 0xFF, 0xFC, 0xFF, 'O', 'B', 0, 0, 0xFF, 0xFF, 0, 0)
	if _, err := ReadInstanceBytes(g); err == nil {
		t.Fatal("ReadInstanceBytes accepted a trailing element longer than the file")
	}
	if _, loc2, err := ReadHeader(bytes.NewReader(g), int64(len(g))); err != nil || loc2.Offset != loc.Offset {
		t.Fatalf("with garbage after the pixel data: %v, %+v", err, loc2)
	}
}

// TestReadHeaderGrows: a header beyond the first prefix, with a sequence
// cut by the prefix's end, is read by growing the prefix.
func TestReadHeaderGrows(t *testing.T) {
	big := make([]byte, 3*headerPrefix/2)
	var sq []byte
	sq = append(sq, rawHeader(0x00081115, "SQ", undefinedLength)...)
	sq = binary.LittleEndian.AppendUint16(sq, 0xFFFE)
	sq = binary.LittleEndian.AppendUint16(sq, 0xE000)
	sq = binary.LittleEndian.AppendUint32(sq, undefinedLength)
	sq = append(sq, ele(0x00091010, "OB", big)...)
	sq = append(sq, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
	b := part10(uidExplicitVRLittleEndian, identity(), sq, image(64, 64, 0), ele(0x7FE00010, "OB", make([]byte, 64*64)))
	loc := checkHeader(t, b)
	if loc.Offset < headerPrefix {
		t.Fatalf("pixel data at %d, not beyond the first prefix", loc.Offset)
	}
	// Cut inside the sequence: refused, after reading the whole file.
	cut := b[:headerPrefix+100]
	if _, _, err := ReadHeader(bytes.NewReader(cut), int64(len(cut))); AsReject(err) == nil {
		t.Fatalf("cut inside the sequence: got %v, want a refusal", err)
	}
}

// TestReadHeaderLengthMismatch: Pixel Data shorter than the image pixel
// module needs, though within the file, is refused as ReadInstance does.
func TestReadHeaderLengthMismatch(t *testing.T) {
	b := part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 2), ele(0x7FE00010, "OB", make([]byte, 30)))
	_, errFull := ReadInstanceBytes(b)
	_, _, err := ReadHeader(bytes.NewReader(b), int64(len(b)))
	rj, rjFull := AsReject(err), AsReject(errFull)
	if rj == nil || rjFull == nil || rj.Code != rjFull.Code || rj.Reason != rjFull.Reason {
		t.Fatalf("ReadHeader: %v; ReadInstanceBytes: %v; want the same refusal", err, errFull)
	}
}

// FuzzReadHeader checks that ReadHeader never panics or hangs, returns
// only ErrHeaderOnly, *RejectError or nil, and that when ReadInstanceBytes
// accepts an input with native pixel data, ReadHeader gives the same
// Instance and a location of the bytes NativeFrames gives.
func FuzzReadHeader(f *testing.F) {
	fuzzSeeds(f)
	if root, err := testenv.FindSharedDICOM(); err == nil {
		if b, err := os.ReadFile(filepath.Join(root, "ct-head-5mm", "I10")); err == nil {
			f.Add(b)
		}
	}
	f.Add(part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 2), ele(0x7FE00010, "OB", make([]byte, 32)),
		ele(0xFFFCFFFC, "OB", make([]byte, 8))))
	f.Add(part10(uidImplicitVRLittleEndian, identity(), image(3, 3, 0), ele(0x7FE00010, "OB", make([]byte, 10))))
	f.Fuzz(func(t *testing.T, b []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("no result after 10s on a %d-byte input", len(b)))
			}
		}()
		in, loc, err := ReadHeader(bytes.NewReader(b), int64(len(b)))
		switch {
		case err == nil:
			if in == nil || loc == nil {
				t.Fatal("no error but no instance or location")
			}
		case errors.Is(err, ErrHeaderOnly), AsReject(err) != nil:
			if in != nil || loc != nil {
				t.Fatalf("an instance with the error %v", err)
			}
		default:
			t.Fatalf("not ErrHeaderOnly or a *RejectError: %T %v", err, err)
		}
		want, errFull := ReadInstanceBytes(b)
		if errFull != nil || !want.HasPixelData || want.Encapsulated {
			return
		}
		d, _ := loadBytes(b, dicomSkipProcessing())
		if d == nil || d.ts.deflated || topLevelPixelData(d.elems) != 1 {
			return // deflated (ErrHeaderOnly), or ReadHeader stops at the first of several
		}
		if err != nil {
			t.Fatalf("ReadInstanceBytes accepts the input but ReadHeader: %v", err)
		}
		if !reflect.DeepEqual(in, want) {
			t.Fatalf("ReadHeader's instance differs from ReadInstanceBytes':\n got  %+v\n want %+v", in, want)
		}
		checkLocation(t, b, want, loc)
	})
}

// topLevelPixelData counts the top-level Pixel Data elements.
func topLevelPixelData(elems []element) int {
	n := 0
	for _, e := range elems {
		if e.tag == tagPixelData {
			n++
		}
	}
	return n
}
