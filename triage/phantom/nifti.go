package phantom

import (
	"github.com/radtriage/radtriage/volume"
)

// volumeOf returns a volume.Volume of p's grid holding stored integers
// with the given rescale, in volume's layout: voxel (i, j, k) = (w, h, d)
// at i + W*(j + H*k), which is p's (D, H, W) order.
func (p *Phantom) volumeOf(stored []int16, intercept float64, bits int, signed bool) *volume.Volume {
	return &volume.Volume{
		Size:         [4]int{p.Size[2], p.Size[1], p.Size[0], 1},
		Spacing:      [3]float64{p.Spacing[2], p.Spacing[1], p.Spacing[0]},
		Origin:       p.Origin,
		Axes:         [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
		Stored:       stored,
		Slope:        1,
		Intercept:    intercept,
		StoredBits:   bits,
		StoredSigned: signed,
		Modality:     "CT",
	}
}

// HUVolume returns the CT values as a volume.Volume, as volume.Assemble
// gives them for the written series (stored HU + 1024, intercept -1024).
func (p *Phantom) HUVolume() *volume.Volume {
	st := make([]int16, len(p.HU))
	for i, v := range p.HU {
		st[i] = v - RescaleIntercept
	}
	return p.volumeOf(st, RescaleIntercept, 16, true)
}

// LabelVolume returns the mask as a volume.Volume on the grid of the
// series (labels 0, 1, 2 as stored integers, slope 1, intercept 0).
func (p *Phantom) LabelVolume() *volume.Volume {
	st := make([]int16, len(p.Labels))
	for i, v := range p.Labels {
		st[i] = int16(v)
	}
	v := p.volumeOf(st, 0, 8, false)
	v.Modality = ""
	return v
}

// WriteMask writes the mask as NIfTI-1 (name ending .nii or .nii.gz),
// with volume.WriteNIfTIFile's conventions, so that it shares its grid
// and affine with "radtriage volume" of the written series.
func WriteMask(name string, p *Phantom) error {
	return volume.WriteNIfTIFile(name, p.LabelVolume(), volume.NIfTIOptions{Description: "radtriage phantom labels: 1 ich, 2 sdh"})
}
