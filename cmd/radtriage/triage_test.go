package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/models"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
)

// triagePhantom writes a phantom study on the default grid (32×256×256 at
// 5×0.9×0.9 mm, the grid the built-in models were trained on) into dir.
func triagePhantom(t *testing.T, dir string, seed uint64, lesions ...phantom.LesionSpec) *phantom.Phantom {
	t.Helper()
	p, err := phantom.Generate(phantom.Spec{
		Seed: seed, Lesions: lesions, // the default grid, the one the models were trained on
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// builtinEnsemble loads the embedded ensemble on the CPU for the test.
func builtinEnsemble(t *testing.T) *triage.Ensemble {
	t.Helper()
	e, err := loadTriageEnsemble(&triageConfig{}, kernels.CPU())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// readResults parses "triage --json" output: one Result per line.
func readResults(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs
}

// decodeResult is one --json line as a triage.Result.
func decodeResult(t *testing.T, r map[string]any) *triage.Result {
	t.Helper()
	b, _ := json.Marshal(r)
	var res triage.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func dist(a, b [3]float64) float64 {
	return math.Sqrt((a[0]-b[0])*(a[0]-b[0]) + (a[1]-b[1])*(a[1]-b[1]) + (a[2]-b[2])*(a[2]-b[2]))
}

// "radtriage triage" of a folder of two phantom studies, a normal one and
// one with a 30 mL bleed, with the built-in models.
func TestTriageCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ensemble (minutes under the race detector)")
	}
	ens := builtinEnsemble(t)
	root := t.TempDir()
	normal := triagePhantom(t, filepath.Join(root, "normal"), 31)
	bleed := triagePhantom(t, filepath.Join(root, "bleed"), 32, phantom.LesionSpec{Kind: phantom.KindICH, VolumeML: 30})
	normalUID, _, _, _ := normal.UIDs()
	bleedUID, bleedSeries, _, _ := bleed.UIDs()
	if len(bleed.Lesions) != 1 || bleed.Lesions[0].Kind != phantom.KindICH {
		t.Fatalf("phantom lesions %+v", bleed.Lesions)
	}
	truth := bleed.Lesions[0]
	run := func(t *testing.T, c *triageConfig) (string, string, error) {
		t.Helper()
		env, stdout, stderr := testEnv(nil)
		err := triageDir(t.Context(), c, ens, env.stdout, env.stderr)
		return stdout.String(), stderr.String(), err
	}

	t.Run("json", func(t *testing.T) {
		out, errOut, err := run(t, &triageConfig{Dir: root, JSON: true})
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		rs := readResults(t, out)
		if len(rs) != 2 {
			t.Fatalf("%d lines of JSON, want 2:\n%s", len(rs), out)
		}
		byStudy := map[string]*triage.Result{}
		for _, raw := range rs {
			for _, k := range []string{"study_uid", "series_uid", "scores", "findings", "tier", "timings_ms", "models", "demonstration"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("no field %q in %v", k, raw)
				}
			}
			r := decodeResult(t, raw)
			byStudy[r.StudyUID] = r
			for _, code := range ens.Codes() {
				if s, ok := r.Scores[code]; !ok || s < 0 || s > 1 {
					t.Errorf("study %s: score of %s %v (present %v)", r.StudyUID, code, s, ok)
				}
			}
			if r.SeriesUID == "" || len(r.Models) == 0 || !slices.Equal(r.Models, ens.Models()) {
				t.Errorf("study %s: series %q models %v", r.StudyUID, r.SeriesUID, r.Models)
			}
			tm := r.TimingsMS
			if !(tm.Total > 0) || !(tm.Assemble > 0) || tm.Total < tm.Assemble || len(tm.Models) != len(r.Models) {
				t.Errorf("study %s: timings %+v", r.StudyUID, tm)
			}
			if !slices.Contains([]string{triage.TierCritical, triage.TierUrgent, triage.TierRoutine}, r.Tier) {
				t.Errorf("study %s: tier %q", r.StudyUID, r.Tier)
			}
		}
		if _, ok := byStudy[normalUID]; !ok {
			t.Fatalf("no line for the normal study %s: %v", normalUID, rs)
		}
		b, ok := byStudy[bleedUID]
		if !ok {
			t.Fatalf("no line for the bleed study %s: %v", bleedUID, rs)
		}
		if rs[0]["study_uid"].(string) > rs[1]["study_uid"].(string) {
			t.Errorf("studies not in UID order")
		}
		if b.SeriesUID != bleedSeries {
			t.Errorf("bleed series %s, want %s", b.SeriesUID, bleedSeries)
		}
		if !strings.Contains(errOut, "study "+bleedUID+": chose series "+bleedSeries) {
			t.Errorf("stderr does not give the choice:\n%s", errOut)
		}
		// What the trained models must see (see the report when they
		// are still the untrained placeholders).
		if n := byStudy[normalUID]; len(n.Findings) != 0 || n.Tier != triage.TierRoutine {
			t.Errorf("normal study: findings %+v, tier %s; scores %v", n.Findings, n.Tier, n.Scores)
		}
		var ich *triage.Finding
		for i := range b.Findings {
			if b.Findings[i].Code == "ICH" {
				ich = &b.Findings[i]
			}
		}
		if ich == nil {
			t.Fatalf("bleed study: no ICH finding: %+v, scores %v", b.Findings, b.Scores)
		}
		if b.Tier != triage.TierCritical {
			t.Errorf("bleed study: tier %s", b.Tier)
		}
		if ich.VolumeML < truth.VolumeML/2 || ich.VolumeML > truth.VolumeML*2 {
			t.Errorf("ICH volume %.1f mL, truth %.1f mL", ich.VolumeML, truth.VolumeML)
		}
		if ich.CentroidLPS == nil || dist(*ich.CentroidLPS, truth.CentroidLPS) > 20 {
			t.Errorf("ICH centroid %v, truth %v", ich.CentroidLPS, truth.CentroidLPS)
		}
	})

	t.Run("summary", func(t *testing.T) {
		out, errOut, err := run(t, &triageConfig{Dir: root})
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		for _, want := range []string{"study " + normalUID + "\n", "study " + bleedUID + "\n", "series " + bleedSeries, "scores: ICH ", " ms ("} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in the summary:\n%s", want, out)
			}
		}
		if ens.Demonstration() && strings.Count(out, "demonstration models") != 2 {
			t.Errorf("no demonstration note per study:\n%s", out)
		}
		// The normal study's summary, up to the next study.
		part := out[strings.Index(out, "study "+normalUID):]
		if j := strings.Index(part[1:], "\nstudy "); j >= 0 {
			part = part[:j+1]
		}
		// (Whether the normal study has a finding is the json subtest's
		// business; the summary says no finding exactly when routine.)
		if strings.Contains(part, "no finding") != strings.Contains(part, "tier routine") {
			t.Errorf("the normal study's summary:\n%s", part)
		}
	})

	t.Run("mask", func(t *testing.T) {
		// The bleed study alone: --mask is a file.
		name := filepath.Join(t.TempDir(), "ich.nii.gz")
		out, errOut, err := run(t, &triageConfig{Dir: filepath.Join(root, "bleed"), JSON: true, Mask: name})
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		if len(readResults(t, out)) != 1 {
			t.Fatalf("stdout:\n%s", out)
		}
		m, err := volume.ReadNIfTIFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// The series as "radtriage volume" writes it: the same grid.
		col, err := volume.LoadDir(os.DirFS(filepath.Join(root, "bleed")), volume.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := volume.Choose(col)
		if err != nil {
			t.Fatal(err)
		}
		v, err := st.Assemble(volume.AssembleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		volName := filepath.Join(t.TempDir(), "vol.nii")
		if err := volume.WriteNIfTIFile(volName, v, volume.NIfTIOptions{}); err != nil {
			t.Fatal(err)
		}
		a, err := volume.ReadNIfTIFile(volName)
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != a.Size || m.Size != [4]int{256, 256, 32, 1} {
			t.Fatalf("mask size %v, series %v", m.Size, a.Size)
		}
		for r := range 3 {
			if math.Abs(m.Spacing[r]-a.Spacing[r]) > 1e-4 || math.Abs(m.Origin[r]-a.Origin[r]) > 1e-3 {
				t.Fatalf("mask spacing %v origin %v, series %v %v", m.Spacing, m.Origin, a.Spacing, a.Origin)
			}
		}
		fa, fm := a.Affine(), m.Affine()
		for r := range 4 {
			for c := range 4 {
				if math.Abs(fa[r][c]-fm[r][c]) > 1e-3 {
					t.Fatalf("affines differ:\n%v\n%v", fa, fm)
				}
			}
		}
		// Dice of the mask's non-zero voxels with the phantom's ICH,
		// voxel by voxel through their LPS positions.
		mv := m.Values()
		var inter, nm, nt int
		for _, l := range bleed.Labels {
			if l == phantom.LabelICH {
				nt++
			}
		}
		for k := range m.Size[2] {
			for j := range m.Size[1] {
				for i := range m.Size[0] {
					if mv[i+m.Size[0]*(j+m.Size[1]*k)] == 0 {
						continue
					}
					nm++
					var pos [3]float64
					for r := range 3 {
						pos[r] = m.Origin[r] + float64(i)*m.Spacing[0]*m.Axes[0][r] + float64(j)*m.Spacing[1]*m.Axes[1][r] + float64(k)*m.Spacing[2]*m.Axes[2][r]
					}
					w := int(math.Round((pos[0] - bleed.Origin[0]) / bleed.Spacing[2]))
					h := int(math.Round((pos[1] - bleed.Origin[1]) / bleed.Spacing[1]))
					d := int(math.Round((pos[2] - bleed.Origin[2]) / bleed.Spacing[0]))
					if bleed.Labels[(d*bleed.Size[1]+h)*bleed.Size[2]+w] == phantom.LabelICH {
						inter++
					}
				}
			}
		}
		dice := 2 * float64(inter) / float64(nm+nt)
		t.Logf("mask: %d voxels, truth %d, Dice %.3f", nm, nt, dice)
		if dice <= 0.5 {
			t.Errorf("Dice of the mask with the phantom's ICH %.3f (%d mask voxels, %d true, %d shared)", dice, nm, nt, inter)
		}
	})

	t.Run("mask-dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "masks") + "/" // created
		c, err := parseTriage(&environ{lookupEnv: func(string) (string, bool) { return "", false }}, []string{root, "--mask", dir, "--json"})
		if err != nil {
			t.Fatal(err)
		}
		out, errOut, err := run(t, c)
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		rs := readResults(t, out)
		if len(rs) != 2 {
			t.Fatalf("stdout:\n%s", out)
		}
		for _, raw := range rs {
			r := decodeResult(t, raw)
			m, err := volume.ReadNIfTIFile(filepath.Join(dir, r.StudyUID+".nii.gz"))
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != [4]int{256, 256, 32, 1} {
				t.Errorf("%s: size %v", r.StudyUID, m.Size)
			}
			// Labels 1..len(mask_labels); none at all (and stderr says
			// so) exactly when no finding was segmented.
			nonzero := 0
			for _, x := range m.Values() {
				if x != 0 {
					nonzero++
				}
				if x < 0 || int(x) > len(r.MaskCodes) || x != float32(int(x)) {
					t.Fatalf("%s: label %v, mask labels %v", r.StudyUID, x, r.MaskCodes)
				}
			}
			zeroNote := strings.Contains(errOut, "study "+r.StudyUID+": no positive segmented finding: wrote an all-zero mask")
			if (len(r.MaskCodes) == 0) != (nonzero == 0) || zeroNote != (nonzero == 0) {
				t.Errorf("%s: mask labels %v, %d labelled voxels, all-zero note %v", r.StudyUID, r.MaskCodes, nonzero, zeroNote)
			}
			if len(r.Findings) == 0 && nonzero != 0 {
				t.Errorf("%s: no finding but %d labelled voxels", r.StudyUID, nonzero)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("%d files in the mask folder", len(entries))
		}
	})

	t.Run("mask-file-two-studies", func(t *testing.T) {
		name := filepath.Join(t.TempDir(), "m.nii.gz")
		out, _, err := run(t, &triageConfig{Dir: root, Mask: name})
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "2 studies") {
			t.Fatalf("err %v (exit %d)", err, exitCode(err))
		}
		if out != "" {
			t.Errorf("stdout %q", out)
		}
		if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the mask was written: %v", err)
		}
	})

	t.Run("failed-study", func(t *testing.T) {
		// A study of three slices (too few for triage) beside the normal
		// one: the normal one is triaged, the command fails at the end.
		dir := t.TempDir()
		triagePhantom(t, filepath.Join(dir, "normal"), 31)
		short, err := phantom.Generate(phantom.Spec{Seed: 33, Size: [3]int{3, 32, 32}})
		if err != nil {
			t.Fatal(err)
		}
		if err := phantom.WriteSeries(filepath.Join(dir, "short"), short, phantom.SeriesMeta{}); err != nil {
			t.Fatal(err)
		}
		shortUID, _, _, _ := short.UIDs()
		out, errOut, err := run(t, &triageConfig{Dir: dir, JSON: true})
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 of 2 studies failed") {
			t.Fatalf("err %v", err)
		}
		rs := readResults(t, out)
		if len(rs) != 1 || rs[0]["study_uid"] != normalUID {
			t.Errorf("stdout:\n%s", out)
		}
		if !strings.Contains(errOut, "study "+shortUID+": failed: no series to triage") {
			t.Errorf("stderr:\n%s", errOut)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		env, stdout, _ := testEnv(nil)
		err := triageDir(ctx, &triageConfig{Dir: root, JSON: true}, ens, env.stdout, env.stderr)
		if !errors.Is(err, context.Canceled) || stdout.Len() != 0 {
			t.Errorf("err %v, stdout %q", err, stdout)
		}
	})

	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not DICOM"), 0o644)
		_, _, err := run(t, &triageConfig{Dir: dir})
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "holds no DICOM image series (1 files skipped)") {
			t.Errorf("err %v", err)
		}
	})
}

