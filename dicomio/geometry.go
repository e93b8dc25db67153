package dicomio

import (
	"math"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// VolumeInfo holds the attributes volume assembly and series choice need
// beyond the Image Plane module fields of Instance: image type, kernel,
// tilt, padding, the keys that separate time points and echoes, and, for
// enhanced multi-frame objects, the geometry of every frame. All of it is
// read from the data set parsed at ingest; no pixel data is touched.
type VolumeInfo struct {
	ImageType         []string // Image Type (0008,0008), upper case
	ConvolutionKernel string   // Convolution Kernel (0018,1210), values joined by a backslash
	Manufacturer      string   // Manufacturer (0008,0070)

	// GantryDetectorTilt (0018,1120) in degrees; 0 when absent.
	GantryDetectorTilt float64
	// SpacingBetweenSlices (0018,0088) in mm; 0 when absent.
	SpacingBetweenSlices float64

	// Pixel Padding Value (0028,0120) and Pixel Padding Range Limit
	// (0028,0121) as read (an SS value may read as its unsigned 16-bit
	// pattern; PaddingValues interprets them with Pixel Representation).
	HasPixelPadding        bool
	PixelPaddingValue      int
	HasPixelPaddingRange   bool
	PixelPaddingRangeLimit int

	AcquisitionNumber          int    // (0020,0012)
	EchoNumbers                int    // (0018,0086), first value
	TemporalPositionIdentifier int    // (0020,0100)
	AcquisitionTime            string // (0008,0032), or the time of Acquisition DateTime (0008,002A)

	// PhilipsScaleSlope is Philips' private MR Scale Slope (2005,100E),
	// 0 when absent; with the rescale it gives Philips' "floating point"
	// values (value·RS+RI)/(RS·SS), which dcm2niix writes by default.
	PhilipsScaleSlope float64

	// Frames holds the per-frame geometry of an enhanced multi-frame image
	// (PS3.3 C.7.6.16: Shared and Per-Frame Functional Groups, the
	// per-frame item overriding the shared one), one entry per frame; nil
	// for other instances.
	Frames []FrameInfo
}

// FrameInfo is the geometry and identity of one frame of an enhanced
// multi-frame image. Slices are nil when the functional group is absent.
type FrameInfo struct {
	ImagePositionPatient    []float64 // Plane Position (Patient), 3 values
	ImageOrientationPatient []float64 // Plane Orientation (Patient), 6 values
	PixelSpacing            []float64 // Pixel Measures, 2 values
	SliceThickness          float64
	HasRescale              bool
	RescaleSlope            float64 // 1 when absent
	RescaleIntercept        float64
	PhilipsScaleSlope       float64 // (2005,100E) in the frame's Philips private item, 0 when absent

	// Frame Content (0020,9111).
	DimensionIndexValues  []int
	StackID               string
	InStackPositionNumber int
	TemporalPositionIndex int
	// FrameType (0008,9007) of the MR/CT Image Frame Type sequence, upper
	// case: magnitude, phase and field-map frames of one object differ here.
	FrameType []string
	// EffectiveEchoTime (0018,9082) of the MR Echo sequence, ms; 0 when absent.
	EffectiveEchoTime float64
}

// Tags of the volume attributes not in the library's dictionary or named
// here for clarity.
var (
	tagPixelPaddingRangeLimit   = tag.Tag{Group: 0x0028, Element: 0x0121}
	tagPixelPaddingValue        = tag.Tag{Group: 0x0028, Element: 0x0120}
	tagFrameContent             = tag.Tag{Group: 0x0020, Element: 0x9111}
	tagDimensionIndexValues     = tag.Tag{Group: 0x0020, Element: 0x9157}
	tagStackID                  = tag.Tag{Group: 0x0020, Element: 0x9056}
	tagInStackPositionNumber    = tag.Tag{Group: 0x0020, Element: 0x9057}
	tagTemporalPositionIndex    = tag.Tag{Group: 0x0020, Element: 0x9128}
	tagMRImageFrameType         = tag.Tag{Group: 0x0018, Element: 0x9226}
	tagCTImageFrameType         = tag.Tag{Group: 0x0018, Element: 0x9329}
	tagFrameType                = tag.Tag{Group: 0x0008, Element: 0x9007}
	tagMREcho                   = tag.Tag{Group: 0x0018, Element: 0x9114}
	tagEffectiveEchoTime        = tag.Tag{Group: 0x0018, Element: 0x9082}
	tagPhilipsScaleSlope        = tag.Tag{Group: 0x2005, Element: 0x100E}
	tagPhilipsPerFrame          = tag.Tag{Group: 0x2005, Element: 0x140F}
	tagAcquisitionDateTime      = tag.Tag{Group: 0x0008, Element: 0x002A}
	tagGantryDetectorTilt       = tag.Tag{Group: 0x0018, Element: 0x1120}
	tagSpacingBetweenSlices     = tag.Tag{Group: 0x0018, Element: 0x0088}
	tagConvolutionKernel        = tag.Tag{Group: 0x0018, Element: 0x1210}
	tagTemporalPositionIdentity = tag.Tag{Group: 0x0020, Element: 0x0100}
	tagEchoNumbers              = tag.Tag{Group: 0x0018, Element: 0x0086}
	tagAcquisitionNumber        = tag.Tag{Group: 0x0020, Element: 0x0012}
	tagAcquisitionTime          = tag.Tag{Group: 0x0008, Element: 0x0032}
	tagImageType                = tag.Tag{Group: 0x0008, Element: 0x0008}
	tagManufacturer             = tag.Tag{Group: 0x0008, Element: 0x0070}
)

// maxFrameInfos bounds the per-frame geometry kept for one instance; a
// larger Number of Frames than Per-Frame items is an inconsistent object
// that assembly reports.
const maxFrameInfos = 1 << 16

// volumeAttributes fills in.VolumeInfo from the data set.
func (in *Instance) volumeAttributes(ds []*dicom.Element) {
	v := &in.VolumeInfo
	v.ImageType = upperAll(strs(find(ds, tagImageType)))
	v.ConvolutionKernel = str(ds, tagConvolutionKernel)
	v.Manufacturer = str(ds, tagManufacturer)
	v.GantryDetectorTilt = float(ds, tagGantryDetectorTilt)
	v.SpacingBetweenSlices = float(ds, tagSpacingBetweenSlices)
	if e := find(ds, tagPixelPaddingValue); e != nil {
		if f, ok := firstFloat(e); ok {
			v.HasPixelPadding, v.PixelPaddingValue = true, int(f)
		}
	}
	if e := find(ds, tagPixelPaddingRangeLimit); e != nil {
		if f, ok := firstFloat(e); ok {
			v.HasPixelPaddingRange, v.PixelPaddingRangeLimit = true, int(f)
		}
	}
	v.AcquisitionNumber = integer(ds, tagAcquisitionNumber)
	v.EchoNumbers = integer(ds, tagEchoNumbers)
	v.TemporalPositionIdentifier = integer(ds, tagTemporalPositionIdentity)
	v.AcquisitionTime = str(ds, tagAcquisitionTime)
	if v.AcquisitionTime == "" {
		if dt := str(ds, tagAcquisitionDateTime); len(dt) > 8 {
			v.AcquisitionTime = dt[8:]
		}
	}
	v.PhilipsScaleSlope = float(ds, tagPhilipsScaleSlope)

	perFrame := seqItems(find(ds, tag.PerFrameFunctionalGroupsSequence))
	if len(perFrame) == 0 || len(perFrame) > maxFrameInfos {
		return
	}
	var shared FrameInfo
	if items := seqItems(find(ds, tag.SharedFunctionalGroupsSequence)); len(items) > 0 {
		frameGroups(&shared, items[0])
	}
	v.Frames = make([]FrameInfo, len(perFrame))
	for i, item := range perFrame {
		f := shared
		frameGroups(&f, item)
		if !f.HasRescale {
			f.RescaleSlope = 1
		}
		v.Frames[i] = f
	}
	// The first frame's Philips scale slope stands for the instance when
	// the top level has none.
	if v.PhilipsScaleSlope == 0 {
		v.PhilipsScaleSlope = v.Frames[0].PhilipsScaleSlope
	}
}

// frameGroups overrides f with the functional groups present in one item of
// the Shared or Per-Frame Functional Groups Sequence.
func frameGroups(f *FrameInfo, g []*dicom.Element) {
	if m := seqItems(find(g, tag.PixelMeasuresSequence)); len(m) > 0 {
		if ps := floatsN(m[0], tag.PixelSpacing, 2); ps != nil {
			f.PixelSpacing = ps
		}
		if t := float(m[0], tag.SliceThickness); t != 0 {
			f.SliceThickness = t
		}
	}
	if o := seqItems(find(g, tag.PlaneOrientationSequence)); len(o) > 0 {
		if iop := floatsN(o[0], tag.ImageOrientationPatient, 6); iop != nil {
			f.ImageOrientationPatient = iop
		}
	}
	if p := seqItems(find(g, tag.PlanePositionSequence)); len(p) > 0 {
		if ipp := floatsN(p[0], tag.ImagePositionPatient, 3); ipp != nil {
			f.ImagePositionPatient = ipp
		}
	}
	if t := seqItems(find(g, tag.PixelValueTransformationSequence)); len(t) > 0 {
		if e := find(t[0], tag.RescaleSlope); e != nil {
			if s, ok := firstFloat(e); ok && s != 0 {
				f.HasRescale, f.RescaleSlope = true, s
			}
		}
		if e := find(t[0], tag.RescaleIntercept); e != nil {
			if s, ok := firstFloat(e); ok {
				f.HasRescale, f.RescaleIntercept = true, s
			}
		}
	}
	if c := seqItems(find(g, tagFrameContent)); len(c) > 0 {
		if e := find(c[0], tagDimensionIndexValues); e != nil {
			vals := floats(e)
			f.DimensionIndexValues = make([]int, len(vals))
			for i, x := range vals {
				if math.Abs(x) < math.MaxInt32 {
					f.DimensionIndexValues[i] = int(x)
				}
			}
		}
		if s := str(c[0], tagStackID); s != "" {
			f.StackID = s
		}
		if n := integer(c[0], tagInStackPositionNumber); n != 0 {
			f.InStackPositionNumber = n
		}
		if n := integer(c[0], tagTemporalPositionIndex); n != 0 {
			f.TemporalPositionIndex = n
		}
	}
	for _, t := range []tag.Tag{tagMRImageFrameType, tagCTImageFrameType} {
		if ft := seqItems(find(g, t)); len(ft) > 0 {
			if v := upperAll(strs(find(ft[0], tagFrameType))); len(v) > 0 {
				f.FrameType = v
			}
		}
	}
	if e := seqItems(find(g, tagMREcho)); len(e) > 0 {
		if te := float(e[0], tagEffectiveEchoTime); te != 0 {
			f.EffectiveEchoTime = te
		}
	}
	if p := seqItems(find(g, tagPhilipsPerFrame)); len(p) > 0 {
		if ss := float(p[0], tagPhilipsScaleSlope); ss != 0 {
			f.PhilipsScaleSlope = ss
		}
	}
}

// PaddingValues returns the stored pixel values that are padding: lo..hi
// inclusive (lo == hi for a single Pixel Padding Value), interpreted as
// signed 16-bit or wider values when Pixel Representation is 1. ok is
// false when the instance declares no padding.
func (in *Instance) PaddingValues() (lo, hi int, ok bool) {
	if !in.HasPixelPadding {
		return 0, 0, false
	}
	fix := func(v int) int {
		if in.PixelRepresentation == 1 && in.BitsAllocated == 16 && v > math.MaxInt16 && v <= math.MaxUint16 {
			return v - (1 << 16)
		}
		return v
	}
	lo = fix(in.PixelPaddingValue)
	hi = lo
	if in.HasPixelPaddingRange {
		hi = fix(in.PixelPaddingRangeLimit)
		if hi < lo {
			lo, hi = hi, lo
		}
	}
	return lo, hi, true
}

// upperAll returns the values trimmed and upper-cased, nil for none.
func upperAll(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = strings.ToUpper(strings.TrimSpace(s))
	}
	return out
}
