package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/radtriage/radtriage/volume"
)

type volumeConfig struct {
	Dir     string
	Out     string
	Series  string
	Stack   int
	List    bool
	JSON    bool
	Sidecar bool
}

func parseVolume(env *environ, args []string) (*volumeConfig, error) {
	var c volumeConfig
	fs := newFlagSet("volume", "DIR", `Assemble a volume from a folder of DICOM files (any mix of series; non-image
files are skipped) and write it as NIfTI-1 (.nii, or gzip-compressed .nii.gz),
with dcm2niix's conventions. Without --series the series to triage is chosen
(CT or MR, original, axial, most coverage...) and the reason printed. --list
prints every series with its stacks, geometry, warnings and skipped files
instead. -o is short for --out. Warnings go to stderr. Exit status: 0 done,
1 error, 2 usage.`, env)
	fs.stringVar(&c.Out, "out", "FILE", "", "the NIfTI file to write: FILE.nii or FILE.nii.gz", checkNIfTIName)
	outOpt := fs.opts[len(fs.opts)-1]
	fs.fs.Func("o", "short for --out", func(s string) error {
		outOpt.cmdline, outOpt.fromFlag = s, true
		return nil
	})
	fs.stringVar(&c.Series, "series", "UID", "", "the Series Instance UID to assemble (default: choose one)", nil)
	fs.intVar(&c.Stack, "stack", 0, 0, "which stack of the series to assemble, 1 for the first listed (default 0: the largest, or the chosen one)")
	fs.boolVar(&c.List, "list", "list the series, stacks, warnings and skipped files instead of writing a volume")
	fs.boolVar(&c.JSON, "json", "with --list: print JSON instead of a table")
	fs.boolVar(&c.Sidecar, "sidecar", "also write a JSON sidecar (FILE.json, BIDS-like) next to the NIfTI file")
	pos, err := fs.parse(args, 1)
	if err != nil {
		return nil, err
	}
	c.Dir = pos[0]
	switch {
	case c.List && c.Out != "":
		return nil, usagef("volume: --list prints the folder's series and writes nothing; leave out %s", fs.origin("out"))
	case !c.List && c.Out == "":
		return nil, usagef("volume: --out (or -o, or RADTRIAGE_OUT) is required unless --list is given")
	case c.JSON && !c.List:
		return nil, usagef("volume: %s applies only with --list", fs.origin("json"))
	case c.Stack > 0 && c.Series == "":
		return nil, usagef("volume: %s needs --series to say which series", fs.origin("stack"))
	}
	return &c, nil
}

func checkNIfTIName(s string) error {
	if s == "" {
		return nil // required-ness is checked after parsing
	}
	l := strings.ToLower(s)
	if !strings.HasSuffix(l, ".nii") && !strings.HasSuffix(l, ".nii.gz") {
		return errors.New("must end in .nii or .nii.gz")
	}
	return nil
}

// runVolumeEnv is "radtriage volume" in the form of commands().
func runVolumeEnv(ctx context.Context, env *environ, args []string) error {
	c, err := parseVolume(env, args)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// Nearly everything the command allocates (the files, the
		// volume) stays live until the file is written: collections
		// while the heap grows find little garbage and, on a small
		// machine, take a CPU from the decoding (10 ms of 42 wall on a
		// 28-slice 512×512 CT over 2 CPUs). Collect first at 40 MB,
		// then at 11× the live heap, for the command only: the peak is
		// still about what it allocates, since little of it is garbage.
		// GOGC still rules when set.
		defer debug.SetGCPercent(debug.SetGCPercent(volumeGCPercent))
	}
	return assembleVolume(ctx, c, env.stdout, env.stderr)
}

// volumeGCPercent is the garbage collector's target of "radtriage volume"
// (see runVolumeEnv).
const volumeGCPercent = 1000

