// Command triagebench times radtriage's triage of one study on the CPU,
// stage by stage, for the triage benchmark (.ci/bench-triage.sh), and
// prepares the model-inference comparison with onnxruntime and PyTorch.
//
//	GOMAXPROCS=2 triagebench [-rounds R] [-study DIR] [-models DIR] [-pt DIR] -work WORK
//
// It loads the default ensemble (triage/models, embedded in the binary;
// or the cards and models of the folder -models) on kernels.CPU() and, R
// times after one warm-up, triages the DICOM folder -study as "radtriage
// triage" does: volume.LoadDir, volume.Choose and
// Assemble (the "assemble" stage, timed here), then Ensemble.Run, whose
// Result.TimingsMS give the other stages (upload, denoise, resample,
// window, each model with its test-time flips, postprocess). Each round
// is printed as one JSON object:
//
//	{"kind": "triage", "round": i, "timings_ms": {...}, "whole_ms": ...,
//	 "tier": ..., "scores": {...}}
//
// whole_ms is assemble plus Ensemble.Run's total. One more object gives
// the medians over the rounds: {"kind": "median", "median_ms": {"assemble":
// ..., "model NAME": ..., "whole": ...}}. Each segmentation model's time
// covers 1 + len(triage.DefaultFlips) forward runs (the input and its
// test-time flips) and the activation.
//
// Then, for the reference runtimes, it writes into WORK:
//
//	STEM.onnx         the model file the ensemble ran (its bytes, copied)
//	xK.f32            the network input (triage.Preprocess with the card's
//	                  input spec on the assembled volume; one per distinct
//	                  spec), raw little-endian float32, shape [1 C D H W]
//	STEM.radtriage.f32  radtriage's raw output on it: one forward run of
//	                  the model compiled with triage.Compile (no test-time
//	                  flip, no activation)
//	manifest.json     the models: name, card file stem, onnx and pt paths,
//	                  input and output names and shapes, input and output
//	                  files, and radtriage's single-forward times
//
// and prints one JSON object per model: {"kind": "model", "name": ...,
// "ms": [...]} (R single-forward runs after a warm-up).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/radtriage/radtriage/triage/bench/benchio"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/models"
	"github.com/radtriage/radtriage/volume"
)

// manifestModel is one entry of WORK/manifest.json.
type manifestModel struct {
	Name       string    `json:"name"`   // the card's name
	Stem       string    `json:"stem"`   // the ONNX file name without .onnx (train.py's model key)
	Kind       string    `json:"kind"`   // the card's kind
	ONNX       string    `json:"onnx"`   // WORK/NAME.onnx, the bytes the ensemble ran
	PT         string    `json:"pt"`     // PTDIR/STEM.pt, the PyTorch state_dict of the same weights
	Input      string    `json:"input"`  // the graph input's name
	Output     string    `json:"output"` // the graph output's name
	InputShape []int     `json:"input_shape"`
	OutShape   []int     `json:"output_shape"`
	InputFile  string    `json:"input_file"`  // raw float32
	OutputFile string    `json:"output_file"` // radtriage's output, raw float32
	MS         []float64 `json:"radtriage_ms"`
	SHA256     string    `json:"onnx_sha256,omitempty"` // from the card
}

