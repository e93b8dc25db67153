package dicomio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/radtriage/radtriage/internal/testenv"
)

func TestReadInstanceGeometry(t *testing.T) {
	in, err := readBytes(testenv.Fixture(t, "ct-head-5mm/I10"))
	if err != nil {
		t.Fatal(err)
	}
	// Expected values read with pydicom 2.3.1:
	//   python3 -c "import pydicom; d = pydicom.dcmread('ct-head-5mm/I10'); print(d.ImagePositionPatient, ...)"
	want := Instance{
		TransferSyntaxUID:         "1.2.840.10008.1.2.1",
		SOPClassUID:               "1.2.840.10008.5.1.4.1.1.2",
		SOPInstanceUID:            "1.3.46.670589.33.1.1945709553237662531.30446478581090029189",
		StudyInstanceUID:          "1.3.46.670589.33.1.27492712521914879309.27169771283235650014",
		SeriesInstanceUID:         "1.3.46.670589.33.1.6002432791750815306.26862469513794233732",
		PatientName:               "HEAD",
		StudyDate:                 "20150206",
		Modality:                  "CT",
		SeriesNumber:              201,
		InstanceNumber:            1,
		Rows:                      512,
		Columns:                   512,
		NumberOfFrames:            1,
		SamplesPerPixel:           1,
		BitsAllocated:             16,
		BitsStored:                12,
		HighBit:                   11,
		PhotometricInterpretation: "MONOCHROME2",
		ImagePositionPatient:      []float64{-115.5, -1.85, 696.21},
		ImageOrientationPatient:   []float64{1, 0, 0, 0, 1, 0},
		PixelSpacing:              []float64{0.451171875, 0.451171875},
		SliceThickness:            5,
		HasRescale:                true,
		RescaleSlope:              1,
		RescaleIntercept:          -1024,
		HasPixelData:              true,
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !equalAny(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("TransferSyntaxUID", in.TransferSyntaxUID, want.TransferSyntaxUID)
	check("SOPClassUID", in.SOPClassUID, want.SOPClassUID)
	check("SOPInstanceUID", in.SOPInstanceUID, want.SOPInstanceUID)
	check("StudyInstanceUID", in.StudyInstanceUID, want.StudyInstanceUID)
	check("SeriesInstanceUID", in.SeriesInstanceUID, want.SeriesInstanceUID)
	check("PatientName", in.PatientName, want.PatientName)
	check("StudyDate", in.StudyDate, want.StudyDate)
	check("Modality", in.Modality, want.Modality)
	check("SeriesNumber", in.SeriesNumber, want.SeriesNumber)
	check("InstanceNumber", in.InstanceNumber, want.InstanceNumber)
	check("Rows", in.Rows, want.Rows)
	check("Columns", in.Columns, want.Columns)
	check("NumberOfFrames", in.NumberOfFrames, want.NumberOfFrames)
	check("SamplesPerPixel", in.SamplesPerPixel, want.SamplesPerPixel)
	check("BitsAllocated", in.BitsAllocated, want.BitsAllocated)
	check("BitsStored", in.BitsStored, want.BitsStored)
	check("HighBit", in.HighBit, want.HighBit)
	check("PhotometricInterpretation", in.PhotometricInterpretation, want.PhotometricInterpretation)
	check("ImagePositionPatient", in.ImagePositionPatient, want.ImagePositionPatient)
	check("ImageOrientationPatient", in.ImageOrientationPatient, want.ImageOrientationPatient)
	check("PixelSpacing", in.PixelSpacing, want.PixelSpacing)
	check("SliceThickness", in.SliceThickness, want.SliceThickness)
	check("HasRescale", in.HasRescale, want.HasRescale)
	check("RescaleSlope", in.RescaleSlope, want.RescaleSlope)
	check("RescaleIntercept", in.RescaleIntercept, want.RescaleIntercept)
	check("HasPixelData", in.HasPixelData, want.HasPixelData)
	check("Encapsulated", in.Encapsulated, want.Encapsulated)
}

func equalAny(a, b any) bool {
	fa, ok1 := a.([]float64)
	fb, ok2 := b.([]float64)
	if ok1 && ok2 {
		if len(fa) != len(fb) {
			return false
		}
		for i := range fa {
			if fa[i] != fb[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestReadInstanceEnhancedGeometry(t *testing.T) {
	in, err := readBytes(testenv.Fixture(t, "enhanced/In/Philips/IM_0027_fMAP.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if in.NumberOfFrames <= 1 || in.PixelSpacing == nil || in.ImageOrientationPatient == nil || in.ImagePositionPatient == nil {
		t.Errorf("enhanced MR: frames %d, spacing %v, orientation %v, position %v",
			in.NumberOfFrames, in.PixelSpacing, in.ImageOrientationPatient, in.ImagePositionPatient)
	}
}

func TestReadInstanceRefusals(t *testing.T) {
	px := func(n int) []byte { return ele(0x7FE00010, "OB", make([]byte, n)) }
	for _, tc := range []struct {
		name   string
		file   []byte
		code   FailureReason
		reason string // substring of the error
	}{
		{"empty", nil, ReasonCannotUnderstand, "not a DICOM file"},
		{"text", []byte("hello, this is not DICOM at all, really not"), ReasonCannotUnderstand, "not a DICOM file"},
		{"unknown transfer syntax", part10("1.2.3.999", identity()), ReasonTransferSyntaxNotSupport, "not a known"},
		{"missing SOP instance UID", part10(uidExplicitVRLittleEndian,
			ele(0x00080016, "UI", []byte("1.2.840.10008.5.1.4.1.1.7")),
			ele(0x0020000D, "UI", []byte("1.2.3")), ele(0x0020000E, "UI", []byte("1.2.3.1"))),
			ReasonDoesNotMatchSOPClass, "SOP Instance UID (0008,0018) is missing"},
		{"invalid study UID", part10(uidExplicitVRLittleEndian,
			ele(0x00080016, "UI", []byte("1.2.840.10008.5.1.4.1.1.7")), ele(0x00080018, "UI", []byte("1.2.3.4.5")),
			ele(0x0020000D, "UI", []byte("1.02.3")), ele(0x0020000E, "UI", []byte("1.2.3.1"))),
			ReasonDoesNotMatchSOPClass, "leading zero"},
		{"short pixel data", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 0), px(14)),
			ReasonDoesNotMatchSOPClass, "length is 14 bytes"},
		{"long pixel data", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 0), px(18)),
			ReasonDoesNotMatchSOPClass, "needs 16"},
		{"image without pixel data", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 0)),
			ReasonDoesNotMatchSOPClass, "no Pixel Data"},
		{"frames mismatch", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 3), px(32)),
			ReasonDoesNotMatchSOPClass, "needs 48"},
		{"value beyond end", part10(uidExplicitVRLittleEndian, identity(), rawHeader(0x00091010, "OB", 0xFFFFFFF0)),
			ReasonCannotUnderstand, "truncated"},
		{"huge string length", part10(uidExplicitVRLittleEndian, identity(), rawHeader(0x00081030, "UT", 0x7FFFFFFF)),
			ReasonCannotUnderstand, "truncated"},
		{"encapsulated without fragments", part10("1.2.840.10008.1.2.4.50", identity(), image(4, 4, 0), encapsulatedPixels()),
			ReasonCannotUnderstand, "no fragments"},
		{"native pixel data under JPEG", part10("1.2.840.10008.1.2.4.50", identity(), image(4, 4, 0), px(16)),
			ReasonCannotUnderstand, "requires encapsulated"},
		{"encapsulated under native syntax", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 0), encapsulatedPixels([]byte{1, 2})),
			ReasonCannotUnderstand, "is native"},
		{"deep nesting", part10(uidExplicitVRLittleEndian, identity(), nested(200)),
			ReasonCannotUnderstand, "nested"},
		{"corrupt deflate", part10(uidDeflatedExplicitVRLE, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
			ReasonCannotUnderstand, "deflated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBytes(tc.file)
			rj := AsReject(err)
			if rj == nil {
				t.Fatalf("got %v, want a *RejectError", err)
			}
			if rj.Code != tc.code || !strings.Contains(rj.Error(), tc.reason) {
				t.Errorf("got %v, want code 0x%04X and %q", rj, uint16(tc.code), tc.reason)
			}
		})
	}
}