// assembleVolume loads the folder, then lists it or assembles one stack
// and writes it.
func assembleVolume(ctx context.Context, c *volumeConfig, stdout, stderr io.Writer) error {
	st, err := os.Stat(c.Dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder", c.Dir)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	col, err := volume.LoadDir(os.DirFS(c.Dir), volume.LoadOptions{})
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.Dir, err)
	}
	if c.List {
		if c.JSON {
			return listJSON(stdout, col)
		}
		listTable(stdout, col)
		return nil
	}
	if len(col.Series) == 0 {
		return fmt.Errorf("%s holds no DICOM image series (%d files skipped)", c.Dir, len(col.Skipped))
	}
	for _, s := range col.Skipped {
		fmt.Fprintf(stderr, "skipped %s: %s\n", s.Path, s.Reason)
	}

	stack, err := pickStack(col, c, stderr)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := stack.Assemble(volume.AssembleOptions{})
	if err != nil {
		return fmt.Errorf("assembling series %s: %w", stack.SeriesUID, err)
	}
	// The series' own warnings (slices split off into other stacks), then
	// the volume's (which include its stack's).
	for _, s := range col.Series {
		if s.UID == stack.SeriesUID {
			for _, w := range s.Warnings {
				fmt.Fprintf(stderr, "warning: %s: %s\n", w.Code, w.Message)
			}
		}
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", w.Code, w.Message)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	if err := volume.WriteNIfTIFile(c.Out, v, volume.NIfTIOptions{Description: "radtriage " + version, AuxFile: stack.Description}); err != nil {
		return fmt.Errorf("writing %s: %w", c.Out, err)
	}
	if c.Sidecar {
		if err := writeSidecar(sidecarName(c.Out), stack, v); err != nil {
			return err
		}
	}
	kind := "float32"
	if v.Slope != 0 {
		kind = fmt.Sprintf("stored integers ×%g%+g", v.Slope, v.Intercept)
	}
	fmt.Fprintf(stdout, "wrote %s: %s voxels of %s mm (%s) from series %s\n",
		c.Out, sizeText(v.Size), spacingText(v.Spacing), kind, stack.SeriesUID)
	return nil
}

// pickStack finds the stack to assemble: the one --series/--stack name,
// or the one volume.Choose picks (its reason goes to stderr).
func pickStack(col *volume.Collection, c *volumeConfig, stderr io.Writer) (*volume.Stack, error) {
	if c.Series == "" {
		stack, reason, err := volume.Choose(col)
		if err != nil {
			return nil, fmt.Errorf("no series to assemble: %w (pick one with --series; see --list)", err)
		}
		fmt.Fprintf(stderr, "chose series %s: %s\n", stack.SeriesUID, reason)
		return stack, nil
	}
	var uids []string
	for _, s := range col.Series {
		if s.UID != c.Series {
			uids = append(uids, s.UID)
			continue
		}
		if len(s.Stacks) == 0 {
			return nil, fmt.Errorf("series %s has no stack of slices with geometry to assemble (see --list)", s.UID)
		}
		if c.Stack > len(s.Stacks) {
			return nil, usagef("volume: --stack %d: series %s has %d stacks (see --list)", c.Stack, s.UID, len(s.Stacks))
		}
		i := max(c.Stack-1, 0)
		if len(s.Stacks) > 1 && c.Stack == 0 {
			fmt.Fprintf(stderr, "series %s has %d stacks; assembling the largest (choose another with --stack; see --list)\n", s.UID, len(s.Stacks))
		}
		return s.Stacks[i], nil
	}
	return nil, fmt.Errorf("no series %s in the folder; it holds: %s", c.Series, strings.Join(uids, ", "))
}

func sizeText(s [4]int) string {
	t := fmt.Sprintf("%d×%d×%d", s[0], s[1], s[2])
	if s[3] > 1 {
		t += fmt.Sprintf("×%d", s[3])
	}
	return t
}

func spacingText(s [3]float64) string {
	return fmt.Sprintf("%.4g×%.4g×%.4g", s[0], s[1], s[2])
}

// orientationText names a stack's orientation: axial, coronal or
// sagittal from the dominant component of the normal, "oblique" when it
// is more than 10° off.
func orientationText(n [3]float64) string {
	best, axis := 0.0, 0
	for i, x := range n {
		if math.Abs(x) > best {
			best, axis = math.Abs(x), i
		}
	}
	name := [3]string{"sagittal", "coronal", "axial"}[axis]
	if best < math.Cos(10*math.Pi/180) {
		name = "oblique " + name
	}
	return name
}

// listTable prints the collection for people.
func listTable(w io.Writer, col *volume.Collection) {
	if len(col.Series) == 0 {
		fmt.Fprintln(w, "no DICOM image series")
	}
	for i, s := range col.Series {
		if i > 0 {
			fmt.Fprintln(w)
		}
		stacks := "stacks"
		if len(s.Stacks) == 1 {
			stacks = "stack"
		}
		fmt.Fprintf(w, "series %s  #%d %s %q: %d %s\n", s.UID, s.Number, s.Modality, s.Description, len(s.Stacks), stacks)
		if len(s.Stacks) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  stack\tsize\tspacing mm\torientation\tslices\tvolumes\tposition mm\tlabel\t")
			for j, st := range s.Stacks {
				lo, hi := 0.0, 0.0
				if len(st.Positions) > 0 {
					lo, hi = st.Positions[0], st.Positions[len(st.Positions)-1]
				}
				sp := [3]float64{st.PixelSpacing[1], st.PixelSpacing[0], st.SliceSpacing}
				flags := ""
				if st.Irregular {
					flags += " irregular"
				}
				if st.Tilted {
					flags += fmt.Sprintf(" tilted %.1f°", st.TiltDegrees)
				}
				fmt.Fprintf(tw, "  %d\t%d×%d\t%s\t%s%s\t%d\t%d\t%.2f to %.2f\t%s\t\n", j+1, st.Columns, st.Rows,
					spacingText(sp), orientationText(st.Normal), flags, st.Slices, st.Volumes, lo, hi, st.Label)
			}
			tw.Flush()
		}
		for _, wn := range s.Warnings {
			fmt.Fprintf(w, "  warning: %s: %s\n", wn.Code, wn.Message)
		}
		for j, st := range s.Stacks {
			for _, wn := range st.Warnings {
				fmt.Fprintf(w, "  stack %d warning: %s: %s\n", j+1, wn.Code, wn.Message)
			}
		}
	}
	if len(col.Skipped) > 0 {
		fmt.Fprintf(w, "\nskipped %d files:\n", len(col.Skipped))
		for _, s := range col.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Path, s.Reason)
		}
	}
}