func main() {
	rounds := flag.Int("rounds", 5, "timed rounds after one warm-up (median)")
	study := flag.String("study", "../shared/dicom/ct-head-5mm", "the DICOM folder of the study to triage")
	work := flag.String("work", "", "folder to write the reference runtimes' inputs into (required)")
	modelsDir := flag.String("models", "", "load the ensemble from this folder instead of the embedded one (triage/models when built)")
	ptDir := flag.String("pt", "", "the folder of the models' PyTorch state_dicts (STEM.pt) named in the manifest (default: -models, or triage/models)")
	flag.Parse()
	if flag.NArg() != 0 || *rounds < 1 || *work == "" {
		fmt.Fprintln(os.Stderr, "usage: triagebench [-rounds R] [-study DIR] [-models DIR] [-pt DIR] -work WORK")
		os.Exit(2)
	}
	var fsys fs.FS = models.FS
	if *modelsDir != "" {
		fsys = os.DirFS(*modelsDir)
	}
	if *ptDir == "" {
		*ptDir = *modelsDir
		if *ptDir == "" {
			*ptDir = filepath.Join("triage", "models")
		}
	}
	abs, err := filepath.Abs(*ptDir)
	if err == nil {
		err = run(context.Background(), fsys, *study, *work, abs, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "triagebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, fsys fs.FS, study, work, ptDir string, rounds int) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	b := kernels.CPU()
	ens, err := triage.LoadEnsembleFS(fsys, ".", b, triage.EnsembleOptions{Profile: false})
	if err != nil {
		return err
	}
	defer ens.Close()

	var v *volume.Volume
	stages := map[string][]float64{}
	for r := 0; r <= rounds; r++ { // round 0 is the warm-up
		t0 := time.Now()
		vol, studyUID, err := assemble(study)
		if err != nil {
			return err
		}
		asm := ms(time.Since(t0))
		res, err := ens.Run(ctx, vol, studyUID)
		if err != nil {
			return fmt.Errorf("triage of %s: %w", study, err)
		}
		res.TimingsMS.Assemble = asm
		v = vol
		if r == 0 {
			continue
		}
		t := res.TimingsMS
		for k, x := range map[string]float64{
			"assemble": t.Assemble, "upload": t.Upload, "denoise": t.Denoise, "resample": t.Resample,
			"window": t.Window, "postprocess": t.Postprocess, "total": t.Total, "whole": asm + t.Total,
		} {
			stages[k] = append(stages[k], x)
		}
		for k, x := range t.Models {
			stages["model "+k] = append(stages["model "+k], x)
		}
		line, _ := json.Marshal(map[string]any{
			"kind": "triage", "round": r, "timings_ms": res.TimingsMS,
			"whole_ms": asm + res.TimingsMS.Total, "tier": res.Tier, "scores": res.Scores,
			"findings": len(res.Findings), "flips": len(triage.DefaultFlips), "models": res.Models,
		})
		fmt.Println(string(line))
	}
	meds := map[string]float64{}
	for k, xs := range stages {
		meds[k] = median(xs)
	}
	line, _ := json.Marshal(map[string]any{"kind": "median", "rounds": rounds, "median_ms": meds})
	fmt.Println(string(line))
	return forward(ctx, fsys, b, v, work, ptDir, rounds)
}

// assemble reads the study folder and assembles its chosen series.
func assemble(dir string) (*volume.Volume, string, error) {
	col, err := volume.LoadDir(os.DirFS(dir), volume.LoadOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(col.Series) == 0 {
		return nil, "", fmt.Errorf("%s holds no DICOM image series (%d files skipped)", dir, len(col.Skipped))
	}
	stack, _, err := volume.Choose(col)
	if err != nil {
		return nil, "", fmt.Errorf("%s: no series to assemble: %w", dir, err)
	}
	v, err := stack.Assemble(volume.AssembleOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("assembling series %s: %w", stack.SeriesUID, err)
	}
	return v, stack.StudyUID, nil
}

// forward writes the inputs, models and single-forward outputs of every
// card of the embedded ensemble, timing rounds runs after a warm-up.
func forward(ctx context.Context, fsys fs.FS, b kernels.Backend, v *volume.Volume, work, ptDir string, rounds int) error {
	cards, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return err
	}
	sort.Strings(cards)
	if len(cards) == 0 {
		return errors.New("the ensemble has no model cards")
	}
	var specs []triage.InputSpec
	var man []manifestModel
	for _, name := range cards {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		card, err := triage.ParseCard(data)
		if err != nil {
			return fmt.Errorf("card %s: %w", name, err)
		}
		spec := slices.IndexFunc(specs, func(s triage.InputSpec) bool { return reflect.DeepEqual(s, card.Input) })
		in := card.Input
		shape := []int{1, in.Channels, in.Size[0], in.Size[1], in.Size[2]}
		if spec < 0 {
			spec = len(specs)
		}
		xFile := filepath.Join(work, fmt.Sprintf("x%d.f32", spec))
		if spec == len(specs) {
			p, err := triage.Preprocess(ctx, b, v, in)
			if err != nil {
				return fmt.Errorf("card %s: %w", name, err)
			}
			p.Release()
			if len(p.Tensor) != benchio.Numel(shape) {
				return fmt.Errorf("card %s: Preprocess gave %d values for shape %v", name, len(p.Tensor), shape)
			}
			if err := benchio.WriteF32(xFile, p.Tensor); err != nil {
				return err
			}
			specs = append(specs, in)
		}
		x, err := benchio.ReadF32(xFile, benchio.Numel(shape))
		if err != nil {
			return err
		}
		onnx, err := fs.ReadFile(fsys, path.Join(path.Dir(name), card.File))
		if err != nil {
			return fmt.Errorf("card %s: %w", name, err)
		}
		stem := strings.TrimSuffix(card.File, ".onnx")
		onnxPath := filepath.Join(work, card.File)
		if err := os.WriteFile(onnxPath, onnx, 0o644); err != nil {
			return err
		}
		mm := manifestModel{
			Name: card.Name, Stem: stem, Kind: card.Kind, ONNX: onnxPath,
			PT: filepath.Join(ptDir, stem+".pt"), InputShape: shape, InputFile: xFile,
			OutputFile: filepath.Join(work, stem+".radtriage.f32"), SHA256: card.Training.ONNXSHA256,
		}
		if err := single(ctx, b, &mm, x, rounds); err != nil {
			return fmt.Errorf("model %s: %w", card.Name, err)
		}
		line, _ := json.Marshal(map[string]any{"kind": "model", "name": mm.Name, "ms": mm.MS})
		fmt.Println(string(line))
		man = append(man, mm)
	}
	js, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "manifest.json"), append(js, '\n'), 0o644)
}

