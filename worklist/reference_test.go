package worklist

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// refList is the plain reference implementation of the worklist rules that
// the property test compares the Redis implementation with.
type refList struct {
	deadlines map[Tier]time.Duration
	lease     time.Duration
	studies   map[string]*refStudy
}

type refStudy struct {
	s        Study
	findings []Finding
	ov       *Override
	status   Status
	holder   string
	lease    time.Time
	done     time.Time
}

func (r *refStudy) tier() Tier {
	if r.ov != nil && r.ov.Tier != "" {
		return r.ov.Tier
	}
	t := PriorityTier(r.s.OrderPriority)
	for _, f := range r.findings {
		t = MoreUrgent(t, f.Tier)
	}
	return t
}

func (l *refList) due(r *refStudy) time.Time {
	if r.ov != nil && !r.ov.Due.IsZero() {
		return r.ov.Due.Truncate(time.Millisecond)
	}
	return r.s.Received.Truncate(time.Millisecond).Add(l.deadlines[r.tier()])
}

// queue returns the open and claimed studies, earliest due first, ties by UID.
func (l *refList) queue() []*refStudy {
	var q []*refStudy
	for _, r := range l.studies {
		if r.status != StatusDone {
			q = append(q, r)
		}
	}
	slices.SortFunc(q, func(a, b *refStudy) int {
		return cmp.Or(l.due(a).Compare(l.due(b)), cmp.Compare(a.s.StudyUID, b.s.StudyUID))
	})
	return q
}

func (l *refList) doneList() []*refStudy {
	var q []*refStudy
	for _, r := range l.studies {
		if r.status == StatusDone {
			q = append(q, r)
		}
	}
	slices.SortFunc(q, func(a, b *refStudy) int {
		return cmp.Or(a.done.Compare(b.done), cmp.Compare(a.s.StudyUID, b.s.StudyUID))
	})
	return q
}

// compare checks that w lists exactly what l would, paging by pageSize.
func (l *refList) compare(t *testing.T, w *Worklist, pageSize int, step int) {
	t.Helper()
	got := listAll(t, w, Filter{Limit: pageSize})
	want := l.queue()
	mismatch := len(got) != len(want)
	for i := 0; !mismatch && i < len(got); i++ {
		g, r := got[i], want[i]
		if g.StudyUID != r.s.StudyUID || g.Tier != r.tier() || !g.Due.Equal(l.due(r)) || g.Status != r.status || g.ClaimedBy != r.holder {
			mismatch = true
		}
		if top := TopFinding(r.findings); (top == nil) != (g.Finding == nil) || top != nil && *top != *g.Finding {
			t.Fatalf("step %d: %s finding %+v, want %+v", step, g.StudyUID, g.Finding, top)
		}
		if (r.ov == nil) != (g.Override == nil) || r.ov != nil && (r.ov.Tier != g.Override.Tier || !r.ov.Due.Equal(g.Override.Due) || r.ov.By != g.Override.By || r.ov.Reason != g.Override.Reason) {
			t.Fatalf("step %d: %s override %+v, want %+v", step, g.StudyUID, g.Override, r.ov)
		}
		if g.Reason == "" {
			t.Errorf("step %d: %s has no reason", step, g.StudyUID)
		}
	}
	if mismatch {
		var ws string
		for _, r := range want {
			ws += fmt.Sprintf("\n  %s %s %s %s", r.s.StudyUID, r.tier(), l.due(r).Format(time.RFC3339), r.status)
		}
		t.Fatalf("step %d: queue differs from the reference\ngot:%s\nwant:%s", step, fmtItems(got), ws)
	}
	gotDone := listAll(t, w, Filter{Status: StatusDone, Limit: pageSize})
	var wantDone []string
	for _, r := range l.doneList() {
		wantDone = append(wantDone, r.s.StudyUID)
	}
	if !slices.Equal(uids(gotDone), wantDone) {
		t.Fatalf("step %d: done list %v, want %v", step, uids(gotDone), wantDone)
	}
}

// TestOrderingMatchesReference runs a few hundred random arrivals, header
// updates, findings, overrides, claims, releases, completions, lease expiries
// and clock advances, and checks after each batch that the worklist's order
// (and tier, due time, status, holder) equals the reference's.
func TestOrderingMatchesReference(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
				b.prefix += fmt.Sprint(seed, ":")
				runReference(t, b, seed, 400)
			})
		}
	})
}

