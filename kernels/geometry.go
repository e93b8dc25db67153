package kernels

import (
	"fmt"
	"math"
)

// Geometry places a single-channel volume in patient space, in the
// kernels' (D, H, W) order: it is the bookkeeping that goes with
// Resample, CropPad and Flip, so that a volume keeps its physical
// position through preprocessing.
//
// The voxel of index p = (d, h, w) has its centre at
//
//	Origin + p[0]*Spacing[0]*Axes[0] + p[1]*Spacing[1]*Axes[1] + p[2]*Spacing[2]*Axes[2]
//
// in LPS millimetres (IndexToLPS).
type Geometry struct {
	Size    [3]int     // voxels along D, H, W
	Spacing [3]float64 // mm between voxel centres along D, H, W
	Origin  [3]float64 // LPS position of the centre of voxel (0, 0, 0)
	// Axes are the LPS unit vectors of the D, H and W index directions.
	Axes [3][3]float64
}

// GeometryFromVolume converts the geometry of a volume.Volume (its Size,
// Spacing, Origin and Axes fields, in the volume's (i, j, k) order, where
// i is the fastest axis) to (D, H, W) order: D is k, H is j, W is i.
// Size[3], the number of volumes of a 4D series, is ignored: each volume
// has this geometry.
func GeometryFromVolume(size [4]int, spacing, origin [3]float64, axes [3][3]float64) Geometry {
	return Geometry{
		Size:    [3]int{size[2], size[1], size[0]},
		Spacing: [3]float64{spacing[2], spacing[1], spacing[0]},
		Origin:  origin,
		Axes:    [3][3]float64{axes[2], axes[1], axes[0]},
	}
}

// VolumeFields is the reverse of GeometryFromVolume: the Size (with one
// volume, Size[3] = 1), Spacing, Origin and Axes fields of a
// volume.Volume with this geometry.
func (g Geometry) VolumeFields() (size [4]int, spacing, origin [3]float64, axes [3][3]float64) {
	size = [4]int{g.Size[2], g.Size[1], g.Size[0], 1}
	spacing = [3]float64{g.Spacing[2], g.Spacing[1], g.Spacing[0]}
	axes = [3][3]float64{g.Axes[2], g.Axes[1], g.Axes[0]}
	return size, spacing, g.Origin, axes
}

// Voxels is the number of voxels.
func (g Geometry) Voxels() int { return Voxels(g.Size) }

// IndexToLPS is the LPS position of the (possibly fractional) index p.
func (g Geometry) IndexToLPS(p [3]float64) [3]float64 {
	x := g.Origin
	for a := 0; a < 3; a++ {
		for r := 0; r < 3; r++ {
			x[r] += p[a] * g.Spacing[a] * g.Axes[a][r]
		}
	}
	return x
}

// Centre is the LPS position of the centre of the grid, the middle of its
// first and last voxel centres.
func (g Geometry) Centre() [3]float64 {
	var p [3]float64
	for a := 0; a < 3; a++ {
		p[a] = float64(g.Size[a]-1) / 2
	}
	return g.IndexToLPS(p)
}

// check says whether sizes and spacings are usable.
func (g Geometry) check() error {
	for a := 0; a < 3; a++ {
		s := g.Spacing[a]
		if g.Size[a] <= 0 || !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%w: geometry of %v voxels at %v mm", ErrShape, g.Size, g.Spacing)
		}
	}
	return nil
}

// ResampleTo is the grid of the given spacing and size (per axis, D, H,
// W) over the same volume, with the same axes and the same physical
// centre, and the map from its voxel indices to this grid's, for
// Resample:
//
//	src[a] = (Size[a]-1)/2 + (dst[a] - (size[a]-1)/2) * spacing[a]/Spacing[a]
//
// A spacing of 0 keeps this grid's spacing on that axis; a size of 0
// covers this grid's extent, round(Size*Spacing/spacing) voxels (at least
// one). Resampling to this grid's own spacing and size gives Scale 1 and
// Offset 0 exactly. Keeping the spacing but changing the size by an odd
// number of voxels moves the grid by half a voxel (the centres stay
// together); CenteredCropPad changes the size by whole voxels instead.
func (g Geometry) ResampleTo(spacing [3]float64, size [3]int) (Geometry, AxisMap, error) {
	var m AxisMap
	if err := g.check(); err != nil {
		return g, m, err
	}
	out := g
	for a := 0; a < 3; a++ {
		sp := spacing[a]
		if sp == 0 {
			sp = g.Spacing[a]
		}
		if !(sp > 0) || math.IsInf(sp, 0) || size[a] < 0 {
			return g, m, fmt.Errorf("%w: resample to %v voxels at %v mm", ErrShape, size, spacing)
		}
		n := size[a]
		if n == 0 {
			f := math.Round(float64(g.Size[a]) * g.Spacing[a] / sp)
			if !(f <= 1<<30) {
				return g, m, fmt.Errorf("%w: resample axis %d: %v voxels at %v mm cover %v voxels at %v mm", ErrShape, a, g.Size[a], g.Spacing[a], f, sp)
			}
			n = max(1, int(f))
		}
		out.Size[a], out.Spacing[a] = n, sp
		scale := sp / g.Spacing[a]
		if sp == g.Spacing[a] {
			scale = 1
		}
		m.Scale[a] = scale
		m.Offset[a] = float64(g.Size[a]-1)/2 - float64(n-1)/2*scale
	}
	// The new origin: the old centre less half the new extent.
	c := g.Centre()
	for a := 0; a < 3; a++ {
		h := float64(out.Size[a]-1) / 2 * out.Spacing[a]
		for r := 0; r < 3; r++ {
			c[r] -= h * g.Axes[a][r]
		}
	}
	if m.Offset == [3]float64{} && m.Scale == [3]float64{1, 1, 1} {
		c = g.Origin // exactly, rather than through the centre
	}
	out.Origin = c
	return out, m, nil
}

// CropPad is the geometry after Backend.CropPad with this offset into a
// grid of size voxels: its voxel p is this grid's voxel p+offset, so the
// origin moves to IndexToLPS(offset). Sizes are not checked here
// (Backend.CropPad checks them).
func (g Geometry) CropPad(size, offset [3]int) Geometry {
	out := g
	out.Size = size
	out.Origin = g.IndexToLPS([3]float64{float64(offset[0]), float64(offset[1]), float64(offset[2])})
	return out
}

// CenteredCropPad is CropPad to size voxels keeping the grid centred:
// the offset on each axis is floor((Size-size)/2), so an odd difference
// leaves the extra voxel at the end. It returns the new geometry and the
// offset for Backend.CropPad.
func (g Geometry) CenteredCropPad(size [3]int) (Geometry, [3]int) {
	var off [3]int
	for a := 0; a < 3; a++ {
		d := g.Size[a] - size[a]
		off[a] = d / 2
		if d < 0 && d%2 != 0 {
			off[a]-- // floor, not truncation
		}
	}
	return g.CropPad(size, off), off
}

// Flip is the geometry after Backend.Flip along the marked axes: each
// flipped axis points the other way and the origin moves to the voxel
// that was last along it, so every voxel keeps its position.
func (g Geometry) Flip(axes [3]bool) Geometry {
	out := g
	var p [3]float64
	for a := 0; a < 3; a++ {
		if axes[a] {
			p[a] = float64(g.Size[a] - 1)
			for r := 0; r < 3; r++ {
				out.Axes[a][r] = -g.Axes[a][r]
			}
		}
	}
	out.Origin = g.IndexToLPS(p)
	return out
}
