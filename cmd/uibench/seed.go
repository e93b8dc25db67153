package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/radtriage/radtriage/worklist"
)

// seeded is one study the benchmark writes to the worklist, with the
// findings it reports for it (none for most).
type seeded struct {
	study    worklist.Study
	findings []worklist.Finding
}

// seedStudies makes n synthetic worklist studies, deterministic for
// seed: received over the last 6 hours, 3% STAT orders, 15% HIGH, the
// rest routine; a third with AI findings (ICH or SDH, one in ten of them
// critical, the rest routine with a low probability). Study UIDs are
// 2.25.<seed><index>, accession numbers UIB<index>.
func seedStudies(n int, now time.Time, seed uint64) []seeded {
	rng := rand.New(rand.NewPCG(seed, 8))
	out := make([]seeded, n)
	for i := range out {
		s := worklist.Study{
			StudyUID:        fmt.Sprintf("2.25.%d%07d", seed, i),
			PatientID:       fmt.Sprintf("UIB-P%06d", i),
			PatientName:     fmt.Sprintf("BENCH^PATIENT %d", i),
			AccessionNumber: fmt.Sprintf("UIB%07d", i),
			Modality:        "CT",
			BodyPart:        "HEAD",
			Description:     "CT HEAD WITHOUT CONTRAST",
			OrderPriority:   "ROUTINE",
			Received:        now.Add(-time.Duration(rng.Int64N(int64(6 * time.Hour)))).Truncate(time.Millisecond),
		}
		if i%5 == 4 {
			s.Modality, s.BodyPart, s.Description = "MR", "BRAIN", "MR BRAIN WITHOUT CONTRAST"
		}
		switch r := rng.IntN(100); {
		case r < 3:
			s.OrderPriority = "STAT"
		case r < 18:
			s.OrderPriority = "HIGH"
		}
		var fs []worklist.Finding
		if rng.IntN(3) == 0 {
			f := worklist.Finding{Code: "ICH", Name: "intracranial haemorrhage", Tier: worklist.TierRoutine,
				Probability: 0.05 + 0.3*rng.Float64(), Model: "uibench"}
			if rng.IntN(2) == 0 {
				f.Code, f.Name = "SDH", "subdural haematoma"
			}
			if rng.IntN(10) == 0 {
				f.Tier, f.Probability, f.VolumeML = worklist.TierCritical, 0.8+0.2*rng.Float64(), 1+40*rng.Float64()
			}
			fs = []worklist.Finding{f}
		}
		out[i] = seeded{study: s, findings: fs}
	}
	return out
}

// seedWorklist writes the studies with Upsert (and SetFindings where they
// have findings), workers at a time, and returns the count per tier of
// the items written.
func seedWorklist(ctx context.Context, wl *worklist.Worklist, studies []seeded, workers int) (map[string]int, error) {
	tiers := make([]worklist.Tier, len(studies))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, s := range studies {
		g.Go(func() error {
			it, err := wl.Upsert(ctx, s.study, "uibench")
			if err != nil {
				return fmt.Errorf("upsert %s: %w", s.study.StudyUID, err)
			}
			if len(s.findings) > 0 {
				if it, err = wl.SetFindings(ctx, s.study.StudyUID, s.findings, "uibench"); err != nil {
					return fmt.Errorf("set findings of %s: %w", s.study.StudyUID, err)
				}
			}
			tiers[i] = it.Tier
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, t := range tiers {
		count[string(t)]++
	}
	return count, nil
}

// reorderCandidates returns up to n routine studies without findings,
// the earliest received first. A critical finding moves each from far
// down the list (routine: due 8 h after receipt, behind every critical
// and urgent study, off screen) to the top (due 15 min after receipt,
// earlier than any other), where the radiologist is looking: the
// re-order a reader sees. (The most recently received would land among
// the other critical studies, hundreds of rows down, off screen, where
// the windowed list renders nothing.)
func reorderCandidates(studies []seeded, n int) []seeded {
	var c []seeded
	for _, s := range studies {
		if len(s.findings) == 0 && worklist.PriorityTier(s.study.OrderPriority) == worklist.TierRoutine {
			c = append(c, s)
		}
	}
	slices.SortStableFunc(c, func(a, b seeded) int { return a.study.Received.Compare(b.study.Received) })
	return c[:min(n, len(c))]
}
