package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/radtriage/radtriage/api"
	"github.com/radtriage/radtriage/store"
)

// workerConfig is the configuration of radtriage worker.
type workerConfig struct {
	DataDir     string
	DatabaseURL string
	RedisURL    string
	MetricsAddr string
	Worklist    worklistFlags
	Pipeline    pipelineConfig
	log         logConfig
}

const workerAbout = `Run triage workers only, without the API: for scale-out, typically one process
per GPU machine. Workers take jobs from the Redis job stream that "radtriage
serve" fills, read the studies from the shared data dir and database, save the
results and re-tier the worklist. They need the database, Redis and data dir
that serve uses (--database-url postgres://…, --redis-url redis://…, --data-dir
on a shared volume), and the same --worklist-prefix.

A job is acknowledged only after its result is committed; a worker killed in
the middle of one leaves it to another after --job-lease. On SIGTERM or
SIGINT a job in hand gets --job-grace to finish, else it goes back to the
queue.`

func parseWorker(env *environ, args []string) (*workerConfig, error) {
	var c workerConfig
	fs := newFlagSet("worker", "", workerAbout, env)
	databaseFlags(fs, &c.DataDir, &c.DatabaseURL)
	c.Worklist.register(fs, &c.RedisURL, "the Redis holding the worklist and the job stream, redis://host:6379/0 (required)")
	c.Pipeline.register(fs, 1, "triage workers in this process (at least 1)")
	fs.stringVar(&c.MetricsAddr, "metrics-addr", "HOST:PORT", "", `address for Prometheus /metrics of this process; "" for none`, func(s string) error {
		if s == "" {
			return nil
		}
		return checkAddr(s)
	})
	c.log.register(fs)
	if _, err := fs.parse(args, 0); err != nil {
		return nil, err
	}
	if c.RedisURL == "" {
		return nil, usagef("worker: --redis-url (RADTRIAGE_REDIS_URL) is required: the embedded store lives inside one serve process; run workers there with serve --workers")
	}
	if c.Pipeline.Workers < 1 {
		return nil, usagef("worker: --workers must be at least 1")
	}
	return &c, nil
}

func runWorker(ctx context.Context, env *environ, args []string) error {
	c, err := parseWorker(env, args)
	if err != nil {
		return err
	}
	return work(ctx, c, env.stderr, nil)
}

// work runs the workers until ctx ends. When ready is not nil it receives
// the metrics address (nil without --metrics-addr) once the workers run.
func work(ctx context.Context, c *workerConfig, logw io.Writer, ready chan<- net.Addr) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := c.log.newLogger(logw)
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: c.DatabaseURL, DataDir: dataDir, Logger: logger})
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer db.Close()
	wl, queue, closeRedis, err := openJobStream(ctx, db, c.RedisURL, &c.Worklist, logger)
	if err != nil {
		return err
	}
	defer closeRedis()
	reg := prometheus.NewRegistry()
	metrics := api.NewMetrics(reg)

	g, gctx := errgroup.WithContext(ctx)
	backend, err := startWorkers(gctx, g, &c.Pipeline, db, queue, wl, metrics, logger)
	if err != nil {
		return err
	}
	metrics.SetBackend(backend)
	var addr net.Addr
	if c.MetricsAddr != "" {
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return err
		}
		addr = ln.Addr()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := newHTTPServer(mux, logger)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
		logger.Info("worker metrics", "addr", addr.String())
	}
	if ready != nil {
		ready <- addr
	}
	err = g.Wait()
	if err == nil {
		logger.Info("workers stopped")
	}
	return err
}
