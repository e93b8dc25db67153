package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// worklistFlags is the worklist configuration that serve and worklist
// rebuild share (with --redis-url, which serve keeps in its own field).
type worklistFlags struct {
	Prefix   string
	Critical time.Duration // reading deadline of each tier
	Urgent   time.Duration
	Routine  time.Duration
	Lease    time.Duration // claim lease
}

// register adds --redis-url (to redisURL), --worklist-prefix, the
// deadlines and --claim-lease. redisUsage describes --redis-url for the
// command.
func (c *worklistFlags) register(fs *flagSet, redisURL *string, redisUsage string) {
	fs.stringVar(redisURL, "redis-url", "URL", "", redisUsage, checkRedisURL)
	fs.stringVar(&c.Prefix, "worklist-prefix", "PREFIX", worklist.DefaultPrefix, "prefix of the worklist's Redis keys (several deployments can share one Redis under different prefixes)", checkNonEmpty)
	fs.durationVar(&c.Critical, "deadline-critical", "15m", "reading deadline of a critical study: due time = received + deadline")
	fs.durationVar(&c.Urgent, "deadline-urgent", "1h", "reading deadline of an urgent study")
	fs.durationVar(&c.Routine, "deadline-routine", "8h", "reading deadline of a routine study")
	fs.durationVar(&c.Lease, "claim-lease", "10m", "how long a radiologist's claim on a study holds without renewal before it returns to the queue")
}

// config is the worklist.Config of c, recording changes in rec.
func (c *worklistFlags) config(rec worklist.Recorder) worklist.Config {
	return worklist.Config{
		Prefix: c.Prefix,
		Deadlines: map[worklist.Tier]time.Duration{
			worklist.TierCritical: c.Critical,
			worklist.TierUrgent:   c.Urgent,
			worklist.TierRoutine:  c.Routine,
		},
		Lease:    c.Lease,
		Recorder: rec,
	}
}

// redisPingTimeout bounds the connection check at start.
const redisPingTimeout = 10 * time.Second

