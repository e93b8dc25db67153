package triage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// ErrCard is wrapped by every error of LoadCard and ParseCard.
var ErrCard = errors.New("triage: invalid model card")

// maxCardBytes bounds a card file: a card is a few kilobytes of JSON.
const maxCardBytes = 1 << 20

// ModelCard describes one model of the ensemble: the ONNX file beside it,
// what its outputs mean (findings), and the preprocessing its input needs
// (InputSpec), which Preprocess applies identically for serving and for
// writing training data ("radtriage preprocess"). It is read from JSON
// with LoadCard; every field is checked.
type ModelCard struct {
	// Name identifies the model ("ich-seg-demo").
	Name string `json:"name"`
	// Version is the model's version ("0.1.0"), free text.
	Version string `json:"version"`
	// File is the ONNX file name, in the card's folder: a plain base
	// name, with no path separator and not "." or "..".
	File string `json:"file"`
	// Kind is "segmentation" (an N×C×D×H×W map of per-voxel scores) or
	// "classification" (N×C scores).
	Kind string `json:"kind"`
	// Findings are what the outputs mean, one per channel (segmentation)
	// or output index (classification) that matters.
	Findings []CardFinding `json:"findings"`
	// Input is the preprocessing of the network's input.
	Input InputSpec `json:"input"`
	// Output says what radtriage applies to the model's raw output.
	Output OutputSpec `json:"output"`
	// Training records where the model came from.
	Training TrainingInfo `json:"training"`
	// Metrics are the model's validation results, by name ("dice_ich":
	// 0.81, "auc": 0.93); finite numbers.
	Metrics map[string]float64 `json:"metrics"`
	// Demonstration marks a model trained on synthetic data only (the
	// project's own models): the UI must say so on every finding.
	Demonstration bool `json:"demonstration"`
}

// CardFinding is one finding a model reports.
type CardFinding struct {
	// Code is a short upper-case identifier: "ICH", "SDH"; unique within
	// a card.
	Code string `json:"code"`
	// Name is the finding in words: "Intracranial hemorrhage
	// (intraparenchymal)".
	Name string `json:"name"`
	// Tier is the urgency of a positive finding: "critical", "urgent" or
	// "routine".
	Tier string `json:"tier"`
	// Channel is the output channel of a segmentation model, or the
	// output index of a classifier, that holds this finding's
	// probability.
	Channel int `json:"channel"`
	// Threshold is the probability above which a voxel (segmentation) or
	// the study (classification) is positive, in (0, 1).
	Threshold float64 `json:"threshold"`
	// MinVolumeML is, for a segmentation model, the smallest positive
	// volume (mL) that makes a finding; 0 for a classifier.
	MinVolumeML float64 `json:"min_volume_ml"`
}

// InputSpec is the preprocessing of a model's input: Preprocess turns a
// volume into Channels×Size[0]×Size[1]×Size[2] float32 values with it.
type InputSpec struct {
	// Spacing is the voxel spacing of the network grid in mm, along
	// (D, H, W): slices, rows, columns.
	Spacing [3]float64 `json:"spacing_mm"`
	// Size is the network grid in voxels along (D, H, W).
	Size [3]int `json:"size"`
	// Window maps HU to [0, 1].
	Window WindowSpec `json:"window"`
	// Denoise is applied, on the original grid, before resampling.
	Denoise DenoiseSpec `json:"denoise"`
	// Channels is the number of input channels; 1.
	Channels int `json:"channels"`
}

// WindowSpec is a CT window in HU: values from Center-Width/2 to
// Center+Width/2 map linearly to [0, 1], values beyond are clipped.
type WindowSpec struct {
	Center float64 `json:"center"`
	Width  float64 `json:"width"` // > 0
}

// DenoiseSpec is a denoising filter, with its parameters in physical
// units as "radtriage denoise" takes them. Parameters the method does not
// use must be 0 (left out).
type DenoiseSpec struct {
	// Method is "none", "gaussian", "bilateral" or "nlm".
	Method string `json:"method"`
	// SigmaMM is the spatial sigma (gaussian, bilateral) in mm.
	SigmaMM float64 `json:"sigma_mm,omitempty"`
	// SigmaRangeHU is the bilateral filter's range sigma in HU.
	SigmaRangeHU float64 `json:"sigma_range_hu,omitempty"`
	// PatchRadius and SearchRadius are the nlm radii in voxels (patch of
	// 2P+1, search window of 2S+1 voxels per axis; PatchRadius may be 0).
	PatchRadius  int `json:"patch_radius,omitempty"`
	SearchRadius int `json:"search_radius,omitempty"`
	// NoiseHU is nlm's noise standard deviation (scikit-image's sigma),
	// HHU its filter strength h, both in HU (kernels.NLMParams).
	NoiseHU float64 `json:"noise_hu,omitempty"`
	HHU     float64 `json:"h_hu,omitempty"`
}

