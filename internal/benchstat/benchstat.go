// Package benchstat holds the statistics the benchmark programs
// (cmd/worklistbench, cmd/pipelinebench, cmd/uibench) share.
package benchstat

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the q-quantile (0 < q <= 1) of samples by the
// nearest-rank method: the smallest sample with at least q of all samples
// at or below it (with 10 samples, p95 is the largest). 0 for none.
// samples is left as it is.
func Percentile(samples []time.Duration, q float64) time.Duration {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return PercentileSorted(sorted, q)
}

// PercentileSorted is Percentile of samples already sorted in increasing
// order, without a copy.
func PercentileSorted(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
