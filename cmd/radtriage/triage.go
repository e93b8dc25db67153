package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/models"
	"github.com/radtriage/radtriage/volume"
)

type triageConfig struct {
	Dir     string
	JSON    bool
	Mask    string // "" none; a .nii/.nii.gz file, or a folder (maskDir)
	maskDir bool   // Mask is a folder: one PATH/<study UID>.nii.gz per study
	Models  string // "" the embedded ensemble
	Backend string
	Flips   string
	flips   [][3]bool // Flips parsed: nil DefaultFlips, empty none
}

const triageAbout = `Triage every study of a folder of DICOM files (read recursively; any mix of
studies and series; non-image files are skipped): for each study, in order of
Study Instance UID, choose the series as "radtriage volume" does (the reason
goes to stderr), assemble it, and run the model ensemble on it: the
segmentation models (averaged over the input and its --flips) and the
classifier, combined per finding code into a score, the positive findings,
their volume and position, and the study's tier (critical, urgent or
routine). The ensemble is loaded, and every model checked, before any study
is read. By default it is the ensemble built into radtriage, demonstration
models trained on synthetic phantoms only: not for clinical use.

Without --json, each study gets a short summary: its study and series UIDs,
tier, each positive finding (code, label, probability, volume in mL, LPS
centroid in mm, key slice as a 0-based index of the series' slices), the
scores of every code, and the time taken. With --json, each study is exactly
one line of JSON on stdout, with the fields
  study_uid, series_uid   the study and the series triaged
  scores                  every finding code of the ensemble: its score, 0 to 1
  findings                the positive findings, most urgent first: code,
                          label, probability, tier, volume_ml, lesions,
                          centroid_lps, bbox_lps (mm), key_slice (0-based
                          index of the series' slices), model_versions,
                          explanation (why, in a sentence)
  tier                    critical, urgent or routine (none positive)
  timings_ms              assemble (this study's reading and assembly, with
                          an even share of reading the folder), upload,
                          denoise, resample, window, models (by name),
                          postprocess, total (assemble included)
  models                  the ensemble's models, name@version
  demonstration           true when a model is a demonstration model
  mask_labels             the codes of the mask's labels 1, 2, ... (if any)
and nothing else on stdout; every diagnostic goes to stderr.

--mask writes the label mask of the positive findings on the series' own
grid as NIfTI-1 (INT16 labels, 1, 2, ... as mask_labels says; .nii or
.nii.gz). A study without a positive segmented finding gets an all-zero mask
of its series' grid (stderr says so), so that a file is always there. With
one study --mask is a file name; with several it must be a folder (an
existing one, or a name ending in "/", created), which gets
<study UID>.nii.gz per study.

--flips names the test-time flips of the segmentation models: "lr" (the
left-right mirror, the default), "none", or a comma list of axis sets, each
one to three of the letters d, h, w (the network grid's slice, row and
column axes) flipped together: "w,h,dw" runs the input as it is and three
flipped copies, and averages the four.

A study that fails (no series fit for triage, a series that cannot be
assembled, ...) is reported on stderr and the others still run. Exit status:
0 every study triaged (with findings or not), 1 an error or a study that
failed, 2 usage.`

func parseTriage(env *environ, args []string) (*triageConfig, error) {
	var c triageConfig
	fs := newFlagSet("triage", "DIR", triageAbout, env)
	fs.boolVar(&c.JSON, "json", "print one line of JSON per study instead of a summary")
	fs.stringVar(&c.Mask, "mask", "PATH", "", "write each study's label mask: a FILE.nii[.gz] (one study) or a folder (any number)", nil)
	fs.stringVar(&c.Models, "models", "DIR", "", "a folder of model cards (*.json) and their ONNX files to use instead of the built-in ensemble", nil)
	fs.stringVar(&c.Flips, "flips", "lr|none|AXES,...", "lr", "test-time flips of the segmentation models: lr, none, or axis sets like w,h,dw (letters d, h, w)", func(s string) error {
		f, err := parseFlips(s)
		c.flips = f
		return err
	})
	backendFlag(fs, &c.Backend)
	pos, err := fs.parse(args, 1)
	if err != nil {
		return nil, err
	}
	c.Dir = pos[0]
	if c.Mask != "" {
		if st, err := os.Stat(c.Mask); strings.HasSuffix(c.Mask, "/") || strings.HasSuffix(c.Mask, string(filepath.Separator)) || (err == nil && st.IsDir()) {
			c.maskDir = true
		} else if err := checkNIfTIName(c.Mask); err != nil {
			return nil, usagef("triage: invalid %s: %v, or be a folder", fs.origin("mask"), err)
		}
	}
	return &c, nil
}