// nested is depth sequences of undefined length, each holding one item
// holding the next.
func nested(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, rawHeader(0x00081115, "SQ", undefinedLength)...)
		b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
		b = binary.LittleEndian.AppendUint16(b, 0xE000)
		b = binary.LittleEndian.AppendUint32(b, undefinedLength)
	}
	for range depth {
		b = append(b, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
	}
	return b
}

func TestReadInstanceAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   []byte
		frames int
	}{
		{"odd length with pad", part10(uidExplicitVRLittleEndian, identity(), image(3, 3, 0), ele(0x7FE00010, "OB", make([]byte, 9))), 1},
		{"multi-frame", part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 3), ele(0x7FE00010, "OB", make([]byte, 48))), 3},
		{"no pixel data", part10(uidExplicitVRLittleEndian, identity()), 0},
		{"known but undecodable syntax", part10("1.2.840.10008.1.2.4.201", identity(), image(4, 4, 0), encapsulatedPixels([]byte{1, 2})), 1},
		{"charset with VR UN", part10(uidExplicitVRLittleEndian, ele(0x00080005, "UN", []byte("ISO_IR 100")), identity()), 0},
		{"charset with VR OB", part10(uidExplicitVRLittleEndian, ele(0x00080005, "OB", []byte("ISO_IR 100")), identity()), 0},
		{"charset with VR US", part10(uidExplicitVRLittleEndian, ele(0x00080005, "US", us(7)), identity()), 0},
		{"deflated", part10(uidDeflatedExplicitVRLE, deflated(bytes.Join([][]byte{identity(), image(2, 2, 0), ele(0x7FE00010, "OB", make([]byte, 4))}, nil))), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := readBytes(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if in.NumberOfFrames != tc.frames {
				t.Errorf("NumberOfFrames = %d, want %d", in.NumberOfFrames, tc.frames)
			}
		})
	}
}

