package volume

// Volume is a voxel grid in DICOM patient coordinates (LPS, millimetres).
//
// Layout: Data holds Size[0]×Size[1]×Size[2]×Size[3] values, the voxel
// (i, j, k, t) at index i + Size[0]*(j + Size[1]*(k + Size[2]*t)). i runs
// along a DICOM row (columns, the first three values of Image Orientation
// (Patient)), j down the rows (the last three), k across slices in the
// order of increasing position along Axes[2], t over volumes of a 4D
// series (Size[3] is 1 for a plain 3D volume).
//
// Values are real-world values: stored pixel values with each slice's
// Rescale Slope and Intercept applied (Hounsfield units for CT), computed
// in float64 and rounded to float32. Voxels that were Pixel Padding Value
// on a CT hold PaddingHU.
//
// The values are held in Data, or in Stored (see there) with Data nil
// until Values fills it: read them with Values, or use Stored directly
// when it is not nil.
type Volume struct {
	Size    [4]int
	Spacing [3]float64 // mm between voxel centres along i, j, k
	// Origin is the LPS position of the centre of voxel (0, 0, 0).
	Origin [3]float64
	// Axes are the LPS unit vectors of the i, j and k directions. Axes[2]
	// is Axes[0]×Axes[1] unless the grid is sheared (TiltAffine).
	Axes [3][3]float64
	Data []float32
	// Stored, when not nil, holds the stored integers of every voxel in
	// the layout of Data: the value of voxel i is exactly
	// float32(float64(Stored[i])*Slope + Intercept), Pixel Padding Value
	// voxels of a CT hold the stored integer whose value is PaddingHU.
	// Assemble fills it, rather than Data, when every slice shares one
	// rescale, the stored values fit an int16 (Bits Allocated 8 or 16;
	// signed, or unsigned of at most 15 bits), and nothing was resampled
	// (no shear correction, no equal-spacing interpolation); Slope is then
	// not 0. Data may then be nil: Values computes it.
	Stored []int16

	// Slope and Intercept are the rescale shared by every slice, so that
	// (v-Intercept)/Slope recovers the stored integers (a NIfTI writer uses
	// them as scl_slope/scl_inter, as dcm2niix does). Slope is 0 when the
	// slices do not share one rescale or the values are not stored
	// integers (after resampling).
	Slope, Intercept float64
	// StoredSigned is the Pixel Representation of the stored integers;
	// StoredBits their Bits Stored (0 when Slope is 0).
	StoredSigned bool
	StoredBits   int

	// Provenance and diagnostics.
	SeriesInstanceUID string
	Modality          string
	Warnings          []Warning
	// Notes say, in sentences, what assembly did beyond stacking slices:
	// shear correction of a gantry tilt, resampling to equal spacing,
	// dropped duplicates.
	Notes []string
}

// PaddingHU is the value given to CT voxels that held the Pixel Padding
// Value (outside the scanned field of view): the CT value of air.
const PaddingHU = -1024

// Warning is one structured finding about a series or stack.
type Warning struct {
	Code    WarningCode
	Message string // a sentence naming the slices or values involved
}

// WarningCode classifies a Warning.
type WarningCode string

// Warning codes.
const (
	WarnGap               WarningCode = "gap"                // a missing slice: spacing about a multiple of the usual one
	WarnIrregularSpacing  WarningCode = "irregular-spacing"  // spacings differ beyond tolerance
	WarnDuplicate         WarningCode = "duplicate"          // an exact duplicate slice was dropped
	WarnConflictingSlices WarningCode = "conflicting-slices" // two slices at one position with different pixels
	WarnMixedSize         WarningCode = "mixed-size"         // slices of another rows/columns/spacing split off
	WarnMixedOrientation  WarningCode = "mixed-orientation"  // slices of another orientation split off
	WarnGantryTilt        WarningCode = "gantry-tilt"        // the stack is sheared (tilted gantry)
	WarnUndecodable       WarningCode = "undecodable"        // pixel data that could not be decoded
	WarnNoGeometry        WarningCode = "no-geometry"        // slices without position/orientation/spacing
	WarnTooFewSlices      WarningCode = "too-few-slices"     // a stack too thin to be a volume
)

// Affine returns the 4×4 matrix mapping voxel indices (i, j, k, 1) to LPS
// millimetres (x, y, z, 1).
func (v *Volume) Affine() [4][4]float64 {
	var m [4][4]float64
	for r := range 3 {
		for c := range 3 {
			m[r][c] = v.Axes[c][r] * v.Spacing[c]
		}
		m[r][3] = v.Origin[r]
	}
	m[3][3] = 1
	return m
}

// Voxels is the number of values per 3D volume.
func (v *Volume) Voxels() int { return v.Size[0] * v.Size[1] * v.Size[2] }

// Values returns the real-world values (Data), computing them from Stored
// first when Data is nil: float32(float64(Stored[i])*Slope + Intercept).
// It sets v.Data, so it must not be called concurrently with itself or
// with other uses of v.Data.
func (v *Volume) Values() []float32 {
	if v.Data != nil || v.Stored == nil {
		return v.Data
	}
	data := make([]float32, len(v.Stored))
	// The values as a table over the int16 range: one lookup per voxel.
	var lut [1 << 16]float32
	for x := range 1 << 16 {
		lut[x] = float32(float64(int16(uint16(x)))*v.Slope + v.Intercept)
	}
	for i, x := range v.Stored {
		data[i] = lut[uint16(x)]
	}
	v.Data = data
	return data
}
