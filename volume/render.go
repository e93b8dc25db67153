package volume

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
)

// Rendering: a plane of a volume as a picture, for key images. A section
// is one plane of the grid (a stored slice, or a coronal or sagittal
// reformat across the slices) resampled to square pixels; windowing maps
// its values to grey; an outline marks the boundary of each label of a
// label volume on the same grid.

// Plane names a plane of a volume's grid. The names are those of an axial
// acquisition (a CT head): the stored slices are the axial plane.
type Plane string

// The planes.
const (
	// Axial is a stored slice (constant k), as stored: i across, j down.
	Axial Plane = "axial"
	// Coronal is a plane of constant j: i across, the patient's right on
	// the left; k vertical, the head up.
	Coronal Plane = "coronal"
	// Sagittal is a plane of constant i: j across, anterior on the left;
	// k vertical, the head up.
	Sagittal Plane = "sagittal"
)

// ErrSection: a plane that is not Axial, Coronal or Sagittal, a section
// index outside the grid, or a label volume on another grid.
var ErrSection = errors.New("volume: no such section")

// MaxSectionSide bounds the width and height of a section in pixels: a
// reformat whose square pixels would need more gets larger pixels.
const MaxSectionSide = 4096

// Section is one plane of a volume resampled to square pixels.
type Section struct {
	Width, Height int
	// PixelMM is the side of a pixel, mm: the smaller of the two grid
	// spacings in the plane (unless MaxSectionSide asks for more).
	PixelMM float64
	// Pix holds the values row by row from the top left: the pixel (x, y)
	// is Pix[y*Width+x].
	Pix []float32
}

// planeAxes returns the grid axes of plane p: across (left to right),
// vertical (top to bottom) and the plane's normal.
func planeAxes(p Plane) (across, down, normal int, ok bool) {
	switch p {
	case Axial:
		return 0, 1, 2, true
	case Coronal:
		return 0, 2, 1, true
	case Sagittal:
		return 1, 2, 0, true
	}
	return 0, 0, 0, false
}

// SectionCount returns the number of sections of v in plane p (Size[2]
// axial, Size[1] coronal, Size[0] sagittal), 0 for an unknown plane.
// Section indices run along the grid's own axis: index k of an axial
// section is the stored slice k.
func SectionCount(v *Volume, p Plane) int {
	_, _, n, ok := planeAxes(p)
	if !ok {
		return 0
	}
	return v.Size[n]
}

// sectionGrid maps the pixels of a section to voxels: pixel (x, y) lies
// between the voxel offsets base+y0[y]+x0[x] and the neighbours at x1, y1,
// fx and fy of the way (bilinear).
type sectionGrid struct {
	w, h    int
	pixelMM float64
	base    int
	x0, x1  []int
	fx      []float32
	y0, y1  []int
	fy      []float32
}

// newSectionGrid places section index of plane p on v's grid.
func newSectionGrid(v *Volume, p Plane, index int, nearest bool) (*sectionGrid, error) {
	a, b, c, ok := planeAxes(p)
	if !ok {
		return nil, fmt.Errorf("%w: plane %q (want %s, %s or %s)", ErrSection, p, Axial, Coronal, Sagittal)
	}
	if index < 0 || index >= v.Size[c] {
		return nil, fmt.Errorf("%w: %s section %d of a grid of %d", ErrSection, p, index, v.Size[c])
	}
	if v.Size[a] < 1 || v.Size[b] < 1 || !(v.Spacing[a] > 0) || !(v.Spacing[b] > 0) {
		return nil, fmt.Errorf("%w: a grid of size %v and spacing %v has no %s plane", ErrSection, v.Size, v.Spacing, p)
	}
	stride := [3]int{1, v.Size[0], v.Size[0] * v.Size[1]}
	// Reformats are shown the way radiologists read them: the patient's
	// right on the left (coronal), anterior on the left (sagittal), the
	// head up; the stored slices as stored.
	var flipA, flipB bool
	if p != Axial {
		flipA = v.Axes[a][a] < 0 // +x is the patient's left, +y posterior
		flipB = v.Axes[2][2] > 0 // +z is the head: highest k on top
	}
	pix := math.Min(v.Spacing[a], v.Spacing[b])
	for _, ax := range [2]int{a, b} {
		pix = math.Max(pix, float64(v.Size[ax]-1)*v.Spacing[ax]/(MaxSectionSide-1))
	}
	g := &sectionGrid{pixelMM: pix, base: index * stride[c]}
	g.w, g.x0, g.x1, g.fx = axisMap(v.Size[a], v.Spacing[a], pix, flipA, nearest, stride[a])
	g.h, g.y0, g.y1, g.fy = axisMap(v.Size[b], v.Spacing[b], pix, flipB, nearest, stride[b])
	return g, nil
}

