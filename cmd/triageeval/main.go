// Command triageeval measures the default triage ensemble against the
// acceptance targets of the triage feature, on a held-out set of
// synthetic phantom studies and on the real head CT of the shared
// fixtures, and writes a Markdown report:
//
//	go run ./cmd/triageeval -shared ../shared/dicom -out eval.md -json eval.json
//
// The held-out set is -n phantoms (triage/phantom, default grid of
// 32×256×256 voxels of 5×0.9×0.9 mm) with seeds -seed, -seed+1, …:
// -seed, -seed+2, … normal, -seed+1, -seed+3, … with one ICH, one SDH or
// both (2:1:1, as phantom.RandomLesions draws its non-empty cases). Seeds from 900000 are
// never used in training (100000-…) or validation (200000-…). Each study
// takes the path of a real one: written as a DICOM series, read back
// (volume.LoadDir, Choose, Assemble) and triaged (triage.Ensemble.Run).
//
// Metrics: study-level "any bleed" AUC (score: the largest of the
// ensemble's per-code scores; Mann-Whitney, ties ½) with a 95% stratified
// bootstrap interval (1000 resamples, fixed seed); sensitivity and
// specificity at the operating point (a study is positive when it has a
// finding); the same per code; per true lesion over 1 mL, the Dice of the
// result's label mask against the phantom's (a missed lesion scores 0)
// and, when detected, the relative error of the finding's volume; the
// triage time (Result.TimingsMS.Total). The targets:
//
//	AUC >= 0.97, sensitivity >= 0.95, median Dice >= 0.8,
//	median volume error <= 15%, no critical finding on ct-head-5mm
//
// Exit status: 0 every target met, 1 a target missed or an error, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/models"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
)

// Targets of the acceptance criteria.
const (
	targetAUC         = 0.97
	targetSensitivity = 0.95
	targetDice        = 0.8
	targetVolumeError = 0.15
	// minLesionML: lesions at most this large are left out of the
	// segmentation metrics.
	minLesionML = 1.0

	bootstrapResamples = 1000
	bootstrapSeed      = 20261123
	realCT             = "ct-head-5mm"
)

// Codes the phantoms' lesion kinds are found as.
var codeOfKind = map[string]string{phantom.KindICH: "ICH", phantom.KindSDH: "SDH"}

// errUsage marks a command-line error (exit status 2); errTargets a
// completed evaluation that missed a target (exit status 1).
var (
	errUsage   = errors.New("usage")
	errTargets = errors.New("a target was missed")
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "triageeval:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "triageeval:", err)
		os.Exit(1)
	}
}

type config struct {
	N       int
	Seed    uint64
	Shared  string
	Out     string
	JSON    string
	Backend string
	Models  string
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("triageeval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.N, "n", 200, "number of held-out phantom studies (even: half normal, half with lesions)")
	fs.Uint64Var(&c.Seed, "seed", 900000, "seed of the first study; the others follow")
	fs.StringVar(&c.Shared, "shared", "../shared/dicom", "folder of the shared DICOM fixtures (holds "+realCT+")")
	fs.StringVar(&c.Out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&c.JSON, "json", "", "write every study's raw numbers (truth, scores, findings, Dice, volumes) as JSON to this file")
	fs.StringVar(&c.Backend, "backend", "auto", "compute backend: cpu, cuda or auto")
	fs.StringVar(&c.Models, "models", "", "folder of model cards (*.json) and models to evaluate instead of the embedded ensemble")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: triageeval [flags]\n\nEvaluates the triage ensemble on held-out phantoms and "+realCT+"; exit 0 all targets met, 1 a target missed, 2 usage.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case c.N < 2 || c.N%2 != 0:
		return nil, fmt.Errorf("%w: -n %d: want an even number of at least 2", errUsage, c.N)
	case c.Seed > math.MaxUint64-uint64(c.N):
		return nil, fmt.Errorf("%w: -seed %d: too large for -n %d", errUsage, c.Seed, c.N)
	}
	switch c.Backend {
	case "cpu", "cuda", "auto":
	default:
		return nil, fmt.Errorf("%w: -backend %q: want cpu, cuda or auto", errUsage, c.Backend)
	}
	return &c, nil
}