// The JSON form of --list.
type (
	listedCollection struct {
		Series  []listedSeries   `json:"series"`
		Skipped []volume.Skipped `json:"skipped"`
	}
	listedSeries struct {
		UID         string           `json:"seriesInstanceUID"`
		StudyUID    string           `json:"studyInstanceUID"`
		Number      int              `json:"seriesNumber"`
		Modality    string           `json:"modality"`
		Description string           `json:"description"`
		Warnings    []volume.Warning `json:"warnings"`
		Stacks      []listedStack    `json:"stacks"`
	}
	listedStack struct {
		Label          string           `json:"label"`
		Rows           int              `json:"rows"`
		Columns        int              `json:"columns"`
		PixelSpacing   [2]float64       `json:"pixelSpacing"`
		SliceSpacing   float64          `json:"sliceSpacing"`
		SliceThickness float64          `json:"sliceThickness"`
		Orientation    [6]float64       `json:"orientation"`
		Normal         [3]float64       `json:"normal"`
		Slices         int              `json:"slices"`
		Volumes        int              `json:"volumes"`
		Positions      []float64        `json:"positions"`
		Irregular      bool             `json:"irregular"`
		Tilted         bool             `json:"tilted"`
		TiltDegrees    float64          `json:"tiltDegrees"`
		Warnings       []volume.Warning `json:"warnings"`
	}
)

func listJSON(w io.Writer, col *volume.Collection) error {
	out := listedCollection{Series: []listedSeries{}, Skipped: col.Skipped}
	if out.Skipped == nil {
		out.Skipped = []volume.Skipped{}
	}
	for _, s := range col.Series {
		ls := listedSeries{UID: s.UID, StudyUID: s.StudyUID, Number: s.Number, Modality: s.Modality,
			Description: s.Description, Warnings: nonNil(s.Warnings), Stacks: []listedStack{}}
		for _, st := range s.Stacks {
			ls.Stacks = append(ls.Stacks, listedStack{
				Label: st.Label, Rows: st.Rows, Columns: st.Columns, PixelSpacing: st.PixelSpacing,
				SliceSpacing: st.SliceSpacing, SliceThickness: st.SliceThickness,
				Orientation: st.Orientation, Normal: st.Normal, Slices: st.Slices, Volumes: st.Volumes,
				Positions: st.Positions, Irregular: st.Irregular, Tilted: st.Tilted,
				TiltDegrees: st.TiltDegrees, Warnings: nonNil(st.Warnings),
			})
		}
		out.Series = append(out.Series, ls)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func nonNil(w []volume.Warning) []volume.Warning {
	if w == nil {
		return []volume.Warning{}
	}
	return w
}

// sidecarName is the JSON file beside a NIfTI file: x.nii.gz → x.json.
func sidecarName(nii string) string {
	base := nii
	for _, ext := range []string{".gz", ".nii"} {
		if strings.HasSuffix(strings.ToLower(base), ext) {
			base = base[:len(base)-len(ext)]
		}
	}
	return base + ".json"
}

// writeSidecar writes a BIDS-like JSON sidecar: the keys dcm2niix writes
// that the stack knows, and radtriage's warnings and notes.
func writeSidecar(name string, st *volume.Stack, v *volume.Volume) error {
	side := map[string]any{
		"Modality":                  st.Modality,
		"SeriesDescription":         st.Description,
		"SeriesInstanceUID":         st.SeriesUID,
		"StudyInstanceUID":          st.StudyUID,
		"ImageType":                 st.ImageType,
		"SliceThickness":            st.SliceThickness,
		"ConversionSoftware":        "radtriage",
		"ConversionSoftwareVersion": version,
	}
	if st.ConvolutionKernel != "" {
		side["ConvolutionKernel"] = st.ConvolutionKernel
	}
	if len(v.Warnings) > 0 {
		side["RadtriageWarnings"] = v.Warnings
	}
	if len(v.Notes) > 0 {
		side["RadtriageNotes"] = v.Notes
	}
	b, err := json.MarshalIndent(side, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the sidecar: %w", err)
	}
	return nil
}
