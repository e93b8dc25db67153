package triage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/volume"
)

// Key images on phantoms stored in a real store (SQLite in a temporary
// folder): with the phantom's own truth mask saved as the result, every
// pixel is checked against the phantom (values and outline, voxel for
// voxel); with the built-in ensemble's result, the outline lies on the
// bleed and a normal head has none.

var _ triage.KeyImageSource = (*store.DB)(nil)

// keyStore opens an empty store.
func keyStore(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), store.Config{DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// storePhantom generates a phantom and stores its series.
func storePhantom(tb testing.TB, db *store.DB, spec phantom.Spec) (*phantom.Phantom, string) {
	tb.Helper()
	p, err := phantom.Generate(spec)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		tb.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		_, err = db.Store(context.Background(), f, store.StoreOptions{})
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
	study, _, _, _ := p.UIDs()
	return p, study
}

// keySlice is the slice holding most of the phantom's first lesion.
func keySlice(p *phantom.Phantom) int {
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	best, most := D/2, 0
	for d := range D {
		n := 0
		for _, l := range p.Labels[d*H*W : (d+1)*H*W] {
			if l == p.Lesions[0].Label {
				n++
			}
		}
		if n > most {
			best, most = d, n
		}
	}
	return best
}

// saveTruth saves a result of p whose mask is p's truth (as the pipeline
// stores a mask: INT16 labels in gzip NIfTI, rows bottom to top) and
// whose finding has p's first lesion's key slice and centroid.
func saveTruth(tb testing.TB, db *store.DB, p *phantom.Phantom, study string, at time.Time) {
	tb.Helper()
	_, series, _, _ := p.UIDs()
	r := &triage.Result{StudyUID: study, SeriesUID: series, Scores: map[string]float64{}, Findings: []triage.Finding{},
		Tier: triage.TierRoutine, MaskCodes: []string{"ICH", "SDH"}}
	if len(p.Lesions) > 0 {
		k, c := keySlice(p), p.Lesions[0].CentroidLPS
		r.Tier = triage.TierCritical
		r.Findings = []triage.Finding{{Code: "ICH", Label: "intracranial haemorrhage", Probability: 0.9, Tier: triage.TierCritical,
			VolumeML: p.Lesions[0].VolumeML, Lesions: 1, CentroidLPS: &c, KeySlice: &k}}
		m := p.LabelVolume()
		m.StoredBits, m.StoredSigned, m.Modality = 0, false, "SEG" // as Ensemble.Run makes it
		r.Mask = m
	}
	sr, err := r.Stored(at)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.SaveTriageResult(context.Background(), sr); err != nil {
		tb.Fatal(err)
	}
}

// decodePNG decodes a key image.
func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func rgbaAt(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

// windowGrey is the DICOM linear VOI function (PS3.3 C.11.2.1.2.1).
func windowGrey(x, center, width float64) uint8 {
	switch {
	case x <= center-0.5-(width-1)/2:
		return 0
	case x > center-0.5+(width-1)/2:
		return 255
	}
	return uint8(math.Round(((x-(center-0.5))/(width-1) + 0.5) * 255))
}

// smallHead is a quick phantom: a head on a coarse grid.
func smallHead(seed uint64, lesions ...phantom.LesionSpec) phantom.Spec {
	return phantom.Spec{Seed: seed, Size: [3]int{12, 64, 64}, Spacing: [3]float64{5, 3.6, 3.6}, Lesions: lesions}
}

// TestKeyImageMatchesPhantom checks every pixel of the axial key image of
// a stored phantom whose truth mask is its stored result: the windowed CT
// value of the phantom's voxel, or the outline colour where the truth
// label has a 4-neighbour of another label. So the series is assembled in
// the phantom's order and the mask read back from its NIfTI lines up
// with it voxel for voxel.
func TestKeyImageMatchesPhantom(t *testing.T) {
	db := keyStore(t)
	p, study := storePhantom(t, db, smallHead(31, phantom.LesionSpec{Kind: phantom.KindICH, VolumeML: 30},
		phantom.LesionSpec{Kind: phantom.KindSDH, VolumeML: 30}))
	saveTruth(t, db, p, study, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	k := triage.NewKeyImages(db, 2)
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	lab := func(d, h, w int) uint8 {
		if h < 0 || w < 0 || h >= H || w >= W {
			return 255
		}
		return p.Labels[(d*H+h)*W+w]
	}
	for _, tc := range []struct {
		window        string
		center, width float64
		slice         int // -1: the key slice
		outline       bool
	}{
		{"brain", 40, 80, -1, true},
		{"", 40, 80, -1, true},
		{"subdural", 75, 215, keySlice(p) + 1, true},
		{"bone", 600, 2800, -1, false},
		{"stroke", 40, 40, 0, true},
		{"soft", 50, 400, D - 1, true},
	} {
		t.Run(fmt.Sprintf("%s slice %d outline %v", tc.window, tc.slice, tc.outline), func(t *testing.T) {
			b, err := k.PNG(context.Background(), study, triage.KeyImageOptions{Plane: "axial", Window: tc.window, Slice: tc.slice, Outline: tc.outline})
			if err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, b)
			if got := img.Bounds(); got != image.Rect(0, 0, W, H) {
				t.Fatalf("image %v, want %d×%d", got, W, H)
			}
			d := tc.slice
			if d < 0 {
				d = keySlice(p)
			}
			outlined := map[uint8]int{}
			for h := range H {
				for w := range W {
					g := windowGrey(float64(p.HU[(d*H+h)*W+w]), tc.center, tc.width)
					want := color.RGBA{g, g, g, 255}
					if l := lab(d, h, w); tc.outline && l != 0 &&
						(lab(d, h-1, w) != l || lab(d, h+1, w) != l || lab(d, h, w-1) != l || lab(d, h, w+1) != l) {
						want = volume.OutlineColor(int(l))
						outlined[l]++
					}
					if got := rgbaAt(img, w, h); got != want {
						t.Fatalf("slice %d pixel (%d, %d) (HU %d, label %d): %v, want %v", d, w, h, p.HU[(d*H+h)*W+w], lab(d, h, w), got, want)
					}
				}
			}
			if tc.slice == -1 && tc.outline && outlined[phantom.LabelICH] == 0 {
				t.Errorf("no outline on the key slice %d", d)
			}
		})
	}
}

// TestKeyImageReformats checks the coronal and sagittal key images: square
// pixels with the thick slices resampled (12 slices of 5 mm at 3.6 mm),
// the head up, and the outline through the lesion's centroid.
func TestKeyImageReformats(t *testing.T) {
	db := keyStore(t)
	p, study := storePhantom(t, db, smallHead(32, phantom.LesionSpec{Kind: phantom.KindICH, VolumeML: 30}))
	saveTruth(t, db, p, study, time.Now())
	k := triage.NewKeyImages(db, 2)
	c := p.Lesions[0].CentroidLPS
	// The centroid's column and row in the phantom's grid.
	cw := (c[0] - p.Origin[0]) / p.Spacing[2]
	cd := (c[2] - p.Origin[2]) / p.Spacing[0]
	wantH := int(math.Round(float64(p.Size[0]-1)*p.Spacing[0]/p.Spacing[1])) + 1
	for _, plane := range []string{"coronal", "sagittal"} {
		t.Run(plane, func(t *testing.T) {
			b, err := k.PNG(context.Background(), study, triage.KeyImageOptions{Plane: plane, Window: "brain", Slice: -1, Outline: true})
			if err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, b)
			if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != p.Size[2] && plane == "coronal" || w != p.Size[1] && plane == "sagittal" || h != wantH {
				t.Fatalf("%d×%d pixels, want %d high", w, h, wantH)
			}
			// The red pixel nearest the centroid's place: the head is up,
			// so slice d is at row (D-1-d)*5/3.6.
			cy := (float64(p.Size[0]-1) - cd) * p.Spacing[0] / p.Spacing[1]
			cx := cw
			if plane == "sagittal" {
				cx = (c[1] - p.Origin[1]) / p.Spacing[1]
			}
			best, reds := math.Inf(1), 0
			for y := range img.Bounds().Dy() {
				for x := range img.Bounds().Dx() {
					if rgbaAt(img, x, y) == volume.OutlineColor(1) {
						reds++
						best = math.Min(best, math.Hypot(float64(x)-cx, float64(y)-cy))
					}
				}
			}
			// 30 mL is a sphere of about 19 mm radius: 5 pixels.
			if reds == 0 || best > 8 {
				t.Errorf("%d red pixels, the nearest %.1f pixels from the centroid (%.1f, %.1f)", reds, best, cx, cy)
			}
			// The head is up: the top row is the last slice's row (coronal)
			// or column (sagittal) through the centroid.
			D, H, W := p.Size[0], p.Size[1], p.Size[2]
			for x := range img.Bounds().Dx() {
				i := (D-1)*H*W + int(math.Round((c[1]-p.Origin[1])/p.Spacing[1]))*W + x
				if plane == "sagittal" {
					i = (D-1)*H*W + x*W + int(math.Round(cw))
				}
				g := windowGrey(float64(p.HU[i]), 40, 80)
				if got := rgbaAt(img, x, 0); got.R == got.G && got != (color.RGBA{g, g, g, 255}) {
					t.Fatalf("top row pixel %d: %v, want grey %d of the last slice", x, got, g)
				}
			}
		})
	}
}

// TestKeyImageEnsemble saves the built-in ensemble's results of a bleed
// and a normal head, as a triage worker does, and checks the key images:
// the outline lies on the bleed, and a normal head has none.
func TestKeyImageEnsemble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ensemble")
	}
	ens := defaultEnsemble(t)
	ctx := context.Background()
	db := keyStore(t)
	k := triage.NewKeyImages(db, 4)
	run := func(spec phantom.Spec) (*phantom.Phantom, string, *triage.Result) {
		p, study := storePhantom(t, db, spec)
		fsys, err := db.StudyFS(ctx, study)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := ens.RunFS(ctx, fsys, study)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := sr.Result.Stored(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SaveTriageResult(ctx, stored); err != nil {
			t.Fatal(err)
		}
		return p, study, sr.Result
	}
	coloured := func(img image.Image) (n int, at []image.Point) {
		for y := range img.Bounds().Dy() {
			for x := range img.Bounds().Dx() {
				if c := rgbaAt(img, x, y); c.R != c.G || c.G != c.B {
					n++
					at = append(at, image.Pt(x, y))
				}
			}
		}
		return n, at
	}

	p, bleed, r := run(phantom.Spec{Seed: 4243, Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 25}}})
	if len(r.Findings) == 0 || r.Findings[0].KeySlice == nil {
		t.Fatalf("the ensemble found %+v", r.Findings)
	}
	b, err := k.PNG(ctx, bleed, triage.KeyImageOptions{Plane: "axial", Window: "brain", Slice: -1, Outline: true})
	if err != nil {
		t.Fatal(err)
	}
	atKey, err := k.PNG(ctx, bleed, triage.KeyImageOptions{Plane: "axial", Window: "brain", Slice: *r.Findings[0].KeySlice, Outline: true})
	if err != nil || !bytes.Equal(b, atKey) {
		t.Errorf("slice -1 is not the finding's key slice %d (%v)", *r.Findings[0].KeySlice, err)
	}
	img := decodePNG(t, b)
	truth := p.Lesions[0]
	n, at := coloured(img)
	if n == 0 {
		t.Fatal("no outline on the key image of a bleed")
	}
	// Every outline pixel near the true lesion (its box and 3 voxels), on
	// a slice through it.
	if d := *r.Findings[0].KeySlice; d < truth.BBoxMin[0] || d > truth.BBoxMax[0] {
		t.Errorf("key slice %d outside the lesion's slices %d..%d", d, truth.BBoxMin[0], truth.BBoxMax[0])
	}
	red := 0
	for _, pt := range at {
		if rgbaAt(img, pt.X, pt.Y) == volume.OutlineColor(1) {
			red++
		}
		if pt.X < truth.BBoxMin[2]-3 || pt.X > truth.BBoxMax[2]+3 || pt.Y < truth.BBoxMin[1]-3 || pt.Y > truth.BBoxMax[1]+3 {
			t.Fatalf("outline pixel %v outside the lesion's box %v..%v", pt, truth.BBoxMin, truth.BBoxMax)
		}
	}
	if red == 0 {
		t.Errorf("%d outline pixels, none red (label 1 is %v)", n, r.MaskCodes)
	}
	for _, plane := range []string{"coronal", "sagittal"} {
		b, err := k.PNG(ctx, bleed, triage.KeyImageOptions{Plane: plane, Window: "brain", Slice: -1, Outline: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := coloured(decodePNG(t, b)); n == 0 {
			t.Errorf("no outline on the %s key image through the bleed's centroid", plane)
		}
	}

	_, normal, r := run(phantom.Spec{Seed: 4242})
	if len(r.Findings) != 0 {
		t.Fatalf("the ensemble found %+v in a normal head", r.Findings)
	}
	for _, plane := range []string{"axial", "coronal", "sagittal"} {
		b, err := k.PNG(ctx, normal, triage.KeyImageOptions{Plane: plane, Window: "subdural", Slice: -1, Outline: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := coloured(decodePNG(t, b)); n != 0 {
			t.Errorf("%d outline pixels on the %s key image of a normal head", n, plane)
		}
	}
}

func TestKeyImageErrors(t *testing.T) {
	db := keyStore(t)
	ctx := context.Background()
	p, study := storePhantom(t, db, smallHead(33))
	saveTruth(t, db, p, study, time.Now())
	// A result whose series is not stored.
	const lost = "1.2.826.0.1.3680043.10.8.1"
	js := fmt.Sprintf(`{"study_uid":%q,"series_uid":"1.2.826.0.1.3680043.10.8.2","findings":[]}`, lost)
	if err := db.SaveTriageResult(ctx, triage.StoredResult{StudyUID: lost, SeriesUID: "1.2.826.0.1.3680043.10.8.2",
		Tier: "routine", JSON: []byte(js), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A result of a stored study naming another series.
	_, other := storePhantom(t, db, smallHead(34))
	js = fmt.Sprintf(`{"study_uid":%q,"series_uid":"1.2.826.0.1.3680043.10.8.3","findings":[]}`, other)
	if err := db.SaveTriageResult(ctx, triage.StoredResult{StudyUID: other, Tier: "routine", JSON: []byte(js), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	k := triage.NewKeyImages(db, 2)
	for _, tc := range []struct {
		name  string
		study string
		o     triage.KeyImageOptions
		want  error
	}{
		{"unknown plane", study, triage.KeyImageOptions{Plane: "oblique", Slice: -1}, triage.ErrKeyImageOptions},
		{"unknown window", study, triage.KeyImageOptions{Window: "lung", Slice: -1}, triage.ErrKeyImageOptions},
		{"slice below -1", study, triage.KeyImageOptions{Slice: -2}, triage.ErrKeyImageOptions},
		{"axial slice past the series", study, triage.KeyImageOptions{Slice: p.Size[0]}, triage.ErrKeyImageOptions},
		{"coronal slice past the rows", study, triage.KeyImageOptions{Plane: "coronal", Slice: p.Size[1]}, triage.ErrKeyImageOptions},
		{"no result", "1.2.826.0.1.3680043.10.8.9", triage.KeyImageOptions{Slice: -1}, store.ErrNotFound},
		{"no stored files", lost, triage.KeyImageOptions{Slice: -1}, store.ErrNotFound},
		{"series not stored", other, triage.KeyImageOptions{Slice: -1}, triage.ErrNoKeyImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := k.PNG(ctx, tc.study, tc.o); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	// The middle slice of a result without findings.
	b, err := k.PNG(ctx, study, triage.KeyImageOptions{Slice: -1, Outline: true})
	if err != nil {
		t.Fatal(err)
	}
	mid, err := k.PNG(ctx, study, triage.KeyImageOptions{Slice: p.Size[0] / 2, Outline: true})
	if err != nil || !bytes.Equal(b, mid) {
		t.Errorf("a result without findings: slice -1 is not the middle slice (%v)", err)
	}
}

// countingSource counts the study file systems KeyImages asks for: one
// per series it assembles.
type countingSource struct {
	*store.DB
	loads atomic.Int32
}

func (c *countingSource) StudyFS(ctx context.Context, study string) (fs.FS, error) {
	c.loads.Add(1)
	return c.DB.StudyFS(ctx, study)
}

// TestKeyImageCache checks that a study's series is assembled once for
// any number of images, including concurrent first requests; again when
// its result changes; and again after the cache evicted it.
func TestKeyImageCache(t *testing.T) {
	db := keyStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	pa, a := storePhantom(t, db, smallHead(35, phantom.LesionSpec{Kind: phantom.KindICH, VolumeML: 20}))
	saveTruth(t, db, pa, a, t0)
	pb, b := storePhantom(t, db, smallHead(36))
	saveTruth(t, db, pb, b, t0)
	src := &countingSource{DB: db}
	k := triage.NewKeyImages(src, 1)
	get := func(study, plane string) []byte {
		t.Helper()
		img, err := k.PNG(ctx, study, triage.KeyImageOptions{Plane: plane, Slice: -1, Outline: true})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	want := func(n int32, after string) {
		t.Helper()
		if got := src.loads.Load(); got != n {
			t.Errorf("after %s: %d series loads, want %d", after, got, n)
		}
	}
	var wg sync.WaitGroup
	for _, plane := range []string{"axial", "coronal", "sagittal", "axial"} {
		wg.Go(func() { get(a, plane) })
	}
	wg.Wait()
	want(1, "four concurrent first requests")
	first := get(a, "axial")
	want(1, "another request")

	// A new result (here: without the lesion's mask) replaces the entry.
	pa.Lesions = nil
	saveTruth(t, db, pa, a, t0.Add(time.Second))
	if bytes.Equal(get(a, "axial"), first) {
		t.Error("the key image did not change with the result")
	}
	want(2, "a new result")
	get(b, "axial")
	want(3, "another study")
	get(a, "axial")
	want(4, "the evicted study again")
}

// BenchmarkKeyImage512 renders the axial key image (brain window, outline)
// of a stored 512×512×32 phantom with a bleed: "cached" with the series
// already assembled (a stored-result lookup, the slice, the PNG),
// "uncached" from the stored files (reading and assembling the series and
// the mask as well). The target for the worklist page is 100 ms cached.
func BenchmarkKeyImage512(b *testing.B) {
	db := keyStore(b)
	ctx := context.Background()
	p, study := storePhantom(b, db, phantom.Spec{Seed: 7, Size: [3]int{32, 512, 512}, Spacing: [3]float64{5, 0.45, 0.45},
		Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 25}}})
	saveTruth(b, db, p, study, time.Now())
	o := triage.KeyImageOptions{Plane: "axial", Window: "brain", Slice: -1, Outline: true}
	b.Run("cached", func(b *testing.B) {
		k := triage.NewKeyImages(db, 1)
		if _, err := k.PNG(ctx, study, o); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := k.PNG(ctx, study, o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-coronal", func(b *testing.B) {
		k := triage.NewKeyImages(db, 1)
		o := o
		o.Plane = "coronal"
		if _, err := k.PNG(ctx, study, o); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := k.PNG(ctx, study, o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := triage.NewKeyImages(db, 1).PNG(ctx, study, o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