// TestReadInstanceDeflateBomb builds a deflated-syntax file whose data set
// inflates to 512 MiB of zeros (3.4 MB compressed, so the limit is 170 MB)
// and checks that it
// is refused quickly without allocating the inflated size.
func TestReadInstanceDeflateBomb(t *testing.T) {
	comp := zeroBomb(512 << 20)
	file := part10(uidDeflatedExplicitVRLE, comp)
	t.Logf("bomb: %d bytes on the wire, 512 MiB inflated", len(file))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := readBytes(file)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)

	rj := AsReject(err)
	if rj == nil || rj.Code != ReasonOutOfResources || !strings.Contains(rj.Error(), "deflate bomb") {
		t.Fatalf("got %v, want a 0xA700 deflate bomb refusal", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d bytes refusing a bomb, want < 16 MiB", alloc)
	}
	if elapsed > 5*time.Second {
		t.Errorf("took %v", elapsed)
	}
}

// TestReadInstanceEveryTruncation cuts small files at every length: each
// prefix is read or refused with a *RejectError, never anything else, and a
// prefix that is accepted with pixel data has all of it (the cut fell in
// elements after the pixel data, or in the end of a deflate stream).
func TestReadInstanceEveryTruncation(t *testing.T) {
	for _, rel := range []string{"robustness/MR_small.dcm", "robustness/image_dfl.dcm", "robustness/MR_small_RLE.dcm", "robustness/MR_small_bigendian.dcm"} {
		t.Run(rel, func(t *testing.T) {
			b := testenv.Fixture(t, rel)
			// Every cut in the first 2 KiB (file meta and header elements),
			// every 7th after.
			step := func(n int) int {
				if n < 2048 && !testing.Short() {
					return 1
				}
				return 7
			}
			full, err := PixelDataBytes(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			accepted := 0
			tried := 0
			for n := 0; n < len(b); n += step(n) {
				tried++
				in, err := readBytes(b[:n])
				if err != nil {
					if AsReject(err) == nil {
						t.Fatalf("cut at %d: %T %v", n, err, err)
					}
					continue
				}
				accepted++
				if !in.HasPixelData {
					continue
				}
				got, err := PixelDataBytes(bytes.NewReader(b[:n]), int64(n))
				if err != nil || !bytes.Equal(got, full) {
					t.Errorf("cut at %d of %d accepted with incomplete pixel data (%d of %d bytes, %v)", n, len(b), len(got), len(full), err)
				}
			}
			t.Logf("%d of %d prefixes accepted", accepted, tried)
		})
	}
}

func TestValidateUID(t *testing.T) {
	for _, tc := range []struct {
		uid  string
		want string // "" for valid, else a substring of the error
	}{
		{"1.2.840.10008.1.2.1", ""},
		{"0", ""},
		{"1.0.3", ""},
		{"2.25.329800735698586629295641978511506172918", ""},
		{strings.Repeat("1", 64), ""},
		{"", "empty"},
		{strings.Repeat("1", 65), "more than 64"},
		{".1.2", "starts with a dot"},
		{"1.2.", "ends with a dot"},
		{"1..2", "empty component"},
		{"1.02", "leading zero"},
		{"01.2", "leading zero"},
		{"00", "leading zero"},
		{"1.2a", "character"},
		{"1.2 ", "character"},
		{"1.2\x00", "character"},
		{"1,2", "character"},
	} {
		t.Run(tc.uid, func(t *testing.T) {
			err := ValidateUID(tc.uid)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ValidateUID(%q) = %v, want nil", tc.uid, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("ValidateUID(%q) = %v, want an error containing %q", tc.uid, err, tc.want)
			}
		})
	}
}

