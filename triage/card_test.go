package triage

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleCard = "testdata/cards/example_seg.json"

// The example card is the project's demonstration ICH/SDH segmentation
// model. Its window is 40/120 (-20 to 100 HU) rather than the usual
// brain window 40/80 (0 to 80 HU): acute blood (50 to 100 HU, clotted
// and retracted blood at the top of that range) stays below 1 instead of
// saturating with bone, and CSF (0 to 15 HU) stays above 0, so the
// network still sees hemorrhage against brain and ventricles. 32×128×128
// voxels of 5×1.8×1.8 mm cover 160×230×230 mm, a whole adult head.
func TestLoadExampleCard(t *testing.T) {
	c, err := LoadCard(exampleCard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != KindSegmentation || !c.Demonstration || c.File != "ich_sdh_seg_demo.onnx" || len(c.Findings) != 2 {
		t.Fatalf("card %+v", c)
	}
	if c.Findings[0].Code != "ICH" || c.Findings[1].Code != "SDH" || c.Findings[0].Tier != TierCritical {
		t.Errorf("findings %+v", c.Findings)
	}
	in := c.Input
	if in.Size != [3]int{32, 128, 128} || in.Spacing != [3]float64{5, 1.8, 1.8} || in.Window != (WindowSpec{40, 120}) || in.Channels != 1 {
		t.Errorf("input %+v", in)
	}
	if in.Denoise.Method != "gaussian" || in.Denoise.SigmaMM != 1 {
		t.Errorf("denoise %+v", in.Denoise)
	}
}

// mutate decodes the example card into generic JSON, applies fn and
// encodes it again.
func mutate(t *testing.T, fn func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(exampleCard)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func input(m map[string]any) map[string]any { return m["input"].(map[string]any) }
func finding(m map[string]any, i int) map[string]any {
	return m["findings"].([]any)[i].(map[string]any)
}

func TestCardErrors(t *testing.T) {
	cases := []struct {
		name  string
		fn    func(m map[string]any)
		field string // expected in the message
	}{
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, `unknown field "extra"`},
		{"unknown nested field", func(m map[string]any) { input(m)["mean"] = 0 }, `unknown field "mean"`},
		{"no name", func(m map[string]any) { m["name"] = " " }, "name: empty"},
		{"no version", func(m map[string]any) { delete(m, "version") }, "version: empty"},
		{"file with dir", func(m map[string]any) { m["file"] = "models/x.onnx" }, "file:"},
		{"file backslash", func(m map[string]any) { m["file"] = `..\x.onnx` }, "file:"},
		{"file dotdot", func(m map[string]any) { m["file"] = ".." }, "file:"},
		{"file empty", func(m map[string]any) { m["file"] = "" }, "file:"},
		{"kind", func(m map[string]any) { m["kind"] = "detection" }, "kind:"},
		{"no findings", func(m map[string]any) { m["findings"] = []any{} }, "findings: none"},
		{"dup code", func(m map[string]any) { finding(m, 1)["code"] = "ICH" }, "findings[1].code"},
		{"bad code", func(m map[string]any) { finding(m, 0)["code"] = "ich" }, "findings[0].code"},
		{"no finding name", func(m map[string]any) { finding(m, 0)["name"] = "" }, "findings[0].name"},
		{"tier", func(m map[string]any) { finding(m, 1)["tier"] = "stat" }, "findings[1].tier"},
		{"dup channel", func(m map[string]any) { finding(m, 1)["channel"] = 1 }, "findings[1].channel"},
		{"negative channel", func(m map[string]any) { finding(m, 0)["channel"] = -1 }, "findings[0].channel"},
		{"threshold 0", func(m map[string]any) { finding(m, 0)["threshold"] = 0 }, "findings[0].threshold"},
		{"threshold 1", func(m map[string]any) { finding(m, 0)["threshold"] = 1 }, "findings[0].threshold"},
		{"min volume", func(m map[string]any) { finding(m, 0)["min_volume_ml"] = -1 }, "findings[0].min_volume_ml"},
		{"spacing", func(m map[string]any) { input(m)["spacing_mm"] = []any{5, 0, 1.8} }, "input.spacing_mm[1]"},
		{"size", func(m map[string]any) { input(m)["size"] = []any{32, 128, 0} }, "input.size[2]"},
		{"size too large", func(m map[string]any) { input(m)["size"] = []any{2048, 2048, 2048} }, "input.size:"},
		{"window width", func(m map[string]any) { input(m)["window"] = map[string]any{"center": 40, "width": 0} }, "input.window.width"},
		{"channels", func(m map[string]any) { input(m)["channels"] = 3 }, "input.channels"},
		{"denoise method", func(m map[string]any) { input(m)["denoise"] = map[string]any{"method": "median"} }, "input.denoise.method"},
		{"gaussian sigma", func(m map[string]any) { input(m)["denoise"] = map[string]any{"method": "gaussian"} }, "input.denoise.sigma_mm"},
		{"unused parameter", func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "gaussian", "sigma_mm": 1, "h_hu": 3}
		}, "input.denoise.h_hu"},
		{"none with parameter", func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "none", "sigma_mm": 1}
		}, "input.denoise.sigma_mm"},
		{"bilateral range", func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "bilateral", "sigma_mm": 1}
		}, "input.denoise.sigma_range_hu"},
		{"nlm search", func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "nlm", "patch_radius": 1, "h_hu": 20}
		}, "input.denoise.search_radius"},
		{"nlm h", func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "nlm", "patch_radius": 1, "search_radius": 2}
		}, "input.denoise.h_hu"},
		{"activation", func(m map[string]any) { m["output"] = map[string]any{"activation": "relu"} }, "output.activation"},
		{"metric name", func(m map[string]any) { m["metrics"] = map[string]any{"": 1} }, "metrics: empty name"},
		{"wrong type", func(m map[string]any) { m["demonstration"] = "yes" }, "demonstration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCard(mutate(t, c.fn))
			if !errors.Is(err, ErrCard) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %v, want ErrCard naming %q", err, c.field)
			}
		})
	}
}

