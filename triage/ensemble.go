package triage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/volume"
	"github.com/radtriage/radtriage/worklist"
)

// ErrEnsemble: a model folder that does not make a usable ensemble (no
// cards, a card whose model is missing or does not match it, models that
// disagree about a finding). Wrapped with the file and the reason; it is
// always returned by LoadEnsemble, never by Run.
var ErrEnsemble = errors.New("triage: invalid model ensemble")

// EnsembleOptions tune LoadEnsemble. The zero value is the normal setting.
type EnsembleOptions struct {
	// Flips are the test-time augmentations of the segmentation models:
	// each entry is a set of axes (D, H, W) to flip the input on; the
	// model's probabilities for the flipped input are flipped back and
	// averaged with those of the input as it is. nil means DefaultFlips;
	// an empty, non-nil slice means none.
	Flips [][3]bool
	// Limits bound the ONNX files; the zero value means DefaultLimits.
	Limits Limits
	// Profile makes each model's plan time its steps (Result.Profile).
	Profile bool
}

// DefaultFlips is the default test-time augmentation: the left-right
// mirror image (the W axis of an axial head CT), which a head's
// near-symmetry makes a second, independent look at the same anatomy.
var DefaultFlips = [][3]bool{{false, false, true}}

// member is one model of the ensemble.
type member struct {
	card    *ModelCard
	plan    *Plan
	input   string // the graph input's name
	output  string // the graph output's name
	outC    int    // output channels
	spatial int    // output voxels per channel (segmentation)
}

// codeInfo is one finding code the ensemble knows.
type codeInfo struct {
	code, label, tier string
	seg, cls          []int // members covering it
}

// Ensemble is a loaded set of models (segmentation and classification)
// with the rule that combines them into findings. It is safe for
// concurrent use; Run calls are serialised, since plans and backends are
// used by one goroutine at a time.
type Ensemble struct {
	mu      sync.Mutex
	b       kernels.Backend
	members []*member
	codes   []codeInfo
	specs   []InputSpec // distinct input specs; members' spec index in specOf
	specOf  []int
	flips   [][3]bool
	profile bool
	closed  bool
}

// LoadEnsemble reads every model card (*.json) in dir, reads and checks
// each card's ONNX file (its SHA-256 when the card records it), and
// compiles it on b for a batch of one at the card's input size. Every
// problem, from a truncated file or an unknown operator to an output of
// the wrong shape for the card, is an error here, so that a server
// refuses to start rather than fail a study later.
func LoadEnsemble(dir string, b kernels.Backend, opt EnsembleOptions) (*Ensemble, error) {
	return LoadEnsembleFS(os.DirFS(dir), ".", b, opt)
}

// LoadEnsembleFS is LoadEnsemble on a file system (such as the models
// embedded in the binary).
func LoadEnsembleFS(fsys fs.FS, dir string, b kernels.Backend, opt EnsembleOptions) (e *Ensemble, err error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEnsemble, dir, err)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s holds no model cards (*.json)", ErrEnsemble, dir)
	}
	lim := opt.Limits
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	e = &Ensemble{b: b, flips: opt.Flips, profile: opt.Profile}
	if e.flips == nil {
		e.flips = DefaultFlips
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	byCode := map[string]int{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEnsemble, err)
		}
		card, err := ParseCard(data)
		if err != nil {
			return nil, fmt.Errorf("%w: card %s: %w", ErrEnsemble, name, err)
		}
		m, err := e.load(fsys, path.Join(path.Dir(name), card.File), card, lim)
		if err != nil {
			return nil, fmt.Errorf("%w: model %s (card %s): %w", ErrEnsemble, card.File, name, err)
		}
		idx := len(e.members)
		e.members = append(e.members, m)
		spec := -1
		for i, s := range e.specs {
			if reflect.DeepEqual(s, card.Input) {
				spec = i
			}
		}
		if spec < 0 {
			spec = len(e.specs)
			e.specs = append(e.specs, card.Input)
		}
		e.specOf = append(e.specOf, spec)
		for _, f := range card.Findings {
			ci, ok := byCode[f.Code]
			if !ok {
				ci = len(e.codes)
				byCode[f.Code] = ci
				e.codes = append(e.codes, codeInfo{code: f.Code, label: f.Name, tier: f.Tier})
			}
			c := &e.codes[ci]
			if c.tier != f.Tier {
				return nil, fmt.Errorf("%w: card %s gives finding %s tier %s, another card %s", ErrEnsemble, name, f.Code, f.Tier, c.tier)
			}
			if card.Kind == KindSegmentation {
				// Probability maps are averaged voxel by voxel, so every
				// segmentation model of a code must see the same grid.
				for _, o := range c.seg {
					if e.specOf[o] != spec {
						return nil, fmt.Errorf("%w: card %s segments %s on another input grid than %s", ErrEnsemble, name, f.Code, e.members[o].card.Name)
					}
				}
				c.seg = append(c.seg, idx)
			} else {
				c.cls = append(c.cls, idx)
			}
		}
	}
	return e, nil
}

