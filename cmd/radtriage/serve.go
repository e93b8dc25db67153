package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/radtriage/radtriage/api"
	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
)

// serveConfig is the configuration of radtriage serve.
type serveConfig struct {
	Addr            string
	DataDir         string
	DatabaseURL     string
	RedisURL        string
	Pipeline        pipelineConfig // --workers, --backend, --models, --job-*
	StableAge       time.Duration
	MaxRequestSize  int64
	MaxInstanceSize int64
	CORSOrigins     []string
	ViewerURL       string // --viewer-url: the worklist page's link to an external viewer
	Worklist        worklistFlags
	log             logConfig
}

// logConfig is the logging flags every long-running command has.
type logConfig struct {
	Level  string
	Format string
}

func (c *logConfig) register(fs *flagSet) {
	fs.enumVar(&c.Level, "log-level", "info", "least severe level logged", "debug", "info", "warn", "error")
	fs.enumVar(&c.Format, "log-format", "text", "log line format: text (logfmt) or json", "text", "json")
}

// newLogger returns the slog logger for c, writing to w.
func (c logConfig) newLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // checked by the flag
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// databaseFlags registers --data-dir and --database-url, which serve and
// migrate share.
func databaseFlags(fs *flagSet, dataDir, databaseURL *string) {
	fs.stringVar(dataDir, "data-dir", "DIR", "./data", "folder for blobs (blobs/), the embedded SQLite index (index.db) and conflicts/", checkNonEmpty)
	fs.stringVar(databaseURL, "database-url", "URL", "", `index database: "" for SQLite in the data dir, sqlite:///path/file.db, or postgres://user@host/db`, checkDatabaseURL)
}

func parseServe(env *environ, args []string) (*serveConfig, error) {
	var c serveConfig
	fs := newFlagSet("serve", "", `Run the DICOMweb server (STOW-RS, QIDO-RS, WADO-RS under /dicomweb; /healthz, /readyz).

With no flags it runs on one machine with nothing installed: SQLite and blobs in
./data. That default is not for production scale-out: use --database-url
postgres://… and --redis-url redis://… with a data dir on a shared volume.`, env)
	fs.stringVar(&c.Addr, "addr", "HOST:PORT", "127.0.0.1:8080", "address to listen on (port 0: any free port)", checkAddr)
	databaseFlags(fs, &c.DataDir, &c.DatabaseURL)
	c.Worklist.register(fs, &c.RedisURL, `Redis for the worklist and the triage job stream: "" for the embedded in-process store (one process only, emptied at exit and rebuilt from the index at start), or redis://[:password@]host:6379/0`)
	c.Pipeline.register(fs, 1, "in-process triage workers, 0 for none (then run \"radtriage worker\" processes against the same database and Redis)")
	fs.durationVar(&c.StableAge, "stable-age", "5s", "a study with no new instance for this long is stable and goes to triage")
	fs.sizeVar(&c.MaxRequestSize, "max-request-size", "4GiB", "largest STOW-RS request body (413 above); units B, KiB, MiB, GiB, KB, MB, GB")
	fs.sizeVar(&c.MaxInstanceSize, "max-instance-size", "2GiB", "largest single instance of a request (refused with a failure reason above)")
	fs.add("cors-origins", "LIST", "", `comma-separated browser origins allowed by CORS (https://viewer.example.org), "*" for any, "" for CORS off`,
		func(s string) error {
			origins, err := parseOrigins(s)
			c.CORSOrigins = origins
			return err
		})
	fs.stringVar(&c.ViewerURL, "viewer-url", "TEMPLATE", "", `link from the worklist page to an external DICOMweb viewer, {study} standing for the Study Instance UID (e.g. https://ohif.example.org/viewer?StudyInstanceUIDs={study}); "" for no link`, api.CheckViewerURL)
	c.log.register(fs)
	if _, err := fs.parse(args, 0); err != nil {
		return nil, err
	}
	if c.MaxInstanceSize > c.MaxRequestSize {
		return nil, usagef("invalid %s: larger than %s", fs.origin("max-instance-size"), fs.origin("max-request-size"))
	}
	return &c, nil
}

func checkNonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func checkAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func checkDatabaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "sqlite":
		if u.Path == "" && u.Opaque == "" {
			return errors.New("sqlite URL has no file path (sqlite:///path/file.db)")
		}
	case "postgres", "postgresql":
		if u.Host == "" && u.Query().Get("host") == "" {
			return errors.New("postgres URL has no host")
		}
	default:
		return fmt.Errorf("scheme %q is neither sqlite nor postgres", u.Scheme)
	}
	return nil
}