// axisMap samples an axis of n voxels spacing mm apart every pix mm
// (linear, or nearest), from the last voxel when flip is set. It returns
// the number of samples and, per sample, the voxel offsets (index ×
// stride) on either side and the weight of the second.
func axisMap(n int, spacing, pix float64, flip, nearest bool, stride int) (m int, i0, i1 []int, f []float32) {
	m = n
	if math.Abs(spacing-pix) > 1e-6*pix {
		m = int(math.Round(float64(n-1)*spacing/pix)) + 1
	}
	i0, i1, f = make([]int, m), make([]int, m), make([]float32, m)
	last := float64(n - 1)
	for o := range m {
		src := float64(o)
		if m != n {
			src = math.Min(float64(o)*pix/spacing, last)
		}
		if flip {
			src = last - src
		}
		lo := math.Floor(src)
		w := src - lo
		if nearest {
			lo, w = math.Round(src), 0
		}
		k := int(lo)
		i0[o], i1[o], f[o] = k*stride, min(k+1, n-1)*stride, float32(w)
	}
	return m, i0, i1, f
}

// sample fills dst (g.w×g.h) from the voxels src.
func sample[T int16 | float32](dst []float32, src []T, g *sectionGrid) {
	for y := range g.h {
		row := dst[y*g.w : (y+1)*g.w]
		r0, r1, wy := g.base+g.y0[y], g.base+g.y1[y], g.fy[y]
		for x := range row {
			a := float32(src[r0+g.x0[x]])
			if wx := g.fx[x]; wx != 0 {
				a += (float32(src[r0+g.x1[x]]) - a) * wx
			}
			if wy != 0 {
				b := float32(src[r1+g.x0[x]])
				if wx := g.fx[x]; wx != 0 {
					b += (float32(src[r1+g.x1[x]]) - b) * wx
				}
				a += (b - a) * wy
			}
			row[x] = a
		}
	}
}

// section computes section index of plane p of v's first volume.
func section(v *Volume, p Plane, index int, nearest bool) (*Section, error) {
	g, err := newSectionGrid(v, p, index, nearest)
	if err != nil {
		return nil, err
	}
	n := v.Voxels()
	s := &Section{Width: g.w, Height: g.h, PixelMM: g.pixelMM, Pix: make([]float32, g.w*g.h)}
	switch {
	case v.Data != nil:
		if len(v.Data) < n {
			return nil, fmt.Errorf("volume: %d values for a grid of %v", len(v.Data), v.Size)
		}
		sample(s.Pix, v.Data[:n], g)
	case v.Stored != nil:
		if len(v.Stored) < n {
			return nil, fmt.Errorf("volume: %d stored values for a grid of %v", len(v.Stored), v.Size)
		}
		// Interpolating the stored integers and then rescaling is
		// interpolating the values; a pixel on a voxel gets exactly
		// Values' float32(float64(stored)*Slope + Intercept).
		sample(s.Pix, v.Stored[:n], g)
		for i, x := range s.Pix {
			s.Pix[i] = float32(float64(x)*v.Slope + v.Intercept)
		}
	default:
		return nil, fmt.Errorf("volume: a grid of %v without values", v.Size)
	}
	return s, nil
}

// Reformat returns section index of v's first volume in plane p,
// interpolated linearly to square pixels: the axis of larger spacing (the
// slices of a coronal or sagittal reformat) is resampled to the other's
// spacing. It reads Data, or Stored when Data is nil (without filling
// Data, so concurrent calls are safe). An unknown plane or an index
// outside [0, SectionCount) is an error wrapping ErrSection.
func Reformat(v *Volume, p Plane, index int) (*Section, error) {
	return section(v, p, index, false)
}

// ReformatLabels is Reformat for a label volume: nearest-neighbour
// sampling, so that every pixel holds one voxel's label.
func ReformatLabels(labels *Volume, p Plane, index int) (*Section, error) {
	return section(labels, p, index, true)
}

// Gray windows the section into a new opaque grey image with the DICOM
// linear VOI function (PS3.3 C.11.2.1.2.1) of center and width (in the
// values' units, HU for CT; a width below 1 is taken as 1):
//
//	x <= center-0.5-(width-1)/2: 0
//	x >  center-0.5+(width-1)/2: 255
//	else: ((x-(center-0.5))/(width-1) + 0.5) * 255, rounded
func (s *Section) Gray(center, width float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	width = math.Max(width, 1)
	lo := center - 0.5 - (width-1)/2
	hi := center - 0.5 + (width-1)/2
	scale := 0.0
	if width > 1 {
		scale = 255 / (width - 1)
	}
	for y := range s.Height {
		src := s.Pix[y*s.Width : (y+1)*s.Width]
		dst := img.Pix[y*img.Stride : y*img.Stride+4*s.Width]
		for x, v := range src {
			var g uint8
			switch x := float64(v); {
			case !(x > lo): // NaN too
				g = 0
			case x > hi:
				g = 255
			default:
				g = uint8(min((x-lo)*scale+0.5, 255))
			}
			d := dst[4*x : 4*x+4 : 4*x+4]
			d[0], d[1], d[2], d[3] = g, g, g, 255
		}
	}
	return img
}