// OutputSpec says how radtriage turns the raw output into probabilities.
type OutputSpec struct {
	// Activation is "sigmoid" or "softmax" (over channels) when the model
	// emits logits, "none" when it emits probabilities.
	Activation string `json:"activation"`
}

// TrainingInfo records how a model was trained; free text.
type TrainingInfo struct {
	Data   string `json:"data"`   // "synthetic phantoms, seeds 1-400"
	Date   string `json:"date"`   // "2026-11-23"
	Script string `json:"script"` // "triage/train/train.py"
	// Architecture describes the network in a line.
	Architecture string `json:"architecture,omitempty"`
	// ONNXSHA256 is the SHA-256 of the ONNX file the training wrote;
	// LoadEnsemble refuses a model file that does not match it.
	ONNXSHA256 string `json:"onnx_sha256,omitempty"`
}

// Finding tiers, kinds and activations a card may name.
const (
	TierCritical = "critical"
	TierUrgent   = "urgent"
	TierRoutine  = "routine"

	KindSegmentation   = "segmentation"
	KindClassification = "classification"
)

// maxInputVoxels bounds Size[0]*Size[1]*Size[2] (512³).
const maxInputVoxels = 1 << 27

// LoadCard reads and checks the model card at path.
func LoadCard(path string) (*ModelCard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCard, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCardBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrCard, path, err)
	}
	c, err := ParseCard(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCard decodes a card from JSON, refusing unknown fields and
// trailing data, and checks it (Validate).
func ParseCard(data []byte) (*ModelCard, error) {
	if len(data) > maxCardBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCard, maxCardBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c ModelCard
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCard, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the card's JSON object", ErrCard)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cardErr is an ErrCard naming the field.
func cardErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCard, field, fmt.Sprintf(format, args...))
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks every field of the card; the error names the first bad
// one.
func (c *ModelCard) Validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return cardErr("name", "empty")
	}
	if strings.TrimSpace(c.Version) == "" {
		return cardErr("version", "empty")
	}
	if err := checkBaseName(c.File); err != nil {
		return cardErr("file", "%q %v", c.File, err)
	}
	switch c.Kind {
	case KindSegmentation, KindClassification:
	default:
		return cardErr("kind", "%q (want segmentation or classification)", c.Kind)
	}
	if len(c.Findings) == 0 {
		return cardErr("findings", "none")
	}
	codes := map[string]int{}
	channels := map[int]string{}
	for i, f := range c.Findings {
		field := fmt.Sprintf("findings[%d]", i)
		if err := checkCode(f.Code); err != nil {
			return cardErr(field+".code", "%q %v", f.Code, err)
		}
		if j, dup := codes[f.Code]; dup {
			return cardErr(field+".code", "%q repeats findings[%d]", f.Code, j)
		}
		codes[f.Code] = i
		if strings.TrimSpace(f.Name) == "" {
			return cardErr(field+".name", "empty")
		}
		switch f.Tier {
		case TierCritical, TierUrgent, TierRoutine:
		default:
			return cardErr(field+".tier", "%q (want critical, urgent or routine)", f.Tier)
		}
		if f.Channel < 0 || f.Channel > 255 {
			return cardErr(field+".channel", "%d (want 0 to 255)", f.Channel)
		}
		if other, dup := channels[f.Channel]; dup {
			return cardErr(field+".channel", "%d is also finding %s's", f.Channel, other)
		}
		channels[f.Channel] = f.Code
		if !(f.Threshold > 0 && f.Threshold < 1) {
			return cardErr(field+".threshold", "%v (want a probability strictly between 0 and 1)", f.Threshold)
		}
		if !(f.MinVolumeML >= 0) || !finite(f.MinVolumeML) {
			return cardErr(field+".min_volume_ml", "%v (want 0 or more)", f.MinVolumeML)
		}
		if c.Kind == KindClassification && f.MinVolumeML != 0 {
			return cardErr(field+".min_volume_ml", "%v on a classifier (want 0)", f.MinVolumeML)
		}
	}
	if err := c.Input.Validate(); err != nil {
		return err
	}
	switch c.Output.Activation {
	case "sigmoid", "softmax", "none":
	default:
		return cardErr("output.activation", "%q (want sigmoid, softmax or none)", c.Output.Activation)
	}
	for k, v := range c.Metrics {
		if strings.TrimSpace(k) == "" {
			return cardErr("metrics", "empty name")
		}
		if !finite(v) {
			return cardErr("metrics."+k, "%v (want a finite number)", v)
		}
	}
	return nil
}