// lesionsFor draws the lesions of lesion study seed: one ICH (half of
// them), one SDH (a quarter) or both, as phantom.RandomLesions' non-empty
// cases, their volumes left to the phantom (0: random).
func lesionsFor(seed uint64) []phantom.LesionSpec {
	r := rand.New(rand.NewPCG(seed, 0x6576616c))
	switch r.IntN(4) {
	case 0, 1:
		return []phantom.LesionSpec{{Kind: phantom.KindICH}}
	case 2:
		return []phantom.LesionSpec{{Kind: phantom.KindSDH}}
	default:
		return []phantom.LesionSpec{{Kind: phantom.KindICH}, {Kind: phantom.KindSDH}}
	}
}

// Study is one held-out study's raw numbers (the -json file).
type Study struct {
	Seed    uint64             `json:"seed"`
	Normal  bool               `json:"normal"`
	Lesions []LesionResult     `json:"lesions"`
	Scores  map[string]float64 `json:"scores"`
	// Evidence is each code's segmentation and classifier scores.
	Evidence map[string]triage.CodeEvidence `json:"evidence"`
	// AnyScore is the largest score; Positive: any finding.
	AnyScore   float64          `json:"any_score"`
	Positive   bool             `json:"positive"`
	Tier       string           `json:"tier"`
	Findings   []triage.Finding `json:"findings"`
	TotalMS    float64          `json:"total_ms"`
	AssembleMS float64          `json:"assemble_ms"`
	HasCode    map[string]bool  `json:"has_code"`
	FoundCode  map[string]bool  `json:"found_code"`
}

// LesionResult is one true lesion against the result.
type LesionResult struct {
	Kind     string  `json:"kind"`
	Code     string  `json:"code"`
	VolumeML float64 `json:"volume_ml"` // true volume
	TargetML float64 `json:"target_ml"`
	Voxels   int     `json:"voxels"`
	// Dice of the result's mask of Code against the lesion's mask; 0
	// when the result has none.
	Dice float64 `json:"dice"`
	// Detected: the result has a finding of Code; FoundML its volume
	// and VolumeError the relative error.
	Detected    bool     `json:"detected"`
	FoundML     *float64 `json:"found_volume_ml,omitempty"`
	VolumeError *Number  `json:"volume_error,omitempty"`
}

// RealResult is the shared real head CT's triage.
type RealResult struct {
	Dir      string                         `json:"dir"`
	Tier     string                         `json:"tier"`
	Scores   map[string]float64             `json:"scores"`
	Evidence map[string]triage.CodeEvidence `json:"evidence"`
	Findings []triage.Finding               `json:"findings"`
	TotalMS  float64                        `json:"total_ms"`
	Critical bool                           `json:"critical"`
}