// load reads, checks and compiles one card's model.
func (e *Ensemble) load(fsys fs.FS, file string, card *ModelCard, lim Limits) (*member, error) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err
	}
	if want := card.Training.ONNXSHA256; want != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
			return nil, fmt.Errorf("SHA-256 %s, the card says %s (a model file that is not the one trained)", got, want)
		}
	}
	m, err := ReadModel(data, lim)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	if len(g.Inputs) != 1 || len(g.Outputs) != 1 {
		return nil, fmt.Errorf("%w: %d inputs and %d outputs (an ensemble model takes one image and gives one output)", ErrModel, len(g.Inputs), len(g.Outputs))
	}
	in := card.Input
	shape := []int{1, in.Channels, in.Size[0], in.Size[1], in.Size[2]}
	plan, err := Compile(m, e.b, map[string][]int{g.Inputs[0].Name: shape}, CompileOptions{Profile: e.profile})
	if err != nil {
		return nil, err
	}
	mem := &member{card: card, plan: plan, input: g.Inputs[0].Name, output: g.Outputs[0].Name}
	out := plan.OutputShapes()[mem.output]
	maxCh := 0
	for _, f := range card.Findings {
		maxCh = max(maxCh, f.Channel)
	}
	switch card.Kind {
	case KindSegmentation:
		if len(out) != 5 || out[0] != 1 || out[2] != in.Size[0] || out[3] != in.Size[1] || out[4] != in.Size[2] {
			plan.Close()
			return nil, fmt.Errorf("%w: output shape %v; a segmentation card of input size %v wants [1 C %d %d %d]", ErrModel, out, in.Size, in.Size[0], in.Size[1], in.Size[2])
		}
		mem.spatial = out[2] * out[3] * out[4]
	default:
		if len(out) != 2 || out[0] != 1 {
			plan.Close()
			return nil, fmt.Errorf("%w: output shape %v; a classifier wants [1 C]", ErrModel, out)
		}
	}
	mem.outC = out[1]
	if maxCh >= mem.outC {
		plan.Close()
		return nil, fmt.Errorf("%w: the card names channel %d, the model gives %d channels", ErrModel, maxCh, mem.outC)
	}
	if card.Output.Activation == "softmax" && mem.outC < 2 {
		plan.Close()
		return nil, fmt.Errorf("%w: softmax over %d channel", ErrModel, mem.outC)
	}
	return mem, nil
}

