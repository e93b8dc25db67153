package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/volume"
)

type denoiseConfig struct {
	In, Out      string
	Method       string
	Sigma        float64 // spatial sigma, mm
	SigmaRange   float64 // HU
	PatchRadius  int
	SearchRadius int
	Noise        float64 // HU
	H            float64 // HU; 0: nlmDefaultH*Noise
	Backend      string
}

// nlmDefaultH is --h over --noise by default. On ct-head-5mm with 20 HU of
// noise (.ci/bench-kernels-denoise.sh's volume, patch and search radius 2)
// PSNR rises with h up to 1.6 times the noise (0.8: 48.19 dB, 1.2: 48.78,
// 1.6: 48.92) while SSIM falls from 0.6 on (0.8: 0.9967, 1.2: 0.9963,
// 1.6: 0.9960): 1.2 takes most of the PSNR gain for little SSIM.
// (scikit-image advises 0.8 for its fast mode, whose h ours follows.)
const nlmDefaultH = 1.2

func parseDenoise(env *environ, args []string) (*denoiseConfig, error) {
	var c denoiseConfig
	fs := newFlagSet("denoise", "IN.nii[.gz]", `Denoise a NIfTI-1 volume (.nii or .nii.gz, as "radtriage volume" or dcm2niix
write it) and write the result as NIfTI-1 with the same geometry. The voxels
are read as real values (scl_slope/scl_inter applied: Hounsfield units for
CT) and written as FLOAT32 values, unscaled.

Methods:
  gaussian   separable Gaussian, --sigma in mm along every axis (converted
             to voxels with the voxel spacing), truncated at 4 sigmas,
             borders mirrored (scipy.ndimage.gaussian_filter, mode reflect)
  bilateral  3D bilateral: spatial Gaussian of --sigma mm (window 3 sigmas
             per axis) times a range Gaussian of --sigma-range HU
  nlm        3D non-local means, as scikit-image's denoise_nl_means in
             fast mode (patch_size 2*--patch-radius+1, patch_distance
             --search-radius, same h and sigma = --noise): the search
             window is ±--search-radius voxels, the weight
             exp(-max(d2-2*noise^2,0)/(k*h)^2), d2 the mean squared
             difference of patches of (2N)^3 voxels (N = --patch-radius)
             and k = ((2N+1)/(2N))^1.5 (1.4 at N = 2; N = 0: 1 voxel, k 1)

A 4D file is denoised volume by volume. -o is short for --out. Exit status:
0 done, 1 error, 2 usage.`, env)
	fs.stringVar(&c.Out, "out", "FILE", "", "the NIfTI file to write: FILE.nii or FILE.nii.gz", checkNIfTIName)
	outOpt := fs.opts[len(fs.opts)-1]
	fs.fs.Func("o", "short for --out", func(s string) error {
		outOpt.cmdline, outOpt.fromFlag = s, true
		return nil
	})
	fs.stringVar(&c.Method, "method", "bilateral|nlm|gaussian", "", "the filter (required)", func(s string) error {
		switch s {
		case "", "bilateral", "nlm", "gaussian":
			return nil
		}
		return errors.New("must be one of bilateral, nlm, gaussian")
	})
	floatVar(fs, &c.Sigma, "sigma", "MM", "1", "gaussian, bilateral: spatial sigma in millimetres", false)
	floatVar(fs, &c.SigmaRange, "sigma-range", "HU", "40", "bilateral: range sigma in the values' units (about twice the noise)", false)
	fs.intVar(&c.PatchRadius, "patch-radius", 2, 0, "nlm: patch radius in voxels (patch of 2N+1 per axis)")
	fs.intVar(&c.SearchRadius, "search-radius", 2, 0, "nlm: search radius in voxels (window of 2N+1 per axis)")
	floatVar(fs, &c.Noise, "noise", "HU", "20", "nlm: standard deviation of the noise (the sigma of denoise_nl_means)", true)
	floatVar(fs, &c.H, "h", "HU", "0", "nlm: filter strength h, as scikit-image's fast mode (default 0: 1.2 times --noise)", true)
	backendFlag(fs, &c.Backend)
	pos, err := fs.parse(args, 1)
	if err != nil {
		return nil, err
	}
	c.In = pos[0]
	if err := checkNIfTIName(c.In); err != nil {
		return nil, usagef("denoise: input %q %v", c.In, err)
	}
	switch {
	case c.Out == "":
		return nil, usagef("denoise: --out (or -o, or RADTRIAGE_OUT) is required")
	case c.Method == "":
		return nil, usagef("denoise: --method is required (bilateral, nlm or gaussian)")
	case c.Method == "nlm" && c.H == 0 && c.Noise == 0:
		return nil, usagef("denoise: nlm needs --h or a --noise above 0")
	}
	if c.H == 0 {
		c.H = nlmDefaultH * c.Noise
	}
	return &c, nil
}

