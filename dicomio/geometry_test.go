package dicomio

import (
	"math"
	"slices"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

func TestVolumeInfoClassicCT(t *testing.T) {
	in, err := ReadInstanceBytes(testenv.Fixture(t, "ct-head-5mm/I10"))
	if err != nil {
		t.Fatal(err)
	}
	v := in.VolumeInfo
	if !slices.Equal(v.ImageType, []string{"ORIGINAL", "PRIMARY", "AXIAL"}) || v.ConvolutionKernel != "UB" {
		t.Errorf("image type %q kernel %q", v.ImageType, v.ConvolutionKernel)
	}
	if v.AcquisitionNumber != 1 || v.GantryDetectorTilt != 0 || v.Frames != nil || v.HasPixelPadding {
		t.Errorf("acquisition %d tilt %v frames %d padding %v", v.AcquisitionNumber, v.GantryDetectorTilt, len(v.Frames), v.HasPixelPadding)
	}
}

func TestVolumeInfoEnhancedPhilips(t *testing.T) {
	in, err := ReadInstanceBytes(testenv.Fixture(t, "enhanced/In/Philips/IM_0027_fMAP.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	fr := in.Frames
	if len(fr) != 64 || in.NumberOfFrames != 64 {
		t.Fatalf("%d frame infos for %d frames", len(fr), in.NumberOfFrames)
	}
	types := map[string]int{}
	for _, f := range fr {
		types[f.FrameType[len(f.FrameType)-1]]++
		if len(f.ImagePositionPatient) != 3 || len(f.ImageOrientationPatient) != 6 || !slices.Equal(f.PixelSpacing, []float64{4, 4}) || f.SliceThickness != 4 {
			t.Fatalf("frame geometry %+v", f)
		}
	}
	if types["M"] != 32 || types["FIELD_MAP"] != 32 {
		t.Errorf("frame types %v, want 32 M and 32 FIELD_MAP", types)
	}
	f0 := fr[0]
	if !slices.Equal(f0.ImagePositionPatient, []float64{-127.24297738075, -119.77660465240, -38.354590835260}) {
		t.Errorf("frame 1 position %v (want Plane Position (Patient), not the private copy)", f0.ImagePositionPatient)
	}
	if !f0.HasRescale || math.Abs(f0.RescaleSlope-1.27985347985347) > 1e-12 || f0.RescaleIntercept != 0 {
		t.Errorf("frame 1 rescale %v %v %v", f0.HasRescale, f0.RescaleSlope, f0.RescaleIntercept)
	}
	if math.Abs(f0.PhilipsScaleSlope-8.44864007e-06) > 1e-12 || f0.EffectiveEchoTime != 1.52 {
		t.Errorf("frame 1 Philips scale slope %v echo time %v", f0.PhilipsScaleSlope, f0.EffectiveEchoTime)
	}
	if !slices.Equal(f0.DimensionIndexValues, []int{1, 1, 2, 0}) || f0.StackID != "1" || f0.InStackPositionNumber != 1 || f0.TemporalPositionIndex != 1 {
		t.Errorf("frame content %v %q %d %d", f0.DimensionIndexValues, f0.StackID, f0.InStackPositionNumber, f0.TemporalPositionIndex)
	}
	var mapSlope float64
	for _, f := range fr {
		if f.FrameType[3] == "FIELD_MAP" {
			mapSlope = f.PhilipsScaleSlope
			break
		}
	}
	if math.Abs(mapSlope-4.095000267) > 1e-6 {
		t.Errorf("field-map frames' Philips scale slope %v, want 4.095", mapSlope)
	}
}

func TestVolumeInfoEnhancedSiemens(t *testing.T) {
	in, err := ReadInstanceBytes(testenv.Fixture(t, "enhanced/In/Siemens/XA10/6_2.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Frames) != 6 || in.AcquisitionNumber != 2 {
		t.Fatalf("%d frames, acquisition %d", len(in.Frames), in.AcquisitionNumber)
	}
	var zs []float64
	for _, f := range in.Frames {
		if !slices.Equal(f.FrameType, []string{"ORIGINAL", "PRIMARY", "M", "NONE"}) || f.TemporalPositionIndex != 2 {
			t.Errorf("frame type %q temporal index %d", f.FrameType, f.TemporalPositionIndex)
		}
		if !slices.Equal(f.PixelSpacing, []float64{3.375, 3.375}) {
			t.Errorf("pixel spacing %v from the shared groups", f.PixelSpacing)
		}
		zs = append(zs, f.ImagePositionPatient[2])
	}
	slices.Sort(zs)
	for i := 1; i < len(zs); i++ {
		if d := zs[i] - zs[i-1]; math.Abs(d-2.4) > 1e-3 {
			t.Errorf("frames %v mm apart, want 2.4", d)
		}
	}
}

func TestPaddingValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     Instance
		lo, hi int
		ok     bool
	}{
		{"none", Instance{}, 0, 0, false},
		{"unsigned", Instance{VolumeInfo: VolumeInfo{HasPixelPadding: true, PixelPaddingValue: 0}, BitsAllocated: 16}, 0, 0, true},
		{"signed read as unsigned", Instance{VolumeInfo: VolumeInfo{HasPixelPadding: true, PixelPaddingValue: 0xF830}, BitsAllocated: 16, PixelRepresentation: 1}, -2000, -2000, true},
		{"range reversed", Instance{VolumeInfo: VolumeInfo{HasPixelPadding: true, PixelPaddingValue: -1000, HasPixelPaddingRange: true, PixelPaddingRangeLimit: -2048}, BitsAllocated: 16, PixelRepresentation: 1}, -2048, -1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := tc.in.PaddingValues()
			if lo != tc.lo || hi != tc.hi || ok != tc.ok {
				t.Errorf("PaddingValues() = %d, %d, %v; want %d, %d, %v", lo, hi, ok, tc.lo, tc.hi, tc.ok)
			}
		})
	}
}
