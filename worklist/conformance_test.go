package worklist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClaimIsExclusive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		mustItem(t)(w.Upsert(ctx, study("1.2.3", b.clock.Now(), ""), "pacs"))
		const n = 50
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			wins   []string
			losers []*ClaimConflictError
		)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				user := fmt.Sprintf("rad%02d", i)
				_, err := w.Claim(ctx, "1.2.3", user)
				mu.Lock()
				defer mu.Unlock()
				var ce *ClaimConflictError
				switch {
				case err == nil:
					wins = append(wins, user)
				case errors.As(err, &ce) && errors.Is(err, ErrConflict):
					losers = append(losers, ce)
				default:
					t.Errorf("%s: unexpected error %v", user, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 || len(losers) != n-1 {
			t.Fatalf("%d winners %v and %d conflicts, want 1 and %d", len(wins), wins, len(losers), n-1)
		}
		for _, ce := range losers {
			if ce.Holder != wins[0] || ce.StudyUID != "1.2.3" || !strings.Contains(ce.Error(), wins[0]) {
				t.Fatalf("conflict %q names holder %q, want %q", ce.Error(), ce.Holder, wins[0])
			}
			if want := b.clock.Now().Add(w.Config().Lease); !ce.Until.Equal(want) {
				t.Fatalf("conflict until %v, want %v", ce.Until, want)
			}
		}
		it := mustItem(t)(w.Get(ctx, "1.2.3"))
		if it.Status != StatusClaimed || it.ClaimedBy != wins[0] {
			t.Fatalf("after the race: status %s by %q, want claimed by %s", it.Status, it.ClaimedBy, wins[0])
		}
	})
}

func TestLeaseExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{Lease: time.Minute})
		mustItem(t)(w.Upsert(ctx, study("1.2.3", b.clock.Now(), ""), "pacs"))
		mustItem(t)(w.Upsert(ctx, study("1.2.4", b.clock.Now(), ""), "pacs"))
		it := mustItem(t)(w.Claim(ctx, "1.2.3", "ann"))
		if want := b.clock.Now().Add(time.Minute); it.Status != StatusClaimed || !it.LeaseUntil.Equal(want) {
			t.Fatalf("claimed: status %s lease %v, want claimed until %v", it.Status, it.LeaseUntil, want)
		}
		mustItem(t)(w.Claim(ctx, "1.2.4", "bob"))

		b.clock.Advance(40 * time.Second)
		it = mustItem(t)(w.Claim(ctx, "1.2.4", "bob")) // renewal by the holder
		if want := b.clock.Now().Add(time.Minute); !it.LeaseUntil.Equal(want) {
			t.Fatalf("renewed lease until %v, want %v", it.LeaseUntil, want)
		}
		if n, err := w.ExpireLeases(ctx); err != nil || n != 0 {
			t.Fatalf("ExpireLeases before any lease lapsed = %d, %v; want 0", n, err)
		}
		if _, err := w.Claim(ctx, "1.2.3", "bob"); !errors.Is(err, ErrConflict) {
			t.Fatalf("claim of a live lease: %v, want ErrConflict", err)
		}

		last, err := w.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(20 * time.Second) // ann's lease lapses exactly now; bob's has 40 s left
		n, err := w.ExpireLeases(ctx)
		if err != nil || n != 1 {
			t.Fatalf("ExpireLeases = %d, %v; want 1", n, err)
		}
		it = mustItem(t)(w.Get(ctx, "1.2.3"))
		if it.Status != StatusOpen || it.ClaimedBy != "" || !it.LeaseUntil.IsZero() {
			t.Fatalf("after expiry: %+v, want open and unclaimed", it)
		}
		if it := mustItem(t)(w.Get(ctx, "1.2.4")); it.Status != StatusClaimed {
			t.Fatalf("renewed claim was expired: %+v", it)
		}
		evs, err := w.Events(ctx, last, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Type != EventExpired || evs[0].StudyUID != "1.2.3" || evs[0].By != "system" {
			t.Fatalf("events after expiry = %+v, %v; want one expired event for 1.2.3", evs, err)
		}
		open := listAll(t, w, Filter{Status: StatusOpen})
		if !slices.Equal(uids(open), []string{"1.2.3"}) {
			t.Fatalf("open items %v, want [1.2.3]", uids(open))
		}
		// Without a sweep, a lapsed lease can be taken over at once.
		b.clock.Advance(time.Minute)
		if it := mustItem(t)(w.Claim(ctx, "1.2.4", "cho")); it.ClaimedBy != "cho" {
			t.Fatalf("take-over of a lapsed lease: held by %q", it.ClaimedBy)
		}
		if n, err := w.ExpireLeases(ctx); err != nil || n != 0 {
			t.Fatalf("ExpireLeases after take-over = %d, %v; want 0", n, err)
		}
	})
}

func TestCompletedNeverComesBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		rec := &memRecorder{}
		w := b.newWorklist(t, Config{DoneRetention: time.Hour, Recorder: rec})
		s := study("1.2.3", b.clock.Now(), "STAT")
		mustItem(t)(w.Upsert(ctx, s, "pacs"))
		mustItem(t)(w.Upsert(ctx, study("1.2.4", b.clock.Now(), ""), "pacs"))
		mustItem(t)(w.Claim(ctx, "1.2.3", "ann"))
		if _, err := w.Complete(ctx, "1.2.3", "bob"); !errors.Is(err, ErrConflict) {
			t.Fatalf("complete while another holds the claim: %v, want ErrConflict", err)
		}
		it := mustItem(t)(w.Complete(ctx, "1.2.3", "ann"))
		if it.Status != StatusDone || !it.CompletedAt.Equal(b.clock.Now()) || it.UpdatedBy != "ann" {
			t.Fatalf("completed item %+v", it)
		}
		for name, op := range map[string]func() error{
			"upsert": func() error { _, err := w.Upsert(ctx, s, "pacs"); return err },
			"findings": func() error {
				_, err := w.SetFindings(ctx, "1.2.3", []Finding{{Code: "ich", Tier: TierCritical}}, "triage")
				return err
			},
			"claim":    func() error { _, err := w.Claim(ctx, "1.2.3", "ann"); return err },
			"release":  func() error { _, err := w.Release(ctx, "1.2.3", "ann"); return err },
			"complete": func() error { _, err := w.Complete(ctx, "1.2.3", "ann"); return err },
			"override": func() error {
				_, err := w.SetOverride(ctx, "1.2.3", Override{Tier: TierCritical, By: "ann"})
				return err
			},
			"clear override": func() error { _, err := w.ClearOverride(ctx, "1.2.3", "ann"); return err },
		} {
			if err := op(); !errors.Is(err, ErrCompleted) {
				t.Errorf("%s after complete: %v, want ErrCompleted", name, err)
			}
		}
		if q := listAll(t, w, Filter{}); !slices.Equal(uids(q), []string{"1.2.4"}) {
			t.Fatalf("queue after complete: %v", uids(q))
		}
		if n, err := w.ExpireLeases(ctx); err != nil || n != 0 {
			t.Fatalf("ExpireLeases = %d, %v", n, err)
		}
		if it := mustItem(t)(w.Get(ctx, "1.2.3")); it.Status != StatusDone {
			t.Fatalf("done item within retention: %+v", it)
		}
		if d := listAll(t, w, Filter{Status: StatusDone}); !slices.Equal(uids(d), []string{"1.2.3"}) {
			t.Fatalf("done list %v", uids(d))
		}
		b.clock.Advance(time.Hour)
		if _, err := w.ExpireLeases(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Get(ctx, "1.2.3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("done item past retention: %v, want ErrNotFound", err)
		}
		if d := listAll(t, w, Filter{Status: StatusDone}); len(d) != 0 {
			t.Fatalf("done list past retention %v", uids(d))
		}
		if got := rec.types(); !slices.Equal(got, []string{"completed 1.2.3 ann"}) {
			t.Fatalf("recorded %v", got)
		}
	})
}

// memRecorder collects the changes a Worklist records.
type memRecorder struct {
	mu      sync.Mutex
	changes []Change
	fail    error
}

func (r *memRecorder) Record(_ context.Context, c Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	return r.fail
}

func (r *memRecorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, c := range r.changes {
		s = append(s, c.Type+" "+c.StudyUID+" "+c.By)
	}
	return s
}

func TestRecorder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		rec := &memRecorder{}
		w := b.newWorklist(t, Config{Recorder: rec})
		mustItem(t)(w.Upsert(ctx, study("1.2.3", b.clock.Now(), ""), "pacs"))
		fs := []Finding{{Code: "ich", Name: "haemorrhage", Probability: 0.9, Tier: TierCritical}}
		mustItem(t)(w.SetFindings(ctx, "1.2.3", fs, "triage"))
		mustItem(t)(w.SetOverride(ctx, "1.2.3", Override{Tier: TierRoutine, Reason: "old study", By: "admin"}))
		mustItem(t)(w.ClearOverride(ctx, "1.2.3", "admin"))
		mustItem(t)(w.ClearOverride(ctx, "1.2.3", "admin")) // no override in Redis: recorded all the same
		rec.fail = errors.New("database is down")
		it, err := w.Complete(ctx, "1.2.3", "ann")
		if !errors.Is(err, rec.fail) || it == nil || it.Status != StatusDone {
			t.Fatalf("complete with a failing recorder: %v, %v; want the item and the error", it, err)
		}
		want := []string{"reprioritised 1.2.3 triage", "overridden 1.2.3 admin", "override-cleared 1.2.3 admin", "override-cleared 1.2.3 admin", "completed 1.2.3 ann"}
		if got := rec.types(); !slices.Equal(got, want) {
			t.Fatalf("recorded %v, want %v", got, want)
		}
		if c := rec.changes[0]; len(c.Findings) != 1 || c.Findings[0] != fs[0] || !c.At.Equal(b.clock.Now()) {
			t.Fatalf("recorded findings change %+v", c)
		}
		if c := rec.changes[1]; c.Override == nil || c.Override.Tier != TierRoutine || c.Override.Reason != "old study" || c.Override.By != "admin" {
			t.Fatalf("recorded override change %+v", c)
		}
	})
}