// Close releases the compiled models. Closing twice is a no-op.
func (e *Ensemble) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var first error
	for _, m := range e.members {
		if err := m.plan.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Codes returns the finding codes the ensemble knows, in card order.
func (e *Ensemble) Codes() []string {
	out := make([]string, len(e.codes))
	for i, c := range e.codes {
		out[i] = c.code
	}
	return out
}

// Models returns "name@version" of every model, in card order.
func (e *Ensemble) Models() []string {
	out := make([]string, len(e.members))
	for i, m := range e.members {
		out[i] = m.card.ID()
	}
	return out
}

// Demonstration reports whether any model's card says it is a
// demonstration model (trained on synthetic data, not for clinical use).
func (e *Ensemble) Demonstration() bool {
	for _, m := range e.members {
		if m.card.Demonstration {
			return true
		}
	}
	return false
}

// Backend is the backend the ensemble runs on.
func (e *Ensemble) Backend() kernels.Backend { return e.b }

// Result is the triage of one series: "radtriage triage --json" prints it,
// one line per study.
type Result struct {
	StudyUID  string `json:"study_uid"`
	SeriesUID string `json:"series_uid"`
	// Scores holds every finding code the ensemble knows with its
	// combined score (CombineFinding), also when below threshold.
	Scores map[string]float64 `json:"scores"`
	// Findings are the positive findings, most urgent tier first, then
	// most probable.
	Findings []Finding `json:"findings"`
	// Evidence holds, for every code, what each kind of model said and
	// why the code is or is not a finding.
	Evidence map[string]CodeEvidence `json:"evidence"`
	// Tier is the most urgent tier of the findings; routine with none.
	// The order's own priority is not part of it (see Urgency).
	Tier      string  `json:"tier"`
	TimingsMS Timings `json:"timings_ms"`
	// Models are the ensemble's models ("name@version").
	Models []string `json:"models"`
	// Demonstration: at least one model is a demonstration model.
	Demonstration bool `json:"demonstration"`
	// Mask is the label map of the positive findings on the series' own
	// grid (the assembled volume's geometry): 0 background, i+1 for
	// MaskCodes[i] (Stored, int16, slope 1); nil when no positive finding
	// has a segmentation.
	Mask *volume.Volume `json:"-"`
	// MaskCodes name the Mask's labels 1, 2, …
	MaskCodes []string `json:"mask_labels,omitempty"`
	// Profile holds per-step times of each model's last run, by model,
	// when the ensemble was loaded with Profile.
	Profile map[string][]NodeTiming `json:"-"`
}

// CodeEvidence is the ensemble's evidence on one finding code.
type CodeEvidence struct {
	// Segmentation is the peak of the averaged probability map (absent
	// when no segmentation model covers the code), Lesions the number of
	// kept lesions in it.
	Segmentation *float64 `json:"segmentation,omitempty"`
	Lesions      int      `json:"lesions"`
	// Classifier is the mean classifier probability (absent without
	// one).
	Classifier *float64 `json:"classifier,omitempty"`
	Positive   bool     `json:"positive"`
	// Explanation is CombineFinding's sentence.
	Explanation string `json:"explanation"`
}

// Timings break a study's triage down, in milliseconds. Assemble is the
// caller's (reading and assembling the series), 0 when it did not say.
type Timings struct {
	Assemble    float64            `json:"assemble"`
	Upload      float64            `json:"upload"`
	Denoise     float64            `json:"denoise"`
	Resample    float64            `json:"resample"`
	Window      float64            `json:"window"`
	Models      map[string]float64 `json:"models"` // by model name, all test-time flips included
	Postprocess float64            `json:"postprocess"`
	Total       float64            `json:"total"`
}

// Run triages one volume: preprocessing per distinct input spec, every
// model (segmentation models on the input and its flips), the
// combination per finding code (CombineFinding), and the label mask on
// the volume's grid. studyUID (the volume does not carry it) and the
// volume's series UID are copied to the result.
func (e *Ensemble) Run(ctx context.Context, v *volume.Volume, studyUID string) (*Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("%w: closed", ErrEnsemble)
	}
	start := time.Now()
	r := &Result{
		StudyUID: studyUID, SeriesUID: v.SeriesInstanceUID,
		Scores: map[string]float64{}, Evidence: map[string]CodeEvidence{}, Findings: []Finding{}, Tier: TierRoutine,
		Models: e.Models(), Demonstration: e.Demonstration(),
		TimingsMS: Timings{Models: map[string]float64{}},
	}
	if e.profile {
		r.Profile = map[string][]NodeTiming{}
	}
	// Preprocess once per input spec.
	preps := make([]*Prepared, len(e.specs))
	defer func() {
		for _, p := range preps {
			if p != nil {
				p.Release()
			}
		}
	}()
	for i, spec := range e.specs {
		p, err := Preprocess(ctx, e.b, v, spec)
		if err != nil {
			return nil, err
		}
		p.Release() // the models take the host tensor
		preps[i] = p
		t := &r.TimingsMS
		t.Upload += p.Timings.Upload
		t.Denoise += p.Timings.Denoise
		t.Resample += p.Timings.Resample
		t.Window += p.Timings.Window + p.Timings.Download
	}
	// Every model's probabilities: per member, channel-major maps
	// (segmentation) or one value per channel (classifier).
	probs := make([][]float32, len(e.members))
	for i, m := range e.members {
		t := time.Now()
		p, err := e.runMember(ctx, m, preps[e.specOf[i]])
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.card.Name, err)
		}
		probs[i] = p
		r.TimingsMS.Models[m.card.Name] = ms(time.Since(t))
		if e.profile {
			r.Profile[m.card.Name] = m.plan.Profile()
		}
	}
	// Combine per code.
	t := time.Now()
	type maskOf struct {
		code string
		prob []float32
		mask []uint8
		spec int
	}
	var masks []maskOf
	for _, c := range e.codes {
		ev := Evidence{Code: c.code, Label: c.label, Tier: c.tier}
		for _, i := range slices.Concat(c.seg, c.cls) {
			ev.ModelVersions = append(ev.ModelVersions, e.members[i].card.ID())
		}
		var segProb []float32
		var segMask []uint8
		var spec int
		if len(c.seg) > 0 {
			ev.HasSeg = true
			spec = e.specOf[c.seg[0]]
			// The mean map over the segmentation models; threshold and
			// minimum volume the mean of theirs.
			var thr, minML float64
			for _, i := range c.seg {
				m := e.members[i]
				f := m.card.finding(c.code)
				ch := probs[i][f.Channel*m.spatial : (f.Channel+1)*m.spatial]
				if segProb == nil {
					segProb = make([]float32, m.spatial)
				}
				for j, x := range ch {
					segProb[j] += x
				}
				thr += f.Threshold
				minML += f.MinVolumeML
			}
			inv := 1 / float32(len(c.seg))
			mx := float32(0)
			for j := range segProb {
				segProb[j] *= inv
				mx = max(mx, segProb[j])
			}
			n := float64(len(c.seg))
			p := preps[spec]
			mask, lesions, err := MaskOf(segProb, p.Geometry.Size, p.Geometry, PostSpec{Threshold: thr / n, Connectivity: Conn26, MinVolumeML: minML / n})
			if err != nil {
				return nil, fmt.Errorf("finding %s: %w", c.code, err)
			}
			ev.SegScore, ev.Lesions, ev.SegThreshold = float64(mx), lesions, thr/n
			segMask = mask
		}
		if len(c.cls) > 0 {
			ev.HasCls = true
			var s, thr float64
			for _, i := range c.cls {
				f := e.members[i].card.finding(c.code)
				s += float64(probs[i][f.Channel])
				thr += f.Threshold
			}
			ev.ClsScore, ev.ClsThreshold = s/float64(len(c.cls)), thr/float64(len(c.cls))
		}
		f, positive, err := CombineFinding(ev)
		if err != nil {
			return nil, err
		}
		r.Scores[c.code] = f.Probability
		ce := CodeEvidence{Lesions: len(ev.Lesions), Positive: positive, Explanation: f.Explanation}
		if ev.HasSeg {
			ce.Segmentation = &ev.SegScore
		}
		if ev.HasCls {
			ce.Classifier = &ev.ClsScore
		}
		r.Evidence[c.code] = ce
		if f.KeySlice != nil && len(c.seg) > 0 {
			// The key slice on the series' own grid (its k index).
			p := preps[spec]
			k := int(math.Round(p.ToSource([3]float64{float64(*f.KeySlice), 0, 0})[0]))
			k = min(max(k, 0), p.Source.Size[0]-1)
			f.KeySlice = &k
		}
		if positive {
			r.Findings = append(r.Findings, f)
			if len(ev.Lesions) > 0 {
				masks = append(masks, maskOf{code: c.code, prob: segProb, mask: segMask, spec: spec})
			}
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := worklist.Tier(r.Findings[i].Tier), worklist.Tier(r.Findings[j].Tier)
		if a != b {
			return worklist.MoreUrgent(a, b) == a
		}
		return r.Findings[i].Probability > r.Findings[j].Probability
	})
	if len(r.Findings) > 0 {
		r.Tier = r.Findings[0].Tier
	}
	if len(masks) > 0 {
		// One label map per input grid (i+1 for MaskCodes[i]): where
		// lesions of two codes overlap, the more probable code wins.
		labels := make([][]float32, len(preps))
		best := make([][]float32, len(preps))
		for k, m := range masks {
			if labels[m.spec] == nil {
				n := preps[m.spec].Geometry.Voxels()
				labels[m.spec], best[m.spec] = make([]float32, n), make([]float32, n)
			}
			lab, top := labels[m.spec], best[m.spec]
			for j, on := range m.mask {
				if on != 0 && m.prob[j] > top[j] {
					lab[j], top[j] = float32(k+1), m.prob[j]
				}
			}
			r.MaskCodes = append(r.MaskCodes, m.code)
		}
		mv, err := e.sourceMask(preps, labels)
		if err != nil {
			return nil, err
		}
		r.Mask = mv
	}
	r.TimingsMS.Postprocess = ms(time.Since(t))
	r.TimingsMS.Total = ms(time.Since(start))
	return r, nil
}

