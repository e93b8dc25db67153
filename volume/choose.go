package volume

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// ChooseOptions tune Choose. Zero fields take the defaults.
type ChooseOptions struct {
	// MinThickness and MaxThickness bound the slice thickness (or the
	// slice spacing when Slice Thickness is absent), mm; defaults 0.5 and
	// 5, the range of CT head triage.
	MinThickness, MaxThickness float64
	// MaxObliqueDegrees is the largest angle between a stack's normal and
	// the patient z axis for the stack to count as axial; default 30.
	MaxObliqueDegrees float64
	// MinSlices is the fewest slices a stack needs; default 5.
	MinSlices int
}

// ErrNoStack means no stack of the collection is fit for triage; the
// error's message lists each rejection.
var ErrNoStack = errors.New("no series is fit for triage")

// Choose picks the stack to triage in a study with the default options
// (see ChooseWith) and returns it with the reason as a sentence.
func Choose(c *Collection) (*Stack, string, error) {
	return ChooseWith(c, ChooseOptions{})
}

// ChooseWith picks the stack to triage among all stacks of c, and says why
// in a sentence that also lists what it rejected and why.
//
// A candidate is a CT or MR stack; not a localizer or scout (Image Type
// LOCALIZER or SCOUT, or a description naming a scout, localizer, surview
// or topogram); of Image Type ORIGINAL\PRIMARY when the Image Type is
// present; axial (normal within MaxObliqueDegrees of the patient z axis);
// not a phase, real, imaginary or field-map image (Image Type or Frame
// Type values P, PHASE, REAL, IMAGINARY, FIELD_MAP, B0); of slice
// thickness within [MinThickness, MaxThickness]; with at least
// MinSlices slices; without conflicting slices or undecodable pixel data.
//
// Among candidates, a bone (sharp) reconstruction is rejected when a
// soft-tissue one exists. The kernel heuristic: a Convolution Kernel is
// sharp when, upper-cased, it contains BONE, LUNG, EDGE or SHARP (GE-style
// names), or is a Siemens-style kernel — a letter B, H,
// I, J, Q or T, an optional lower-case letter in the original, then a
// strength of 60 or more (B70f, H70h, Br64, Hr68, Qr69). Then the stack of
// most coverage along its normal wins (ties within 1 mm: more slices, then
// the lower series number).
func ChooseWith(c *Collection, opts ChooseOptions) (*Stack, string, error) {
	if opts.MinThickness == 0 {
		opts.MinThickness = 0.5
	}
	if opts.MaxThickness == 0 {
		opts.MaxThickness = 5
	}
	if opts.MaxObliqueDegrees == 0 {
		opts.MaxObliqueDegrees = 30
	}
	if opts.MinSlices == 0 {
		opts.MinSlices = 5
	}
	type cand struct {
		st   *Stack
		ser  *Series
		name string
	}
	var cands []cand
	var rejected []string
	reject := func(name, why string) { rejected = append(rejected, name+": "+why) }
	for _, ser := range c.Series {
		if len(ser.Stacks) == 0 {
			reject(seriesName(ser), "no slice could be placed in space")
			continue
		}
		for _, st := range ser.Stacks {
			name := seriesName(ser)
			if len(ser.Stacks) > 1 {
				name += fmt.Sprintf(" (stack %s, %d×%d×%d)", cmp.Or(st.Label, "unlabelled"), st.Columns, st.Rows, st.Slices)
			}
			if why := unfit(st, opts); why != "" {
				reject(name, why)
				continue
			}
			cands = append(cands, cand{st, ser, name})
		}
	}
	if len(cands) == 0 {
		if len(rejected) == 0 {
			return nil, "", fmt.Errorf("%w: the folder holds no image series", ErrNoStack)
		}
		return nil, "", fmt.Errorf("%w: %s", ErrNoStack, strings.Join(rejected, "; "))
	}
	soft := slices.ContainsFunc(cands, func(c cand) bool { return !sharpKernel(c.st.ConvolutionKernel) })
	if soft {
		cands = slices.DeleteFunc(cands, func(c cand) bool {
			if sharpKernel(c.st.ConvolutionKernel) {
				reject(c.name, fmt.Sprintf("bone/sharp kernel %s while a soft-tissue reconstruction exists", c.st.ConvolutionKernel))
				return true
			}
			return false
		})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if d := b.st.Coverage() - a.st.Coverage(); math.Abs(d) > 1 {
			return cmp.Compare(b.st.Coverage(), a.st.Coverage())
		}
		if a.st.Slices != b.st.Slices {
			return cmp.Compare(b.st.Slices, a.st.Slices)
		}
		return cmp.Compare(a.ser.Number, b.ser.Number)
	})
	best := cands[0]
	for _, c := range cands[1:] {
		reject(c.name, fmt.Sprintf("less coverage (%.4g mm) or fewer slices than the chosen stack", c.st.Coverage()))
	}
	st := best.st
	reason := fmt.Sprintf("Chose %s: %s %s stack of %d×%d×%d",
		best.name, orig(st), st.Modality, st.Columns, st.Rows, st.Slices)
	if st.Volumes > 1 {
		reason += fmt.Sprintf("×%d", st.Volumes)
	}
	reason += fmt.Sprintf(", %.3g mm slices, %.4g mm coverage", thickness(st), st.Coverage())
	if st.ConvolutionKernel != "" {
		reason += fmt.Sprintf(", kernel %s", st.ConvolutionKernel)
		if soft {
			reason += " (soft tissue)"
		}
	}
	if len(cands) == 1 {
		reason += ", the only candidate"
	} else {
		reason += fmt.Sprintf(", the most coverage among %d candidates", len(cands))
	}
	if len(rejected) > 0 {
		reason += "; rejected " + strings.Join(rejected, "; ")
	}
	return st, reason + ".", nil
}