// databaseKind names the database of a --database-url for logs.
func databaseKind(databaseURL string) string {
	if strings.HasPrefix(databaseURL, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func checkRedisURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return errors.New("redis URL has no host")
		}
	case "unix":
		if u.Path == "" {
			return errors.New("unix URL has no socket path")
		}
	default:
		return fmt.Errorf("scheme %q is not redis, rediss or unix", u.Scheme)
	}
	return nil
}

// parseOrigins reads a comma-separated list of CORS origins: "*" or
// scheme://host[:port] without path.
func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("origin %q is not \"*\" or scheme://host[:port]", o)
			}
			o = u.Scheme + "://" + u.Host
		}
		out = append(out, o)
	}
	return out, nil
}

// stabilityInterval is how often the stability watcher looks: a quarter
// of the stable age, between 100ms and 10s.
func stabilityInterval(stableAge time.Duration) time.Duration {
	return min(max(stableAge/4, 100*time.Millisecond), 10*time.Second)
}

// shutdownGrace bounds how long in-flight requests may finish after a
// signal.
const shutdownGrace = 30 * time.Second

// newHTTPServer returns the server for h. There is no ReadTimeout or
// WriteTimeout: a STOW-RS upload or a WADO-RS download of a large study
// takes as long as it takes; slow-header clients are cut by
// ReadHeaderTimeout and idle connections by IdleTimeout.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func runServe(ctx context.Context, env *environ, args []string) error {
	c, err := parseServe(env, args)
	if err != nil {
		return err
	}
	return serve(ctx, c, env.stderr, nil)
}

// serve runs the server until ctx ends. When ready is not nil it receives
// the listening address once the server accepts connections.
func serve(ctx context.Context, c *serveConfig, logw io.Writer, ready chan<- net.Addr) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the workers when serve fails after starting them
	logger := c.log.newLogger(logw)
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{
		DatabaseURL: c.DatabaseURL,
		DataDir:     dataDir,
		StableAge:   c.StableAge,
		Logger:      logger,
	})
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer db.Close()

	wl, queue, closeRedis, err := openJobStream(ctx, db, c.RedisURL, &c.Worklist, logger)
	if err != nil {
		return err
	}
	defer closeRedis()
	if _, err := rebuildIfEmpty(ctx, wl, db, logger); err != nil {
		return err
	}
	metrics := api.NewMetrics(prometheus.NewRegistry())
	metrics.CollectFrom(db, queue, wl)

	g, gctx := errgroup.WithContext(ctx)
	backend, err := startWorkers(gctx, g, &c.Pipeline, db, queue, wl, metrics, logger)
	if err != nil {
		return err
	}
	metrics.SetBackend(backend)

	handler := api.New(db, api.Config{
		MaxRequestBytes:  c.MaxRequestSize,
		MaxInstanceBytes: c.MaxInstanceSize,
		CORSOrigins:      c.CORSOrigins,
		Worklist:         wl,
		Results:          db,
		Jobs:             db,
		Queue:            queue,
		Metrics:          metrics,
		KeyImages:        triage.NewKeyImages(db, keyImageCacheStudies),
		Logger:           logger,
		UI: api.UIConfig{
			ViewerURL:     c.ViewerURL,
			Demonstration: c.Pipeline.Models == "",
			Models:        []string{modelsName(c.Pipeline.Models)},
		},
	})
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := newHTTPServer(handler, logger)

	logger.Info("radtriage serving", "addr", ln.Addr().String(), "database", databaseKind(c.DatabaseURL),
		"data_dir", dataDir, "version", version)
	if c.DatabaseURL == "" {
		logger.Warn("embedded default in use (SQLite index in the data dir): fine for one machine, not for production scale-out; set --database-url postgres://… and put --data-dir on a shared volume")
	}

	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down", "grace", shutdownGrace)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error {
		n := worklistNotifier{db: db, wl: wl, queue: queue, stable: metrics.StudyStable, logger: logger}
		err := db.WatchStability(gctx, n, stabilityInterval(c.StableAge))
		if err != nil && gctx.Err() == nil {
			return fmt.Errorf("stability watcher: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		sweepLeases(gctx, wl, sweepInterval(c.Worklist.Lease), logger)
		return nil
	})
	g.Go(func() error {
		reconcile(gctx, db, queue, wl, 2*c.Pipeline.JobLease, logger)
		return nil
	})
	if ready != nil {
		ready <- ln.Addr()
	}
	err = g.Wait()
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// keyImageCacheStudies is how many studies' assembled series and masks
// the key-image renderer keeps (about 2 bytes per voxel each: some 300 MB
// for a 512×512×300 study at most per entry).
const keyImageCacheStudies = 4