// sourceMask resamples the label maps (one per input grid, nil where a
// grid has none) back onto the series' grid, nearest neighbour, and
// merges them (the first grid's label wins where two overlap).
func (e *Ensemble) sourceMask(preps []*Prepared, labels [][]float32) (*volume.Volume, error) {
	var out []int16
	var src kernels.Geometry
	for spec, lab := range labels {
		if lab == nil {
			continue
		}
		p := preps[spec]
		src = p.Source
		nSrc := src.Voxels()
		in, err := e.b.Alloc(kernels.Float32, len(lab))
		if err != nil {
			return nil, err
		}
		res, err := e.b.Alloc(kernels.Float32, nSrc)
		if err != nil {
			e.b.Free(in)
			return nil, err
		}
		back := make([]float32, nSrc)
		err = e.b.Upload(in, lab)
		if err == nil {
			err = e.b.Resample(res, in, src.Size, p.Geometry.Size, p.BackMap(), kernels.Nearest, 0)
		}
		if err == nil {
			err = e.b.Download(back, res)
		}
		e.b.Free(in)
		e.b.Free(res)
		if err != nil {
			return nil, fmt.Errorf("mask back to the series grid: %w", err)
		}
		if out == nil {
			out = make([]int16, nSrc)
		}
		for i, x := range back {
			if x != 0 && out[i] == 0 {
				out[i] = int16(x)
			}
		}
	}
	size, spacing, origin, axes := src.VolumeFields()
	return &volume.Volume{Size: size, Spacing: spacing, Origin: origin, Axes: axes, Stored: out, Slope: 1, Modality: "SEG"}, nil
}