func runReference(t *testing.T, b *backend, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 42))
	w := b.newWorklist(t, Config{Lease: 5 * time.Minute})
	ref := &refList{deadlines: w.Config().Deadlines, lease: 5 * time.Minute, studies: map[string]*refStudy{}}
	base := b.clock.Now()
	// UIDs whose bytewise order differs from their numeric order.
	pool := make([]string, 60)
	for i := range pool {
		pool[i] = fmt.Sprintf("1.2.826.0.1.%d.%d", rng.IntN(20), i)
	}
	prios := []string{"", "ROUTINE", "LOW", "MEDIUM", "HIGH", "stat", "STAT", "ASAP", "urgent"}
	users := []string{"ann", "bob", "cho"}
	randFindings := func() []Finding {
		fs := make([]Finding, rng.IntN(4))
		for i := range fs {
			fs[i] = Finding{Code: fmt.Sprint("f", rng.IntN(5)), Name: "finding", Probability: float64(rng.IntN(101)) / 100,
				Tier: Tiers[rng.IntN(3)], VolumeML: float64(rng.IntN(30)) / 3, Model: []string{"", "ich-v2"}[rng.IntN(2)]}
		}
		return fs
	}
	check := func(step int, op string, err, want error) {
		t.Helper()
		if want == nil && err != nil {
			t.Fatalf("step %d %s: unexpected error %v", step, op, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("step %d %s: error %v, want %v", step, op, err, want)
		}
	}
	for step := range steps {
		uid := pool[rng.IntN(len(pool))]
		r := ref.studies[uid]
		now := b.clock.Now().Truncate(time.Millisecond)
		switch p := rng.IntN(100); {
		case p < 30: // arrival or header update
			s := Study{StudyUID: uid, Modality: []string{"CT", "MR"}[rng.IntN(2)], OrderPriority: prios[rng.IntN(len(prios))],
				Received: base.Add(time.Duration(rng.IntN(40)) * time.Minute)}
			_, err := w.Upsert(ctx, s, "pacs")
			switch {
			case r == nil:
				check(step, "upsert", err, nil)
				ref.studies[uid] = &refStudy{s: s, status: StatusOpen}
			case r.status == StatusDone:
				check(step, "upsert", err, ErrCompleted)
			default:
				check(step, "upsert", err, nil)
				s.Received = r.s.Received // the first received time is kept
				r.s = s
			}
		case p < 50:
			fs := randFindings()
			_, err := w.SetFindings(ctx, uid, fs, "triage")
			switch {
			case r == nil:
				check(step, "findings", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "findings", err, ErrCompleted)
			default:
				check(step, "findings", err, nil)
				r.findings = fs
			}
		case p < 60:
			o := Override{Reason: "clinician called", By: users[rng.IntN(3)]}
			switch rng.IntN(3) {
			case 0:
				o.Tier = Tiers[rng.IntN(3)]
			case 1:
				o.Due = base.Add(time.Duration(rng.IntN(600)) * time.Minute)
			default:
				o.Tier, o.Due = Tiers[rng.IntN(3)], base.Add(time.Duration(rng.IntN(600))*time.Minute)
			}
			_, err := w.SetOverride(ctx, uid, o)
			switch {
			case r == nil:
				check(step, "override", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "override", err, ErrCompleted)
			default:
				check(step, "override", err, nil)
				r.ov = &o
			}
		case p < 67:
			_, err := w.ClearOverride(ctx, uid, "admin")
			switch {
			case r == nil:
				check(step, "clear override", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "clear override", err, ErrCompleted)
			default:
				check(step, "clear override", err, nil)
				r.ov = nil
			}
		case p < 77:
			u := users[rng.IntN(3)]
			_, err := w.Claim(ctx, uid, u)
			switch {
			case r == nil:
				check(step, "claim", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "claim", err, ErrCompleted)
			case r.status == StatusClaimed && r.holder != u && r.lease.After(now):
				check(step, "claim", err, ErrConflict)
			default:
				check(step, "claim", err, nil)
				r.status, r.holder, r.lease = StatusClaimed, u, now.Add(ref.lease)
			}
		case p < 82:
			u := users[rng.IntN(3)]
			_, err := w.Release(ctx, uid, u)
			switch {
			case r == nil:
				check(step, "release", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "release", err, ErrCompleted)
			case r.status != StatusClaimed:
				check(step, "release", err, ErrNotClaimed)
			case r.holder != u && r.lease.After(now):
				check(step, "release", err, ErrConflict)
			default:
				check(step, "release", err, nil)
				r.status, r.holder = StatusOpen, ""
			}
		case p < 90:
			u := users[rng.IntN(3)]
			_, err := w.Complete(ctx, uid, u)
			switch {
			case r == nil:
				check(step, "complete", err, ErrNotFound)
			case r.status == StatusDone:
				check(step, "complete", err, ErrCompleted)
			case r.status == StatusClaimed && r.holder != u && r.lease.After(now):
				check(step, "complete", err, ErrConflict)
			default:
				check(step, "complete", err, nil)
				r.status, r.holder, r.done = StatusDone, "", now
			}
		case p < 97:
			b.clock.Advance(time.Duration(rng.IntN(180)) * time.Second)
		default:
			n, err := w.ExpireLeases(ctx)
			check(step, "expire", err, nil)
			want := 0
			for _, r := range ref.studies {
				if r.status == StatusClaimed && !r.lease.After(now) {
					r.status, r.holder = StatusOpen, ""
					want++
				}
			}
			if n != want {
				t.Fatalf("step %d: ExpireLeases = %d, want %d", step, n, want)
			}
		}
		if step%25 == 24 || step == steps-1 {
			ref.compare(t, w, 1+rng.IntN(20), step)
		}
	}
	if len(ref.queue()) < 10 || len(ref.doneList()) < 3 {
		t.Fatalf("the random walk left %d queued and %d done studies: too few to test much", len(ref.queue()), len(ref.doneList()))
	}
}