// Outline colours.
var (
	outlineRed    = color.RGBA{255, 0, 0, 255}
	outlineOrange = color.RGBA{255, 165, 0, 255}
	outlineYellow = color.RGBA{255, 255, 0, 255}
)

// OutlineColor is the colour of label's outline: 1 red, 2 orange, any
// other yellow.
func OutlineColor(label int) color.RGBA {
	switch label {
	case 1:
		return outlineRed
	case 2:
		return outlineOrange
	}
	return outlineYellow
}

// DrawOutline paints the boundary pixels of every nonzero label of labels
// (a section of the image's size, values rounded to whole labels) onto
// dst in OutlineColor: the pixels of a label with a 4-neighbour of another
// label, or on the image's edge. It panics when the sizes differ.
func DrawOutline(dst *image.RGBA, labels *Section) {
	w, h := labels.Width, labels.Height
	if b := dst.Bounds(); b.Dx() != w || b.Dy() != h || len(labels.Pix) != w*h {
		panic("volume: DrawOutline of labels of another size than the image")
	}
	lab := make([]int32, w*h)
	for i, x := range labels.Pix {
		lab[i] = int32(math.Round(float64(x)))
	}
	for y := range h {
		row := lab[y*w : (y+1)*w]
		for x, l := range row {
			if l == 0 {
				continue
			}
			edge := x == 0 || y == 0 || x == w-1 || y == h-1 ||
				row[x-1] != l || row[x+1] != l || lab[(y-1)*w+x] != l || lab[(y+1)*w+x] != l
			if !edge {
				continue
			}
			c := OutlineColor(int(l))
			o := dst.PixOffset(dst.Rect.Min.X+x, dst.Rect.Min.Y+y)
			d := dst.Pix[o : o+4 : o+4]
			d[0], d[1], d[2], d[3] = c.R, c.G, c.B, c.A
		}
	}
}

// RenderOptions say what Render draws.
type RenderOptions struct {
	Plane Plane
	// Index is the section (see SectionCount).
	Index int
	// Center and Width are the window (see Section.Gray).
	Center, Width float64
	// Labels, when not nil, is a label volume on the volume's grid whose
	// labels are outlined (DrawOutline).
	Labels *Volume
}

// Render draws a section of v as an opaque image: Reformat, windowed to
// grey, with the outline of o.Labels' section drawn over it. Errors wrap
// ErrSection for an unknown plane, an index outside the grid or labels on
// another grid.
func Render(v *Volume, o RenderOptions) (*image.RGBA, error) {
	s, err := Reformat(v, o.Plane, o.Index)
	if err != nil {
		return nil, err
	}
	img := s.Gray(o.Center, o.Width)
	if o.Labels == nil {
		return img, nil
	}
	for a := range 3 {
		if o.Labels.Size[a] != v.Size[a] || math.Abs(o.Labels.Spacing[a]-v.Spacing[a]) > 1e-3*v.Spacing[a] {
			return nil, fmt.Errorf("%w: labels on a grid of %v × %v mm, the volume's is %v × %v mm",
				ErrSection, o.Labels.Size[:3], o.Labels.Spacing, v.Size[:3], v.Spacing)
		}
	}
	ls, err := ReformatLabels(o.Labels, o.Plane, o.Index)
	if err != nil {
		return nil, err
	}
	DrawOutline(img, ls)
	return img, nil
}

// VoxelIndex returns the continuous voxel indices (i, j, k) of the LPS
// point p (mm): the inverse of Affine. A degenerate grid gives NaNs.
func (v *Volume) VoxelIndex(p [3]float64) [3]float64 {
	m := v.Affine()
	var a [3][3]float64
	var d [3]float64
	for r := range 3 {
		for c := range 3 {
			a[r][c] = m[r][c]
		}
		d[r] = p[r] - m[r][3]
	}
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) +
		a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	if det == 0 {
		return [3]float64{math.NaN(), math.NaN(), math.NaN()}
	}
	// Cramer's rule.
	var out [3]float64
	for c := range 3 {
		b := a
		for r := range 3 {
			b[r][c] = d[r]
		}
		out[c] = (b[0][0]*(b[1][1]*b[2][2]-b[1][2]*b[2][1]) -
			b[0][1]*(b[1][0]*b[2][2]-b[1][2]*b[2][0]) +
			b[0][2]*(b[1][0]*b[2][1]-b[1][1]*b[2][0])) / det
	}
	return out
}