// The summary of a result with a finding and of one without.
func TestPrintTriage(t *testing.T) {
	c, k := [3]float64{-20.25, 30, 12.5}, 7
	r := &triage.Result{
		StudyUID: "1.2.3", SeriesUID: "1.2.3.4", Tier: triage.TierCritical,
		Scores: map[string]float64{"ICH": 0.8766, "SDH": 0.012},
		Findings: []triage.Finding{{Code: "ICH", Label: "Intraparenchymal haemorrhage", Probability: 0.8766,
			Tier: triage.TierCritical, VolumeML: 29.44, Lesions: 2, CentroidLPS: &c, KeySlice: &k}},
		TimingsMS:     triage.Timings{Assemble: 10, Denoise: 5, Models: map[string]float64{"a": 100, "b": 50}, Postprocess: 3, Total: 170},
		Models:        []string{"a@1", "b@2"},
		Demonstration: true,
	}
	var b strings.Builder
	printTriage(&b, r, []string{"SDH", "ICH"}, 32)
	want := `study 1.2.3
  series 1.2.3.4
  tier critical
  finding ICH (Intraparenchymal haemorrhage): 87.7%, critical, 29.4 mL in 2 lesions, centroid LPS (-20.2, 30.0, 12.5) mm, key slice 7 (0-based, of 32)
  scores: SDH 0.012, ICH 0.877
  time 170 ms (assemble 10, preprocess 5, models 150, postprocess 3)
  models a@1, b@2: demonstration models trained on synthetic data, not for clinical use
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	r.Findings, r.Tier, r.Demonstration = nil, triage.TierRoutine, false
	b.Reset()
	printTriage(&b, r, []string{"ICH"}, 32)
	if got := b.String(); !strings.Contains(got, "  tier routine\n  no finding\n  scores: ICH 0.877\n") || strings.Contains(got, "demonstration") {
		t.Errorf("got\n%s", got)
	}
}

// writeTriageMask writes the result's mask, or an all-zero one on the
// series' grid, as .nii.gz and as .nii with the same content.
func TestWriteTriageMask(t *testing.T) {
	p, err := phantom.Generate(phantom.Spec{Seed: 5, Size: [3]int{6, 32, 40}, Spacing: [3]float64{5, 1.8, 1.8},
		Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	v, labels := p.HUVolume(), p.LabelVolume()
	dir := t.TempDir()
	// The phantom's own mask file: the labels as a reader sees them.
	if err := phantom.WriteMask(filepath.Join(dir, "truth.nii"), p); err != nil {
		t.Fatal(err)
	}
	truth, err := volume.ReadNIfTIFile(filepath.Join(dir, "truth.nii"))
	if err != nil {
		t.Fatal(err)
	}
	want := truth.Values()
	for _, withMask := range []bool{false, true} {
		r := &triage.Result{StudyUID: "1.2", SeriesUID: "1.2.3"}
		if withMask {
			r.Mask, r.MaskCodes = labels, []string{"ICH"}
		}
		var got [][]float32
		var affines [][4][4]float64
		for _, name := range []string{"m.nii.gz", "m.nii"} {
			name = filepath.Join(dir, name)
			if err := writeTriageMask(name, r, v); err != nil {
				t.Fatal(err)
			}
			m, err := volume.ReadNIfTIFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != v.Size || dist(m.Spacing, v.Spacing) > 1e-5 {
				t.Fatalf("%s: size %v spacing %v, series %v %v", name, m.Size, m.Spacing, v.Size, v.Spacing)
			}
			got = append(got, m.Values())
			affines = append(affines, m.Affine())
		}
		if !slices.Equal(got[0], got[1]) || affines[0] != affines[1] || affines[0] != truth.Affine() {
			t.Fatalf("with mask %v: .nii and .nii.gz differ, or differ from the series' grid", withMask)
		}
		if !withMask && r.Mask != nil {
			t.Fatal("the result's mask was set")
		}
		labelled := 0
		for i, x := range got[0] {
			if !withMask && x != 0 || withMask && x != want[i] {
				t.Fatalf("with mask %v: voxel %d is %v", withMask, i, x)
			}
			if x != 0 {
				labelled++
			}
		}
		if withMask && labelled == 0 {
			t.Fatal("the phantom has no lesion voxels")
		}
	}
}

// The real head CT of ct-head-5mm, a normal study, through the whole
// command: triaged, and not critical.
func TestTriageRealCT(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ensemble (minutes under the race detector)")
	}
	dir := "../../../shared/dicom/ct-head-5mm"
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the fixture: %v", err)
	}
	env, stdout, stderr := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"triage", dir, "--json", "--backend", "cpu"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	rs := readResults(t, stdout.String())
	if len(rs) != 1 {
		t.Fatalf("stdout:\n%s", stdout)
	}
	r := decodeResult(t, rs[0])
	if r.StudyUID != "1.3.46.670589.33.1.27492712521914879309.27169771283235650014" || r.SeriesUID == "" {
		t.Errorf("study %s series %s", r.StudyUID, r.SeriesUID)
	}
	if r.Tier == triage.TierCritical {
		t.Errorf("a normal head CT is critical: %+v (scores %v)", r.Findings, r.Scores)
	}
	for _, f := range r.Findings {
		if f.Tier == triage.TierCritical {
			t.Errorf("critical finding %+v", f)
		}
	}
}

// copyModels copies the built-in models into a temporary folder.
func copyModels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	names, err := fs.Glob(models.FS, "*")
	if err != nil || len(names) == 0 {
		t.Fatal(names, err)
	}
	for _, n := range names {
		b, err := fs.ReadFile(models.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// truncateModel cuts the last card's ONNX file in half and returns its
// name; withHash false also removes the card's onnx_sha256, so that it is
// the truncation that fails.
func truncateModel(t *testing.T, dir string, withHash bool) string {
	t.Helper()
	cards, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(cards) == 0 {
		t.Fatal("no model card")
	}
	cards = cards[len(cards)-1:]
	data, err := os.ReadFile(cards[0])
	if err != nil {
		t.Fatal(err)
	}
	var card map[string]any
	if err := json.Unmarshal(data, &card); err != nil {
		t.Fatal(err)
	}
	file := card["file"].(string)
	if !withHash {
		if tr, ok := card["training"].(map[string]any); ok {
			delete(tr, "onnx_sha256")
		}
		out, _ := json.Marshal(card)
		if err := os.WriteFile(cards[0], out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, file), st.Size()/2); err != nil {
		t.Fatal(err)
	}
	return file
}

// A broken model fails the command at start, naming the file, before
// any study is read.
func TestTriageBadModels(t *testing.T) {
	studies := t.TempDir()
	triagePhantom(t, filepath.Join(studies, "a"), 41)
	for _, tc := range []struct {
		name     string
		withHash bool
		want     string
	}{
		{"truncated", false, ""},
		{"hash", true, "SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyModels(t)
			file := truncateModel(t, dir, tc.withHash)
			env, stdout, stderr := testEnv(nil)
			err := runEnv(t.Context(), env, []string{"triage", studies, "--models", dir, "--backend", "cpu"})
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, triage.ErrEnsemble) {
				t.Errorf("err %v does not name %s (%s)", err, file, tc.want)
			}
			if tc.withHash == false && strings.Contains(err.Error(), "SHA-256") {
				t.Errorf("the hash, not the truncation, failed: %v", err)
			}
			if stdout.Len() != 0 || strings.Contains(stderr.String(), "chose series") {
				t.Errorf("a study was read: stdout %q stderr %q", stdout, stderr)
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		// The copied folder itself loads: the failures above are the
		// damage's.
		dir := copyModels(t)
		e, err := loadTriageEnsemble(&triageConfig{Models: dir}, kernels.CPU())
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
	})
	t.Run("empty-models", func(t *testing.T) {
		env, _, _ := testEnv(nil)
		err := runEnv(t.Context(), env, []string{"triage", studies, "--models", t.TempDir(), "--backend", "cpu"})
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "no model cards") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("empty-folder", func(t *testing.T) {
		env, stdout, _ := testEnv(nil)
		err := runEnv(t.Context(), env, []string{"triage", t.TempDir(), "--backend", "cpu"})
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "holds no DICOM image series") || stdout.Len() != 0 {
			t.Errorf("err %v", err)
		}
	})
}

func TestParseTriage(t *testing.T) {
	maskDir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *triageConfig)
		wantErr string
	}{
		{name: "defaults", args: []string{"d"}, check: func(t *testing.T, c *triageConfig) {
			if c.Dir != "d" || c.JSON || c.Mask != "" || c.Models != "" || c.Backend != "auto" || c.Flips != "lr" || !slices.Equal(c.flips, triage.DefaultFlips) {
				t.Errorf("%+v", c)
			}
		}},
		{name: "flips none", args: []string{"d", "--flips", "none"}, check: func(t *testing.T, c *triageConfig) {
			if c.flips == nil || len(c.flips) != 0 {
				t.Errorf("flips %v", c.flips)
			}
		}},
		{name: "flips list", args: []string{"d", "--flips=w,h,dw"}, check: func(t *testing.T, c *triageConfig) {
			want := [][3]bool{{false, false, true}, {false, true, false}, {true, false, true}}
			if !slices.Equal(c.flips, want) {
				t.Errorf("flips %v", c.flips)
			}
		}},
		{name: "flips env", args: []string{"d"}, env: map[string]string{"RADTRIAGE_FLIPS": "dhw"}, check: func(t *testing.T, c *triageConfig) {
			if !slices.Equal(c.flips, [][3]bool{{true, true, true}}) {
				t.Errorf("flips %v", c.flips)
			}
		}},
		{name: "flips bad axis", args: []string{"d", "--flips", "x"}, wantErr: `invalid --flips "x": axis set "x": 'x' is not an axis`},
		{name: "flips repeated axis", args: []string{"d", "--flips", "ww"}, wantErr: "names w twice"},
		{name: "flips repeated set", args: []string{"d", "--flips", "w,w"}, wantErr: "given twice"},
		{name: "flips empty set", args: []string{"d", "--flips", "w,"}, wantErr: "empty axis set"},
		{name: "mask file", args: []string{"d", "--mask", "m.nii"}, check: func(t *testing.T, c *triageConfig) {
			if c.Mask != "m.nii" || c.maskDir {
				t.Errorf("%+v", c)
			}
		}},
		{name: "mask folder", args: []string{"d", "--mask", maskDir, "--json"}, check: func(t *testing.T, c *triageConfig) {
			if !c.maskDir || !c.JSON {
				t.Errorf("%+v", c)
			}
		}},
		{name: "mask new folder", args: []string{"d", "--mask", "new/"}, check: func(t *testing.T, c *triageConfig) {
			if !c.maskDir {
				t.Errorf("%+v", c)
			}
		}},
		{name: "mask bad name", args: []string{"d", "--mask", "m.png"}, wantErr: `invalid --mask "m.png": must end in .nii or .nii.gz, or be a folder`},
		{name: "no dir", args: nil, wantErr: "missing argument: DIR"},
		{name: "bad backend", args: []string{"d", "--backend", "tpu"}, wantErr: "must be one of cpu, cuda, auto"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := testEnv(tc.env)
			c, err := parseTriage(env, tc.args)
			if tc.wantErr != "" {
				if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q (exit 2)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// "radtriage help triage" prints the usage; the command is listed.
func TestTriageHelp(t *testing.T) {
	env, stdout, _ := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"help", "triage"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: radtriage triage DIR [flags]", "--flips", "RADTRIAGE_MASK", "study_uid", "Exit status"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in\n%s", want, stdout)
		}
	}
	stdout.Reset()
	if err := runEnv(t.Context(), env, []string{"help"}); err != nil || !strings.Contains(stdout.String(), "  triage ") {
		t.Errorf("%v\n%s", err, stdout)
	}
}

// FuzzParseFlips: --flips never panics, and what it accepts is a list of
// distinct, non-empty axis sets (or lr/none), which formats back to an
// equivalent value.
func FuzzParseFlips(f *testing.F) {
	for _, s := range []string{"lr", "none", "w", "w,h,dw", "dhw", "ww", "w,,h", "x", " w , h ", "", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flips, err := parseFlips(s)
		if err != nil {
			if flips != nil {
				t.Fatalf("%q: error %v with flips %v", s, err, flips)
			}
			return
		}
		seen := map[[3]bool]bool{}
		var parts []string
		for _, a := range flips {
			if a == ([3]bool{}) || seen[a] {
				t.Fatalf("%q: flips %v", s, flips)
			}
			seen[a] = true
			var p string
			for i, on := range a {
				if on {
					p += string("dhw"[i])
				}
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			return
		}
		again, err := parseFlips(strings.Join(parts, ","))
		if err != nil || len(again) != len(flips) {
			t.Fatalf("%q: %v does not parse back (%v, %v)", s, flips, again, err)
		}
	})
}

// A study UID names a mask file only when it is a valid UID: a hostile
// one cannot reach outside the folder.
func TestMaskFileName(t *testing.T) {
	for uid, want := range map[string]string{
		"1.2.840.10008.1":       "1.2.840.10008.1.nii.gz",
		"../../etc/passwd":      "",
		"1.2/../../x":           "",
		"":                      "",
		".1.2":                  "",
		"1.02.3":                "", // a leading zero: not a valid UID component
		strings.Repeat("1", 65): "",
	} {
		got := maskFileName("/out", uid)
		if filepath.Dir(got) != "/out" {
			t.Errorf("%q: %s outside the folder", uid, got)
		}
		base := filepath.Base(got)
		if want != "" && base != want {
			t.Errorf("%q: %s, want %s", uid, base, want)
		}
		if want == "" && (!strings.HasPrefix(base, "study-") || len(base) != len("study-")+16+len(".nii.gz")) {
			t.Errorf("%q: %s, want a study-<hash> name", uid, base)
		}
	}
}