// Report is the -json file.
type Report struct {
	Date      string       `json:"date"`
	N         int          `json:"n"`
	FirstSeed uint64       `json:"first_seed"`
	Models    []string     `json:"models"`
	Backend   string       `json:"backend"`
	Studies   []*Study     `json:"studies"`
	Real      *RealResult  `json:"real_ct"`
	Summary   []TargetLine `json:"targets"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	realDir := filepath.Join(c.Shared, realCT)
	if st, err := os.Stat(realDir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: -shared %s: no folder %s (the shared fixtures)", errUsage, c.Shared, realDir)
	}
	b, reason, err := kernels.Open(c.Backend)
	if err != nil {
		return fmt.Errorf("-backend %s: %w", c.Backend, err)
	}
	defer b.Close()
	fmt.Fprintf(stderr, "backend %s (%s)\n", b.Name(), reason)
	var fsys fs.FS = models.FS
	modelsFrom := "embedded (triage/models)"
	if c.Models != "" {
		fsys, modelsFrom = os.DirFS(c.Models), c.Models
	}
	cards, err := readCards(fsys)
	if err != nil {
		return err
	}
	ens, err := triage.LoadEnsembleFS(fsys, ".", b, triage.EnsembleOptions{})
	if err != nil {
		return err
	}
	defer ens.Close()
	codes := ens.Codes()
	for _, code := range codeOfKind {
		if !slices.Contains(codes, code) {
			return fmt.Errorf("the ensemble has no finding %s (it has %s)", code, strings.Join(codes, ", "))
		}
	}
	tmp, err := os.MkdirTemp("", "triageeval")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	rep := &Report{Date: time.Now().UTC().Format(time.RFC3339), N: c.N, FirstSeed: c.Seed, Models: ens.Models(), Backend: b.Name()}
	start := time.Now()
	for i := range c.N {
		seed := c.Seed + uint64(i)
		s, err := evalPhantom(ctx, ens, tmp, seed, i%2 == 0, codes)
		if err != nil {
			return fmt.Errorf("study seed %d: %w", seed, err)
		}
		rep.Studies = append(rep.Studies, s)
		if done := i + 1; done%20 == 0 || done == c.N {
			el := time.Since(start)
			per := el / time.Duration(done)
			fmt.Fprintf(stderr, "%d/%d studies, %.1f s each, %s left\n", done, c.N, per.Seconds(), (per * time.Duration(c.N-done)).Round(time.Second))
		}
	}
	rep.Real, err = evalReal(ctx, ens, realDir)
	if err != nil {
		return fmt.Errorf("%s: %w", realDir, err)
	}

	m := summarise(rep.Studies, codes)
	rep.Summary = m.targets(rep.Real)
	var md strings.Builder
	writeMarkdown(&md, c, rep, m, cards, modelsFrom, runtime.Version())
	if _, err := io.WriteString(stdout, md.String()); err != nil {
		return err
	}
	if c.Out != "" {
		if err := os.WriteFile(c.Out, []byte(md.String()), 0o644); err != nil {
			return err
		}
	}
	if c.JSON != "" {
		data, err := json.MarshalIndent(rep, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.JSON, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	var missed []string
	for _, t := range rep.Summary {
		if !t.Pass {
			missed = append(missed, t.Metric)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: %s", errTargets, strings.Join(missed, "; "))
	}
	return nil
}

// readCards reads the model cards of fsys, for the report's settings.
func readCards(fsys fs.FS) ([]*triage.ModelCard, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var cards []*triage.ModelCard
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		card, err := triage.ParseCard(data)
		if err != nil {
			return nil, fmt.Errorf("card %s: %w", path.Base(name), err)
		}
		cards = append(cards, card)
	}
	return cards, nil
}

// loadSeries reads and assembles the series volume.Choose picks in dir.
func loadSeries(dir string) (*volume.Volume, error) {
	col, err := volume.LoadDir(os.DirFS(dir), volume.LoadOptions{})
	if err != nil {
		return nil, err
	}
	stack, _, err := volume.Choose(col)
	if err != nil {
		return nil, fmt.Errorf("choosing a series (%d files skipped): %w", len(col.Skipped), err)
	}
	return stack.Assemble(volume.AssembleOptions{})
}

// sameGrid reports whether two volumes share size and geometry (to 1 µm
// and 1e-6 in direction), so that their voxels correspond one to one.
func sameGrid(a, b *volume.Volume) error {
	if a.Size != b.Size {
		return fmt.Errorf("size %v, want %v", a.Size, b.Size)
	}
	for i := range 3 {
		if math.Abs(a.Spacing[i]-b.Spacing[i]) > 1e-3 || math.Abs(a.Origin[i]-b.Origin[i]) > 1e-3 {
			return fmt.Errorf("spacing %v origin %v, want %v %v", a.Spacing, a.Origin, b.Spacing, b.Origin)
		}
		for j := range 3 {
			if math.Abs(a.Axes[i][j]-b.Axes[i][j]) > 1e-6 {
				return fmt.Errorf("axes %v, want %v", a.Axes, b.Axes)
			}
		}
	}
	return nil
}

// sameValues checks that the assembled volume holds the phantom's HU
// voxel for voxel, in its order (so that the truth's and the result's
// masks are compared at the same places). It reads Stored when the
// volume has it and leaves Data as it is.
func sameValues(v *volume.Volume, hu []int16) error {
	if v.Voxels() != len(hu) {
		return fmt.Errorf("%d voxels, the phantom has %d", v.Voxels(), len(hu))
	}
	for i, want := range hu {
		var got float64
		switch {
		case v.Stored != nil:
			got = float64(v.Stored[i])*v.Slope + v.Intercept
		case v.Data != nil:
			got = float64(v.Data[i])
		default:
			return errors.New("no voxel values")
		}
		if math.Abs(got-float64(want)) > 0.5 {
			return fmt.Errorf("voxel %d is %g HU, the phantom's %d HU", i, got, want)
		}
	}
	return nil
}

// evalPhantom generates, writes, reads back and triages one study, and
// measures the result against the phantom's truth.
func evalPhantom(ctx context.Context, ens *triage.Ensemble, tmp string, seed uint64, normal bool, codes []string) (*Study, error) {
	spec := phantom.Spec{Seed: seed}
	if !normal {
		spec.Lesions = lesionsFor(seed)
	}
	p, err := phantom.Generate(spec)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, fmt.Sprint(seed))
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	v, err := loadSeries(dir)
	assembleMS := float64(time.Since(t0).Microseconds()) / 1000
	os.RemoveAll(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the written series back: %w", err)
	}
	// The truth is on the phantom's grid; the result's mask on the
	// series'. They must be the same for a voxel-for-voxel Dice.
	if err := sameGrid(v, p.LabelVolume()); err != nil {
		return nil, fmt.Errorf("the assembled series is not on the phantom's grid: %w", err)
	}
	if err := sameValues(v, p.HU); err != nil {
		return nil, fmt.Errorf("the assembled series is not the phantom: %w", err)
	}
	studyUID, _, _, _ := p.UIDs()
	r, err := ens.Run(ctx, v, studyUID)
	if err != nil {
		return nil, err
	}
	r.TimingsMS.Assemble = assembleMS
	s := &Study{
		Seed: seed, Normal: normal, Scores: r.Scores, Evidence: r.Evidence, Findings: r.Findings, Tier: r.Tier,
		Positive: len(r.Findings) > 0, TotalMS: r.TimingsMS.Total, AssembleMS: assembleMS,
		HasCode: map[string]bool{}, FoundCode: map[string]bool{}, AnyScore: math.Inf(-1),
		Lesions: []LesionResult{},
	}
	for _, code := range codes {
		sc, ok := r.Scores[code]
		if !ok {
			return nil, fmt.Errorf("the result has no score for %s", code)
		}
		s.AnyScore = max(s.AnyScore, sc)
		s.HasCode[code] = false
		s.FoundCode[code] = false
	}
	found := map[string]*triage.Finding{}
	for i := range r.Findings {
		f := &r.Findings[i]
		found[f.Code] = f
		s.FoundCode[f.Code] = true
	}
	var labels []int16
	if r.Mask != nil {
		if err := sameGrid(r.Mask, v); err != nil {
			return nil, fmt.Errorf("the result's mask is not on the series' grid: %w", err)
		}
		labels = r.Mask.Stored
		if labels == nil {
			vals := r.Mask.Values()
			labels = make([]int16, len(vals))
			for i, x := range vals {
				labels[i] = int16(math.Round(float64(x)))
			}
		}
		if len(labels) != len(p.Labels) {
			return nil, fmt.Errorf("mask of %d voxels, the phantom has %d", len(labels), len(p.Labels))
		}
	}
	for _, l := range p.Lesions {
		code := codeOfKind[l.Kind]
		if code == "" {
			return nil, fmt.Errorf("phantom lesion of unknown kind %q", l.Kind)
		}
		s.HasCode[code] = true
		lr := LesionResult{Kind: l.Kind, Code: code, VolumeML: l.VolumeML, TargetML: l.TargetML, Voxels: l.Voxels}
		lr.Dice = LesionDice(p.Labels, l.Label, labels, r.MaskCodes, code)
		if f := found[code]; f != nil {
			lr.Detected = true
			ml, e := f.VolumeML, Number(RelError(f.VolumeML, l.VolumeML))
			lr.FoundML, lr.VolumeError = &ml, &e
		}
		s.Lesions = append(s.Lesions, lr)
	}
	return s, nil
}

// evalReal triages the real head CT.
func evalReal(ctx context.Context, ens *triage.Ensemble, dir string) (*RealResult, error) {
	v, err := loadSeries(dir)
	if err != nil {
		return nil, err
	}
	r, err := ens.Run(ctx, v, "")
	if err != nil {
		return nil, err
	}
	rr := &RealResult{Dir: dir, Tier: r.Tier, Scores: r.Scores, Evidence: r.Evidence, Findings: r.Findings, TotalMS: r.TimingsMS.Total}
	for _, f := range r.Findings {
		if f.Tier == triage.TierCritical {
			rr.Critical = true
		}
	}
	return rr, nil
}

// Classification is one decision's metrics.
type Classification struct {
	Name       string
	AUC        float64
	Lo, Hi     float64 // bootstrap 95% interval
	Confusion  Confusion
	Sens, Spec float64
}

func classify(name string, scores []float64, truth, decided []bool) Classification {
	c := Classification{Name: name, AUC: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	if a, err := AUC(scores, truth); err == nil {
		c.AUC = a
		c.Lo, c.Hi, _ = BootstrapAUC(scores, truth, bootstrapResamples, 0.95, bootstrapSeed)
	}
	c.Confusion = Count(truth, decided)
	c.Sens, c.Spec = c.Confusion.Sensitivity(), c.Confusion.Specificity()
	return c
}

// Segmentation is the lesion metrics of one kind (or all).
type Segmentation struct {
	Name                      string
	Lesions, Detected         int
	DiceMedian, DiceMean, P10 float64
	VolErrMedian, VolErrP90   float64
}

func segment(name string, ls []LesionResult) Segmentation {
	var dice, verr []float64
	s := Segmentation{Name: name}
	for _, l := range ls {
		dice = append(dice, l.Dice)
		if l.Detected {
			s.Detected++
			verr = append(verr, float64(*l.VolumeError))
		}
	}
	s.Lesions = len(ls)
	s.DiceMedian, s.DiceMean, s.P10 = Median(dice), Mean(dice), Percentile(dice, 10)
	s.VolErrMedian, s.VolErrP90 = Median(verr), Percentile(verr, 90)
	return s
}

// Metrics are the set's summaries.
type Metrics struct {
	Any     Classification
	PerCode []Classification
	Seg     []Segmentation // per kind, then overall
	Overall Segmentation
	// TotalMS and AssembleMS are the median and 90th percentile.
	TotalMS, AssembleMS [2]float64
	Normal, WithLesion  int
	SmallLesions        int // true lesions at most minLesionML, left out
}

func summarise(studies []*Study, codes []string) *Metrics {
	m := &Metrics{}
	n := len(studies)
	anyScore := make([]float64, n)
	anyTruth, anyFound := make([]bool, n), make([]bool, n)
	var total, asm []float64
	for i, s := range studies {
		anyScore[i], anyTruth[i], anyFound[i] = s.AnyScore, !s.Normal, s.Positive
		if s.Normal {
			m.Normal++
		} else {
			m.WithLesion++
		}
		total = append(total, s.TotalMS)
		asm = append(asm, s.AssembleMS)
	}
	m.Any = classify("any bleed", anyScore, anyTruth, anyFound)
	for _, code := range codes {
		sc := make([]float64, n)
		truth, found := make([]bool, n), make([]bool, n)
		for i, s := range studies {
			sc[i], truth[i], found[i] = s.Scores[code], s.HasCode[code], s.FoundCode[code]
		}
		m.PerCode = append(m.PerCode, classify(code, sc, truth, found))
	}
	byKind := map[string][]LesionResult{}
	var all []LesionResult
	for _, s := range studies {
		for _, l := range s.Lesions {
			if !(l.VolumeML > minLesionML) {
				m.SmallLesions++
				continue
			}
			byKind[l.Code] = append(byKind[l.Code], l)
			all = append(all, l)
		}
	}
	for _, code := range codes {
		if ls, ok := byKind[code]; ok {
			m.Seg = append(m.Seg, segment(code, ls))
		}
	}
	m.Overall = segment("all", all)
	m.TotalMS = [2]float64{Median(total), Percentile(total, 90)}
	m.AssembleMS = [2]float64{Median(asm), Percentile(asm, 90)}
	return m
}

// TargetLine is one acceptance target.
type TargetLine struct {
	Metric string `json:"metric"`
	Value  Number `json:"value"`
	Text   string `json:"text"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
}