// single compiles one model for a batch of one, writes its raw output on
// x and times rounds forward runs after a warm-up.
func single(ctx context.Context, b kernels.Backend, mm *manifestModel, x []float32, rounds int) error {
	m, err := triage.ReadModelFile(mm.ONNX, triage.Limits{})
	if err != nil {
		return err
	}
	g := m.Graph
	if len(g.Inputs) != 1 || len(g.Outputs) != 1 {
		return fmt.Errorf("%d inputs and %d outputs, want 1 and 1", len(g.Inputs), len(g.Outputs))
	}
	mm.Input, mm.Output = g.Inputs[0].Name, g.Outputs[0].Name
	p, err := triage.Compile(m, b, map[string][]int{mm.Input: mm.InputShape}, triage.CompileOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	mm.OutShape = p.OutputShapes()[mm.Output]
	in := map[string][]float32{mm.Input: x}
	out, err := p.Run(ctx, in) // warm-up, and the output the references are compared with
	if err != nil {
		return err
	}
	y := out[mm.Output]
	if len(y) != benchio.Numel(mm.OutShape) {
		return fmt.Errorf("output %s: %d values, want %d (shape %v)", mm.Output, len(y), benchio.Numel(mm.OutShape), mm.OutShape)
	}
	if err := benchio.WriteF32(mm.OutputFile, y); err != nil {
		return err
	}
	for range rounds {
		t0 := time.Now()
		if _, err := p.Run(ctx, in); err != nil {
			return err
		}
		mm.MS = append(mm.MS, ms(time.Since(t0)))
	}
	return nil
}

// median of xs (not empty); the mean of the middle two for an even count.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
