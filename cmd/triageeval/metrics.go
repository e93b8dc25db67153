package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// errOneClass: AUC needs at least one positive and one negative case.
var errOneClass = errors.New("AUC needs at least one positive and one negative case")

// AUC is the area under the ROC curve of scores against the truth: the
// Mann-Whitney U statistic over nPos·nNeg, the probability that a random
// positive case scores above a random negative one, a tie counting one
// half. It is computed from average ranks in O(n log n):
//
//	AUC = (Σ rank(positive) − nPos(nPos+1)/2) / (nPos·nNeg)
//
// the same as the naive
//
//	for each positive p, negative n: u += 1 if s[p] > s[n], ½ if equal
//	AUC = u / (nPos·nNeg)
//
// A NaN score is an error. It panics when the lengths differ.
func AUC(scores []float64, positive []bool) (float64, error) {
	if len(scores) != len(positive) {
		panic("triageeval: AUC: scores and positive differ in length")
	}
	nPos, nNeg := 0, 0
	for i, p := range positive {
		if math.IsNaN(scores[i]) {
			return math.NaN(), errors.New("AUC: NaN score")
		}
		if p {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN(), errOneClass
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum float64 // ranks from 1; ties get their average rank
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+1+j) / 2 // mean of ranks i+1 … j
		for _, k := range idx[i:j] {
			if positive[k] {
				rankSum += avg
			}
		}
		i = j
	}
	np, nn := float64(nPos), float64(nNeg)
	return (rankSum - np*(np+1)/2) / (np * nn), nil
}

// BootstrapAUC returns the percentile bootstrap confidence interval
// [lo, hi] of AUC at the given level (0.95): resamples times, the
// positive and the negative cases are each drawn with replacement, as
// many as there are (a stratified bootstrap, so that every resample has
// both classes), from a PCG generator seeded with seed, so that the
// interval is reproducible.
func BootstrapAUC(scores []float64, positive []bool, resamples int, level float64, seed uint64) (lo, hi float64, err error) {
	if _, err := AUC(scores, positive); err != nil {
		return math.NaN(), math.NaN(), err
	}
	if resamples < 1 || !(level > 0 && level < 1) {
		return math.NaN(), math.NaN(), errors.New("BootstrapAUC: want resamples >= 1 and a level in (0, 1)")
	}
	var pos, neg []float64
	for i, p := range positive {
		if p {
			pos = append(pos, scores[i])
		} else {
			neg = append(neg, scores[i])
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x626f6f74))
	s := make([]float64, len(scores))
	truth := make([]bool, len(scores))
	for i := range len(pos) {
		truth[i] = true
	}
	aucs := make([]float64, resamples)
	for r := range aucs {
		for i := range pos {
			s[i] = pos[rng.IntN(len(pos))]
		}
		for i := range neg {
			s[len(pos)+i] = neg[rng.IntN(len(neg))]
		}
		a, err := AUC(s, truth)
		if err != nil {
			return math.NaN(), math.NaN(), err
		}
		aucs[r] = a
	}
	alpha := (1 - level) / 2
	return Percentile(aucs, 100*alpha), Percentile(aucs, 100*(1-alpha)), nil
}

// Percentile returns the p-th percentile (0 to 100) of xs by linear
// interpolation between the closest ranks (numpy's default): the value
// at position p/100·(n−1) of the sorted values. NaN for no values.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || math.IsNaN(p) {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	p = min(max(p, 0), 100)
	pos := p / 100 * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i] + f*(s[i+1]-s[i])
}

// Median is Percentile(xs, 50).
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Mean is the arithmetic mean; NaN for no values.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// LesionDice is the Dice coefficient 2|A∩B| / (|A|+|B|) (1 when both
// are empty) of one true lesion A, the voxels of truth equal to label,
// against the result's mask B of code, the voxels of mask equal to i+1
// where codes[i] is code (triage.Result's Mask and MaskCodes, on the
// grid of truth). With no mask (nil) or no label for the code B is empty:
// a missed lesion scores 0. It panics when a mask is given whose length
// differs from truth's.
func LesionDice(truth []uint8, label uint8, mask []int16, codes []string, code string) float64 {
	if mask != nil && len(mask) != len(truth) {
		panic("triageeval: LesionDice: mask and truth differ in length")
	}
	k := slices.Index(codes, code)
	var nt, np, both int
	for i, x := range truth {
		t := x == label
		p := mask != nil && k >= 0 && int(mask[i]) == k+1
		if t {
			nt++
		}
		if p {
			np++
		}
		if t && p {
			both++
		}
	}
	if nt+np == 0 {
		return 1
	}
	return 2 * float64(both) / float64(nt+np)
}

// RelError is |got − want| / want, the relative error of a measured
// volume; NaN when want is not positive.
func RelError(got, want float64) float64 {
	if !(want > 0) {
		return math.NaN()
	}
	return math.Abs(got-want) / want
}

// Confusion counts a binary decision against the truth.
type Confusion struct {
	TP, FP, TN, FN int
}

// Count tallies decisions against the truth. It panics when the lengths
// differ.
func Count(truth, decided []bool) Confusion {
	if len(truth) != len(decided) {
		panic("triageeval: Count: truth and decisions differ in length")
	}
	var c Confusion
	for i, t := range truth {
		switch d := decided[i]; {
		case t && d:
			c.TP++
		case t:
			c.FN++
		case d:
			c.FP++
		default:
			c.TN++
		}
	}
	return c
}

// Sensitivity is TP/(TP+FN); NaN with no positive case.
func (c Confusion) Sensitivity() float64 { return ratio(c.TP, c.TP+c.FN) }

// Specificity is TN/(TN+FP); NaN with no negative case.
func (c Confusion) Specificity() float64 { return ratio(c.TN, c.TN+c.FP) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