func (m *Metrics) targets(real *RealResult) []TargetLine {
	crit := 0.0
	if real.Critical {
		crit = 1
	}
	return []TargetLine{
		{Metric: "AUC, any bleed", Value: Number(m.Any.AUC), Text: fmt.Sprintf("%s (95%% CI %s–%s)", f3(m.Any.AUC), f3(m.Any.Lo), f3(m.Any.Hi)), Target: "≥ 0.97", Pass: m.Any.AUC >= targetAUC},
		{Metric: "sensitivity at the operating point", Value: Number(m.Any.Sens), Text: fmt.Sprintf("%s (%d/%d)", f3(m.Any.Sens), m.Any.Confusion.TP, m.Any.Confusion.TP+m.Any.Confusion.FN), Target: "≥ 0.95", Pass: m.Any.Sens >= targetSensitivity},
		{Metric: "median Dice, lesions > 1 mL", Value: Number(m.Overall.DiceMedian), Text: fmt.Sprintf("%s (%d lesions)", f3(m.Overall.DiceMedian), m.Overall.Lesions), Target: "≥ 0.80", Pass: m.Overall.DiceMedian >= targetDice},
		{Metric: "median volume error, detected lesions > 1 mL", Value: Number(m.Overall.VolErrMedian), Text: fmt.Sprintf("%s (%d lesions)", pct(m.Overall.VolErrMedian), m.Overall.Detected), Target: "≤ 15%", Pass: m.Overall.VolErrMedian <= targetVolumeError},
		{Metric: "critical findings on " + realCT, Value: Number(crit), Text: fmt.Sprintf("tier %s, %d finding(s)", real.Tier, len(real.Findings)), Target: "none", Pass: !real.Critical},
	}
}

