package triage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/models"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
	"github.com/radtriage/radtriage/worklist"
)

var (
	ensOnce sync.Once
	ens     *triage.Ensemble
	ensErr  error
)

// defaultEnsemble is the embedded ensemble, loaded once for the package's
// tests (compiling three models takes a moment).
func defaultEnsemble(t *testing.T) *triage.Ensemble {
	t.Helper()
	ensOnce.Do(func() {
		ens, ensErr = triage.LoadEnsembleFS(models.FS, ".", kernels.CPU(), triage.EnsembleOptions{})
	})
	if ensErr != nil {
		t.Fatal(ensErr)
	}
	return ens
}

// copyModels copies the embedded ensemble into a temp folder, for tests
// that break one of its files.
func copyModels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := fs.ReadDir(models.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := fs.ReadFile(models.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func editCard(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func setSHA(t *testing.T, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	editCard(t, filepath.Join(dir, name+".json"), func(m map[string]any) {
		m["training"].(map[string]any)["onnx_sha256"] = hex.EncodeToString(sum[:])
	})
}

// Every problem with a model folder is an error when it is loaded, naming
// the file.
func TestLoadEnsembleErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
		msg   string
	}{
		{"no cards", func(t *testing.T, dir string) {
			for _, n := range []string{"seg_unet_tc", "seg_unet_rs", "cls_cnn"} {
				os.Remove(filepath.Join(dir, n+".json"))
			}
		}, triage.ErrEnsemble, "no model cards"},
		{"missing model", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "seg_unet_rs.onnx"))
		}, fs.ErrNotExist, "seg_unet_rs.onnx"},
		{"hash mismatch", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "cls_cnn.onnx"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
		}, triage.ErrEnsemble, "SHA-256"},
		{"truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "seg_unet_tc.onnx")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			setSHA(t, dir, "seg_unet_tc")
		}, triage.ErrModel, "seg_unet_tc.onnx"},
		{"bad card", func(t *testing.T, dir string) {
			editCard(t, filepath.Join(dir, "cls_cnn.json"), func(m map[string]any) { m["kind"] = "detector" })
		}, triage.ErrCard, "cls_cnn.json"},
		{"input size the model cannot take", func(t *testing.T, dir string) {
			// The model was exported for 32 slices; a card asking for 33
			// is refused when the plan is compiled, not at the first
			// study.
			editCard(t, filepath.Join(dir, "seg_unet_tc.json"), func(m map[string]any) {
				m["input"].(map[string]any)["size"] = []int{33, 128, 128}
			})
		}, triage.ErrEnsemble, "seg_unet_tc"},
		{"channel beyond the output", func(t *testing.T, dir string) {
			editCard(t, filepath.Join(dir, "cls_cnn.json"), func(m map[string]any) {
				m["findings"].([]any)[1].(map[string]any)["channel"] = 5
			})
		}, triage.ErrModel, "channel 5"},
		{"tiers disagree", func(t *testing.T, dir string) {
			editCard(t, filepath.Join(dir, "cls_cnn.json"), func(m map[string]any) {
				m["findings"].([]any)[0].(map[string]any)["tier"] = "routine"
			})
		}, triage.ErrEnsemble, "tier"},
		{"segmentations on different grids", func(t *testing.T, dir string) {
			editCard(t, filepath.Join(dir, "seg_unet_rs.json"), func(m map[string]any) {
				m["input"].(map[string]any)["spacing_mm"] = []float64{5, 2, 2}
			})
		}, triage.ErrEnsemble, "another input grid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyModels(t)
			tc.setup(t, dir)
			e, err := triage.LoadEnsemble(dir, kernels.CPU(), triage.EnsembleOptions{})
			if err == nil {
				e.Close()
				t.Fatal("loaded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

// An operator the executor does not know is refused at load time, with
// the node named.
func TestLoadEnsembleUnknownOperator(t *testing.T) {
	dir := copyModels(t)
	model := triage.UnknownOpModel()
	if err := os.WriteFile(filepath.Join(dir, "cls_cnn.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	setSHA(t, dir, "cls_cnn")
	_, err := triage.LoadEnsemble(dir, kernels.CPU(), triage.EnsembleOptions{})
	if !errors.Is(err, triage.ErrUnsupported) || !strings.Contains(err.Error(), "Einsum") {
		t.Fatalf("error %v, want ErrUnsupported naming Einsum", err)
	}
}

func TestEnsembleDescribes(t *testing.T) {
	e := defaultEnsemble(t)
	if got := strings.Join(e.Codes(), ","); got != "ICH,SDH" {
		t.Errorf("codes %s", got)
	}
	if len(e.Models()) != 3 || !e.Demonstration() {
		t.Errorf("models %v, demonstration %v", e.Models(), e.Demonstration())
	}
}

// The default ensemble finds a large bleed where it is, with about its
// volume, and nothing in a normal head; the label mask lies on the
// series' grid, over the true lesion.
func TestEnsembleFindsBleed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ensemble")
	}
	e := defaultEnsemble(t)
	ctx := context.Background()

	normal, err := phantom.Generate(phantom.Spec{Seed: 4242})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Run(ctx, normal.HUVolume(), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 0 || r.Tier != triage.TierRoutine || r.Mask != nil {
		t.Errorf("normal head: findings %+v, tier %s", r.Findings, r.Tier)
	}
	for _, c := range e.Codes() {
		if s, ok := r.Scores[c]; !ok || s < 0 || s > 1 {
			t.Errorf("normal head: score of %s %v (present %v)", c, s, ok)
		}
	}

	p, err := phantom.Generate(phantom.Spec{Seed: 4243, Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 25}}})
	if err != nil {
		t.Fatal(err)
	}
	v := p.HUVolume()
	r, err = e.Run(ctx, v, "1.2.4")
	if err != nil {
		t.Fatal(err)
	}
	truth := p.Lesions[0]
	if r.StudyUID != "1.2.4" || r.Tier != triage.TierCritical || len(r.Findings) == 0 || r.Findings[0].Code != "ICH" {
		t.Fatalf("bleed: tier %s, findings %+v", r.Tier, r.Findings)
	}
	f := r.Findings[0]
	if f.VolumeML < truth.VolumeML*0.7 || f.VolumeML > truth.VolumeML*1.3 {
		t.Errorf("volume %.1f mL, truth %.1f", f.VolumeML, truth.VolumeML)
	}
	var dist float64
	for a := 0; a < 3; a++ {
		dist += (f.CentroidLPS[a] - truth.CentroidLPS[a]) * (f.CentroidLPS[a] - truth.CentroidLPS[a])
	}
	if math.Sqrt(dist) > 10 {
		t.Errorf("centroid %v, truth %v", *f.CentroidLPS, truth.CentroidLPS)
	}
	if *f.KeySlice < truth.BBoxMin[0] || *f.KeySlice > truth.BBoxMax[0] {
		t.Errorf("key slice %d outside the lesion's slices %d-%d", *f.KeySlice, truth.BBoxMin[0], truth.BBoxMax[0])
	}
	for a := 0; a < 3; a++ {
		if f.BBoxLPS[0][a] > truth.CentroidLPS[a] || f.BBoxLPS[1][a] < truth.CentroidLPS[a] {
			t.Errorf("box %v does not hold the true centroid %v", *f.BBoxLPS, truth.CentroidLPS)
		}
	}
	// The mask: the series' geometry, its ICH label over the truth.
	m := r.Mask
	if m == nil || m.Size != v.Size || m.Spacing != v.Spacing || m.Origin != v.Origin {
		t.Fatalf("mask %+v on a series of %v", m, v.Size)
	}
	ich := -1
	for i, c := range r.MaskCodes {
		if c == "ICH" {
			ich = i + 1
		}
	}
	var inter, pred, want int
	for i, l := range p.Labels {
		a, b := m.Stored[i] == int16(ich), l == phantom.LabelICH
		if a {
			pred++
		}
		if b {
			want++
		}
		if a && b {
			inter++
		}
	}
	if dice := 2 * float64(inter) / float64(pred+want); dice < 0.7 {
		t.Errorf("mask Dice %.3f against the true lesion", dice)
	}
	// The stored form round-trips the mask through NIfTI.
	s, err := r.Stored(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	back, err := volume.ReadNIfTI(strings.NewReader(string(s.Mask)))
	if err != nil {
		t.Fatal(err)
	}
	if back.Size != v.Size || back.Voxels() != len(p.Labels) {
		t.Fatalf("NIfTI mask of %v", back.Size)
	}
	var js triage.Result
	if err := json.Unmarshal(s.JSON, &js); err != nil || js.StudyUID != "1.2.4" || len(js.Findings) != len(r.Findings) {
		t.Fatalf("stored JSON %s: %v", s.JSON, err)
	}
	// The worklist sees a critical finding with its volume.
	wf := triage.WorklistFindings(r.Findings)
	if len(wf) != len(r.Findings) || wf[0].Tier != worklist.TierCritical || wf[0].VolumeML != f.VolumeML || wf[0].Model == "" {
		t.Errorf("worklist findings %+v", wf)
	}
}

// The label mask is built by the same rule whatever the flips: with no
// test-time augmentation the ensemble still runs, and the left-right
// flip changes the scores only a little on a symmetric-ish head.
func TestEnsembleFlips(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ensemble")
	}
	p, err := phantom.Generate(phantom.Spec{Seed: 77, Lesions: []phantom.LesionSpec{{Kind: phantom.KindSDH, VolumeML: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	none, err := triage.LoadEnsembleFS(models.FS, ".", kernels.CPU(), triage.EnsembleOptions{Flips: [][3]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	a, err := none.Run(context.Background(), p.HUVolume(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := defaultEnsemble(t).Run(context.Background(), p.HUVolume(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"ICH", "SDH"} {
		if d := math.Abs(a.Scores[c] - b.Scores[c]); d > 0.25 {
			t.Errorf("%s: score %.3f without flips, %.3f with", c, a.Scores[c], b.Scores[c])
		}
	}
	if len(b.Findings) == 0 || b.Findings[0].Code != "SDH" {
		t.Errorf("30 mL subdural: findings %+v", b.Findings)
	}
}

func TestUrgency(t *testing.T) {
	crit := triage.Finding{Code: "ICH", Tier: triage.TierCritical}
	urg := triage.Finding{Code: "X", Tier: triage.TierUrgent}
	cases := []struct {
		prio string
		fs   []triage.Finding
		want worklist.Tier
	}{
		{"", nil, worklist.TierRoutine},
		{"ROUTINE", []triage.Finding{urg}, worklist.TierUrgent},
		{"STAT", nil, worklist.TierCritical},
		{"HIGH", nil, worklist.TierUrgent},
		{"HIGH", []triage.Finding{crit}, worklist.TierCritical},
		{"STAT", []triage.Finding{urg}, worklist.TierCritical}, // findings never lower
		{"LOW", []triage.Finding{urg, crit}, worklist.TierCritical},
	}
	for _, c := range cases {
		if got := triage.Urgency(c.prio, c.fs); got != c.want {
			t.Errorf("Urgency(%q, %d findings) = %s, want %s", c.prio, len(c.fs), got, c.want)
		}
	}
}
