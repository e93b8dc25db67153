package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/radtriage/radtriage/triage/phantom"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// naiveAUC is the definition: over every (positive, negative) pair, 1 when
// the positive scores higher, ½ on a tie.
func naiveAUC(scores []float64, positive []bool) float64 {
	var u float64
	var pairs int
	for i, p := range positive {
		if !p {
			continue
		}
		for j, n := range positive {
			if n {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				u++
			case scores[i] == scores[j]:
				u += 0.5
			}
		}
	}
	return u / float64(pairs)
}

func TestAUC(t *testing.T) {
	T, F := true, false
	tests := []struct {
		name   string
		scores []float64
		pos    []bool
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []bool{F, F, T, T}, 1},
		{"inverted", []float64{0.1, 0.2, 0.8, 0.9}, []bool{T, T, F, F}, 0},
		{"one tie pair", []float64{0.5, 0.5}, []bool{T, F}, 0.5},
		{"all tied", []float64{0.3, 0.3, 0.3, 0.3, 0.3}, []bool{T, F, T, F, F}, 0.5},
		// pairs (0.8,0.5)=1 (0.8,0.2)=1 (0.5,0.5)=½ (0.5,0.2)=1: 3.5/4
		{"tie across classes", []float64{0.8, 0.5, 0.5, 0.2}, []bool{T, T, F, F}, 0.875},
		// positives 0.3, 0.6; negatives 0.4, 0.1, 0.6:
		// 0.3 beats 0.1 only (1); 0.6 beats 0.4, 0.1, ties 0.6 (2.5): 3.5/6
		{"unsorted with tie", []float64{0.4, 0.3, 0.1, 0.6, 0.6}, []bool{F, T, F, T, F}, 3.5 / 6},
		{"one of each, wrong way", []float64{0.2, 0.9}, []bool{T, F}, 0},
		{"negative scores", []float64{-3, -1, -2}, []bool{F, T, F}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AUC(tc.scores, tc.pos)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tc.want) {
				t.Errorf("AUC = %v, want %v", got, tc.want)
			}
			if n := naiveAUC(tc.scores, tc.pos); !near(n, tc.want) {
				t.Errorf("naive AUC = %v, want %v (the test case is wrong)", n, tc.want)
			}
		})
	}
}

func TestAUCMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 2 + rng.IntN(60)
		scores := make([]float64, n)
		pos := make([]bool, n)
		for i := range n {
			// Few distinct values: many ties.
			scores[i] = float64(rng.IntN(7)) / 6
			pos[i] = rng.IntN(3) == 0
		}
		pos[0], pos[1] = true, false
		got, err := AUC(scores, pos)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveAUC(scores, pos); math.Abs(got-want) > 1e-12 {
			t.Fatalf("trial %d: AUC = %v, naive %v (scores %v, positive %v)", trial, got, want, scores, pos)
		}
	}
}

func TestAUCErrors(t *testing.T) {
	if _, err := AUC([]float64{0.1, 0.2}, []bool{true, true}); !errors.Is(err, errOneClass) {
		t.Errorf("only positives: err %v, want errOneClass", err)
	}
	if _, err := AUC([]float64{0.1}, []bool{false}); !errors.Is(err, errOneClass) {
		t.Errorf("only negatives: err %v, want errOneClass", err)
	}
	if _, err := AUC(nil, nil); !errors.Is(err, errOneClass) {
		t.Errorf("empty: err %v, want errOneClass", err)
	}
	if _, err := AUC([]float64{math.NaN(), 0.2}, []bool{true, false}); err == nil {
		t.Error("NaN score: no error")
	}
	defer func() {
		if recover() == nil {
			t.Error("lengths differ: no panic")
		}
	}()
	AUC([]float64{0.1, 0.2}, []bool{true})
}

