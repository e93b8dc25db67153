package dicomio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radtriage/radtriage/internal/testenv"
)

// fuzzSeeds are small files from ../shared/dicom (when present) and
// synthetic instances that reach every branch of the structural pass.
func fuzzSeeds(f *testing.F) {
	f.Helper()
	if root, err := testenv.FindSharedDICOM(); err == nil {
		for _, rel := range []string{
			"robustness/MR_small.dcm", "robustness/MR_small_implicit.dcm", "robustness/MR_small_bigendian.dcm",
			"robustness/MR_small_RLE.dcm", "robustness/image_dfl.dcm", "robustness/SC_rgb_jpeg_dcmtk.dcm",
			"robustness/MR_truncated.dcm",
		} {
			if b, err := os.ReadFile(filepath.Join(root, rel)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(part10(uidExplicitVRLittleEndian, identity(), image(4, 4, 2), ele(0x7FE00010, "OB", make([]byte, 32))))
	f.Add(part10("1.2.840.10008.1.2.4.50", identity(), image(2, 2, 0), encapsulatedPixels([]byte{1, 2}, []byte{3, 4})))
	f.Add(part10(uidDeflatedExplicitVRLE, deflated(append(identity(), ele(0x00100010, "PN", []byte("Doe^John"))...))))
	f.Add(part10(uidExplicitVRLittleEndian, identity(), nested(3)))
	f.Add(part10(uidExplicitVRLittleEndian, ele(0x00080005, "UN", []byte("ISO_IR 100")), identity()))
	f.Add(identity())
	f.Add([]byte{})
}

// FuzzReadInstance checks that no input makes ReadInstance, the JSON
// writer or frame extraction panic, hang or return anything but a
// *RejectError or the documented sentinels, and that accepted input gives
// valid JSON.
func FuzzReadInstance(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// A hang is a failure too: panicking from a watchdog makes the
		// fuzzer record the input.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("no result after 10s on a %d-byte input", len(b)))
			}
		}()
		in, err := readBytes(b)
		if err != nil {
			if AsReject(err) == nil {
				t.Fatalf("ReadInstance: not a *RejectError: %T %v", err, err)
			}
			return
		}
		if err := ValidateUID(in.SOPInstanceUID); err != nil {
			t.Fatalf("accepted an invalid SOP Instance UID: %v", err)
		}
		var out bytes.Buffer
		if err := WriteMetadataJSON(&out, bytes.NewReader(b), int64(len(b)), func(tag string) string { return tag }); err != nil {
			t.Fatalf("WriteMetadataJSON failed on an accepted instance: %v", err)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("invalid JSON: %s", out.Bytes())
		}
		_, err = NativeFrames(bytes.NewReader(b), int64(len(b)), []int{1, in.NumberOfFrames})
		if err != nil && !errors.Is(err, ErrNotNative) && !errors.Is(err, ErrNoPixelData) &&
			!errors.Is(err, ErrFrameRange) && in.BitsAllocated != 1 {
			t.Fatalf("NativeFrames: %v", err)
		}
		if _, err := PixelDataBytes(bytes.NewReader(b), int64(len(b))); err != nil && !errors.Is(err, ErrNoPixelData) {
			t.Fatalf("PixelDataBytes: %v", err)
		}
	})
}

func FuzzValidateUID(f *testing.F) {
	for _, s := range []string{"1.2.840.10008.1.2.1", "0", "1.02", "", "1..2", ".1", "1.", "2.25.1234567890"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateUID(s)
		if err != nil {
			return
		}
		// Accepted UIDs satisfy the rules checked independently.
		if len(s) == 0 || len(s) > 64 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
		for i, comp := range bytes.Split([]byte(s), []byte(".")) {
			if len(comp) == 0 {
				t.Fatalf("accepted %q with empty component %d", s, i)
			}
			if comp[0] == '0' && len(comp) > 1 {
				t.Fatalf("accepted %q with leading zero in component %d", s, i)
			}
			for _, c := range comp {
				if c < '0' || c > '9' {
					t.Fatalf("accepted %q with byte %q", s, c)
				}
			}
		}
	})
}