// parseFlips reads --flips: "lr" (triage.DefaultFlips), "none" (no
// flips), or a comma list of axis sets, each of the letters d, h and w.
func parseFlips(s string) ([][3]bool, error) {
	switch strings.TrimSpace(s) {
	case "lr":
		return triage.DefaultFlips, nil
	case "none":
		return [][3]bool{}, nil
	case "":
		return nil, errors.New("empty: use lr, none, or axis sets like w,h,dw")
	}
	var out [][3]bool
	for _, set := range strings.Split(s, ",") {
		set = strings.TrimSpace(set)
		if set == "" {
			return nil, errors.New("an empty axis set: use letters d, h, w, sets separated by commas")
		}
		var axes [3]bool
		for _, r := range set {
			i := strings.IndexRune("dhw", r)
			if i < 0 {
				return nil, fmt.Errorf("axis set %q: %q is not an axis: use d, h, w", set, r)
			}
			if axes[i] {
				return nil, fmt.Errorf("axis set %q names %c twice", set, r)
			}
			axes[i] = true
		}
		for _, o := range out {
			if o == axes {
				return nil, fmt.Errorf("axis set %q given twice", set)
			}
		}
		out = append(out, axes)
	}
	return out, nil
}

// runTriage is "radtriage triage" in the form of commands().
func runTriage(ctx context.Context, env *environ, args []string) error {
	c, err := parseTriage(env, args)
	if err != nil {
		return err
	}
	st, err := os.Stat(c.Dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder", c.Dir)
	}
	b, reason, err := kernels.Open(c.Backend)
	if err != nil {
		return fmt.Errorf("--backend %s: %w", c.Backend, err)
	}
	defer b.Close()
	if c.Backend == "auto" && reason != "" {
		fmt.Fprintf(env.stderr, "backend %s: %s\n", b.Name(), reason)
	}
	ens, err := loadTriageEnsemble(c, b)
	if err != nil {
		return err
	}
	defer ens.Close()
	return triageDir(ctx, c, ens, env.stdout, env.stderr)
}

// loadTriageEnsemble loads --models, or the built-in ensemble, on b.
func loadTriageEnsemble(c *triageConfig, b kernels.Backend) (*triage.Ensemble, error) {
	opts := triage.EnsembleOptions{Flips: c.flips}
	if c.Models == "" {
		e, err := triage.LoadEnsembleFS(models.FS, ".", b, opts)
		if err != nil {
			return nil, fmt.Errorf("loading the built-in models: %w", err)
		}
		return e, nil
	}
	st, err := os.Stat(c.Models)
	if err != nil {
		return nil, fmt.Errorf("--models: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--models %s is not a folder", c.Models)
	}
	e, err := triage.LoadEnsemble(c.Models, b, opts)
	if err != nil {
		return nil, fmt.Errorf("loading the models of %s: %w", c.Models, err)
	}
	return e, nil
}

// triageDir reads the folder once and triages each of its studies with
// ens. A study that fails is reported on stderr and the others still
// run; the error then says how many failed.
func triageDir(ctx context.Context, c *triageConfig, ens *triage.Ensemble, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	col, err := volume.LoadDir(os.DirFS(c.Dir), volume.LoadOptions{})
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.Dir, err)
	}
	loadMS := msSince(start)
	if len(col.Series) == 0 {
		return fmt.Errorf("%s holds no DICOM image series (%d files skipped)", c.Dir, len(col.Skipped))
	}
	for _, s := range col.Skipped {
		fmt.Fprintf(stderr, "skipped %s: %s\n", s.Path, s.Reason)
	}
	byStudy := map[string][]*volume.Series{}
	var studies []string
	for _, s := range col.Series {
		if _, ok := byStudy[s.StudyUID]; !ok {
			studies = append(studies, s.StudyUID)
		}
		byStudy[s.StudyUID] = append(byStudy[s.StudyUID], s)
	}
	sort.Strings(studies)
	if c.Mask != "" && !c.maskDir && len(studies) > 1 {
		return usagef("triage: --mask %s is one file but %s holds %d studies: give a folder (an existing one, or a name ending in /)", c.Mask, c.Dir, len(studies))
	}
	if c.maskDir {
		if err := os.MkdirAll(c.Mask, 0o755); err != nil {
			return fmt.Errorf("--mask: %w", err)
		}
	}
	// Reading the folder is shared: each study's assemble time gets an
	// even share of it.
	share := loadMS / float64(len(studies))
	failed := 0
	for _, uid := range studies {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := triageStudy(ctx, c, ens, uid, byStudy[uid], share, stdout, stderr)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed++
			fmt.Fprintf(stderr, "study %s: failed: %v\n", uid, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d studies failed (see above)", failed, len(studies))
	}
	return nil
}

