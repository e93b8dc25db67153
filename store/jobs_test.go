package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radtriage/radtriage/volume"
	"github.com/radtriage/radtriage/worklist"
)

func TestJobsSQLite(t *testing.T)   { runJobSuite(t, sqliteEnv) }
func TestJobsPostgres(t *testing.T) { runJobSuite(t, postgresEnv) }

// runJobSuite checks the triage jobs on one database.
func runJobSuite(t *testing.T, env func(testing.TB) Config) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	// open opens cfg with its clock at *clock (read at each call).
	open := func(t *testing.T, cfg Config, clock *time.Time) *DB {
		t.Helper()
		db, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.now = func() time.Time { return *clock }
		return db
	}
	fresh := func(t *testing.T) (*DB, *time.Time, Config) {
		t.Helper()
		cfg := env(t)
		clock := t0
		return open(t, cfg, &clock), &clock, cfg
	}
	const (
		study  = "1.2.826.0.1.3680043.8.498.7"
		series = "1.2.826.0.1.3680043.8.498.7.2"
		lease  = time.Minute
	)
	job := func(t *testing.T, db *DB, uid string) Job {
		t.Helper()
		j, err := db.Job(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	enqueue := func(t *testing.T, db *DB, uid string, version int64, want bool) {
		t.Helper()
		if got, err := db.EnqueueJob(ctx, uid, version); err != nil || got != want {
			t.Fatalf("EnqueueJob(%s, %d) = %v, %v; want %v", uid, version, got, err, want)
		}
	}
	claim := func(t *testing.T, db *DB, uid string, version int64, owner string, want bool) Job {
		t.Helper()
		j, ok, err := db.ClaimJob(ctx, uid, version, owner, lease)
		if err != nil || ok != want {
			t.Fatalf("ClaimJob(%s, %d, %s) = %+v, %v, %v; want %v", uid, version, owner, j, ok, err, want)
		}
		return j
	}

	t.Run("Enqueue", func(t *testing.T) {
		db, clock, _ := fresh(t)
		if _, err := db.Job(ctx, study); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Job before EnqueueJob: %v, want ErrNotFound", err)
		}
		enqueue(t, db, study, 3, true)
		want := Job{StudyUID: study, Version: 3, State: JobQueued, CreatedAt: t0, UpdatedAt: t0}
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("new job\n got %+v\nwant %+v", got, want)
		}
		*clock = t0.Add(time.Second)
		if err := db.MarkEnqueued(ctx, study, 3, *clock); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkEnqueued(ctx, study, 2, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		want.EnqueuedAt = *clock
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("after MarkEnqueued\n got %+v\nwant %+v", got, want)
		}
		// The same version again, in any state: nothing changes.
		enqueue(t, db, study, 3, false)
		claimed := claim(t, db, study, 3, "w1", true)
		enqueue(t, db, study, 3, false)
		if got := job(t, db, study); !reflect.DeepEqual(got, claimed) {
			t.Fatalf("same version re-enqueued while running\n got %+v\nwant %+v", got, claimed)
		}
		if err := db.FailJob(ctx, study, 3, "w1", "boom", *clock, true); err != nil {
			t.Fatal(err)
		}
		dead := job(t, db, study)
		enqueue(t, db, study, 3, false)
		if got := job(t, db, study); !reflect.DeepEqual(got, dead) || got.State != JobDead {
			t.Fatalf("same version re-enqueued when dead\n got %+v\nwant %+v", got, dead)
		}
		// A new version (the study grew) replaces it, whatever its state.
		*clock = t0.Add(time.Minute)
		enqueue(t, db, study, 5, true)
		want = Job{StudyUID: study, Version: 5, State: JobQueued, CreatedAt: *clock, UpdatedAt: *clock}
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("new version\n got %+v\nwant %+v", got, want)
		}
		if j := claim(t, db, study, 5, "w1", true); j.Attempts != 1 {
			t.Errorf("attempts of the new version: %d, want 1", j.Attempts)
		}
		// A lower version is another version too (the row is replaced).
		enqueue(t, db, study, 4, true)

		for _, bad := range []string{"", "1..2", "../1.2", "1.2.a", strings.Repeat("1", 65)} {
			if _, err := db.EnqueueJob(ctx, bad, 1); !errors.Is(err, ErrInvalidResult) {
				t.Errorf("EnqueueJob(%q): %v, want ErrInvalidResult", bad, err)
			}
			if _, err := db.Job(ctx, bad); !errors.Is(err, ErrInvalidResult) {
				t.Errorf("Job(%q): %v, want ErrInvalidResult", bad, err)
			}
		}
		if _, err := db.EnqueueJob(ctx, study, -1); !errors.Is(err, ErrInvalidResult) {
			t.Errorf("negative version: %v, want ErrInvalidResult", err)
		}
	})

	t.Run("Claim", func(t *testing.T) {
		db, clock, _ := fresh(t)
		if j, ok, err := db.ClaimJob(ctx, study, 1, "w1", lease); ok || err != nil || !reflect.DeepEqual(j, Job{}) {
			t.Fatalf("claim without a job: %+v, %v, %v", j, ok, err)
		}
		enqueue(t, db, study, 2, true)
		// Another version (a stale message) is not claimed.
		if j := claim(t, db, study, 1, "w1", false); j.Version != 2 || j.State != JobQueued {
			t.Fatalf("claim of another version returned %+v", j)
		}
		*clock = t0.Add(time.Second)
		got := claim(t, db, study, 2, "w1", true)
		want := Job{StudyUID: study, Version: 2, State: JobRunning, Attempts: 1, Owner: "w1",
			LeaseUntil: clock.Add(lease), CreatedAt: t0, UpdatedAt: *clock}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("claimed\n got %+v\nwant %+v", got, want)
		}
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("stored\n got %+v\nwant %+v", got, want)
		}
		// Held: another worker, or the same one again, does not get it.
		if j := claim(t, db, study, 2, "w2", false); !reflect.DeepEqual(j, want) {
			t.Fatalf("claim of a held job returned %+v", j)
		}
		claim(t, db, study, 2, "w1", false)
		for _, tc := range []struct {
			owner string
			lease time.Duration
		}{{"", lease}, {"w1", 0}, {"w1", -time.Second}} {
			if _, _, err := db.ClaimJob(ctx, study, 2, tc.owner, tc.lease); !errors.Is(err, ErrInvalidResult) {
				t.Errorf("ClaimJob(owner %q, lease %v): %v, want ErrInvalidResult", tc.owner, tc.lease, err)
			}
		}
	})

	t.Run("ClaimRace", func(t *testing.T) {
		db, clock, cfg := fresh(t)
		db2 := open(t, cfg, clock)
		const jobs, perDB = 20, 3
		for i := range jobs {
			enqueue(t, db, uidN(study, i), 1, true)
		}
		var (
			mu   sync.Mutex
			wins = map[string][]string{}
			wg   sync.WaitGroup
		)
		start := make(chan struct{})
		for i := range jobs {
			for k, d := range []*DB{db, db2} {
				for w := range perDB {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						owner := fmt.Sprintf("db%d-w%d", k, w)
						j, ok, err := d.ClaimJob(ctx, uidN(study, i), 1, owner, lease)
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							if j.Owner != owner || j.Attempts != 1 {
								t.Errorf("winner %s got %+v", owner, j)
							}
							mu.Lock()
							wins[j.StudyUID] = append(wins[j.StudyUID], owner)
							mu.Unlock()
						}
					}()
				}
			}
		}
		close(start)
		wg.Wait()
		for i := range jobs {
			uid := uidN(study, i)
			if w := wins[uid]; len(w) != 1 {
				t.Errorf("%s claimed by %v, want exactly one", uid, w)
			} else if j := job(t, db2, uid); j.Owner != w[0] || j.State != JobRunning || j.Attempts != 1 {
				t.Errorf("%s won by %s, stored %+v", uid, w[0], j)
			}
		}
	})

	t.Run("LeaseTakeover", func(t *testing.T) {
		db, clock, cfg := fresh(t)
		other := open(t, cfg, clock) // the second worker's process
		enqueue(t, db, study, 2, true)
		claim(t, db, study, 2, "a", true)
		*clock = t0.Add(30 * time.Second)
		claim(t, other, study, 2, "b", false)
		if err := db.RenewJob(ctx, study, 2, "a", lease); err != nil {
			t.Fatal(err)
		}
		if j := job(t, other, study); !j.LeaseUntil.Equal(clock.Add(lease)) {
			t.Fatalf("renewed lease until %v, want %v", j.LeaseUntil, clock.Add(lease))
		}
		*clock = t0.Add(61 * time.Second) // the first lease would have lapsed
		claim(t, other, study, 2, "b", false)
		*clock = t0.Add(90 * time.Second) // exactly at the end: still held
		claim(t, other, study, 2, "b", false)
		*clock = t0.Add(91 * time.Second)
		taken := claim(t, other, study, 2, "b", true)
		if taken.Owner != "b" || taken.Attempts != 2 || !taken.LeaseUntil.Equal(clock.Add(lease)) {
			t.Fatalf("taken over: %+v", taken)
		}

		// The first worker has lost it: nothing it does is written.
		r := storedResult(t, triageResult(study, series, 5, 1), *clock)
		lost := map[string]error{
			"RenewJob":               db.RenewJob(ctx, study, 2, "a", lease),
			"FailJob":                db.FailJob(ctx, study, 2, "a", "late", *clock, false),
			"FailJob/dead":           db.FailJob(ctx, study, 2, "a", "late", *clock, true),
			"ReleaseJob":             db.ReleaseJob(ctx, study, 2, "a"),
			"SaveTriageResultForJob": db.SaveTriageResultForJob(ctx, r, 2, "a"),
		}
		for name, err := range lost {
			if !errors.Is(err, ErrJobLost) {
				t.Errorf("%s by the old owner: %v, want ErrJobLost", name, err)
			}
		}
		if got := job(t, db, study); !reflect.DeepEqual(got, taken) {
			t.Errorf("the lost worker changed the job\n got %+v\nwant %+v", got, taken)
		}
		if _, err := db.TriageResult(ctx, study); !errors.Is(err, ErrNotFound) {
			t.Errorf("the lost worker's result was saved: %v", err)
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 0 {
			t.Errorf("the lost worker's mask is still there: %v", files)
		}

		// The new owner finishes it.
		*clock = t0.Add(2 * time.Minute)
		if err := other.SaveTriageResultForJob(ctx, r, 2, "b"); err != nil {
			t.Fatal(err)
		}
		want := taken
		want.State, want.Owner, want.LeaseUntil = JobDone, "", time.Time{}
		want.UpdatedAt, want.FinishedAt = *clock, *clock
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("done\n got %+v\nwant %+v", got, want)
		}
		got := must(db.TriageResult(ctx, study))
		if !bytes.Equal(got.JSON, r.JSON) || !bytes.Equal(got.Mask, r.Mask) {
			t.Error("the result saved for the job does not come back")
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 1 {
			t.Errorf("mask files %v, want one", files)
		}
		// Done: no one owns it any more, and it is not claimed again.
		if err := other.RenewJob(ctx, study, 2, "b", lease); !errors.Is(err, ErrJobLost) {
			t.Errorf("RenewJob of a done job: %v, want ErrJobLost", err)
		}
		if err := other.SaveTriageResultForJob(ctx, r, 2, "b"); !errors.Is(err, ErrJobLost) {
			t.Errorf("second save of a done job: %v, want ErrJobLost", err)
		}
		*clock = t0.Add(time.Hour)
		claim(t, db, study, 2, "c", false)
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 1 {
			t.Errorf("mask files %v after a lost save, want one", files)
		}
	})

	t.Run("NewVersionWhileRunning", func(t *testing.T) {
		db, clock, cfg := fresh(t)
		enqueue(t, db, study, 2, true)
		claim(t, db, study, 2, "a", true)
		enqueue(t, db, study, 3, true) // more instances arrived
		r := storedResult(t, triageResult(study, series, 5, 1), *clock)
		if err := db.SaveTriageResultForJob(ctx, r, 2, "a"); !errors.Is(err, ErrJobLost) {
			t.Fatalf("save of a replaced version: %v, want ErrJobLost", err)
		}
		if _, err := db.TriageResult(ctx, study); !errors.Is(err, ErrNotFound) {
			t.Errorf("the replaced version's result was saved: %v", err)
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 0 {
			t.Errorf("the replaced version's mask is still there: %v", files)
		}
		j := claim(t, db, study, 3, "a", true)
		if j.Attempts != 1 {
			t.Errorf("attempts of the new version: %d", j.Attempts)
		}
		// A save without a mask ends the job too.
		r = storedResult(t, triageResult(study, series, 0, 1), *clock)
		if err := db.SaveTriageResultForJob(ctx, r, 3, "a"); err != nil {
			t.Fatal(err)
		}
		if j := job(t, db, study); j.State != JobDone {
			t.Errorf("state %s, want done", j.State)
		}
		// Bad input is refused before anything else.
		if err := db.SaveTriageResultForJob(ctx, r, 3, ""); !errors.Is(err, ErrInvalidResult) {
			t.Errorf("no owner: %v, want ErrInvalidResult", err)
		}
	})

	t.Run("RetryAndDead", func(t *testing.T) {
		db, clock, _ := fresh(t)
		enqueue(t, db, study, 2, true)
		claim(t, db, study, 2, "a", true)
		*clock = t0.Add(time.Second)
		retryAt := t0.Add(5 * time.Minute)
		if err := db.FailJob(ctx, study, 2, "a", "model crashed", retryAt, false); err != nil {
			t.Fatal(err)
		}
		want := Job{StudyUID: study, Version: 2, State: JobRetry, Attempts: 1, NextAt: retryAt,
			CreatedAt: t0, UpdatedAt: *clock, LastError: "model crashed"}
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("retry\n got %+v\nwant %+v", got, want)
		}
		if err := db.FailJob(ctx, study, 2, "a", "again", retryAt, false); !errors.Is(err, ErrJobLost) {
			t.Errorf("FailJob of a retry: %v, want ErrJobLost", err)
		}
		due := func(at time.Time) []string {
			t.Helper()
			var uids []string
			for _, j := range must(db.DueJobs(ctx, at, time.Minute, 0)) {
				uids = append(uids, j.StudyUID)
			}
			return uids
		}
		if d := due(retryAt.Add(-time.Microsecond)); len(d) != 0 {
			t.Errorf("due before its time: %v", d)
		}
		*clock = retryAt.Add(-time.Second)
		claim(t, db, study, 2, "b", false)
		if d := due(retryAt); len(d) != 1 || d[0] != study {
			t.Errorf("due at its time: %v", d)
		}
		*clock = retryAt
		if j := claim(t, db, study, 2, "b", true); j.Attempts != 2 || j.LastError != "model crashed" {
			t.Errorf("retried: %+v", j)
		}
		// The last failure: dead, with the reason, kept to 2000 bytes of
		// valid UTF-8.
		*clock = retryAt.Add(time.Second)
		reason := "out of memory\x00 \xff" + strings.Repeat("é", 1500)
		if err := db.FailJob(ctx, study, 2, "b", reason, time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		got := job(t, db, study)
		if got.State != JobDead || got.Owner != "" || !got.LeaseUntil.IsZero() || got.Attempts != 2 ||
			!got.FinishedAt.Equal(*clock) || !got.UpdatedAt.Equal(*clock) {
			t.Errorf("dead: %+v", got)
		}
		if e := got.LastError; len(e) > 2000 || len(e) < 1990 || !strings.HasPrefix(e, "out of memory \uFFFDéé") ||
			!strings.HasSuffix(e, "é") || strings.ContainsRune(e, 0) {
			t.Errorf("last error of %d bytes: %.40q…%q", len(e), e, e[max(0, len(e)-8):])
		}
		if d := due(t0.Add(24 * time.Hour)); len(d) != 0 {
			t.Errorf("a dead job is due: %v", d)
		}
		*clock = t0.Add(24 * time.Hour)
		claim(t, db, study, 2, "c", false)
		// A new version gives it another chance.
		enqueue(t, db, study, 3, true)
		if j := job(t, db, study); j.State != JobQueued || j.Attempts != 0 || j.LastError != "" || !j.FinishedAt.IsZero() {
			t.Errorf("new version of a dead job: %+v", j)
		}
	})

	t.Run("Release", func(t *testing.T) {
		db, clock, _ := fresh(t)
		enqueue(t, db, study, 2, true)
		claim(t, db, study, 2, "a", true)
		if err := db.ReleaseJob(ctx, study, 2, "b"); !errors.Is(err, ErrJobLost) {
			t.Errorf("ReleaseJob by another owner: %v, want ErrJobLost", err)
		}
		if err := db.ReleaseJob(ctx, study, 1, "a"); !errors.Is(err, ErrJobLost) {
			t.Errorf("ReleaseJob of another version: %v, want ErrJobLost", err)
		}
		*clock = t0.Add(time.Second)
		if err := db.ReleaseJob(ctx, study, 2, "a"); err != nil {
			t.Fatal(err)
		}
		want := Job{StudyUID: study, Version: 2, State: JobQueued, CreatedAt: t0, UpdatedAt: *clock}
		if got := job(t, db, study); !reflect.DeepEqual(got, want) {
			t.Fatalf("released\n got %+v\nwant %+v", got, want)
		}
		if err := db.ReleaseJob(ctx, study, 2, "a"); !errors.Is(err, ErrJobLost) {
			t.Errorf("second ReleaseJob: %v, want ErrJobLost", err)
		}
		if j := claim(t, db, study, 2, "b", true); j.Attempts != 1 {
			t.Errorf("attempts after a release and a claim: %d, want 1", j.Attempts)
		}
	})

	t.Run("DueAndList", func(t *testing.T) {
		db, clock, _ := fresh(t)
		now := t0.Add(time.Hour)
		// Each job is set up at its own time, so that the order is known.
		step := 0
		at := func() {
			step++
			*clock = t0.Add(time.Duration(step) * time.Minute)
		}
		names := []string{"queued-new", "queued-recent", "queued-old", "running", "running-lapsed",
			"retry-due", "retry-later", "done", "dead"}
		uid := func(name string) string { return uidN(study, slices.Index(names, name)) }
		for _, n := range names {
			at()
			enqueue(t, db, uid(n), 1, true)
			switch n {
			case "queued-recent":
				must(0, db.MarkEnqueued(ctx, uid(n), 1, now.Add(-30*time.Second)))
			case "queued-old":
				must(0, db.MarkEnqueued(ctx, uid(n), 1, now.Add(-2*time.Minute)))
			case "running":
				claim(t, db, uid(n), 1, "w", true)
				must(0, db.RenewJob(ctx, uid(n), 1, "w", now.Sub(*clock)+time.Second))
			case "running-lapsed":
				claim(t, db, uid(n), 1, "w", true)
			case "retry-due", "retry-later":
				claim(t, db, uid(n), 1, "w", true)
				next := now
				if n == "retry-later" {
					next = now.Add(time.Microsecond)
				}
				must(0, db.FailJob(ctx, uid(n), 1, "w", "x", next, false))
			case "done":
				claim(t, db, uid(n), 1, "w", true)
				must(0, db.SaveTriageResultForJob(ctx, storedResult(t, triageResult(uid(n), series, 0, 1), *clock), 1, "w"))
			case "dead":
				claim(t, db, uid(n), 1, "w", true)
				must(0, db.FailJob(ctx, uid(n), 1, "w", "x", time.Time{}, true))
			}
		}
		list := func(jobs []Job, err error) []string {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, j := range jobs {
				for _, n := range names {
					if uid(n) == j.StudyUID {
						out = append(out, n)
					}
				}
			}
			return out
		}
		wantDue := []string{"queued-new", "queued-old", "running-lapsed", "retry-due"}
		if got := list(db.DueJobs(ctx, now, time.Minute, 0)); !reflect.DeepEqual(got, wantDue) {
			t.Errorf("DueJobs: %v, want %v", got, wantDue)
		}
		if got := list(db.DueJobs(ctx, now, time.Minute, 2)); !reflect.DeepEqual(got, wantDue[:2]) {
			t.Errorf("DueJobs, limit 2: %v, want %v", got, wantDue[:2])
		}
		// With a requeue delay of 0 the recently enqueued one is due too.
		if got := list(db.DueJobs(ctx, now, 0, 0)); len(got) != 5 {
			t.Errorf("DueJobs, no requeue delay: %v", got)
		}

		counts := must(db.JobCounts(ctx))
		wantCounts := map[JobState]int{JobQueued: 3, JobRunning: 2, JobRetry: 2, JobDone: 1, JobDead: 1}
		if !reflect.DeepEqual(counts, wantCounts) {
			t.Errorf("JobCounts: %v, want %v", counts, wantCounts)
		}
		if got := list(db.Jobs(ctx, []JobState{JobDead, JobDone}, 0)); !reflect.DeepEqual(got, []string{"dead", "done"}) {
			t.Errorf("Jobs(dead, done): %v", got)
		}
		if got := list(db.Jobs(ctx, nil, 3)); !reflect.DeepEqual(got, []string{"dead", "done", "retry-later"}) {
			t.Errorf("Jobs(all, 3): %v", got)
		}
		if got := list(db.Jobs(ctx, nil, 0)); len(got) != len(names) {
			t.Errorf("Jobs(all): %v", got)
		}
		dead := must(db.Jobs(ctx, []JobState{JobDead}, 10))
		if len(dead) != 1 || dead[0].LastError != "x" || dead[0].State != JobDead {
			t.Errorf("dead jobs: %+v", dead)
		}

		empty, _, _ := fresh(t)
		counts = must(empty.JobCounts(ctx))
		if len(counts) != 5 || counts[JobQueued] != 0 || counts[JobDead] != 0 {
			t.Errorf("JobCounts of none: %v", counts)
		}
		if jobs := must(empty.DueJobs(ctx, now, 0, 0)); len(jobs) != 0 {
			t.Errorf("DueJobs of none: %v", jobs)
		}
	})

	t.Run("StudyFS", func(t *testing.T) {
		images, _ := ctHead(t)
		db, _, cfg := fresh(t)
		files := freshStudy(images)
		for _, data := range files {
			if _, err := db.Store(ctx, bytes.NewReader(data), StoreOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		inst, err := parseInstance(files[3], "", int64(len(files[3])))
		if err != nil {
			t.Fatal(err)
		}
		uid := inst.StudyInstanceUID
		// A file the index does not name (a crash's leftover) is not part
		// of the study.
		stray := filepath.Join(cfg.DataDir, "blobs", uid, inst.SeriesInstanceUID, "9.9.9.dcm")
		if err := os.WriteFile(stray, files[0], 0o644); err != nil {
			t.Fatal(err)
		}
		fsys, err := db.StudyFS(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				paths = append(paths, p)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(paths) != len(images) {
			t.Fatalf("%d files in the study's FS, want %d", len(paths), len(images))
		}
		name := inst.SeriesInstanceUID + "/" + inst.SOPInstanceUID + ".dcm"
		if got, err := fs.ReadFile(fsys, name); err != nil || !bytes.Equal(got, files[3]) {
			t.Errorf("%s: %d bytes, %v; want the bytes stored", name, len(got), err)
		}
		for _, bad := range []string{inst.SeriesInstanceUID + "/9.9.9.dcm", "../" + uid, "/etc/passwd", "x"} {
			if _, err := fsys.Open(bad); err == nil {
				t.Errorf("Open(%q) succeeded", bad)
			}
		}
		col, err := volume.LoadDir(fsys, volume.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(col.Series) != 1 || col.Series[0].StudyUID != uid || len(col.Skipped) != 0 ||
			len(col.Series[0].Stacks) != 1 || col.Series[0].Stacks[0].Slices != len(images) {
			t.Errorf("LoadDir over StudyFS: %d series, skipped %v", len(col.Series), col.Skipped)
		}

		if _, err := db.StudyFS(ctx, "1.2.3.4"); !errors.Is(err, ErrNotFound) {
			t.Errorf("StudyFS of an unknown study: %v, want ErrNotFound", err)
		}
		if _, err := db.StudyFS(ctx, "../blobs"); !errors.Is(err, ErrInvalidResult) {
			t.Errorf("StudyFS of a bad UID: %v, want ErrInvalidResult", err)
		}
	})

	t.Run("WorklistAI", func(t *testing.T) {
		db, clock, _ := fresh(t)
		for i, state := range []string{"none", "queued", "running", "retry", "done", "dead"} {
			uid := uidN("1.5", i)
			indexSynthetic(t, db, wlInstance(uid, 1, uid+".1", "CT", "HEAD", ""))
			if state == "none" {
				continue
			}
			enqueue(t, db, uid, 1, true)
			if state == "queued" {
				continue
			}
			claim(t, db, uid, 1, "w", true)
			switch state {
			case "retry":
				must(0, db.FailJob(ctx, uid, 1, "w", "transient", clock.Add(time.Minute), false))
			case "done":
				must(0, db.SaveTriageResultForJob(ctx, storedResult(t, triageResult(uid, series, 0, 1), *clock), 1, "w"))
			case "dead":
				must(0, db.FailJob(ctx, uid, 1, "w", "no usable series", time.Time{}, true))
			}
		}
		want := []worklist.AIStatus{worklist.AIPending, worklist.AIPending, worklist.AIPending,
			worklist.AIPending, worklist.AIDone, worklist.AIFailed}
		got := must(db.OpenStudies(ctx))
		if len(got) != len(want) {
			t.Fatalf("%d open studies, want %d", len(got), len(want))
		}
		for i, e := range got {
			wantErr := ""
			if i == 5 {
				wantErr = "no usable series"
			}
			if e.Study.StudyUID != uidN("1.5", i) || e.AI != want[i] || e.AIError != wantErr {
				t.Errorf("study %d: %s ai %q (%q), want %s %q (%q)", i, e.Study.StudyUID, e.AI, e.AIError, uidN("1.5", i), want[i], wantErr)
			}
		}
		e, open, err := db.WorklistStudy(ctx, uidN("1.5", 5))
		if err != nil || !open || e.AI != worklist.AIFailed || e.AIError != "no usable series" {
			t.Errorf("WorklistStudy of the dead one: %+v %v %v", e, open, err)
		}
		// Triaged again: pending, with no error.
		enqueue(t, db, uidN("1.5", 5), 2, true)
		e, _, err = db.WorklistStudy(ctx, uidN("1.5", 5))
		if err != nil || e.AI != worklist.AIPending || e.AIError != "" {
			t.Errorf("WorklistStudy after a new version: %+v %v", e, err)
		}
	})

	t.Run("Migrate", func(t *testing.T) {
		db, clock, cfg := fresh(t)
		enqueue(t, db, study, 2, true)
		db.Close()
		for _, step := range []struct {
			cmd  string
			want uint
		}{{"version", 4}, {"down", 3}, {"version", 3}, {"up", 4}} {
			v, dirty, err := Migrate(ctx, cfg, step.cmd)
			if err != nil || dirty || v != step.want {
				t.Fatalf("migrate %s: %d %v %v, want %d", step.cmd, v, dirty, err, step.want)
			}
		}
		db = open(t, cfg, clock)
		if _, err := db.Job(ctx, study); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after down and up: %v, want ErrNotFound", err)
		}
		enqueue(t, db, study, 2, true)
	})
}
