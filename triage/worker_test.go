package triage_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/triage/phantom"
	"github.com/radtriage/radtriage/worklist"
)

// The worker against the real store (SQLite in a temporary folder), the
// embedded Redis-compatible store for the stream and the worklist, and
// the built-in ensemble; the cross-process behaviour (a worker killed
// mid-job, Redis restarted, scale-out) is tested end to end in api/e2e.

type counts struct {
	sync.Mutex
	done   int
	failed map[string]int
	stages map[string]int
}

func (c *counts) JobStage(s string, _ time.Duration) { c.Lock(); c.stages[s]++; c.Unlock() }
func (c *counts) JobFailed(r string)                 { c.Lock(); c.failed[r]++; c.Unlock() }
func (c *counts) JobDone()                           { c.Lock(); c.done++; c.Unlock() }

type rig struct {
	db    *store.DB
	dir   string // the store's data directory
	queue *worklist.Queue
	wl    *worklist.Worklist
	ens   *triage.Ensemble
	obs   *counts
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the ensemble")
	}
	ens := defaultEnsemble(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	db, err := store.Open(ctx, store.Config{DataDir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e, err := worklist.StartEmbedded(logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	opts, _ := redis.ParseURL(e.URL())
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	wl, err := worklist.New(client, worklist.Config{Recorder: db})
	if err != nil {
		t.Fatal(err)
	}
	q, err := worklist.NewQueue(client, worklist.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return &rig{db: db, dir: dir, queue: q, wl: wl, ens: ens, obs: &counts{failed: map[string]int{}, stages: map[string]int{}}}
}

func (r *rig) worker(t *testing.T, name string, cfg triage.WorkerConfig) *triage.Worker {
	t.Helper()
	cfg.Name = name
	cfg.Observer = r.obs
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := triage.NewWorker(r.ens, r.queue, r.db.TriageJobs(), r.wl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// storeStudy writes a phantom study (slices of it when n > 0) into the
// store, puts it on the worklist, records its job and adds it to the
// stream. It returns the study UID and the job version.
func (r *rig) storeStudy(t *testing.T, spec phantom.Spec, n int) (string, int64) {
	t.Helper()
	ctx := context.Background()
	p, err := phantom.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := phantom.WriteSeries(dir, p, phantom.SeriesMeta{}); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if n > 0 {
		files = files[:n]
	}
	study, _, _, _ := p.UIDs()
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.db.Store(ctx, fh, store.StoreOptions{})
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	e, _, err := r.db.WorklistStudy(ctx, study)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.wl.Upsert(ctx, e.Study, "ingest"); err != nil {
		t.Fatal(err)
	}
	version := int64(len(files))
	if add, err := r.db.EnqueueJob(ctx, study, version); err != nil || !add {
		t.Fatalf("EnqueueJob: %v, %v", add, err)
	}
	if _, err := r.queue.Add(ctx, worklist.JobMessage{StudyUID: study, Version: version}); err != nil {
		t.Fatal(err)
	}
	return study, version
}

// next reads the stream's next message for consumer.
func (r *rig) next(t *testing.T, consumer string) worklist.Delivery {
	t.Helper()
	d, err := r.queue.Read(context.Background(), consumer, time.Second)
	if err != nil || d == nil {
		t.Fatalf("Read: %v, %v", d, err)
	}
	return *d
}

func (r *rig) job(t *testing.T, study string) store.Job {
	t.Helper()
	j, err := r.db.Job(context.Background(), study)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (r *rig) pending(t *testing.T) int64 {
	t.Helper()
	s, err := r.queue.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Pending
}

func TestWorkerTriagesAndRetiers(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	study, version := r.storeStudy(t, phantom.Spec{Seed: 11, Lesions: []phantom.LesionSpec{{Kind: phantom.KindICH, VolumeML: 20}}}, 0)
	it, err := r.wl.Get(ctx, study)
	if err != nil || it.AI != worklist.AIPending || it.Tier == worklist.TierCritical {
		t.Fatalf("before triage: %+v, %v", it, err)
	}
	w := r.worker(t, "w1", triage.WorkerConfig{})
	w.Process(ctx, r.next(t, "w1"))

	j := r.job(t, study)
	if j.State != store.JobDone || j.Attempts != 1 || j.Version != version {
		t.Errorf("job %+v, want done after 1 attempt", j)
	}
	sr, err := r.db.TriageResult(ctx, study)
	if err != nil || sr.Tier != "critical" || len(sr.Mask) == 0 || !strings.Contains(string(sr.JSON), `"code":"ICH"`) {
		t.Errorf("stored result: tier %q, %d mask bytes, %v", sr.Tier, len(sr.Mask), err)
	}
	it, err = r.wl.Get(ctx, study)
	if err != nil || it.Tier != worklist.TierCritical || it.AI != worklist.AIDone || it.Finding == nil || it.Finding.Code != "ICH" {
		t.Errorf("after triage: %+v, %v", it, err)
	}
	if p := r.pending(t); p != 0 {
		t.Errorf("%d messages still pending: the job was not acknowledged", p)
	}
	if r.obs.done != 1 || r.obs.stages["total"] != 1 || r.obs.stages["model:seg-unet-tc"] != 1 || r.obs.stages["save"] != 1 {
		t.Errorf("observer: done %d, stages %v", r.obs.done, r.obs.stages)
	}

	// The same message again (a redelivery after a crash between commit
	// and ack): skipped, not run twice.
	if _, err := r.queue.Add(ctx, worklist.JobMessage{StudyUID: study, Version: version}); err != nil {
		t.Fatal(err)
	}
	w.Process(ctx, r.next(t, "w1"))
	if j := r.job(t, study); j.Attempts != 1 || r.obs.done != 1 {
		t.Errorf("duplicate message ran the job again: %+v, done %d", j, r.obs.done)
	}
	if p := r.pending(t); p != 0 {
		t.Errorf("duplicate not acknowledged (%d pending)", p)
	}
}

func TestWorkerDeadLetter(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// A single slice makes no volume: no series to triage, which retrying
	// would not change, so the job is dead at once.
	study, _ := r.storeStudy(t, phantom.Spec{Seed: 12}, 1)
	w := r.worker(t, "w1", triage.WorkerConfig{MaxAttempts: 5})
	w.Process(ctx, r.next(t, "w1"))
	j := r.job(t, study)
	if j.State != store.JobDead || j.Attempts != 1 || !strings.Contains(j.LastError, "no series to triage") {
		t.Errorf("job %+v, want dead with the reason", j)
	}
	it, err := r.wl.Get(ctx, study)
	if err != nil || it.AI != worklist.AIFailed || !strings.Contains(it.AIError, "no series") {
		t.Errorf("worklist item %+v, %v: want AI failed with the reason, still listed", it, err)
	}
	if r.obs.failed["dead"] != 1 || r.pending(t) != 0 {
		t.Errorf("failures %v, pending %d", r.obs.failed, r.pending(t))
	}
}

func TestWorkerRetriesWithBackoff(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	study, version := r.storeStudy(t, phantom.Spec{Seed: 13}, 0)
	// The blobs vanish (a data dir not shared with this worker): reading
	// fails, a failure that may pass, so it is retried, and dead after
	// MaxAttempts.
	dir := filepath.Join(r.dir, "blobs", study)
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	w := r.worker(t, "w1", triage.WorkerConfig{MaxAttempts: 2, Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	w.Process(ctx, r.next(t, "w1"))
	j := r.job(t, study)
	if j.State != store.JobRetry || j.Attempts != 1 || j.LastError == "" {
		t.Fatalf("after a failure: %+v, want retry", j)
	}
	due, err := r.db.DueJobs(ctx, time.Now(), time.Hour, 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("due before the backoff: %v, %v", due, err)
	}
	time.Sleep(60 * time.Millisecond)
	due, err = r.db.DueJobs(ctx, time.Now(), time.Hour, 10)
	if err != nil || len(due) != 1 || due[0].StudyUID != study {
		t.Fatalf("due after the backoff: %v, %v", due, err)
	}
	if _, err := r.queue.Add(ctx, worklist.JobMessage{StudyUID: study, Version: version}); err != nil {
		t.Fatal(err)
	}
	w.Process(ctx, r.next(t, "w1"))
	if j := r.job(t, study); j.State != store.JobDead || j.Attempts != 2 {
		t.Errorf("after the last attempt: %+v, want dead", j)
	}
	if r.obs.failed["error"] != 1 || r.obs.failed["dead"] != 1 {
		t.Errorf("failures %v", r.obs.failed)
	}
}

func TestWorkerShutdownGivesJobBack(t *testing.T) {
	r := newRig(t)
	study, _ := r.storeStudy(t, phantom.Spec{Seed: 14}, 0)
	d := r.next(t, "w1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The worker is asked to stop while the job runs (a triage takes a
	// second or more), with no grace.
	time.AfterFunc(200*time.Millisecond, cancel)
	w := r.worker(t, "w1", triage.WorkerConfig{Grace: time.Nanosecond})
	w.Process(ctx, d)
	j := r.job(t, study)
	if j.State != store.JobQueued || j.Attempts != 0 || j.Owner != "" {
		t.Errorf("job %+v, want queued again with the attempt not counted", j)
	}
	if p := r.pending(t); p != 0 {
		t.Errorf("%d pending: a job given back is acknowledged (the store re-adds it)", p)
	}
	if _, err := r.db.TriageResult(context.Background(), study); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a result was saved for a job given back: %v", err)
	}
}

func TestWorkerRunReclaimsDeadWorkersJob(t *testing.T) {
	r := newRig(t)
	study, _ := r.storeStudy(t, phantom.Spec{Seed: 15}, 0)
	lease := 200 * time.Millisecond
	// "dead" reads the message and claims the job, then dies.
	d := r.next(t, "dead")
	if _, ok, err := r.db.ClaimJob(context.Background(), study, d.Version, "dead", lease); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := r.worker(t, "alive", triage.WorkerConfig{Lease: lease, Block: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for r.job(t, study).State != store.JobDone {
		if time.Now().After(deadline) {
			t.Fatalf("the dead worker's job was not taken over: %+v", r.job(t, study))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if j := r.job(t, study); j.Attempts != 2 {
		t.Errorf("job %+v, want 2 attempts (the dead worker's and the takeover)", j)
	}
}

func TestWorkerPoisonStudyIsDead(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	study, version := r.storeStudy(t, phantom.Spec{Seed: 16}, 0)
	// Two workers claimed the job and died (their leases lapsed).
	lease := 10 * time.Millisecond
	for _, who := range []string{"died-1", "died-2"} {
		if _, ok, err := r.db.ClaimJob(ctx, study, version, who, lease); err != nil || !ok {
			t.Fatalf("claim by %s: %v, %v", who, ok, err)
		}
		time.Sleep(2 * lease)
	}
	w := r.worker(t, "w1", triage.WorkerConfig{MaxAttempts: 2})
	w.Process(ctx, r.next(t, "w1"))
	j := r.job(t, study)
	if j.State != store.JobDead || j.Attempts != 3 || !strings.Contains(j.LastError, "2 earlier attempts ended without a result") {
		t.Errorf("job %+v, want dead without a third run", j)
	}
	if r.obs.done != 0 || r.obs.stages["total"] != 0 {
		t.Errorf("the study ran again: %+v", r.obs)
	}
}