// runMember runs one model on a prepared input and returns its
// probabilities: for a segmentation model the channel-major maps,
// averaged over the input and its test-time flips; for a classifier one
// value per channel.
func (e *Ensemble) runMember(ctx context.Context, m *member, p *Prepared) ([]float32, error) {
	in := m.card.Input
	run := func(x []float32) ([]float32, error) {
		out, err := m.plan.Run(ctx, map[string][]float32{m.input: x})
		if err != nil {
			return nil, err
		}
		y := out[m.output]
		activate(y, m.outC, max(m.spatial, 1), m.card.Output.Activation)
		return y, nil
	}
	if m.card.Kind != KindSegmentation {
		return run(p.Tensor)
	}
	sum, err := run(p.Tensor)
	if err != nil {
		return nil, err
	}
	flipped := make([]float32, len(p.Tensor))
	back := make([]float32, len(sum))
	n := 1 // runs averaged
	for _, axes := range e.flips {
		if axes == ([3]bool{}) {
			continue
		}
		flipHost(flipped, p.Tensor, in.Channels, in.Size, axes)
		y, err := run(flipped)
		if err != nil {
			return nil, err
		}
		flipHost(back, y, m.outC, in.Size, axes)
		for i, x := range back {
			sum[i] += x
		}
		n++
	}
	inv := 1 / float32(n)
	for i := range sum {
		sum[i] *= inv
	}
	return sum, nil
}

// flipHost flips c channels of a (D, H, W) grid along the chosen axes.
func flipHost(dst, src []float32, c int, size [3]int, axes [3]bool) {
	D, H, W := size[0], size[1], size[2]
	for ch := 0; ch < c; ch++ {
		base := ch * D * H * W
		for d := 0; d < D; d++ {
			sd := d
			if axes[0] {
				sd = D - 1 - d
			}
			for h := 0; h < H; h++ {
				sh := h
				if axes[1] {
					sh = H - 1 - h
				}
				drow := dst[base+(d*H+h)*W : base+(d*H+h+1)*W]
				srow := src[base+(sd*H+sh)*W : base+(sd*H+sh+1)*W]
				if axes[2] {
					for w := range drow {
						drow[w] = srow[W-1-w]
					}
				} else {
					copy(drow, srow)
				}
			}
		}
	}
}

// activate applies a card's output activation in place to c channels of
// spatial values each (channel-major).
func activate(y []float32, c, spatial int, act string) {
	switch act {
	case "sigmoid":
		for i, x := range y {
			y[i] = float32(1 / (1 + math.Exp(-float64(x))))
		}
	case "softmax":
		for s := 0; s < spatial; s++ {
			mx := float32(math.Inf(-1))
			for k := 0; k < c; k++ {
				mx = max(mx, y[k*spatial+s])
			}
			var sum float64
			for k := 0; k < c; k++ {
				ex := math.Exp(float64(y[k*spatial+s] - mx))
				y[k*spatial+s] = float32(ex)
				sum += ex
			}
			inv := float32(1 / sum)
			for k := 0; k < c; k++ {
				y[k*spatial+s] *= inv
			}
		}
	}
}

// ID names the model as results do: "name@version".
func (c *ModelCard) ID() string { return c.Name + "@" + c.Version }

// finding returns the card's entry for a code (present: the ensemble was
// built from the cards).
func (c *ModelCard) finding(code string) CardFinding {
	for _, f := range c.Findings {
		if f.Code == code {
			return f
		}
	}
	return CardFinding{}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
