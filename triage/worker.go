package triage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/radtriage/radtriage/worklist"
)

// The triage job: a worker takes a study version off the job stream,
// claims it in the job store (the source of truth: only one worker holds
// a version at a time, so a message delivered twice runs once), triages
// the study, commits the result and marks the job done in one step, puts
// the findings on the worklist, and only then acknowledges the message.
// A worker that dies leaves its message pending on the stream and its
// claim to lapse; another worker reclaims the message after the lease and
// claims the job again. A failed attempt is retried with backoff, and
// after MaxAttempts the job is dead, with the reason, and the study is
// marked "AI failed" on the worklist (where it stays).

// ErrJobLost: the worker no longer holds the job (its lease lapsed and
// another worker claimed it, or a newer version replaced it). A JobStore
// returns an error wrapping it; the worker drops the job.
var ErrJobLost = errors.New("triage: job no longer held")

// JobQueue is the job stream as a worker uses it (worklist.Queue).
type JobQueue interface {
	Read(ctx context.Context, consumer string, block time.Duration) (*worklist.Delivery, error)
	Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int64) ([]worklist.Delivery, error)
	Ack(ctx context.Context, id string) error
}

// JobStore is the job and result store as a worker uses it (the store
// package's DB, through a small adapter that maps its errors).
type JobStore interface {
	// Claim takes the study's job version for owner for lease. ok false:
	// not claimable now (state says why: "done", "running", "dead", ...;
	// "" when there is no such job or a newer version replaced it).
	Claim(ctx context.Context, studyUID string, version int64, owner string, lease time.Duration) (attempt int, state string, ok bool, err error)
	// Renew extends the lease; ErrJobLost when the claim is gone.
	Renew(ctx context.Context, studyUID string, version int64, owner string, lease time.Duration) error
	// Commit saves the result and marks the job done in one transaction;
	// ErrJobLost (nothing written) when the claim is gone.
	Commit(ctx context.Context, r StoredResult, version int64, owner string) error
	// Fail records a failed attempt: retry at retryAt, or dead.
	Fail(ctx context.Context, studyUID string, version int64, owner, reason string, retryAt time.Time, dead bool) error
	// Release gives the job back unrun (shutdown), not counting the attempt.
	Release(ctx context.Context, studyUID string, version int64, owner string) error
	// StudyFS is the study's stored DICOM files.
	StudyFS(ctx context.Context, studyUID string) (fs.FS, error)
	// TriageResult is the study's latest committed result.
	TriageResult(ctx context.Context, studyUID string) (StoredResult, error)
}

// Worklist is what a worker tells the worklist (worklist.Worklist).
type Worklist interface {
	SetFindings(ctx context.Context, studyUID string, findings []worklist.Finding, by string) (*worklist.Item, error)
	SetAIStatus(ctx context.Context, studyUID string, s worklist.AIStatus, reason, by string) (*worklist.Item, error)
}

// Observer hears what workers do (Prometheus metrics); every method must
// be safe for concurrent use.
type Observer interface {
	// JobStage reports a stage's duration: "assemble", "upload",
	// "denoise", "resample", "window", "model:<name>", "postprocess",
	// "save", "total".
	JobStage(stage string, d time.Duration)
	// JobFailed reports an attempt that failed: "error" (to be retried),
	// "dead" (given up), "lost" (the claim lapsed under it).
	JobFailed(reason string)
	JobDone()
}

// WorkerConfig configures a Worker; zero fields take the defaults.
type WorkerConfig struct {
	// Name is the consumer name on the stream and the owner of claims:
	// unique per worker ("host-pid-n").
	Name string
	// Lease is how long a claim holds without renewal (renewed every
	// Lease/3 while the job runs); a dead worker's job is taken over
	// after it. Default 60 s.
	Lease time.Duration
	// Block is how long one read of the stream waits. Default 2 s.
	Block time.Duration
	// MaxAttempts: a job failing this many times is dead. Default 3.
	MaxAttempts int
	// Backoff is the wait before retry n (1, 2, ...). Default 5 s × 4^(n-1),
	// at most 10 min.
	Backoff func(attempt int) time.Duration
	// Grace is how long a job in hand may go on after the worker's context
	// ends before it is given back. Default 30 s.
	Grace    time.Duration
	Logger   *slog.Logger
	Observer Observer
	// By is the user name recorded on the worklist. Default "triage".
	By string
}

// Worker runs triage jobs: one at a time, until its context ends. Run
// several for parallelism (each with its own Name).
type Worker struct {
	ens   *Ensemble
	queue JobQueue
	store JobStore
	wl    Worklist
	cfg   WorkerConfig
}