// memSource is an in-memory Source.
type memSource []Entry

func (s memSource) OpenStudies(context.Context) ([]Entry, error) { return s, nil }

func TestRebuildAfterFlushRestoresOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		c, flush := b.private(t)
		w := b.newWorklistOn(t, c, Config{})
		var src memSource
		base := b.clock.Now()
		for i := range 120 {
			uid := fmt.Sprintf("1.2.840.%d", 1000-i)
			s := study(uid, base.Add(time.Duration(i%17)*time.Minute), []string{"", "STAT", "HIGH", "ROUTINE"}[i%4])
			e := Entry{Study: s}
			mustItem(t)(w.Upsert(ctx, s, "pacs"))
			if i%3 == 0 {
				e.Findings = []Finding{{Code: "pe", Name: "pulmonary embolism", Probability: 0.7, Tier: Tiers[i%3]}, {Code: "nod", Probability: 0.4, Tier: TierRoutine}}
				mustItem(t)(w.SetFindings(ctx, uid, e.Findings, "triage"))
			}
			if i%10 == 0 {
				e.Override = &Override{Tier: TierCritical, Due: base.Add(time.Duration(i) * time.Second), Reason: "called", By: "admin", At: base}
				mustItem(t)(w.SetOverride(ctx, uid, *e.Override))
			}
			if e.Findings != nil {
				e.AI = AIDone
			}
			if i%5 == 1 {
				e.AI, e.AIError = AIFailed, fmt.Sprintf("error %d", i)
				mustItem(t)(w.SetAIStatus(ctx, uid, AIFailed, e.AIError, "worker"))
			}
			if i%7 == 0 {
				mustItem(t)(w.Claim(ctx, uid, "ann")) // claims are not restored; order is
			}
			if i%11 == 5 {
				mustItem(t)(w.Complete(ctx, uid, "ann"))
				continue // the store does not list completed studies
			}
			src = append(src, e)
		}
		before := listAll(t, w, Filter{Limit: 37})
		if err := flush(); err != nil {
			t.Fatal(err)
		}
		if empty, err := w.Empty(ctx); err != nil || !empty {
			t.Fatalf("Empty after flush = %v, %v", empty, err)
		}
		n, err := w.Rebuild(ctx, src)
		if err != nil || n != len(src) {
			t.Fatalf("Rebuild = %d, %v; want %d", n, err, len(src))
		}
		if empty, err := w.Empty(ctx); err != nil || empty {
			t.Fatalf("Empty after rebuild = %v, %v", empty, err)
		}
		after := listAll(t, w, Filter{Limit: 50})
		if len(after) != len(before) {
			t.Fatalf("rebuilt %d items, had %d", len(after), len(before))
		}
		for i := range after {
			g, h := after[i], before[i]
			if g.StudyUID != h.StudyUID || g.Tier != h.Tier || !g.Due.Equal(h.Due) || (g.Finding == nil) != (h.Finding == nil) || (g.Override == nil) != (h.Override == nil) {
				t.Fatalf("item %d after rebuild: %s %s %v, before: %s %s %v", i, g.StudyUID, g.Tier, g.Due, h.StudyUID, h.Tier, h.Due)
			}
			if g.Status != StatusOpen {
				t.Fatalf("item %s rebuilt as %s", g.StudyUID, g.Status)
			}
			if g.AI != h.AI || g.AIError != h.AIError || !g.AI.Valid() {
				t.Fatalf("item %s rebuilt with AI %q (%q), had %q (%q)", g.StudyUID, g.AI, g.AIError, h.AI, h.AIError)
			}
		}
		evs, err := w.Events(ctx, "0", 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Type != EventRebuilt || evs[0].Item != nil {
			t.Fatalf("events after rebuild: %+v, %v; want one rebuilt event", evs, err)
		}
		// A rebuild over a non-empty list replaces it.
		n, err = w.Rebuild(ctx, src[:10])
		if err != nil || n != 10 {
			t.Fatalf("second Rebuild = %d, %v", n, err)
		}
		if got := listAll(t, w, Filter{}); len(got) != 10 {
			t.Fatalf("after rebuilding 10: %d items", len(got))
		}
		// Bad entries are skipped and reported.
		n, err = w.Rebuild(ctx, memSource{{Study: study("", base, "")}, {Study: study("9.9", base, ""), Findings: []Finding{{Tier: "severe"}}}, {Study: study("9.8", base, "")},
			{Study: study("9.7", base, ""), AI: "running"}})
		if n != 1 || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Rebuild with bad entries = %d, %v; want 1 and ErrInvalid", n, err)
		}
	})
}