func TestNativeFrames(t *testing.T) {
	pix := make([]byte, 48)
	for i := range pix {
		pix[i] = byte(i)
	}
	file := part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 3), ele(0x7FE00010, "OB", pix))
	frames, err := NativeFrames(bytes.NewReader(file), int64(len(file)), []int{3, 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(frames[0], pix[32:48]) || !bytes.Equal(frames[1], pix[0:16]) {
		t.Errorf("frames = %v", frames)
	}
	for _, f := range []int{0, 4, -1} {
		if _, err := NativeFrames(bytes.NewReader(file), int64(len(file)), []int{f}); !errors.Is(err, ErrFrameRange) {
			t.Errorf("frame %d: got %v, want ErrFrameRange", f, err)
		}
	}
	all, err := PixelDataBytes(bytes.NewReader(file), int64(len(file)))
	if err != nil || !bytes.Equal(all, pix) {
		t.Errorf("PixelDataBytes = %v, %v", all, err)
	}

	jpeg := part10("1.2.840.10008.1.2.4.50", identity(), image(4, 4, 0), encapsulatedPixels([]byte{1, 2}))
	if _, err := NativeFrames(bytes.NewReader(jpeg), int64(len(jpeg)), []int{1}); !errors.Is(err, ErrNotNative) {
		t.Errorf("encapsulated: got %v, want ErrNotNative", err)
	}
	enc, err := PixelDataBytes(bytes.NewReader(jpeg), int64(len(jpeg)))
	wantEnc := []byte{0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 2, 0, 0, 0, 1, 2}
	if err != nil || !bytes.Equal(enc, wantEnc) {
		t.Errorf("PixelDataBytes(encapsulated) = % x, %v; want % x", enc, err, wantEnc)
	}

	noPix := part10(uidExplicitVRLittleEndian, identity())
	if _, err := NativeFrames(bytes.NewReader(noPix), int64(len(noPix)), []int{1}); !errors.Is(err, ErrNoPixelData) {
		t.Errorf("no pixel data: got %v", err)
	}
}

func TestNativeFramesFixture(t *testing.T) {
	b := testenv.Fixture(t, "ct-head-5mm/I10")
	frames, err := NativeFrames(bytes.NewReader(b), int64(len(b)), []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames[0]) != 512*512*2 {
		t.Errorf("frame is %d bytes, want %d", len(frames[0]), 512*512*2)
	}
	// The library's raw pixel value must be the same bytes.
	d, err := load(bytes.NewReader(b), int64(len(b)), dicomSkipProcessing())
	if err != nil {
		t.Fatal(err)
	}
	if raw := libPixelBytes(d); !bytes.Equal(raw, frames[0]) {
		t.Error("frame differs from the library's raw pixel data")
	}
}

// BenchmarkReadInstance reads one 512×512 CT slice. The "dicom.Parse"
// sub-benchmark is the outside reference: the library alone with its
// default per-sample pixel decoding, which ReadInstance avoids.
func BenchmarkReadInstance(b *testing.B) {
	data := testenv.Fixture(b, "ct-head-5mm/I10")
	b.Run("ReadInstance", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := readBytes(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dicom.Parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestReadInstanceVRUN reads pydicom's explicit_VR-UN.dcm, where every
// attribute, the character set and Rows included, is written with VR UN.
func TestReadInstanceVRUN(t *testing.T) {
	in, err := readBytes(testenv.Fixture(t, "robustness/explicit_VR-UN.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	// Expected values read with pydicom 2.3.1.
	if in.Rows != 512 || in.Columns != 512 || in.BitsAllocated != 16 || in.Modality != "CT" || !in.Encapsulated {
		t.Errorf("got rows %d, columns %d, bits %d, modality %q, encapsulated %v", in.Rows, in.Columns, in.BitsAllocated, in.Modality, in.Encapsulated)
	}
	if !equalAny(in.ImagePositionPatient, []float64{0, 0, -121}) || !equalAny(in.PixelSpacing, []float64{0.859375, 0.859375}) {
		t.Errorf("got position %v, spacing %v", in.ImagePositionPatient, in.PixelSpacing)
	}
}