// triageStudy chooses, assembles and triages one study's series, prints
// the result and writes its mask. loadMS is its share of reading the
// folder.
func triageStudy(ctx context.Context, c *triageConfig, ens *triage.Ensemble, uid string, series []*volume.Series, loadMS float64, stdout, stderr io.Writer) error {
	run, err := ens.RunStudy(ctx, uid, series, loadMS)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "study %s: chose %s\n", uid, run.Reason)
	for _, n := range run.Notes {
		fmt.Fprintf(stderr, "study %s: %s\n", uid, n)
	}
	r, v := run.Result, run.Volume
	if c.Mask != "" {
		name := c.Mask
		if c.maskDir {
			name = maskFileName(c.Mask, uid)
		}
		if err := writeTriageMask(name, r, v); err != nil {
			return fmt.Errorf("writing the mask %s: %w", name, err)
		}
		if r.Mask == nil {
			fmt.Fprintf(stderr, "study %s: no positive segmented finding: wrote an all-zero mask %s\n", uid, name)
		} else {
			fmt.Fprintf(stderr, "study %s: wrote the mask %s (labels: %s)\n", uid, name, r.MaskLabels())
		}
	}
	if c.JSON {
		js, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(js, '\n'))
		return err
	}
	printTriage(stdout, r, ens.Codes(), v.Size[2])
	return nil
}

// maskFileName is the file of a study's mask in folder dir:
// <study UID>.nii.gz when the UID is a valid DICOM UID (dicomio.ValidateUID:
// at most 64 digits and dots, PS3.5 §9.1), so that no file name can come
// out of a hostile UID; otherwise study-<SHA-256 of the UID, 16 hex
// digits>.nii.gz.
func maskFileName(dir, uid string) string {
	if dicomio.ValidateUID(uid) == nil {
		return filepath.Join(dir, uid+".nii.gz")
	}
	sum := sha256.Sum256([]byte(uid))
	return filepath.Join(dir, "study-"+hex.EncodeToString(sum[:8])+".nii.gz")
}

// writeTriageMask writes r's label mask, or an all-zero one on v's grid
// when r has none, as NIfTI-1: gzip-compressed (Result.MaskNIfTI) for
// .nii.gz, the same file uncompressed for .nii.
func writeTriageMask(name string, r *triage.Result, v *volume.Volume) error {
	rm := *r
	if rm.Mask == nil {
		n := v.Size[0] * v.Size[1] * v.Size[2]
		rm.Mask = &volume.Volume{
			Size: [4]int{v.Size[0], v.Size[1], v.Size[2], 1}, Spacing: v.Spacing, Origin: v.Origin, Axes: v.Axes,
			Stored: make([]int16, n), Slope: 1, Modality: "SEG",
		}
	}
	var buf bytes.Buffer
	if strings.HasSuffix(strings.ToLower(name), ".gz") {
		gz, err := rm.MaskNIfTI()
		if err != nil {
			return err
		}
		buf.Write(gz)
	} else if err := rm.WriteMaskNIfTI(&buf); err != nil {
		return err
	}
	return os.WriteFile(name, buf.Bytes(), 0o644)
}

// printTriage prints a study's result for people.
func printTriage(w io.Writer, r *triage.Result, codes []string, slices int) {
	fmt.Fprintf(w, "study %s\n  series %s\n  tier %s\n", r.StudyUID, r.SeriesUID, r.Tier)
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "  no finding")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  finding %s (%s): %.1f%%, %s", f.Code, f.Label, 100*f.Probability, f.Tier)
		if f.Lesions > 0 {
			fmt.Fprintf(w, ", %.1f mL in %d lesion", f.VolumeML, f.Lesions)
			if f.Lesions > 1 {
				fmt.Fprint(w, "s")
			}
		}
		if f.CentroidLPS != nil {
			c := *f.CentroidLPS
			fmt.Fprintf(w, ", centroid LPS (%.1f, %.1f, %.1f) mm", c[0], c[1], c[2])
		}
		if f.KeySlice != nil {
			fmt.Fprintf(w, ", key slice %d (0-based, of %d)", *f.KeySlice, slices)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "  scores:")
	for i, code := range codes {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %.3f", sep, code, r.Scores[code])
	}
	fmt.Fprintln(w)
	t := r.TimingsMS
	fmt.Fprintf(w, "  time %.0f ms (assemble %.0f, preprocess %.0f, models %.0f, postprocess %.0f)\n",
		t.Total, t.Assemble, t.Upload+t.Denoise+t.Resample+t.Window, sumValues(t.Models), t.Postprocess)
	if r.Demonstration {
		fmt.Fprintf(w, "  models %s: demonstration models trained on synthetic data, not for clinical use\n", strings.Join(r.Models, ", "))
	}
}

func sumValues(m map[string]float64) float64 {
	s := 0.0
	for _, x := range m {
		s += x
	}
	return s
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