func TestAIStatus(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		now := b.clock.Now()
		it := mustItem(t)(w.Upsert(ctx, study("1.2.3", now, "HIGH"), "pacs"))
		if it.AI != AIPending || it.AIError != "" || !strings.Contains(it.Reason, "AI pending") {
			t.Fatalf("new item: AI %q (%q), reason %q; want pending", it.AI, it.AIError, it.Reason)
		}
		tier, due := it.Tier, it.Due
		last, err := w.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}

		b.clock.Advance(time.Second)
		it = mustItem(t)(w.SetAIStatus(ctx, "1.2.3", AIFailed, "model crashed", "worker-1"))
		if it.AI != AIFailed || it.AIError != "model crashed" || !strings.Contains(it.Reason, "AI failed") || strings.Contains(it.Reason, "model crashed") {
			t.Fatalf("after failure: AI %q (%q), reason %q", it.AI, it.AIError, it.Reason)
		}
		if it.Tier != tier || !it.Due.Equal(due) || it.UpdatedBy != "worker-1" || !it.UpdatedAt.Equal(b.clock.Now()) {
			t.Fatalf("a failure moved the item: %+v", it)
		}
		evs, err := w.Events(ctx, last, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Type != EventAI || evs[0].By != "worker-1" || evs[0].Item == nil ||
			evs[0].Item.AI != AIFailed || evs[0].Item.AIError != "model crashed" {
			t.Fatalf("events after SetAIStatus: %+v, %v; want one ai event carrying the failure", evs, err)
		}
		// The same status again is still an event (workers may repeat it).
		mustItem(t)(w.SetAIStatus(ctx, "1.2.3", AIFailed, "model crashed", "worker-1"))
		if evs, err := w.Events(ctx, evs[0].ID, 0, 0); err != nil || len(evs) != 1 || evs[0].Type != EventAI {
			t.Fatalf("events after a repeated SetAIStatus: %+v, %v", evs, err)
		}

		// A header update keeps the AI status.
		it = mustItem(t)(w.Upsert(ctx, study("1.2.3", now, "STAT"), "pacs"))
		if it.AI != AIFailed || it.AIError != "model crashed" || it.Tier != TierCritical {
			t.Fatalf("upsert of an existing item: AI %q (%q) tier %s; want failed kept, critical", it.AI, it.AIError, it.Tier)
		}
		// Findings make it done and clear the error.
		it = mustItem(t)(w.SetFindings(ctx, "1.2.3", nil, "triage"))
		if it.AI != AIDone || it.AIError != "" || strings.Contains(it.Reason, "AI ") {
			t.Fatalf("after findings: AI %q (%q), reason %q; want done", it.AI, it.AIError, it.Reason)
		}
		if g := mustItem(t)(w.Get(ctx, "1.2.3")); g.AI != AIDone || g.AIError != "" {
			t.Fatalf("Get after findings: AI %q (%q)", g.AI, g.AIError)
		}
		// Back to pending (a new version to triage); a reason is only kept for failures.
		it = mustItem(t)(w.SetAIStatus(ctx, "1.2.3", AIPending, "ignored", "stability"))
		if it.AI != AIPending || it.AIError != "" {
			t.Fatalf("after pending: AI %q (%q)", it.AI, it.AIError)
		}
		long := strings.Repeat("é", 600) // 1200 bytes
		it = mustItem(t)(w.SetAIStatus(ctx, "1.2.3", AIFailed, long, "worker-2"))
		if len(it.AIError) > maxAIError || !strings.HasPrefix(long, it.AIError) || len(it.AIError) < maxAIError-1 {
			t.Fatalf("long reason kept as %d bytes", len(it.AIError))
		}
		// Claimed items take the status too; completed ones do not.
		mustItem(t)(w.Claim(ctx, "1.2.3", "ann"))
		if it := mustItem(t)(w.SetAIStatus(ctx, "1.2.3", AIDone, "", "triage")); it.Status != StatusClaimed || it.ClaimedBy != "ann" || it.AI != AIDone {
			t.Fatalf("AI status of a claimed item: %+v", it)
		}
		mustItem(t)(w.Complete(ctx, "1.2.3", "ann"))
		if _, err := w.SetAIStatus(ctx, "1.2.3", AIFailed, "late", "worker-1"); !errors.Is(err, ErrCompleted) {
			t.Fatalf("AI status of a completed item: %v, want ErrCompleted", err)
		}

		// Items written before the AI status existed read as pending.
		mustItem(t)(w.Upsert(ctx, study("1.2.4", now, ""), "pacs"))
		if err := b.client.HDel(ctx, b.prefix+"item:1.2.4", "ai").Err(); err != nil {
			t.Fatal(err)
		}
		if g := mustItem(t)(w.Get(ctx, "1.2.4")); g.AI != AIPending || !strings.Contains(g.Reason, "AI pending") {
			t.Fatalf("old item: AI %q, reason %q; want pending", g.AI, g.Reason)
		}
		if items := listAll(t, w, Filter{}); len(items) != 1 || items[0].AI != AIPending {
			t.Fatalf("List of an old item: %+v", items)
		}
	})
}