// NewWorker returns a worker for ens.
func NewWorker(ens *Ensemble, q JobQueue, s JobStore, wl Worklist, cfg WorkerConfig) (*Worker, error) {
	if ens == nil || q == nil || s == nil || wl == nil {
		return nil, errors.New("triage: NewWorker needs an ensemble, a queue, a store and a worklist")
	}
	if cfg.Name == "" {
		return nil, errors.New("triage: WorkerConfig.Name is required")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Block <= 0 {
		cfg.Block = 2 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.By == "" {
		cfg.By = "triage"
	}
	cfg.Logger = cfg.Logger.With("worker", cfg.Name)
	return &Worker{ens: ens, queue: q, store: s, wl: wl, cfg: cfg}, nil
}

// DefaultBackoff waits 5 s before the first retry, then four times longer
// each time, at most 10 minutes.
func DefaultBackoff(attempt int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < attempt && d < 10*time.Minute; i++ {
		d *= 4
	}
	return min(d, 10*time.Minute)
}

type noObserver struct{}

func (noObserver) JobStage(string, time.Duration) {}
func (noObserver) JobFailed(string)               {}
func (noObserver) JobDone()                       {}

// Run takes jobs until ctx ends: first any message a dead worker left
// pending longer than the lease, then new ones. A job in hand when ctx
// ends has Grace to finish; otherwise it is given back. Run returns nil
// when ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	var pause time.Duration // after an error from the stream
	for ctx.Err() == nil {
		if pause > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
		}
		d, err := w.next(ctx)
		if errors.Is(err, worklist.ErrBadMessage) {
			// Dropped from the stream (the store still has every job);
			// a good message read with it is handled.
			w.cfg.Logger.Warn("malformed job messages dropped from the stream", "err", err)
			err = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			pause = min(max(2*pause, 250*time.Millisecond), 10*time.Second)
			w.cfg.Logger.Warn("reading the job stream failed; retrying", "err", err, "in", pause)
			continue
		}
		pause = 0
		if d != nil {
			w.Process(ctx, *d)
		}
	}
	return nil
}

// next returns a reclaimed message, else a new one, else nil.
func (w *Worker) next(ctx context.Context) (*worklist.Delivery, error) {
	ds, err := w.queue.Reclaim(ctx, w.cfg.Name, w.cfg.Lease, 1)
	if err != nil && !errors.Is(err, worklist.ErrBadMessage) {
		return nil, err
	}
	if len(ds) > 0 {
		w.cfg.Logger.Info("reclaimed a job left by another worker", "study", ds[0].StudyUID, "version", ds[0].Version, "deliveries", ds[0].Deliveries)
		return &ds[0], err
	}
	if err != nil {
		return nil, err // only malformed messages: none to run
	}
	return w.queue.Read(ctx, w.cfg.Name, w.cfg.Block)
}

// Process runs one delivered job to its end: done, failed (retry or
// dead), lost, or given back at shutdown. The message is acknowledged
// except when the store or the worklist could not be told the outcome:
// then it stays pending, and the worker that reclaims it after the lease
// finishes telling.
func (w *Worker) Process(ctx context.Context, d worklist.Delivery) {
	log := w.cfg.Logger.With("study", d.StudyUID, "version", d.Version)
	attempt, state, ok, err := w.store.Claim(ctx, d.StudyUID, d.Version, w.cfg.Name, w.cfg.Lease)
	if err != nil {
		log.Warn("claiming the job failed; it stays pending", "err", err)
		return
	}
	if !ok {
		if state == "done" {
			// Committed, but the worklist may not have heard (a worker died
			// between the two): tell it again; it is idempotent.
			if err := w.republish(ctx, d.StudyUID); err != nil {
				log.Warn("job already done; putting its findings on the worklist failed; it stays pending", "err", err)
				return
			}
		}
		log.Debug("job not claimable: skipped", "state", state)
		w.ack(ctx, d, log)
		return
	}
	log = log.With("attempt", attempt)
	if attempt > w.cfg.MaxAttempts {
		// Earlier attempts ended with their worker (a claim that lapsed
		// counts): a study that kills its worker is not run again.
		w.fail(ctx, d, attempt, fmt.Errorf("%d earlier attempts ended without a result (their workers died or lost the claim)", attempt-1), log)
		return
	}
	log.Info("triage job started")

	// The job runs until done or until Grace after ctx ends; the lease is
	// renewed meanwhile, and a lost lease cancels it.
	jobCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(w.cfg.Grace, func() { cancel(errShutdown) })
		context.AfterFunc(jobCtx, func() { t.Stop() })
	})
	defer stop()
	go w.renew(jobCtx, cancel, d)

	start := time.Now()
	res, err := w.run(jobCtx, d.StudyUID)
	var stored StoredResult
	if err == nil {
		stored, err = res.Stored(time.Now())
		if err == nil {
			t := time.Now()
			err = w.store.Commit(jobCtx, stored, d.Version, w.cfg.Name)
			w.cfg.Observer.JobStage("save", time.Since(t))
		}
	}
	switch cause := context.Cause(jobCtx); {
	case err == nil:
	case errors.Is(err, ErrJobLost) || errors.Is(cause, ErrJobLost):
		w.cfg.Observer.JobFailed("lost")
		log.Warn("the job's claim was lost (lease lapsed, or a newer version): dropped", "err", err)
		w.ack(ctx, d, log)
		return
	case errors.Is(cause, errShutdown):
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if rerr := w.store.Release(rctx, d.StudyUID, d.Version, w.cfg.Name); rerr != nil {
			log.Warn("shutting down: giving the job back failed; another worker takes it over after the lease", "err", rerr)
			return
		}
		log.Info("shutting down: job given back to the queue")
		w.ack(rctx, d, log)
		return
	default:
		w.fail(ctx, d, attempt, err, log)
		return
	}
	for stage, ms := range res.TimingsMS.stages() {
		w.cfg.Observer.JobStage(stage, time.Duration(ms*float64(time.Millisecond)))
	}
	w.cfg.Observer.JobStage("total", time.Since(start))
	w.cfg.Observer.JobDone()
	log.Info("triage job done", "tier", res.Tier, "findings", len(res.Findings), "took", time.Since(start).Round(time.Millisecond))
	if _, err := w.wl.SetFindings(ctx, d.StudyUID, WorklistFindings(res.Findings), w.cfg.By); err != nil && !errors.Is(err, worklist.ErrCompleted) {
		log.Warn("result committed; putting its findings on the worklist failed; the message stays pending", "err", err)
		return
	}
	w.ack(ctx, d, log)
}

