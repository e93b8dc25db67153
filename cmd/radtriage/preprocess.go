package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/volume"
)

type preprocessConfig struct {
	In      string // a DICOM folder or a NIfTI file
	Card    string
	Out     string
	Series  string
	Backend string
	Labels  bool // the input is a label mask: nearest neighbour, no denoise or window
}

func parsePreprocess(env *environ, args []string) (*preprocessConfig, error) {
	var c preprocessConfig
	fs := newFlagSet("preprocess", "DIR|FILE.nii[.gz]", `Write the network input of a series as triage computes it, for training
models on exactly what they will see: the values in HU, denoised on the
series' grid, resampled (trilinear, air outside) to the card's spacing and
size around the volume's centre, and windowed to [0, 1] (the card's
"input"; see triage.Preprocess). The input is a folder of DICOM files (the
series is chosen as "radtriage volume" does, or named with --series) or a
NIfTI-1 file of one 3D volume.

The output is NIfTI-1, FLOAT32, with the network grid's geometry. Its voxel
order is the tensor's: i (fastest) is W, j is H, k is D, rows kept in that
order, so that numpy's nibabel.load(f).get_fdata().transpose(2, 1, 0) is the
network input of shape (D, H, W). With --labels the input is a label mask
(a NIfTI file of integer labels, such as a phantom's mask.nii.gz) and is
only resampled, nearest neighbour, onto the same grid (background 0
outside), giving the training target beside the input. -o is short for
--out. Exit status: 0
done, 1 error, 2 usage.`, env)
	fs.stringVar(&c.Card, "card", "CARD.json", "", "the model card whose input spec to apply (required)", nil)
	fs.stringVar(&c.Out, "out", "FILE", "", "the NIfTI file to write: FILE.nii or FILE.nii.gz", checkNIfTIName)
	outOpt := fs.opts[len(fs.opts)-1]
	fs.fs.Func("o", "short for --out", func(s string) error {
		outOpt.cmdline, outOpt.fromFlag = s, true
		return nil
	})
	fs.stringVar(&c.Series, "series", "UID", "", "for a folder: the Series Instance UID to use (default: choose one)", nil)
	fs.boolVar(&c.Labels, "labels", "the input is a label mask: resample it nearest neighbour, no denoising or window")
	backendFlag(fs, &c.Backend)
	pos, err := fs.parse(args, 1)
	if err != nil {
		return nil, err
	}
	c.In = pos[0]
	switch {
	case c.Card == "":
		return nil, usagef("preprocess: --card is required")
	case c.Out == "":
		return nil, usagef("preprocess: --out (or -o, or RADTRIAGE_OUT) is required")
	case c.Series != "" && checkNIfTIName(c.In) == nil:
		return nil, usagef("preprocess: %s applies only to a DICOM folder", fs.origin("series"))
	}
	return &c, nil
}

// runPreprocess is "radtriage preprocess" in the form of commands().
func runPreprocess(ctx context.Context, env *environ, args []string) error {
	c, err := parsePreprocess(env, args)
	if err != nil {
		return err
	}
	return preprocessFile(ctx, c, env.stdout, env.stderr)
}

func preprocessFile(ctx context.Context, c *preprocessConfig, stdout, stderr io.Writer) error {
	card, err := triage.LoadCard(c.Card)
	if err != nil {
		return err
	}
	v, from, err := loadSeriesOrNIfTI(ctx, c, stderr)
	if err != nil {
		return err
	}
	b, reason, err := kernels.Open(c.Backend)
	if err != nil {
		return fmt.Errorf("--backend %s: %w", c.Backend, err)
	}
	defer b.Close()
	if c.Backend == "auto" && reason != "" {
		fmt.Fprintf(stderr, "backend %s: %s\n", b.Name(), reason)
	}
	prep := triage.Preprocess
	if c.Labels {
		prep = triage.PreprocessLabels
	}
	p, err := prep(ctx, b, v, card.Input)
	if err != nil {
		return fmt.Errorf("preprocessing %s: %w", from, err)
	}
	defer p.Release()
	out := p.VolumeOf()
	out.SeriesInstanceUID = v.SeriesInstanceUID
	if err := volume.WriteNIfTIFile(c.Out, out, volume.NIfTIOptions{
		Description:  "radtriage preprocess " + card.Name + " " + card.Version,
		KeepRowOrder: true, // the file's voxel order is the tensor's
		Float32:      true,
	}); err != nil {
		return fmt.Errorf("writing %s: %w", c.Out, err)
	}
	in := card.Input
	if c.Labels {
		fmt.Fprintf(stdout, "wrote %s: labels on %s voxels of %s mm (nearest neighbour) from %s on %s in %.0f ms\n",
			c.Out, sizeText(out.Size), spacingText(out.Spacing), from, b.Name(), p.Timings.Total)
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s: %s voxels of %s mm (window %g/%g, denoise %s) from %s on %s in %.0f ms\n",
		c.Out, sizeText(out.Size), spacingText(out.Spacing), in.Window.Center, in.Window.Width, in.Denoise.Method,
		from, b.Name(), p.Timings.Total)
	return nil
}

// loadSeriesOrNIfTI reads the NIfTI file, or assembles the series of the
// folder that --series names or volume.Choose picks (as "radtriage
// volume" does). from says what was read.
func loadSeriesOrNIfTI(ctx context.Context, c *preprocessConfig, stderr io.Writer) (*volume.Volume, string, error) {
	st, err := os.Stat(c.In)
	if err != nil {
		return nil, "", err
	}
	if !st.IsDir() {
		if checkNIfTIName(c.In) != nil {
			return nil, "", fmt.Errorf("%s is neither a folder nor a NIfTI file (.nii, .nii.gz)", c.In)
		}
		v, err := volume.ReadNIfTIFile(c.In)
		if err != nil {
			return nil, "", fmt.Errorf("reading %s: %w", c.In, err)
		}
		return v, c.In, nil
	}
	col, err := volume.LoadDir(os.DirFS(c.In), volume.LoadOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", c.In, err)
	}
	if len(col.Series) == 0 {
		return nil, "", fmt.Errorf("%s holds no DICOM image series (%d files skipped)", c.In, len(col.Skipped))
	}
	stack, err := pickStack(col, &volumeConfig{Dir: c.In, Series: c.Series}, stderr)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	v, err := stack.Assemble(volume.AssembleOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("assembling series %s: %w", stack.SeriesUID, err)
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", w.Code, w.Message)
	}
	return v, "series " + stack.SeriesUID, nil
}