// connectRedis returns a client for redisURL (--redis-url), checked with
// a PING, and the function that closes it. An empty URL starts the
// embedded store (which logs that it is for one process only), closed
// with the client.
func connectRedis(ctx context.Context, redisURL string, logger *slog.Logger) (*redis.Client, func() error, error) {
	var (
		u        = redisURL
		embedded *worklist.Embedded
	)
	if u == "" {
		e, err := worklist.StartEmbedded(logger)
		if err != nil {
			return nil, nil, err
		}
		embedded, u = e, e.URL()
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		if embedded != nil {
			embedded.Close()
		}
		return nil, nil, fmt.Errorf("invalid --redis-url %s: %w", redactURL(u), err)
	}
	client := redis.NewClient(opts)
	closeAll := func() error {
		err := client.Close()
		if embedded != nil {
			err = errors.Join(err, embedded.Close())
		}
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		closeAll()
		if embedded != nil {
			return nil, nil, fmt.Errorf("embedded worklist store: %w", err)
		}
		return nil, nil, fmt.Errorf("cannot reach Redis at --redis-url %s (RADTRIAGE_REDIS_URL): %w", redactURL(u), err)
	}
	if embedded == nil {
		logger.Info("worklist: Redis", "url", redactURL(u))
	}
	return client, closeAll, nil
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// sliceSource is a worklist.Source over entries already read.
type sliceSource []worklist.Entry

func (s sliceSource) OpenStudies(context.Context) ([]worklist.Entry, error) { return s, nil }

// rebuildIfEmpty rebuilds the worklist from the store when the worklist
// holds no study and the store has open ones (a fresh embedded store, or
// a Redis that lost its data). It returns how many studies it added. A
// rebuild that added some studies but failed on others is logged, not
// returned: serving those beats serving none.
func rebuildIfEmpty(ctx context.Context, wl *worklist.Worklist, db *store.DB, logger *slog.Logger) (int, error) {
	empty, err := wl.Empty(ctx)
	if err != nil || !empty {
		return 0, err
	}
	open, err := db.OpenStudies(ctx)
	if err != nil {
		return 0, err
	}
	if len(open) == 0 {
		return 0, nil
	}
	start := time.Now()
	n, err := wl.Rebuild(ctx, sliceSource(open))
	if err != nil && n == 0 {
		return 0, fmt.Errorf("rebuilding the worklist from the store: %w", err)
	}
	if err != nil {
		// Some studies (or the "rebuilt" event) failed: serve the others
		// rather than none; "radtriage worklist rebuild" can retry.
		logger.Warn("worklist rebuilt from the store with errors", "studies", n, "of", len(open), "err", err)
		return n, nil
	}
	logger.Info("worklist was empty: rebuilt from the store", "studies", n, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// sweepInterval is how often serve returns lapsed claims to the queue:
// every 5 s, or a quarter of a shorter lease (at least 50 ms).
func sweepInterval(lease time.Duration) time.Duration {
	return min(5*time.Second, max(lease/4, 50*time.Millisecond))
}

// sweepLeases calls ExpireLeases every interval until ctx ends.
func sweepLeases(ctx context.Context, wl *worklist.Worklist, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := wl.ExpireLeases(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("worklist: expiring leases failed; retrying", "err", err)
		case n > 0:
			logger.Info("worklist: lapsed claims returned to the queue", "studies", n)
		}
	}
}

// worklistNotifier hears that a study became stable: it upserts the study
// on the worklist (as the store describes it) and, with a queue, records
// a triage job for this version of the study (its instance count) and
// adds it to the job stream. A completed study stays off the worklist and
// is not triaged again.
type worklistNotifier struct {
	db     *store.DB
	wl     *worklist.Worklist
	queue  *worklist.Queue // nil: no triage jobs
	stable func()          // called per stable study (metrics); may be nil
	logger *slog.Logger
}

var _ store.StabilityNotifier = worklistNotifier{}

// upsertUser is who the worklist records for studies arriving.
const upsertUser = "ingest"

// StudyStable upserts the study and enqueues its triage. An error makes
// the store retry on its next pass (both steps are idempotent).
func (n worklistNotifier) StudyStable(ctx context.Context, studyUID string, instances int) error {
	n.logger.InfoContext(ctx, "study stable", "study", studyUID, "instances", instances)
	if n.stable != nil {
		n.stable()
	}
	e, open, err := n.db.WorklistStudy(ctx, studyUID)
	if err != nil {
		return err
	}
	if !open {
		n.logger.DebugContext(ctx, "study completed: not put back on the worklist nor triaged", "study", studyUID)
		return nil
	}
	it, err := n.wl.Upsert(ctx, e.Study, upsertUser)
	if errors.Is(err, worklist.ErrCompleted) {
		return nil
	}
	if err != nil {
		return err
	}
	n.logger.DebugContext(ctx, "worklist: study upserted", "study", studyUID, "tier", it.Tier, "due", it.Due)
	if n.queue == nil {
		return nil
	}
	added, err := enqueue(ctx, n.db, n.queue, studyUID, int64(instances))
	if err != nil {
		return fmt.Errorf("enqueueing the triage of %s: %w", studyUID, err)
	}
	if added {
		n.logger.InfoContext(ctx, "triage job queued", "study", studyUID, "version", instances)
	} else {
		n.logger.DebugContext(ctx, "triage job for this version already queued or run", "study", studyUID, "version", instances)
	}
	return nil
}

func runWorklist(ctx context.Context, env *environ, args []string) error {
	var (
		dataDir, databaseURL string
		redisURL             string
		wf                   worklistFlags
		log                  logConfig
	)
	fs := newFlagSet("worklist", "rebuild", `Maintain the Redis worklist. "rebuild" replaces the worklist under --worklist-prefix
with every open (not completed) study of the index database, with its findings and
manual priority, and prints how many studies it added. Claims are lost.

Run it against the Redis and the database that serve uses (--redis-url redis://…,
--database-url postgres://…), with the same deadlines and prefix. It needs
--redis-url: the embedded store lives inside one "radtriage serve" process, where a
separate process cannot reach it; serve rebuilds it from the store at every start.`, env)
	databaseFlags(fs, &dataDir, &databaseURL)
	wf.register(fs, &redisURL, "the Redis holding the worklist, redis://host:6379/0 (required)")
	log.register(fs)
	pos, err := fs.parse(args, 1)
	if err != nil {
		return err
	}
	if pos[0] != "rebuild" {
		return usagef("worklist: unknown action %q: want rebuild", pos[0])
	}
	if redisURL == "" {
		return usagef("worklist rebuild: --redis-url (RADTRIAGE_REDIS_URL) is required: the embedded store exists only inside a running serve, which rebuilds it at start")
	}
	logger := log.newLogger(env.stderr)
	n, err := rebuildWorklist(ctx, dataDir, databaseURL, redisURL, &wf, logger)
	if err != nil {
		return fmt.Errorf("worklist rebuild: %w", err)
	}
	fmt.Fprintf(env.stdout, "worklist rebuilt: %d open studies\n", n)
	return nil
}

// rebuildWorklist rebuilds the worklist of wf from the store.
func rebuildWorklist(ctx context.Context, dataDir, databaseURL, redisURL string, wf *worklistFlags, logger *slog.Logger) (int, error) {
	db, err := store.Open(ctx, store.Config{DatabaseURL: databaseURL, DataDir: dataDir, Logger: logger})
	if err != nil {
		return 0, fmt.Errorf("opening the store: %w", err)
	}
	defer db.Close()
	client, closeRedis, err := connectRedis(ctx, redisURL, logger)
	if err != nil {
		return 0, err
	}
	defer closeRedis()
	wl, err := worklist.New(client, wf.config(db))
	if err != nil {
		return 0, err
	}
	return wl.Rebuild(ctx, db)
}