// Validate checks an input spec; errors name the card field ("input.…").
func (in *InputSpec) Validate() error {
	n := 1
	for a := 0; a < 3; a++ {
		if s := in.Spacing[a]; !(s > 0) || !finite(s) || s > 100 {
			return cardErr(fmt.Sprintf("input.spacing_mm[%d]", a), "%v (want above 0 and at most 100 mm)", s)
		}
		if s := in.Size[a]; s <= 0 || s > 2048 {
			return cardErr(fmt.Sprintf("input.size[%d]", a), "%d (want 1 to 2048 voxels)", s)
		}
		n *= in.Size[a]
	}
	if n > maxInputVoxels {
		return cardErr("input.size", "%v is %d voxels (at most %d)", in.Size, n, maxInputVoxels)
	}
	if !finite(in.Window.Center) || math.Abs(in.Window.Center) > 1e5 {
		return cardErr("input.window.center", "%v (want a finite HU value)", in.Window.Center)
	}
	if !(in.Window.Width > 0) || !finite(in.Window.Width) || in.Window.Width > 1e5 {
		return cardErr("input.window.width", "%v (want above 0)", in.Window.Width)
	}
	if in.Channels != 1 {
		return cardErr("input.channels", "%d (only 1 is supported)", in.Channels)
	}
	return in.Denoise.validate()
}

func (d *DenoiseSpec) validate() error {
	positive := func(name string, x float64) error {
		if !(x > 0) || !finite(x) || x > 1e4 {
			return cardErr("input.denoise."+name, "%v (want above 0 for %s)", x, d.Method)
		}
		return nil
	}
	unused := func(names ...string) error {
		vals := map[string]float64{
			"sigma_mm": d.SigmaMM, "sigma_range_hu": d.SigmaRangeHU,
			"patch_radius": float64(d.PatchRadius), "search_radius": float64(d.SearchRadius),
			"noise_hu": d.NoiseHU, "h_hu": d.HHU,
		}
		for _, name := range []string{"sigma_mm", "sigma_range_hu", "patch_radius", "search_radius", "noise_hu", "h_hu"} {
			used := false
			for _, u := range names {
				used = used || u == name
			}
			if !used && vals[name] != 0 {
				return cardErr("input.denoise."+name, "%v is not a parameter of %s", vals[name], d.Method)
			}
		}
		return nil
	}
	switch d.Method {
	case "none":
		return unused()
	case "gaussian":
		if err := positive("sigma_mm", d.SigmaMM); err != nil {
			return err
		}
		return unused("sigma_mm")
	case "bilateral":
		if err := positive("sigma_mm", d.SigmaMM); err != nil {
			return err
		}
		if err := positive("sigma_range_hu", d.SigmaRangeHU); err != nil {
			return err
		}
		return unused("sigma_mm", "sigma_range_hu")
	case "nlm":
		if d.PatchRadius < 0 || d.PatchRadius > 5 {
			return cardErr("input.denoise.patch_radius", "%d (want 0 to 5)", d.PatchRadius)
		}
		if d.SearchRadius < 1 || d.SearchRadius > 10 {
			return cardErr("input.denoise.search_radius", "%d (want 1 to 10)", d.SearchRadius)
		}
		if !(d.NoiseHU >= 0) || !finite(d.NoiseHU) || d.NoiseHU > 1e4 {
			return cardErr("input.denoise.noise_hu", "%v (want 0 or more)", d.NoiseHU)
		}
		if err := positive("h_hu", d.HHU); err != nil {
			return err
		}
		return unused("patch_radius", "search_radius", "noise_hu", "h_hu")
	}
	return cardErr("input.denoise.method", "%q (want none, gaussian, bilateral or nlm)", d.Method)
}

// checkBaseName accepts a plain file name: no separators, not "." or "..",
// no control characters.
func checkBaseName(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case s == "." || s == "..":
		return errors.New("is not a file name")
	case strings.ContainsAny(s, `/\:`):
		return errors.New("must be a plain file name (no path separators)")
	case len(s) > 255:
		return errors.New("is longer than 255 bytes")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errors.New("holds a control character")
		}
	}
	return nil
}

// checkCode accepts 1 to 16 upper-case letters, digits, '_' and '-',
// starting with a letter.
func checkCode(s string) error {
	if s == "" || len(s) > 16 {
		return errors.New("must be 1 to 16 characters")
	}
	for i, r := range s {
		ok := (r >= 'A' && r <= 'Z') || (i > 0 && ((r >= '0' && r <= '9') || r == '_' || r == '-'))
		if !ok {
			return errors.New("must be upper-case letters, digits, _ or -, starting with a letter")
		}
	}
	return nil
}