// Number is a float64 that JSON writes as null when it is NaN or
// infinite (an AUC with one class, a median of nothing).
type Number float64

// MarshalJSON implements json.Marshaler.
func (x Number) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// f3 formats a metric to 3 decimals, "n/a" for NaN.
func f3(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", x)
}

func pct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

func writeMarkdown(w io.Writer, c *config, rep *Report, m *Metrics, cards []*triage.ModelCard, modelsFrom, goVersion string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Triage evaluation\n\n")
	allPass := true
	for _, t := range rep.Summary {
		allPass = allPass && t.Pass
	}
	verdict := "every target met"
	if !allPass {
		verdict = "TARGETS MISSED"
	}
	p("%d held-out synthetic studies (%d normal, %d with lesions) and the real %s: **%s**.\n\n", rep.N, m.Normal, m.WithLesion, realCT, verdict)
	p("| metric | value | target | result |\n|---|---|---|---|\n")
	for _, t := range rep.Summary {
		res := "pass"
		if !t.Pass {
			res = "**FAIL**"
		}
		p("| %s | %s | %s | %s |\n", t.Metric, t.Text, t.Target, res)
	}

	p("\n## Study-level classification\n\n")
	p("A study's score for a code is `Result.Scores[code]`; for \"any bleed\" the largest of them. At the operating point a study (code) is positive when the result has a finding (of that code). AUC: Mann-Whitney, ties ½; 95%% CI: stratified bootstrap, %d resamples, seed %d.\n\n", bootstrapResamples, bootstrapSeed)
	p("| decision | truth positive / negative | AUC | 95%% CI | sensitivity | specificity | TP | FP | TN | FN |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, cl := range append([]Classification{m.Any}, m.PerCode...) {
		cf := cl.Confusion
		p("| %s | %d / %d | %s | %s–%s | %s | %s | %d | %d | %d | %d |\n", cl.Name, cf.TP+cf.FN, cf.TN+cf.FP,
			f3(cl.AUC), f3(cl.Lo), f3(cl.Hi), f3(cl.Sens), f3(cl.Spec), cf.TP, cf.FP, cf.TN, cf.FN)
	}

	p("\n## Segmentation and volume, true lesions over %g mL\n\n", minLesionML)
	p("Dice of the result's label mask of the lesion's code against the phantom's mask of the lesion, voxel for voxel on the series' grid; a missed lesion counts with Dice 0. Volume error: |finding volume − true volume| / true volume, for lesions whose code has a finding. %d lesion(s) of at most %g mL left out.\n\n", m.SmallLesions, minLesionML)
	p("| kind | lesions | Dice median | Dice mean | Dice 10th pct | detected | volume error median | volume error 90th pct |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range append(append([]Segmentation{}, m.Seg...), m.Overall) {
		p("| %s | %d | %s | %s | %s | %d | %s | %s |\n", s.Name, s.Lesions, f3(s.DiceMedian), f3(s.DiceMean), f3(s.P10), s.Detected, pct(s.VolErrMedian), pct(s.VolErrP90))
	}

	r := rep.Real
	p("\n## Real CT: %s\n\n", realCT)
	p("Tier **%s**, %d finding(s), %.0f ms.\n\n", r.Tier, len(r.Findings), r.TotalMS)
	p("| code | score | finding |\n|---|---|---|\n")
	codes := make([]string, 0, len(r.Scores))
	for code := range r.Scores {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		fd := "none"
		for _, f := range r.Findings {
			if f.Code == code {
				fd = fmt.Sprintf("%s, %.1f mL, %d lesion(s)", f.Tier, f.VolumeML, f.Lesions)
			}
		}
		p("| %s | %.3f | %s |\n", code, r.Scores[code], fd)
	}

	p("\n## Timing\n\n")
	p("| per study | median | 90th percentile |\n|---|---|---|\n")
	p("| triage (`Result.TimingsMS.Total`) | %.0f ms | %.0f ms |\n", m.TotalMS[0], m.TotalMS[1])
	p("| reading and assembling the series | %.0f ms | %.0f ms |\n", m.AssembleMS[0], m.AssembleMS[1])

	p("\n## Settings\n\n")
	p("- date: %s\n", rep.Date)
	p("- studies: %d, seeds %d–%d: seeds %d, %d, … normal, seeds %d, %d, … with one ICH, one SDH or both (2:1:1); held out: the models' training data is below\n",
		rep.N, rep.FirstSeed, rep.FirstSeed+uint64(rep.N)-1, rep.FirstSeed, rep.FirstSeed+2, rep.FirstSeed+1, rep.FirstSeed+3)
	sz, sp := phantom.DefaultSize, phantom.DefaultSpacing
	p("- phantoms: %d×%d×%d voxels of %g×%g×%g mm, noise %g HU (the phantom defaults), written as DICOM and read back (volume.LoadDir, Choose, Assemble)\n",
		sz[0], sz[1], sz[2], sp[0], sp[1], sp[2], float64(phantom.DefaultNoise))
	p("- models (%s), default test-time flips:\n", modelsFrom)
	for _, cd := range cards {
		tm := "n/a"
		if v, ok := cd.Metrics["train_minutes"]; ok {
			tm = fmt.Sprintf("%.1f", v)
		}
		p("  - %s@%s (%s), trained %s, %s min, sha256 %s: %s\n", cd.Name, cd.Version, cd.Kind, cd.Training.Date, tm, short(cd.Training.ONNXSHA256), cd.Training.Data)
	}
	p("- backend: %s, %d CPU(s), %s\n", rep.Backend, runtime.NumCPU(), goVersion)
	p("- command: `triageeval -n %d -seed %d -backend %s`\n", c.N, c.Seed, c.Backend)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "not recorded"
	}
	return s
}