var errShutdown = errors.New("triage: worker shutting down")

// run triages the study, turning a panic into an error.
func (w *Worker) run(ctx context.Context, studyUID string) (res *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("triage panicked: %v\n%s", p, debug.Stack())
		}
	}()
	fsys, err := w.store.StudyFS(ctx, studyUID)
	if err != nil {
		return nil, err
	}
	run, err := w.ens.RunFS(ctx, fsys, studyUID)
	if err != nil {
		return nil, err
	}
	return run.Result, nil
}

// renew extends the claim every Lease/3 until ctx ends; a lost claim
// cancels the job.
func (w *Worker) renew(ctx context.Context, cancel context.CancelCauseFunc, d worklist.Delivery) {
	t := time.NewTicker(w.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.store.Renew(ctx, d.StudyUID, d.Version, w.cfg.Name, w.cfg.Lease)
		if errors.Is(err, ErrJobLost) {
			cancel(ErrJobLost)
			return
		}
		if err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("renewing the job's lease failed; trying again", "study", d.StudyUID, "err", err)
		}
	}
}

// fail records a failed attempt: retried after the backoff, or dead after
// MaxAttempts (the worklist then marks the study "AI failed").
func (w *Worker) fail(ctx context.Context, d worklist.Delivery, attempt int, cause error, log *slog.Logger) {
	dead := attempt >= w.cfg.MaxAttempts || errors.Is(cause, ErrNoSeries)
	retryAt := time.Now().Add(w.cfg.Backoff(attempt))
	reason := cause.Error()
	if err := w.store.Fail(ctx, d.StudyUID, d.Version, w.cfg.Name, reason, retryAt, dead); err != nil {
		if errors.Is(err, ErrJobLost) {
			w.ack(ctx, d, log)
			return
		}
		log.Warn("triage failed; recording the failure failed too; the message stays pending", "err", cause, "record_err", err)
		return
	}
	if !dead {
		w.cfg.Observer.JobFailed("error")
		log.Warn("triage failed; will retry", "err", cause, "retry_at", retryAt)
		w.ack(ctx, d, log)
		return
	}
	w.cfg.Observer.JobFailed("dead")
	log.Error("triage failed for good: job is dead", "err", cause)
	if _, err := w.wl.SetAIStatus(ctx, d.StudyUID, worklist.AIFailed, reason, w.cfg.By); err != nil && !errors.Is(err, worklist.ErrCompleted) && !errors.Is(err, worklist.ErrNotFound) {
		log.Warn("marking the study AI failed on the worklist failed", "err", err)
	}
	w.ack(ctx, d, log)
}

// republish puts a committed result's findings on the worklist.
func (w *Worker) republish(ctx context.Context, studyUID string) error {
	sr, err := w.store.TriageResult(ctx, studyUID)
	if err != nil {
		return err
	}
	var r Result
	if err := json.Unmarshal(sr.JSON, &r); err != nil {
		return fmt.Errorf("stored result of %s: %w", studyUID, err)
	}
	_, err = w.wl.SetFindings(ctx, studyUID, WorklistFindings(r.Findings), w.cfg.By)
	if errors.Is(err, worklist.ErrCompleted) {
		return nil
	}
	return err
}

func (w *Worker) ack(ctx context.Context, d worklist.Delivery, log *slog.Logger) {
	if err := w.queue.Ack(context.WithoutCancel(ctx), d.ID); err != nil {
		log.Warn("acknowledging the message failed; it will be redelivered and skipped", "err", err)
	}
}

// stages lists the timings as Observer stages.
func (t Timings) stages() map[string]float64 {
	m := map[string]float64{
		"assemble": t.Assemble, "upload": t.Upload, "denoise": t.Denoise,
		"resample": t.Resample, "window": t.Window, "postprocess": t.Postprocess,
	}
	for name, ms := range t.Models {
		m["model:"+name] = ms
	}
	return m
}
