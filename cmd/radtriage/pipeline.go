package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/worklist"
)

// The pipeline's wiring: the stability notifier that turns a stable study
// into a job, the reconciler that puts jobs back on the stream when the
// stream lost them (Redis restarted or flushed, a retry falling due, a
// dead worker's lapsed claim), and the workers. The store's triage_jobs
// table is the truth; the Redis stream only carries it.

// pipelineConfig is what serve and worker share about triage jobs.
type pipelineConfig struct {
	Workers     int
	Backend     string
	Models      string // "" the built-in ensemble
	JobLease    time.Duration
	MaxAttempts int
	Grace       time.Duration
}

func (c *pipelineConfig) register(fs *flagSet, defaultWorkers int, workersUsage string) {
	fs.intVar(&c.Workers, "workers", defaultWorkers, 0, workersUsage)
	backendFlag(fs, &c.Backend)
	fs.stringVar(&c.Models, "models", "DIR", "", `folder of ONNX models with their model cards (*.json) for triage; "" for the built-in demonstration ensemble`, nil)
	fs.durationVar(&c.JobLease, "job-lease", "1m", "how long a worker's claim on a triage job holds without renewal (renewed while it runs); a dead worker's job is taken over after it")
	fs.intVar(&c.MaxAttempts, "job-attempts", 3, 1, "attempts of a triage job before it is dead (its reason in /api/v1/jobs)")
	fs.durationVar(&c.Grace, "job-grace", "30s", "at shutdown, how long a job in hand may finish before it is given back to the queue")
}

// openJobStream connects to Redis (redisURL, "" for the embedded store)
// and returns the worklist and the job stream on it, with its group
// made, and the function that closes the connection.
func openJobStream(ctx context.Context, db *store.DB, redisURL string, wf *worklistFlags, logger *slog.Logger) (*worklist.Worklist, *worklist.Queue, func() error, error) {
	rdb, closeRedis, err := connectRedis(ctx, redisURL, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	wl, err := worklist.New(rdb, wf.config(db))
	if err != nil {
		closeRedis()
		return nil, nil, nil, fmt.Errorf("worklist: %w", err)
	}
	queue, err := worklist.NewQueue(rdb, worklist.QueueConfig{Prefix: wf.Prefix})
	if err == nil {
		err = queue.Ensure(ctx)
	}
	if err != nil {
		closeRedis()
		return nil, nil, nil, fmt.Errorf("job stream: %w", err)
	}
	return wl, queue, closeRedis, nil
}

// enqueue records the job in the store and, when it is new, adds it to
// the stream.
func enqueue(ctx context.Context, db *store.DB, q *worklist.Queue, study string, version int64) (bool, error) {
	add, err := db.EnqueueJob(ctx, study, version)
	if err != nil || !add {
		return false, err
	}
	return true, addToStream(ctx, db, q, study, version)
}

func addToStream(ctx context.Context, db *store.DB, q *worklist.Queue, study string, version int64) error {
	if _, err := q.Add(ctx, worklist.JobMessage{StudyUID: study, Version: version}); err != nil {
		return err
	}
	return db.MarkEnqueued(ctx, study, version, time.Now())
}

// reconcileInterval is how often serve compares the stream with the store.
const reconcileInterval = 2 * time.Second

// reconcile runs until ctx ends: every interval it re-adds to the stream
// the jobs the store says are due (a retry whose time came, a job queued
// but not taken for requeueAfter, a running job whose claim lapsed), and
// when the stream or the worklist is gone (Redis restarted empty or
// flushed) recreates the stream's group and rebuilds the worklist from
// the store. Several serve processes may run it: a job added twice runs
// once (the store's claim decides).
func reconcile(ctx context.Context, db *store.DB, q *worklist.Queue, wl *worklist.Worklist, requeueAfter time.Duration, logger *slog.Logger) {
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := reconcileOnce(ctx, db, q, wl, requeueAfter, logger); err != nil && ctx.Err() == nil {
			logger.Warn("pipeline: reconciling the job stream with the store failed; retrying", "err", err)
		}
	}
}

func reconcileOnce(ctx context.Context, db *store.DB, q *worklist.Queue, wl *worklist.Worklist, requeueAfter time.Duration, logger *slog.Logger) error {
	exists, err := q.Exists(ctx)
	if err != nil {
		return err
	}
	if !exists {
		if err := q.Ensure(ctx); err != nil {
			return err
		}
	}
	if n, err := rebuildIfEmpty(ctx, wl, db, logger); err != nil {
		return err
	} else if n > 0 {
		logger.Warn("pipeline: the worklist was empty (Redis restarted or flushed?): rebuilt from the store", "studies", n)
	}
	after := requeueAfter
	if !exists {
		after = 0 // the stream was lost: every queued job goes back now
	}
	jobs, err := db.DueJobs(ctx, time.Now(), after, 1000)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := addToStream(ctx, db, q, j.StudyUID, j.Version); err != nil {
			return err
		}
		logger.Info("pipeline: job put back on the stream", "study", j.StudyUID, "version", j.Version, "state", j.State, "attempts", j.Attempts)
	}
	return nil
}

// startWorkers runs c.Workers triage workers in g until ctx ends, each
// with its own backend and ensemble (an ensemble runs one study at a
// time). It returns the name of the backend.
func startWorkers(ctx context.Context, g *errgroup.Group, c *pipelineConfig, db *store.DB, q *worklist.Queue, wl *worklist.Worklist, obs triage.Observer, logger *slog.Logger) (string, error) {
	host, _ := os.Hostname()
	backend := ""
	if c.Workers == 0 {
		// No worker computes here, but a --backend that cannot open is
		// still an error at start, not a surprise later.
		b, err := openBackend(c.Backend, logger)
		if err != nil {
			return "", err
		}
		backend = b.Name()
		b.Close()
	}
	for i := range c.Workers {
		b, err := openBackend(c.Backend, logger)
		if err != nil {
			return "", err
		}
		backend = b.Name()
		ens, err := loadTriageEnsemble(&triageConfig{Models: c.Models}, b)
		if err != nil {
			b.Close()
			return "", err
		}
		w, err := triage.NewWorker(ens, q, db.TriageJobs(), wl, triage.WorkerConfig{
			Name:        host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i+1),
			Lease:       c.JobLease,
			MaxAttempts: c.MaxAttempts,
			Grace:       c.Grace,
			Logger:      logger,
			Observer:    obs,
		})
		if err != nil {
			ens.Close()
			b.Close()
			return "", err
		}
		g.Go(func() error {
			defer b.Close()
			defer ens.Close()
			return w.Run(ctx)
		})
	}
	if c.Workers > 0 {
		logger.Info("triage workers started", "workers", c.Workers, "backend", backend, "models", modelsName(c.Models))
	}
	return backend, nil
}

func modelsName(dir string) string {
	if dir == "" {
		return "built-in demonstration ensemble"
	}
	return dir
}