func TestEventsResume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		if id, err := w.LastEventID(ctx); err != nil || id != "0" {
			t.Fatalf("LastEventID of an empty stream = %q, %v", id, err)
		}
		now := b.clock.Now()
		type op struct {
			typ, uid, by string
			do           func() error
		}
		ops := []op{
			{EventAdded, "1.1", "pacs", func() error { _, err := w.Upsert(ctx, study("1.1", now, ""), "pacs"); return err }},
			{EventAdded, "1.2", "pacs", func() error { _, err := w.Upsert(ctx, study("1.2", now, ""), "pacs"); return err }},
			{EventUpdated, "1.1", "pacs", func() error { _, err := w.Upsert(ctx, study("1.1", now, "STAT"), "pacs"); return err }},
			{EventReprioritised, "1.2", "triage", func() error {
				_, err := w.SetFindings(ctx, "1.2", []Finding{{Code: "ich", Probability: .8, Tier: TierCritical}}, "triage")
				return err
			}},
			{EventAI, "1.1", "triage", func() error { _, err := w.SetAIStatus(ctx, "1.1", AIFailed, "no series", "triage"); return err }},
			{EventClaimed, "1.2", "ann", func() error { _, err := w.Claim(ctx, "1.2", "ann"); return err }},
			{EventReleased, "1.2", "ann", func() error { _, err := w.Release(ctx, "1.2", "ann"); return err }},
			{EventOverridden, "1.1", "admin", func() error {
				_, err := w.SetOverride(ctx, "1.1", Override{Tier: TierRoutine, By: "admin"})
				return err
			}},
			{EventOverrideCleared, "1.1", "admin", func() error { _, err := w.ClearOverride(ctx, "1.1", "admin"); return err }},
			{EventClaimed, "1.1", "bob", func() error { _, err := w.Claim(ctx, "1.1", "bob"); return err }},
			{EventCompleted, "1.1", "bob", func() error { _, err := w.Complete(ctx, "1.1", "bob"); return err }},
		}
		for i, o := range ops {
			if err := o.do(); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			// No-ops append nothing.
			if i == 2 {
				mustItem(t)(w.Upsert(ctx, study("1.1", now, "STAT"), "pacs"))
			}
		}
		all, err := w.Events(ctx, "0", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(ops) {
			t.Fatalf("%d events, want %d: %+v", len(all), len(ops), all)
		}
		for i, ev := range all {
			o := ops[i]
			if ev.Type != o.typ || ev.StudyUID != o.uid || ev.By != o.by || ev.Item == nil || ev.Item.StudyUID != o.uid || !ev.At.Equal(now) {
				t.Fatalf("event %d = %s %s by %s at %v, want %s %s by %s", i, ev.Type, ev.StudyUID, ev.By, ev.At, o.typ, o.uid, o.by)
			}
		}
		if it := all[5].Item; it.Status != StatusClaimed || it.ClaimedBy != "ann" || it.Tier != TierCritical || it.AI != AIDone {
			t.Fatalf("claimed event's item %+v", it)
		}
		if it := all[0].Item; it.AI != AIPending {
			t.Fatalf("added event's item has AI %q, want pending", it.AI)
		}
		if it := all[4].Item; it.AI != AIFailed || it.AIError != "no series" || it.Tier != TierCritical {
			t.Fatalf("ai event's item %+v, want AI failed (no series), still critical", it)
		}
		if last, err := w.LastEventID(ctx); err != nil || last != all[len(all)-1].ID {
			t.Fatalf("LastEventID = %q, %v; want %q", last, err, all[len(all)-1].ID)
		}
		if first, err := w.FirstEventID(ctx); err != nil || first != all[0].ID {
			t.Fatalf("FirstEventID = %q, %v; want %q", first, err, all[0].ID)
		}
		// Resume after each event, in pages of 3: exactly the rest, in order.
		for k := range all {
			var got []string
			after := all[k].ID
			for {
				page, err := w.Events(ctx, after, 3, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				for _, ev := range page {
					got = append(got, ev.ID)
				}
				after = page[len(page)-1].ID
			}
			var want []string
			for _, ev := range all[k+1:] {
				want = append(want, ev.ID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("resume after event %d: %v, want %v", k, got, want)
			}
		}
		// An ID without a sequence number, older than every event.
		if evs, err := w.Events(ctx, "1", 100, 0); err != nil || len(evs) != len(all) {
			t.Fatalf("Events after \"1\" = %d events, %v; want %d", len(evs), err, len(all))
		}
		// Blocking read from the last ID sees a change made meanwhile.
		last := all[len(all)-1].ID
		done := make(chan []Event, 1)
		go func() {
			evs, err := w.Events(ctx, last, 10, 5*time.Second)
			if err != nil {
				t.Error(err)
			}
			done <- evs
		}()
		time.Sleep(50 * time.Millisecond)
		mustItem(t)(w.Claim(ctx, "1.2", "cho"))
		if evs := <-done; len(evs) != 1 || evs[0].Type != EventClaimed || evs[0].By != "cho" {
			t.Fatalf("blocking read got %+v", evs)
		}
		// A blocking read that times out returns nothing.
		if evs, err := w.Events(ctx, "", 10, 20*time.Millisecond); err != nil || len(evs) != 0 {
			t.Fatalf("blocking read for new events = %+v, %v; want none", evs, err)
		}
		for _, bad := range []string{"x", "1-", "-1", "1-2-3", "$", "+", "1.5", "99999999999999999999999"} {
			if _, err := w.Events(ctx, bad, 0, 0); !errors.Is(err, ErrInvalid) {
				t.Errorf("Events(%q): %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestEventsBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{StreamMaxLen: 10})
		mustItem(t)(w.Upsert(ctx, study("1.1", b.clock.Now(), ""), "pacs"))
		for i := range 300 {
			mustItem(t)(w.Claim(ctx, "1.1", fmt.Sprint("u", i%2)))
			mustItem(t)(w.Release(ctx, "1.1", fmt.Sprint("u", i%2)))
		}
		n, err := b.client.XLen(ctx, b.prefix+"events").Result()
		// MAXLEN ~ trims whole macro nodes on redis-server (100 entries by default).
		t.Logf("%d events kept", n)
		if err != nil || n < 10 || n > 200 {
			t.Fatalf("stream length %d, %v after 601 events with MaxLen 10", n, err)
		}
	})
}

func TestFiltersAndPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		base := b.clock.Now()
		mods, bodies := []string{"CT", "MR", "cr"}, []string{"HEAD", "CHEST", "abdomen", ""}
		var all []Item
		for i := range 230 {
			s := Study{StudyUID: fmt.Sprintf("2.25.%d", i*7919%1000), Modality: mods[i%3], BodyPart: bodies[i%4],
				OrderPriority: []string{"", "STAT", "HIGH"}[i%5%3], Received: base.Add(time.Duration(i%13) * time.Minute)}
			it := mustItem(t)(w.Upsert(ctx, s, "pacs"))
			if i%4 == 1 {
				it = mustItem(t)(w.Claim(ctx, s.StudyUID, "ann"))
			}
			all = append(all, *it)
		}
		slicesSort(all)
		filters := []Filter{
			{}, {Modality: "ct"}, {Modality: "CR"}, {BodyPart: "Head"}, {Tier: TierCritical}, {Tier: TierUrgent, Modality: "MR"},
			{Status: StatusOpen}, {Status: StatusClaimed}, {Status: StatusClaimed, BodyPart: "CHEST", Tier: TierRoutine}, {Modality: "US"},
		}
		for _, f := range filters {
			var want []string
			for _, it := range all {
				if (f.Modality == "" || strings.EqualFold(it.Modality, f.Modality)) && (f.BodyPart == "" || strings.EqualFold(it.BodyPart, f.BodyPart)) &&
					(f.Tier == "" || it.Tier == f.Tier) && (f.Status == "" || it.Status == f.Status) {
					want = append(want, it.StudyUID)
				}
			}
			// Scan: the same items in the same order, in batches of at most MaxLimit.
			var scanned []string
			batches := 0
			if err := w.Scan(ctx, f, func(items []Item) error {
				if len(items) == 0 || len(items) > MaxLimit {
					t.Fatalf("%+v: scan batch of %d", f, len(items))
				}
				batches++
				scanned = append(scanned, uids(items)...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(scanned, want) {
				t.Fatalf("scan %+v: got %d items %v\nwant %d %v", f, len(scanned), scanned, len(want), want)
			}
			for _, limit := range []int{1, 7, 50, 500} {
				f := f
				f.Limit = limit
				pages := 0
				var got []string
				for {
					items, next, err := w.List(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(items) > limit {
						t.Fatalf("%+v: page of %d", f, len(items))
					}
					pages++
					got = append(got, uids(items)...)
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("filter %+v: got %d items %v\nwant %d %v", f, len(got), got, len(want), want)
				}
				if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
					t.Errorf("filter %+v: %d pages for %d items, want %d", f, pages, len(want), wantPages)
				}
			}
		}
		// Scan refuses paging, stops on fn's error, and lists the done set.
		if err := w.Scan(ctx, Filter{Limit: 5}, func([]Item) error { return nil }); !errors.Is(err, ErrInvalid) {
			t.Fatalf("scan with a limit: %v, want ErrInvalid", err)
		}
		stop := errors.New("stop")
		if err := w.Scan(ctx, Filter{}, func([]Item) error { return stop }); err != stop {
			t.Fatalf("scan whose fn fails: %v, want fn's error", err)
		}
		mustItem(t)(w.Complete(ctx, all[0].StudyUID, "ann"))
		var done []string
		if err := w.Scan(ctx, Filter{Status: StatusDone}, func(items []Item) error { done = append(done, uids(items)...); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := uids(listAll(t, w, Filter{Status: StatusDone, Limit: 500})); !slices.Equal(done, want) || len(done) != 1 {
			t.Fatalf("scan of the done set: %v, want %v", done, want)
		}
		all = all[1:]
		// A cursor stays valid when its item leaves the queue.
		items, next, err := w.List(ctx, Filter{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		mustItem(t)(w.Complete(ctx, items[9].StudyUID, "ann"))
		rest := listAll(t, w, Filter{Limit: 10, Cursor: next})
		if want := uids(all)[10:]; !slices.Equal(uids(rest), want) {
			t.Fatalf("after completing the cursor's item: %v, want %v", uids(rest), want)
		}
	})
}

func slicesSort(items []Item) {
	slices.SortFunc(items, func(a, b Item) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return strings.Compare(a.StudyUID, b.StudyUID)
	})
}

func TestErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		mustItem(t)(w.Upsert(ctx, study("1.2", b.clock.Now(), ""), "pacs"))
		cases := []struct {
			name string
			do   func() error
			want error
		}{
			{"get unknown", func() error { _, err := w.Get(ctx, "9.9"); return err }, ErrNotFound},
			{"claim unknown", func() error { _, err := w.Claim(ctx, "9.9", "ann"); return err }, ErrNotFound},
			{"release unknown", func() error { _, err := w.Release(ctx, "9.9", "ann"); return err }, ErrNotFound},
			{"complete unknown", func() error { _, err := w.Complete(ctx, "9.9", "ann"); return err }, ErrNotFound},
			{"findings unknown", func() error { _, err := w.SetFindings(ctx, "9.9", nil, "triage"); return err }, ErrNotFound},
			{"override unknown", func() error { _, err := w.SetOverride(ctx, "9.9", Override{Tier: TierUrgent, By: "a"}); return err }, ErrNotFound},
			{"clear unknown", func() error { _, err := w.ClearOverride(ctx, "9.9", "a"); return err }, ErrNotFound},
			{"AI status unknown", func() error { _, err := w.SetAIStatus(ctx, "9.9", AIFailed, "x", "triage"); return err }, ErrNotFound},
			{"AI status value", func() error { _, err := w.SetAIStatus(ctx, "1.2", "running", "", "triage"); return err }, ErrInvalid},
			{"AI status empty", func() error { _, err := w.SetAIStatus(ctx, "1.2", "", "", "triage"); return err }, ErrInvalid},
			{"AI status without user", func() error { _, err := w.SetAIStatus(ctx, "1.2", AIDone, "", ""); return err }, ErrInvalid},
			{"release unclaimed", func() error { _, err := w.Release(ctx, "1.2", "ann"); return err }, ErrNotClaimed},
			{"empty UID", func() error { _, err := w.Upsert(ctx, Study{}, "pacs"); return err }, ErrInvalid},
			{"UID with space", func() error { _, err := w.Get(ctx, "1 2"); return err }, ErrInvalid},
			{"long UID", func() error { _, err := w.Claim(ctx, strings.Repeat("1", 129), "ann"); return err }, ErrInvalid},
			{"empty user", func() error { _, err := w.Claim(ctx, "1.2", " "); return err }, ErrInvalid},
			{"finding tier", func() error {
				_, err := w.SetFindings(ctx, "1.2", []Finding{{Code: "x", Tier: "severe"}}, "t")
				return err
			}, ErrInvalid},
			{"finding empty tier", func() error { _, err := w.SetFindings(ctx, "1.2", []Finding{{Code: "x"}}, "t"); return err }, ErrInvalid},
			{"probability", func() error {
				_, err := w.SetFindings(ctx, "1.2", []Finding{{Code: "x", Tier: TierUrgent, Probability: 1.5}}, "t")
				return err
			}, ErrInvalid},
			{"override tier", func() error { _, err := w.SetOverride(ctx, "1.2", Override{Tier: "asap", By: "a"}); return err }, ErrInvalid},
			{"empty override", func() error { _, err := w.SetOverride(ctx, "1.2", Override{Reason: "x", By: "a"}); return err }, ErrInvalid},
			{"override without user", func() error { _, err := w.SetOverride(ctx, "1.2", Override{Tier: TierUrgent}); return err }, ErrInvalid},
			{"filter tier", func() error { _, _, err := w.List(ctx, Filter{Tier: "stat"}); return err }, ErrInvalid},
			{"filter status", func() error { _, _, err := w.List(ctx, Filter{Status: "read"}); return err }, ErrInvalid},
			{"limit", func() error { _, _, err := w.List(ctx, Filter{Limit: 501}); return err }, ErrInvalid},
			{"negative limit", func() error { _, _, err := w.List(ctx, Filter{Limit: -1}); return err }, ErrInvalid},
			{"cursor", func() error { _, _, err := w.List(ctx, Filter{Cursor: "!!"}); return err }, ErrInvalid},
		}
		for _, c := range cases {
			if err := c.do(); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		mustItem(t)(w.Claim(ctx, "1.2", "ann"))
		_, err := w.Release(ctx, "1.2", "bob")
		var ce *ClaimConflictError
		if !errors.As(err, &ce) || ce.Holder != "ann" {
			t.Fatalf("release by a non-holder: %v, want a conflict naming ann", err)
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	e, err := StartEmbedded(quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := redisClient(t, e.URL())
	for name, cfg := range map[string]Config{
		"unknown tier":      {Deadlines: map[Tier]time.Duration{"soon": time.Minute}},
		"negative deadline": {Deadlines: map[Tier]time.Duration{TierUrgent: -time.Minute}},
		"negative lease":    {Lease: -time.Second},
	} {
		if _, err := New(c, cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	w, err := New(c, Config{Deadlines: map[Tier]time.Duration{TierUrgent: 30 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if d := w.Deadline(TierUrgent); d != 30*time.Minute {
		t.Errorf("urgent deadline %v", d)
	}
	if d := w.Deadline(TierCritical); d != 15*time.Minute {
		t.Errorf("default critical deadline %v", d)
	}
	if cfg := w.Config(); cfg.Lease != DefaultLease || cfg.DoneRetention != DefaultDoneRetention || cfg.Prefix != DefaultPrefix || cfg.StreamMaxLen != DefaultStreamMaxLen {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestStartEmbeddedLogsWarning(t *testing.T) {
	var buf bytes.Buffer
	e, err := StartEmbedded(slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "single-process") || !strings.Contains(out, "not for production") {
		t.Fatalf("start-up log %q", out)
	}
	if !strings.HasPrefix(e.Addr(), "127.0.0.1:") || e.URL() != "redis://"+e.Addr()+"/0" {
		t.Fatalf("addr %q url %q", e.Addr(), e.URL())
	}
	if err := redisClient(t, e.URL()).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestListScanBudget: with a selective filter and a small scan budget, pages
// may be short, but paging still returns every match once, in order.
func TestListScanBudget(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		w := b.newWorklist(t, Config{})
		w.listBudget = 10
		var want []string
		for i := range 100 {
			s := study(fmt.Sprintf("3.%03d", i), b.clock.Now().Add(time.Duration(i)*time.Second), "")
			if i%23 == 0 {
				s.Modality = "MR"
				want = append(want, s.StudyUID)
			}
			mustItem(t)(w.Upsert(ctx, s, "pacs"))
		}
		short := false
		var got []string
		f := Filter{Modality: "MR", Limit: 2}
		for {
			items, next, err := w.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if next != "" && len(items) < f.Limit {
				short = true
			}
			got = append(got, uids(items)...)
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(got, want) || !short {
			t.Fatalf("paged %v (short pages: %v), want %v with short pages", got, short, want)
		}
	})
}

// roundTrips counts the requests a client sends: one per command, one per
// pipeline.
type roundTrips struct {
	mu sync.Mutex
	n  int
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (r *roundTrips) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = 0
	return n
}

// TestRoundTrips checks the round trips of each operation once its script is
// loaded: one per change, two for List.
func TestRoundTrips(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		c := redisClient(t, b.url)
		rt := &roundTrips{}
		c.AddHook(rt)
		w := b.newWorklistOn(t, c, Config{})
		now := b.clock.Now()
		ops := []struct {
			name string
			do   func() error
			want int
		}{
			{"upsert", func() error { _, err := w.Upsert(ctx, study("1.1", now, ""), "pacs"); return err }, 1},
			{"upsert unchanged", func() error { _, err := w.Upsert(ctx, study("1.1", now, ""), "pacs"); return err }, 1},
			{"findings", func() error {
				_, err := w.SetFindings(ctx, "1.1", []Finding{{Code: "ich", Probability: 0.9, Tier: TierCritical}}, "triage")
				return err
			}, 1},
			{"override", func() error { _, err := w.SetOverride(ctx, "1.1", Override{Tier: TierUrgent, By: "admin"}); return err }, 1},
			{"clear override", func() error { _, err := w.ClearOverride(ctx, "1.1", "admin"); return err }, 1},
			{"claim", func() error { _, err := w.Claim(ctx, "1.1", "ann"); return err }, 1},
			{"list", func() error { _, _, err := w.List(ctx, Filter{}); return err }, 2},
			{"list filtered", func() error { _, _, err := w.List(ctx, Filter{Modality: "CT", Status: StatusClaimed}); return err }, 2},
			{"get", func() error { _, err := w.Get(ctx, "1.1"); return err }, 1},
			{"release", func() error { _, err := w.Release(ctx, "1.1", "ann"); return err }, 1},
			{"complete", func() error { _, err := w.Complete(ctx, "1.1", "ann"); return err }, 1},
			{"expire", func() error { _, err := w.ExpireLeases(ctx); return err }, 1},
			{"events", func() error { _, err := w.Events(ctx, "0", 10, 0); return err }, 1},
		}
		for pass := range 2 { // the first pass loads the scripts
			if pass == 1 {
				mustItem(t)(w.Upsert(ctx, study("1.2", now, ""), "pacs")) // "upsert" below adds 1.1 anew
				b.client.Del(ctx, b.prefix+"item:1.1")
				b.client.ZRem(ctx, b.prefix+"done", "1.1")
			}
			for _, op := range ops {
				rt.take()
				if err := op.do(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				if n := rt.take(); pass == 1 && n != op.want {
					t.Errorf("%s: %d round trips, want %d", op.name, n, op.want)
				}
			}
		}
	})
}
