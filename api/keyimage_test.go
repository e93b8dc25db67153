package api

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/phantom"
)

// The key-image route on a real store (SQLite, and PostgreSQL on
// RADTRIAGE_TEST_DATABASE_URL) holding a phantom with a bleed whose truth
// mask is saved as its triage result, rendered by triage.KeyImages.

// storeKeyPhantom stores a small phantom head with a bleed and saves a
// result of it whose mask is the phantom's truth. It returns the
// phantom and its study UID.
func storeKeyPhantom(t *testing.T, db *store.DB) (*phantom.Phantom, string) {
	t.Helper()
	ctx := context.Background()
	p, err := phantom.Generate(phantom.Spec{Seed: 81, Size: [3]int{12, 64, 64}, Spacing: [3]float64{5, 3.6, 3.6},
		Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Store(ctx, f, store.StoreOptions{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	study, series, _, _ := p.UIDs()
	c := p.Lesions[0].CentroidLPS
	k := int((c[2]-p.Origin[2])/p.Spacing[0] + 0.5)
	r := &triage.Result{StudyUID: study, SeriesUID: series, Tier: triage.TierCritical, Scores: map[string]float64{"ICH": 0.9},
		Findings: []triage.Finding{{Code: "ICH", Label: "intracranial haemorrhage", Probability: 0.9, Tier: triage.TierCritical,
			VolumeML: p.Lesions[0].VolumeML, Lesions: 1, CentroidLPS: &c, KeySlice: &k}},
		Mask: p.LabelVolume(), MaskCodes: []string{"ICH"}}
	sr, err := r.Stored(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveTriageResult(ctx, sr); err != nil {
		t.Fatal(err)
	}
	return p, study
}

// redPixels counts the pixels of label 1's outline colour in a PNG.
func redPixels(t *testing.T, b []byte) (image.Rectangle, int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	n := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == (color.RGBA{255, 0, 0, 255}) {
				n++
			}
		}
	}
	return img.Bounds(), n
}

func TestKeyImage(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testKeyImage(t, b)
		})
	}
}

func testKeyImage(t *testing.T, b backend) {
	ctx := context.Background()
	db := openDB(t, b)
	p, study := storeKeyPhantom(t, db)
	// A result whose series is not stored.
	const lost = "1.2.826.0.1.3680043.10.9.1"
	js := fmt.Sprintf(`{"study_uid":%q,"series_uid":"1.2.826.0.1.3680043.10.9.2","findings":[]}`, lost)
	if err := db.SaveTriageResult(ctx, triage.StoredResult{StudyUID: lost, SeriesUID: "1.2.826.0.1.3680043.10.9.2",
		Tier: "routine", JSON: []byte(js), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h := New(db, Config{KeyImages: triage.NewKeyImages(db, 2), Logger: quietLogger()})
	url := func(study, query string) string {
		return "/api/v1/studies/" + study + "/key-image.png" + query
	}
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	coronalH := int(float64(D-1)*p.Spacing[0]/p.Spacing[1]+0.5) + 1
	noLesion := p.Lesions[0].BBoxMax[0] + 1 // a slice without the lesion
	if noLesion >= D {
		noLesion = p.Lesions[0].BBoxMin[0] - 1
	}

	for _, tc := range []struct {
		name    string
		query   string
		accept  string
		size    image.Point
		wantRed bool
	}{
		{"defaults", "", "", image.Pt(W, H), true},
		{"all parameters", "?plane=axial&window=brain&slice=-1&outline=1", "image/png", image.Pt(W, H), true},
		{"no outline", "?outline=0", "image/*", image.Pt(W, H), false},
		{"bone window, a slice without the lesion", fmt.Sprintf("?window=bone&slice=%d&outline=true", noLesion), "", image.Pt(W, H), false},
		{"lesion slice", fmt.Sprintf("?window=soft&slice=%d", p.Lesions[0].BBoxMin[0]), "", image.Pt(W, H), true},
		{"coronal", "?plane=coronal&window=subdural", "image/avif,image/webp,*/*", image.Pt(W, coronalH), true},
		{"sagittal", "?plane=sagittal&window=stroke", "", image.Pt(H, coronalH), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.accept != "" {
				hdr = []string{"Accept", tc.accept}
			}
			rec := do(t, h, http.MethodGet, url(study, tc.query), nil, hdr...)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "image/png" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "private, max-age=60" {
				t.Errorf("Cache-Control %q", cc)
			}
			bounds, red := redPixels(t, rec.Body.Bytes())
			if bounds.Size() != tc.size {
				t.Errorf("image %v, want %v", bounds.Size(), tc.size)
			}
			if (red > 0) != tc.wantRed {
				t.Errorf("%d red outline pixels; want some: %v", red, tc.wantRed)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		target string
		accept string
		want   int
	}{
		{"bad study UID", url("1.2.abc", ""), "", http.StatusBadRequest},
		{"unknown plane", url(study, "?plane=oblique"), "", http.StatusBadRequest},
		{"unknown window", url(study, "?window=lung"), "", http.StatusBadRequest},
		{"slice not a number", url(study, "?slice=middle"), "", http.StatusBadRequest},
		{"slice below -1", url(study, "?slice=-2"), "", http.StatusBadRequest},
		{"slice past the series", url(study, fmt.Sprintf("?slice=%d", D)), "", http.StatusBadRequest},
		{"bad outline", url(study, "?outline=yes"), "", http.StatusBadRequest},
		{"no result", url("1.2.826.0.1.3680043.10.9.9", ""), "", http.StatusNotFound},
		{"series not stored", url(lost, ""), "", http.StatusNotFound},
		{"JSON only", url(study, ""), "application/json", http.StatusNotAcceptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.accept != "" {
				hdr = []string{"Accept", tc.accept}
			}
			rec := do(t, h, http.MethodGet, tc.target, nil, hdr...)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct == "image/png" {
				t.Errorf("an error answered as %s", ct)
			}
		})
	}

	t.Run("not configured", func(t *testing.T) {
		rec := do(t, New(db, Config{Logger: quietLogger()}), http.MethodGet, url(study, ""), nil)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503: %s", rec.Code, rec.Body)
		}
	})
}