// floatVar adds a float flag: positive, or at least 0 when zeroOK.
func floatVar(fs *flagSet, p *float64, name, metavar, def, usage string, zeroOK bool) {
	fs.add(name, metavar, def, usage, func(s string) error {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("not a number")
		}
		if x < 0 || (x == 0 && !zeroOK) {
			if zeroOK {
				return errors.New("must be at least 0")
			}
			return errors.New("must be above 0")
		}
		*p = x
		return nil
	})
}

// runDenoise is "radtriage denoise" in the form of commands().
func runDenoise(ctx context.Context, env *environ, args []string) error {
	c, err := parseDenoise(env, args)
	if err != nil {
		return err
	}
	return denoiseFile(ctx, c, env.stdout, env.stderr)
}

func denoiseFile(ctx context.Context, c *denoiseConfig, stdout, stderr io.Writer) error {
	v, err := volume.ReadNIfTIFile(c.In)
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.In, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b, reason, err := kernels.Open(c.Backend)
	if err != nil {
		return err
	}
	if c.Backend == "auto" && reason != "" {
		fmt.Fprintf(stderr, "backend %s: %s\n", b.Name(), reason)
	}
	start := time.Now()
	if err := denoiseVolume(ctx, b, v, c); err != nil {
		return err
	}
	took := time.Since(start)
	if err := volume.WriteNIfTIFile(c.Out, v, volume.NIfTIOptions{
		Description:  "radtriage denoise " + c.Method,
		KeepRowOrder: true, // rows as in the input file
		Float32:      true,
	}); err != nil {
		return fmt.Errorf("writing %s: %w", c.Out, err)
	}
	fmt.Fprintf(stdout, "wrote %s: %s voxels of %s mm, %s (%s) on %s in %v\n",
		c.Out, sizeText(v.Size), spacingText(v.Spacing), c.Method, c.params(v.Spacing), b.Name(), took.Round(time.Millisecond))
	return nil
}

// params describes the filter's parameters as used.
func (c *denoiseConfig) params(spacing [3]float64) string {
	switch c.Method {
	case "gaussian":
		return fmt.Sprintf("sigma %g mm = %.3g voxels (D,H,W)", c.Sigma, c.voxelSigma(spacing))
	case "bilateral":
		return fmt.Sprintf("sigma %g mm = %.3g voxels (D,H,W), range sigma %g", c.Sigma, c.voxelSigma(spacing), c.SigmaRange)
	}
	return fmt.Sprintf("patch radius %d, search radius %d, h %g, noise %g", c.PatchRadius, c.SearchRadius, c.H, c.Noise)
}

// voxelSigma converts the spatial sigma to voxels along the kernels' axes
// (D, H, W) = (k, j, i) of the volume.
func (c *denoiseConfig) voxelSigma(spacing [3]float64) [3]float64 {
	return [3]float64{c.Sigma / spacing[2], c.Sigma / spacing[1], c.Sigma / spacing[0]}
}

// denoiseVolume filters each 3D volume of v in place (v.Data, real
// values) and marks v as holding float values.
func denoiseVolume(ctx context.Context, b kernels.Backend, v *volume.Volume, c *denoiseConfig) error {
	data := v.Values()
	size := [3]int{v.Size[2], v.Size[1], v.Size[0]}
	n := v.Voxels()
	for a, s := range v.Spacing {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%s: voxel spacing %v along axis %d", c.In, v.Spacing, a)
		}
	}
	src, err := b.Alloc(kernels.Float32, n)
	if err != nil {
		return err
	}
	defer b.Free(src)
	dst, err := b.Alloc(kernels.Float32, n)
	if err != nil {
		return err
	}
	defer b.Free(dst)
	sigma := c.voxelSigma(v.Spacing)
	for t := 0; t < max(v.Size[3], 1); t++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		vol := data[t*n : (t+1)*n]
		if err := b.Upload(src, vol); err != nil {
			return err
		}
		switch c.Method {
		case "gaussian":
			err = b.Gaussian(dst, src, size, sigma, 4)
		case "bilateral":
			err = b.Bilateral(dst, src, size, kernels.BilateralParams{SigmaSpatial: sigma, SigmaRange: c.SigmaRange})
		case "nlm":
			err = b.NLM(dst, src, size, kernels.NLMParams{PatchRadius: c.PatchRadius, SearchRadius: c.SearchRadius, H: c.H, Sigma: c.Noise})
		default:
			err = fmt.Errorf("unknown method %q", c.Method)
		}
		if err != nil {
			return fmt.Errorf("denoising %s: %w", c.In, err)
		}
		if err := b.Download(vol, dst); err != nil {
			return err
		}
	}
	v.Data, v.Stored = data, nil
	v.Slope, v.Intercept, v.StoredBits, v.StoredSigned = 0, 0, 0, false
	return nil
}
