package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/radtriage/radtriage/triage/phantom"
)

type phantomConfig struct {
	Out    string
	Seed   int
	Count  int
	Lesion string
	Size   [3]int
	Noise  float64
}

func parsePhantom(env *environ, args []string) (*phantomConfig, error) {
	var c phantomConfig
	fs := newFlagSet("phantom", "", `Write synthetic head-CT studies: each a DICOM CT series (one file per
slice) in OUT/NNNN/dicom/, its lesions' mask as OUT/NNNN/mask.nii.gz (NIfTI-1,
on the grid that "radtriage volume" writes for the series; labels 1 ICH,
2 SDH) and OUT/NNNN/truth.json (the lesions: kind, volume_ml, centroid_lps,
bbox). Study i (from 1) has seed --seed + i - 1, and is the same for a seed
on every run. -o is short for --out. Exit status: 0 done, 1 error, 2 usage.`, env)
	fs.stringVar(&c.Out, "out", "DIR", "", "the folder to write the studies into (created if need be)", nil)
	outOpt := fs.opts[len(fs.opts)-1]
	fs.fs.Func("o", "short for --out", func(s string) error {
		outOpt.cmdline, outOpt.fromFlag = s, true
		return nil
	})
	fs.intVar(&c.Seed, "seed", 1, 0, "the seed of the first study")
	fs.intVar(&c.Count, "count", 1, 1, "the number of studies")
	fs.enumVar(&c.Lesion, "lesion", "random", "the lesions of each study: none, one ICH, one SDH, or random (none, ICH, SDH or both, by seed)", "none", "ich", "sdh", "random")
	fs.add("size", "DxHxW", "32x256x256", "slices × rows × columns (slices 5 mm apart, pixels of 0.9 mm)", func(s string) error {
		n, err := phantom.ParseSize(s)
		if err != nil {
			return errors.New("want slices x rows x columns, e.g. 32x256x256 (rows and columns at least 16, each at most 2048)")
		}
		c.Size = n
		return nil
	})
	fs.add("noise", "HU", strconv.Itoa(phantom.DefaultNoise), "the standard deviation of the Gaussian noise in HU (0: none)", func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("not a number")
		}
		if f < 0 || f > 500 {
			return errors.New("must be 0 to 500")
		}
		c.Noise = f
		return nil
	})
	if _, err := fs.parse(args, 0); err != nil {
		return nil, err
	}
	if c.Out == "" {
		return nil, usagef("phantom: --out (or -o, or RADTRIAGE_OUT) is required")
	}
	if c.Count > 100000 {
		return nil, usagef("phantom: %s: at most 100000 studies", fs.origin("count"))
	}
	return &c, nil
}

// runPhantom is "radtriage phantom".
func runPhantom(ctx context.Context, env *environ, args []string) error {
	c, err := parsePhantom(env, args)
	if err != nil {
		return err
	}
	for i := range c.Count {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(c.Out, fmt.Sprintf("%04d", i+1))
		seed := uint64(c.Seed) + uint64(i)
		t, err := writeStudy(dir, seed, c)
		if err != nil {
			return err
		}
		var ls []string
		for _, l := range t.Lesions {
			ls = append(ls, fmt.Sprintf("%s %.1f mL", l.Kind, l.VolumeML))
		}
		if len(ls) == 0 {
			ls = []string{"none"}
		}
		fmt.Fprintf(env.stdout, "wrote %s: seed %d, %d slices, lesions: %s\n", dir, seed, c.Size[0], strings.Join(ls, ", "))
	}
	return nil
}

// studyTruth is truth.json.
type studyTruth struct {
	Seed              uint64         `json:"seed"`
	SeriesDir         string         `json:"series_dir"`
	Mask              string         `json:"mask"`
	Labels            map[int]string `json:"labels"`
	SizeDHW           [3]int         `json:"size_dhw"`
	SpacingDHW        [3]float64     `json:"spacing_dhw_mm"`
	OriginLPS         [3]float64     `json:"origin_lps"`
	StudyInstanceUID  string         `json:"study_instance_uid"`
	SeriesInstanceUID string         `json:"series_instance_uid"`
	NoiseHU           float64        `json:"noise_hu"`
	Lesions           []lesionTruth  `json:"lesions"`
}

type lesionTruth struct {
	Kind        string     `json:"kind"`
	Label       uint8      `json:"label"`
	VolumeML    float64    `json:"volume_ml"`
	TargetML    float64    `json:"target_ml"`
	Voxels      int        `json:"voxels"`
	CentroidLPS [3]float64 `json:"centroid_lps"`
	// BBox is the inclusive voxel box (slice, row, column) of the mask.
	BBox struct {
		MinDHW [3]int `json:"min_dhw"`
		MaxDHW [3]int `json:"max_dhw"`
	} `json:"bbox"`
}

func writeStudy(dir string, seed uint64, c *phantomConfig) (*studyTruth, error) {
	spec := phantom.Spec{Seed: seed, Size: c.Size, Noise: c.Noise}
	if c.Noise == 0 {
		spec.Noise = -1
	}
	switch c.Lesion {
	case "ich":
		spec.Lesions = []phantom.LesionSpec{{Kind: phantom.KindICH}}
	case "sdh":
		spec.Lesions = []phantom.LesionSpec{{Kind: phantom.KindSDH}}
	case "random":
		spec.Lesions = phantom.RandomLesions(seed)
	}
	p, err := phantom.Generate(spec)
	if err != nil {
		return nil, err
	}
	if err := phantom.WriteSeries(filepath.Join(dir, "dicom"), p, phantom.SeriesMeta{}); err != nil {
		return nil, fmt.Errorf("study %s: %w", dir, err)
	}
	if err := phantom.WriteMask(filepath.Join(dir, "mask.nii.gz"), p); err != nil {
		return nil, fmt.Errorf("writing %s: %w", filepath.Join(dir, "mask.nii.gz"), err)
	}
	study, series, _, _ := p.UIDs()
	t := &studyTruth{
		Seed: seed, SeriesDir: "dicom", Mask: "mask.nii.gz",
		Labels:  map[int]string{int(phantom.LabelICH): phantom.KindICH, int(phantom.LabelSDH): phantom.KindSDH},
		SizeDHW: p.Size, SpacingDHW: p.Spacing, OriginLPS: p.Origin,
		StudyInstanceUID: study, SeriesInstanceUID: series, NoiseHU: c.Noise,
		Lesions: []lesionTruth{},
	}
	for _, l := range p.Lesions {
		lt := lesionTruth{Kind: l.Kind, Label: l.Label, VolumeML: l.VolumeML, TargetML: l.TargetML, Voxels: l.Voxels, CentroidLPS: l.CentroidLPS}
		lt.BBox.MinDHW, lt.BBox.MaxDHW = l.BBoxMin, l.BBoxMax
		t.Lesions = append(t.Lesions, lt)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "truth.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return t, nil
}