func TestBootstrapAUC(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 200
	scores := make([]float64, n)
	pos := make([]bool, n)
	for i := range n {
		pos[i] = i%2 == 1
		scores[i] = rng.NormFloat64()
		if pos[i] {
			scores[i] += 1.5 // AUC about 0.86
		}
	}
	auc, err := AUC(scores, pos)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, err := BootstrapAUC(scores, pos, 1000, 0.95, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !(lo < auc && auc < hi) {
		t.Errorf("CI [%v, %v] does not hold the AUC %v", lo, hi, auc)
	}
	// The standard error of an AUC of ~0.86 over 100+100 cases is about
	// 0.026: the 95% interval is roughly ±0.05 wide on each side.
	if w := hi - lo; w < 0.04 || w > 0.2 {
		t.Errorf("CI [%v, %v] has width %v, want about 0.1", lo, hi, w)
	}
	lo2, hi2, err := BootstrapAUC(scores, pos, 1000, 0.95, 42)
	if err != nil || lo2 != lo || hi2 != hi {
		t.Errorf("same seed: [%v, %v] (%v), then [%v, %v]", lo, hi, err, lo2, hi2)
	}
	lo3, hi3, _ := BootstrapAUC(scores, pos, 1000, 0.95, 43)
	if lo3 == lo && hi3 == hi {
		t.Errorf("another seed gave the same interval [%v, %v]", lo, hi)
	}
	// A wider level gives a wider interval from the same resamples.
	lo99, hi99, _ := BootstrapAUC(scores, pos, 1000, 0.99, 42)
	if !(lo99 <= lo && hi99 >= hi) {
		t.Errorf("99%% CI [%v, %v] inside the 95%% one [%v, %v]", lo99, hi99, lo, hi)
	}
}

func TestBootstrapAUCDegenerate(t *testing.T) {
	T, F := true, false
	// Perfect separation: every resample is separated too.
	lo, hi, err := BootstrapAUC([]float64{0.1, 0.2, 0.3, 0.7, 0.8, 0.9}, []bool{F, F, F, T, T, T}, 100, 0.95, 1)
	if err != nil || lo != 1 || hi != 1 {
		t.Errorf("perfect: [%v, %v] %v, want [1, 1]", lo, hi, err)
	}
	// All tied: every resample is 0.5.
	lo, hi, err = BootstrapAUC([]float64{0.4, 0.4, 0.4, 0.4}, []bool{F, T, F, T}, 100, 0.95, 1)
	if err != nil || lo != 0.5 || hi != 0.5 {
		t.Errorf("tied: [%v, %v] %v, want [0.5, 0.5]", lo, hi, err)
	}
	if _, _, err := BootstrapAUC([]float64{0.4, 0.5}, []bool{T, T}, 100, 0.95, 1); err == nil {
		t.Error("one class: no error")
	}
	if _, _, err := BootstrapAUC([]float64{0.4, 0.5}, []bool{T, F}, 0, 0.95, 1); err == nil {
		t.Error("0 resamples: no error")
	}
	if _, _, err := BootstrapAUC([]float64{0.4, 0.5}, []bool{T, F}, 10, 1, 1); err == nil {
		t.Error("level 1: no error")
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{4, 1, 3, 2} // sorted: 1 2 3 4
	orig := slices.Clone(xs)
	tests := []struct {
		p, want float64
	}{
		{0, 1}, {100, 4}, {50, 2.5}, {10, 1.3}, {90, 3.7}, {25, 1.75}, {-5, 1}, {150, 4},
	}
	for _, tc := range tests {
		if got := Percentile(xs, tc.p); !near(got, tc.want) {
			t.Errorf("Percentile(%v, %v) = %v, want %v", xs, tc.p, got, tc.want)
		}
	}
	if !slices.Equal(xs, orig) {
		t.Errorf("Percentile reordered its input: %v", xs)
	}
	if got := Median([]float64{5, 1, 9}); got != 5 {
		t.Errorf("Median odd = %v, want 5", got)
	}
	if got := Percentile([]float64{7}, 10); got != 7 {
		t.Errorf("one value: %v, want 7", got)
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Mean(nil)) {
		t.Error("no values: want NaN")
	}
	if got := Mean([]float64{1, 2, 6}); got != 3 {
		t.Errorf("Mean = %v, want 3", got)
	}
}

func TestDice(t *testing.T) {
	T, F := true, false
	tests := []struct {
		name string
		a, b []bool
		want float64
	}{
		{"identical", []bool{T, T, F, F}, []bool{T, T, F, F}, 1},
		{"half overlap", []bool{T, T, F, F}, []bool{F, T, T, F}, 0.5},
		{"disjoint", []bool{T, F, F, F}, []bool{F, F, T, F}, 0},
		{"missed", []bool{T, T, T, F}, []bool{F, F, F, F}, 0},
		{"both empty", []bool{F, F}, []bool{F, F}, 1},
		// |A|=3, |B|=1, |A∩B|=1: 2/4
		{"subset", []bool{T, T, T, F}, []bool{F, T, F, F}, 0.5},
	}
	for _, tc := range tests {
		// As a truth of label 3 and a mask whose label 1 is the code.
		truth := make([]uint8, len(tc.a))
		mask := make([]int16, len(tc.b))
		for i := range tc.a {
			if tc.a[i] {
				truth[i] = 3
			}
			if tc.b[i] {
				mask[i] = 1
			}
		}
		if got := LesionDice(truth, 3, mask, []string{"X"}, "X"); !near(got, tc.want) {
			t.Errorf("%s: Dice = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfusion(t *testing.T) {
	T, F := true, false
	c := Count([]bool{T, T, T, T, F, F, F}, []bool{T, T, T, F, T, F, F})
	if c != (Confusion{TP: 3, FN: 1, FP: 1, TN: 2}) {
		t.Fatalf("Count = %+v", c)
	}
	if !near(c.Sensitivity(), 0.75) || !near(c.Specificity(), 2.0/3) {
		t.Errorf("sensitivity %v, specificity %v; want 0.75, 2/3", c.Sensitivity(), c.Specificity())
	}
	if c := Count([]bool{F, F}, []bool{T, F}); !math.IsNaN(c.Sensitivity()) || c.Specificity() != 0.5 {
		t.Errorf("no positives: sensitivity %v (want NaN), specificity %v", c.Sensitivity(), c.Specificity())
	}
}

func TestRelError(t *testing.T) {
	if got := RelError(9, 10); !near(got, 0.1) {
		t.Errorf("RelError(9, 10) = %v", got)
	}
	if got := RelError(12, 10); !near(got, 0.2) {
		t.Errorf("RelError(12, 10) = %v", got)
	}
	if !math.IsNaN(RelError(1, 0)) {
		t.Error("RelError(1, 0) is not NaN")
	}
}

func TestLesionDice(t *testing.T) {
	// Truth: an ICH (1) on voxels 0-3, an SDH (2) on 6-7.
	truth := []uint8{1, 1, 1, 1, 0, 0, 2, 2}
	// The result's labels: 1 is MaskCodes[0] = "SDH", 2 is "ICH".
	mask := []int16{2, 2, 0, 0, 0, 1, 1, 1}
	codes := []string{"SDH", "ICH"}
	// ICH: truth 4 voxels, predicted 2 (voxels 0, 1), both: 2·2/6.
	if got := LesionDice(truth, 1, mask, codes, "ICH"); !near(got, 4.0/6) {
		t.Errorf("ICH Dice = %v, want 2/3", got)
	}
	// SDH: truth 2 voxels, predicted 3 (5-7), both 2: 4/5.
	if got := LesionDice(truth, 2, mask, codes, "SDH"); !near(got, 0.8) {
		t.Errorf("SDH Dice = %v, want 0.8", got)
	}
	// No mask, or no label for the code: a missed lesion.
	if got := LesionDice(truth, 1, nil, nil, "ICH"); got != 0 {
		t.Errorf("no mask: Dice %v, want 0", got)
	}
	if got := LesionDice(truth, 1, mask, []string{"SDH"}, "ICH"); got != 0 {
		t.Errorf("no ICH label: Dice %v, want 0", got)
	}
	// The labels swapped back: an exact mask.
	exact := []int16{1, 1, 1, 1, 0, 0, 2, 2}
	if got := LesionDice(truth, 2, exact, []string{"ICH", "SDH"}, "SDH"); got != 1 {
		t.Errorf("exact SDH: Dice %v, want 1", got)
	}
}

// TestPhantomRoundTrip checks evalPhantom's premise on the real path: a
// phantom written as DICOM and assembled again lies on the phantom's own
// grid with its values in its voxel order, so that its label mask (as
// the ensemble's mask would be, on the series' grid) scores Dice 1 for
// every lesion.
func TestPhantomRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads a 32-slice series")
	}
	p, err := phantom.Generate(phantom.Spec{Seed: 900001, Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH}, {Kind: phantom.KindSDH}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	v, err := loadSeries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameGrid(v, p.LabelVolume()); err != nil {
		t.Fatal(err)
	}
	if err := sameValues(v, p.HU); err != nil {
		t.Fatal(err)
	}
	if len(p.Lesions) != 2 {
		t.Fatalf("%d lesions, want 2", len(p.Lesions))
	}
	mask := p.LabelVolume().Stored // labels 1 ICH, 2 SDH
	codes := []string{"ICH", "SDH"}
	for _, l := range p.Lesions {
		if got := LesionDice(p.Labels, l.Label, mask, codes, codeOfKind[l.Kind]); got != 1 {
			t.Errorf("%s: Dice of its own mask %v, want 1", l.Kind, got)
		}
	}
	// One slice off (the mask shifted by a slice) must not pass.
	plane := p.Size[1] * p.Size[2]
	shifted := append(make([]int16, plane), mask[:len(mask)-plane]...)
	for _, l := range p.Lesions {
		if got := LesionDice(p.Labels, l.Label, shifted, codes, codeOfKind[l.Kind]); got > 0.95 {
			t.Errorf("%s: Dice of a shifted mask %v", l.Kind, got)
		}
	}
	// A volume with other values is told apart.
	v.Stored[len(v.Stored)/2] += 100
	if err := sameValues(v, p.HU); err == nil {
		t.Error("a changed voxel passed sameValues")
	}
	w := *v
	w.Origin[2] += 5
	if err := sameGrid(&w, p.LabelVolume()); err == nil {
		t.Error("a moved origin passed sameGrid")
	}
}