// unfit says why a stack is not a candidate, or "".
func unfit(st *Stack, o ChooseOptions) string {
	if st.Modality != "CT" && st.Modality != "MR" {
		return fmt.Sprintf("modality %q is not CT or MR", st.Modality)
	}
	desc := strings.ToUpper(st.Description)
	for _, v := range st.ImageType {
		if v == "LOCALIZER" || v == "SCOUT" {
			return "a localizer (Image Type " + strings.Join(st.ImageType, `\`) + ")"
		}
	}
	for _, w := range []string{"SCOUT", "LOCALIZER", "LOCALISER", "SURVIEW", "TOPOGRAM", "TOPO "} {
		if strings.Contains(desc+" ", w) {
			return fmt.Sprintf("a localizer (description %q)", st.Description)
		}
	}
	if len(st.ImageType) >= 2 && (st.ImageType[0] != "ORIGINAL" || st.ImageType[1] != "PRIMARY") {
		return "not an original primary image (Image Type " + strings.Join(st.ImageType, `\`) + ")"
	}
	for _, v := range st.ImageType[min(2, len(st.ImageType)):] {
		switch v {
		case "P", "PHASE", "FIELD_MAP", "FIELDMAP", "B0", "B0_MAP", "REAL", "IMAGINARY":
			return "not a magnitude image (Image Type " + strings.Join(st.ImageType, `\`) + ")"
		}
	}
	if st.conflict {
		return "different images at one slice position"
	}
	for _, w := range st.Warnings {
		if w.Code == WarnUndecodable {
			return "pixel data that cannot be decoded (" + w.Message + ")"
		}
	}
	if st.Slices < o.MinSlices {
		return fmt.Sprintf("only %d slices (fewer than %d)", st.Slices, o.MinSlices)
	}
	angle := math.Acos(math.Min(1, math.Abs(st.Normal[2]))) * 180 / math.Pi
	if angle > o.MaxObliqueDegrees {
		return fmt.Sprintf("not axial (normal %.0f° from the patient z axis)", angle)
	}
	if t := thickness(st); t < o.MinThickness || t > o.MaxThickness {
		return fmt.Sprintf("slice thickness %.3g mm outside %.3g–%.3g mm", t, o.MinThickness, o.MaxThickness)
	}
	return ""
}

func thickness(st *Stack) float64 {
	if st.SliceThickness > 0 {
		return st.SliceThickness
	}
	return st.SliceSpacing
}

func orig(st *Stack) string {
	if len(st.ImageType) >= 2 {
		return "an original primary axial"
	}
	return "an axial"
}

func seriesName(s *Series) string {
	name := fmt.Sprintf("series %d", s.Number)
	if s.Description != "" {
		name += fmt.Sprintf(" %q", s.Description)
	}
	return name
}

// siemensSharp matches Siemens-style kernels of strength 60 or more.
var siemensSharp = regexp.MustCompile(`^[BHIJQT][a-z]?([6-9][0-9])`)

// sharpKernel reports a bone or otherwise sharp reconstruction kernel.
func sharpKernel(k string) bool {
	if k == "" {
		return false
	}
	for _, part := range strings.Split(k, `\`) {
		p := strings.TrimSpace(part)
		up := strings.ToUpper(p)
		for _, w := range []string{"BONE", "LUNG", "EDGE", "SHARP"} {
			if strings.Contains(up, w) {
				return true
			}
		}
		if siemensSharp.MatchString(p) {
			return true
		}
	}
	return false
}
