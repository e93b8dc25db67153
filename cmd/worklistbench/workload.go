package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/worklist"
)

// The operations of the benchmark, in table order.
const (
	opUpsertNew      = iota // Upsert of a study the worklist has never seen
	opUpsertExisting        // Upsert of an open study (a re-send; header sometimes changed)
	opSetFindings           // SetFindings with one finding of a random tier
	opClaim                 // Claim of an open study
	opComplete              // Complete of the study just claimed
	opList                  // List(Filter{Limit: 50}): the top of the queue
	opGoZadd                // baseline: a plain ZADD from the same go-redis client
	opGoZrange              // baseline: a plain ZRANGE key 0 49 from the same go-redis client
	numOps
)

// numWorklistOps is the number of worklist operations; the others are
// baselines.
const numWorklistOps = opGoZadd

var opNames = [numOps]string{
	opUpsertNew:      "worklist upsert (new study)",
	opUpsertExisting: "worklist upsert (existing study)",
	opSetFindings:    "worklist set findings (reprioritise)",
	opClaim:          "worklist claim",
	opComplete:       "worklist complete",
	opList:           "worklist list top 50",
	opGoZadd:         "go-redis ZADD (baseline, same client)",
	opGoZrange:       "go-redis ZRANGE 0 49 (baseline, same client)",
}

// studies makes the synthetic studies of one run: UIDs numbered from 0,
// headers drawn from a seeded generator so that a study's header depends
// only on its number and a revision.
type studies struct {
	base time.Time     // received times lie in the 8 h before base
	next atomic.Uint64 // number of the next new study
}

var (
	modalities = []string{"CT", "CT", "CT", "MR", "MR", "CR", "US"}
	bodyParts  = []string{"HEAD", "CHEST", "ABDOMEN", "SPINE", "PELVIS"}
	priorities = []string{"ROUTINE", "ROUTINE", "ROUTINE", "ROUTINE", "ROUTINE", "ROUTINE", "MEDIUM", "HIGH", "HIGH", "STAT"}
	findings   = []struct{ code, name string }{
		{"ich", "intracranial haemorrhage"}, {"pe", "pulmonary embolism"},
		{"ptx", "pneumothorax"}, {"lvo", "large vessel occlusion"}, {"fx", "fracture"},
	}
)

func uid(n uint64) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1043.%d", n) }

// study returns study n at header revision rev (a re-send with rev > 0
// may carry another description, as a corrected order would).
func (s *studies) study(n uint64, rev int) worklist.Study {
	r := rand.New(rand.NewPCG(n, 0x5eed))
	mod := modalities[r.IntN(len(modalities))]
	body := bodyParts[r.IntN(len(bodyParts))]
	return worklist.Study{
		StudyUID:        uid(n),
		PatientID:       fmt.Sprintf("P%07d", n%500000),
		PatientName:     fmt.Sprintf("BENCH^PATIENT%d", n%500000),
		AccessionNumber: fmt.Sprintf("A%09d", n),
		Modality:        mod,
		BodyPart:        body,
		Description:     fmt.Sprintf("%s %s rev %d", mod, body, rev),
		OrderPriority:   priorities[r.IntN(len(priorities))],
		Received:        s.base.Add(-time.Duration(r.Int64N(int64(8 * time.Hour)))),
	}
}

// randomFindings returns one finding of a random tier (critical 10%, urgent
// 30%, routine 60%).
func randomFindings(r *rand.Rand) []worklist.Finding {
	tier := worklist.TierRoutine
	switch x := r.IntN(10); {
	case x == 0:
		tier = worklist.TierCritical
	case x <= 3:
		tier = worklist.TierUrgent
	}
	f := findings[r.IntN(len(findings))]
	return []worklist.Finding{{
		Code: f.code, Name: f.name, Tier: tier,
		Probability: r.Float64(), VolumeML: float64(r.IntN(500)) / 10, Model: "bench-1",
	}}
}

// worker is one goroutine of a phase. It owns the open studies in ids (no
// other worker touches them), so claims never conflict.
type worker struct {
	id    int
	wl    *worklist.Worklist
	rdb   *redis.Client // for the baselines
	zadd  string        // sorted set the ZADD baseline writes
	zrng  string        // sorted set (100,000 members) the ZRANGE baseline reads
	src   *studies
	ids   []uint64 // open studies this worker owns
	rng   *rand.Rand
	rt    roundTrips
	names map[string]int  // commands sent, by name, when not nil (see roundTrips.names)
	ctx   context.Context // counts into rt
	stats [numOps]opStats
	user  string
}

func newWorker(ctx context.Context, id int, wl *worklist.Worklist, src *studies, ids []uint64) *worker {
	w := &worker{id: id, wl: wl, src: src, ids: ids, rng: rand.New(rand.NewPCG(uint64(id), 42)), user: fmt.Sprintf("bench.radiologist%d", id)}
	w.ctx = withRoundTrips(ctx, &w.rt)
	return w
}