func TestCardValidVariants(t *testing.T) {
	for name, fn := range map[string]func(m map[string]any){
		"none": func(m map[string]any) { input(m)["denoise"] = map[string]any{"method": "none"} },
		"bilateral": func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "bilateral", "sigma_mm": 1, "sigma_range_hu": 40}
		},
		"nlm": func(m map[string]any) {
			input(m)["denoise"] = map[string]any{"method": "nlm", "patch_radius": 2, "search_radius": 2, "noise_hu": 20, "h_hu": 24}
		},
		"classifier": func(m map[string]any) {
			m["kind"] = "classification"
			m["output"] = map[string]any{"activation": "sigmoid"}
			finding(m, 0)["min_volume_ml"] = 0
			finding(m, 1)["min_volume_ml"] = 0
		},
	} {
		if _, err := ParseCard(mutate(t, fn)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A classifier with a volume threshold is refused.
	_, err := ParseCard(mutate(t, func(m map[string]any) { m["kind"] = "classification" }))
	if !errors.Is(err, ErrCard) || !strings.Contains(err.Error(), "min_volume_ml") {
		t.Errorf("classifier with min_volume_ml: %v", err)
	}
}

func TestParseCardTrailing(t *testing.T) {
	b, err := os.ReadFile(exampleCard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCard(append(b, []byte(" {}")...)); !errors.Is(err, ErrCard) {
		t.Errorf("trailing object: %v", err)
	}
	if _, err := ParseCard(append(b, '\n')); err != nil {
		t.Errorf("trailing newline: %v", err)
	}
	if _, err := LoadCard(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, ErrCard) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzLoadCard(f *testing.F) {
	names, _ := filepath.Glob("testdata/cards/*.json")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"file":"../x.onnx"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCard(data)
		if err != nil {
			if !errors.Is(err, ErrCard) {
				t.Fatalf("error %v does not wrap ErrCard", err)
			}
			return
		}
		// An accepted card is valid, and survives a round trip.
		if strings.ContainsAny(c.File, `/\`) || c.File == ".." || c.Input.Window.Width <= 0 || c.Input.Channels != 1 {
			t.Fatalf("accepted %+v", c)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseCard(out); err != nil {
			t.Fatalf("re-encoded card refused: %v\n%s", err, out)
		}
	})
}