// timed runs f under the worker's counting context and records it as op.
func (w *worker) timed(op int, f func(ctx context.Context) error) error {
	w.rt = roundTrips{names: w.names}
	t0 := time.Now()
	err := f(w.ctx)
	d := time.Since(t0)
	if err != nil {
		err = fmt.Errorf("%s: %w", opNames[op], err)
	}
	w.stats[op].add(d, &w.rt, err)
	return err
}

func (w *worker) upsertNew() error {
	n := w.src.next.Add(1) - 1
	s := w.src.study(n, 0)
	err := w.timed(opUpsertNew, func(ctx context.Context) error {
		_, err := w.wl.Upsert(ctx, s, "bench.pacs")
		return err
	})
	if err == nil {
		w.ids = append(w.ids, n)
	}
	return err
}

func (w *worker) upsertExisting() error {
	if len(w.ids) == 0 {
		return w.upsertNew()
	}
	n := w.ids[w.rng.IntN(len(w.ids))]
	s := w.src.study(n, w.rng.IntN(2))
	return w.timed(opUpsertExisting, func(ctx context.Context) error {
		_, err := w.wl.Upsert(ctx, s, "bench.pacs")
		return err
	})
}

func (w *worker) setFindings() error {
	if len(w.ids) == 0 {
		return w.upsertNew()
	}
	id := uid(w.ids[w.rng.IntN(len(w.ids))])
	fs := randomFindings(w.rng)
	return w.timed(opSetFindings, func(ctx context.Context) error {
		_, err := w.wl.SetFindings(ctx, id, fs, "bench.triage")
		return err
	})
}

// claimComplete claims and completes one of the worker's open studies and
// upserts a new one, so the number of open studies stays the same.
func (w *worker) claimComplete() error {
	if len(w.ids) == 0 {
		return w.upsertNew()
	}
	i := w.rng.IntN(len(w.ids))
	id := uid(w.ids[i])
	w.ids[i] = w.ids[len(w.ids)-1]
	w.ids = w.ids[:len(w.ids)-1]
	if err := w.timed(opClaim, func(ctx context.Context) error {
		_, err := w.wl.Claim(ctx, id, w.user)
		return err
	}); err != nil {
		return err
	}
	if err := w.timed(opComplete, func(ctx context.Context) error {
		_, err := w.wl.Complete(ctx, id, w.user)
		return err
	}); err != nil {
		return err
	}
	return w.upsertNew()
}

// list lists the top 50. A page a little short is counted, not failed:
// List may drop a study completed while it ran (its documented contract
// when it reads in more than one round trip).
func (w *worker) list() error {
	short := false
	err := w.timed(opList, func(ctx context.Context) error {
		items, next, err := w.wl.List(ctx, worklist.Filter{Limit: 50})
		switch {
		case err != nil:
		case len(items) > 50 || len(items) == 0 || next == "":
			err = fmt.Errorf("got %d items and next cursor %q, want 50 and more pages", len(items), next)
		case len(items) < 50:
			short = true
		}
		return err
	})
	if short {
		w.stats[opList].short++
	}
	return err
}

// goZadd adds a random member with a random score, as redis-benchmark's
// ZADD with -r 100000 does.
func (w *worker) goZadd() error {
	z := redis.Z{Score: float64(w.rng.IntN(100000)), Member: fmt.Sprintf("member:%012d", w.rng.IntN(100000))}
	return w.timed(opGoZadd, func(ctx context.Context) error {
		return w.rdb.ZAdd(ctx, w.zadd, z).Err()
	})
}

func (w *worker) goZrange() error {
	return w.timed(opGoZrange, func(ctx context.Context) error {
		n, err := w.rdb.ZRange(ctx, w.zrng, 0, 49).Result()
		if err == nil && len(n) != 50 {
			err = fmt.Errorf("got %d members, want 50", len(n))
		}
		return err
	})
}

// mixed does one step of the mix: an upsert of an existing study, a
// reprioritisation, a claim+complete pair followed by the upsert of a new
// study (so that the number of open studies stays the same), or a top-50
// listing, each with probability 1/4.
func (w *worker) mixed() error {
	switch w.rng.IntN(4) {
	case 0:
		return w.upsertExisting()
	case 1:
		return w.setFindings()
	case 2:
		return w.claimComplete()
	}
	return w.list()
}

// runPhase runs step on every worker until d has passed or ctx is done,
// and returns the elapsed time. Errors are counted in the workers' stats;
// after maxErrs errors in one worker it stops.
func runPhase(ctx context.Context, workers []*worker, d time.Duration, step func(*worker) error) time.Duration {
	const maxErrs = 100
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs := 0
			for time.Now().Before(end) && ctx.Err() == nil {
				if step(w) != nil {
					if errs++; errs >= maxErrs {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}
