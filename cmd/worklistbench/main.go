// Command worklistbench measures the Redis worklist (package worklist) on
// a real redis-server and, in the same run and on the same server, Debian's
// redis-benchmark for ZADD and ZRANGE 0 49, and writes a markdown table:
//
//	go run ./cmd/worklistbench -redis-url redis://127.0.0.1:6379/0 -studies 100000 -workers 8 -duration 10s -out bench-worklist.md
//
// (.ci/bench-worklist.sh runs it with the server in RADTRIAGE_TEST_REDIS_URL.)
//
// Phases, in order:
//
//   - preload: -studies open studies, upserted from -preload-conns
//     goroutines through go-redis's auto-pipeliner (concurrent Upserts are
//     sent in pipelines); the rate is reported.
//   - mix: -workers goroutines for -duration, each step picked at random
//     with equal odds among an upsert of an existing study (a re-send,
//     sometimes with a changed header), a reprioritisation (SetFindings,
//     one finding of a random tier), a claim+complete pair followed by the
//     upsert of a new study (so the number of open studies stays at
//     -studies, which is checked afterwards), and a top-50 listing (List
//     with Limit 50). Each goroutine owns its share of the open studies,
//     so claims never conflict.
//   - single client, in -rounds interleaved rounds (so that a disturbance
//     of a shared machine hits every row alike; each row reports its
//     median round): one goroutine for -single each doing only upserts of
//     new studies, only upserts of existing ones, only top-50 listings,
//     only plain ZADDs and only plain ZRANGE 0 49s from the same go-redis
//     client (the client's own floor); then redis-benchmark with -c 1
//     (-rb-requests/-rounds requests): ZADD key __rand_int__
//     member:__rand_int__ with -r 100000 (the built-in ZADD test, on a key
//     of ours) and ZRANGE key 0 49 on a 100,000-member sorted set.
//   - redis-benchmark with -c 8 and -rb-requests requests, the same tests
//     (skipped, like the -c 1 runs, with -redis-benchmark "").
//
// Latency is wall time per call, every sample kept (percentiles are exact,
// nearest rank). Round trips are counted by a go-redis hook: one per
// command sent alone, one per pipeline. The server's CPU time per call
// comes from INFO commandstats before and after each one-operation phase.
//
// Everything is written under a key prefix of the run's own (-prefix) in
// the URL's database (or -db); at the end, those keys are deleted by
// prefix (SCAN + UNLINK). It never runs FLUSHDB or FLUSHALL.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/worklist"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worklistbench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	redisURL       string
	db             int
	prefix         string
	studies        int
	workers        int
	preloadConns   int
	duration       time.Duration
	single         time.Duration
	rounds         int
	redisBenchmark string
	rbRequests     int
	out            string
	cpuProfile     string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("worklistbench", flag.ContinueOnError)
	fs.StringVar(&c.redisURL, "redis-url", os.Getenv("RADTRIAGE_TEST_REDIS_URL"), "URL of the redis-server to measure (default $RADTRIAGE_TEST_REDIS_URL)")
	fs.IntVar(&c.db, "db", -1, "database index to use instead of the URL's (-1: the URL's)")
	fs.StringVar(&c.prefix, "prefix", "", `key prefix of this run (default "worklistbench:<random>:"); must not be in use`)
	fs.IntVar(&c.studies, "studies", 100000, "open studies to preload and keep open")
	fs.IntVar(&c.workers, "workers", 8, "goroutines of the mixed phase")
	fs.IntVar(&c.preloadConns, "preload-conns", 64, "goroutines upserting during the preload")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of the mixed phase")
	fs.DurationVar(&c.single, "single", 600*time.Millisecond, "length of each single-client phase in each round (0 skips them)")
	fs.IntVar(&c.rounds, "rounds", 5, "interleaved rounds of the single-client phases (the median round is reported)")
	fs.StringVar(&c.redisBenchmark, "redis-benchmark", "redis-benchmark", `redis-benchmark binary to compare with ("" skips it)`)
	fs.IntVar(&c.rbRequests, "rb-requests", 100000, "requests per redis-benchmark run")
	fs.StringVar(&c.out, "out", "bench-worklist.md", `markdown file to write ("-": stdout only)`)
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phases (mix and single client) to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.redisURL == "":
		return c, errors.New("no Redis: pass -redis-url redis://HOST:PORT/DB or set RADTRIAGE_TEST_REDIS_URL (make services writes it to .cache/services.env)")
	case c.studies < c.workers || c.workers < 1:
		return c, fmt.Errorf("-studies %d and -workers %d: need at least one worker and one study per worker", c.studies, c.workers)
	case c.preloadConns < 1 || c.rbRequests < 1 || c.rounds < 1:
		return c, errors.New("-preload-conns, -rb-requests and -rounds must be at least 1")
	case c.duration <= 0 || c.single < 0:
		return c, errors.New("-duration must be positive and -single not negative")
	}
	if c.prefix == "" {
		b := make([]byte, 4)
		rand.Read(b)
		c.prefix = "worklistbench:" + hex.EncodeToString(b) + ":"
	}
	return c, nil
}

// results is what the report is made of.
type results struct {
	cfg         config
	opt         *redis.Options
	redisVer    string
	load        string // 1-minute load average at the start
	loadEnd     string // and at the end
	preloadTime time.Duration
	mixElapsed  time.Duration
	mix         []summary            // one per op, then the total
	single      []summary            // one-client rows (worklist, go-redis, redis-benchmark), median round
	rb8         []summary            // redis-benchmark with 8 clients
	shares      map[string][]float64 // per round: single-client rate / redis-benchmark ZADD rate (by row name)
	rbErr       error
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	opt, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	if cfg.db >= 0 {
		opt.DB = cfg.db
	}
	opt.PoolSize = max(opt.PoolSize, cfg.workers+4)
	client := redis.NewClient(opt)
	defer client.Close()
	client.AddHook(countHook{})
	if err := client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s (db %d): %w", opt.Addr, opt.DB, err)
	}
	if n, err := client.Exists(ctx, cfg.prefix+"queue").Result(); err != nil || n > 0 {
		return fmt.Errorf("key prefix %q is in use in db %d (or unreadable: %v); pick another -prefix", cfg.prefix, opt.DB, err)
	}
	// From here on, delete what we wrote, even after an interrupt.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		n, cerr := deleteByPrefix(cctx, client, cfg.prefix)
		fmt.Fprintf(os.Stderr, "worklistbench: deleted %d keys under %q in db %d\n", n, cfg.prefix, opt.DB)
		if cerr != nil && err == nil {
			err = fmt.Errorf("cleaning up keys under %q: %w", cfg.prefix, cerr)
		}
	}()

	res := &results{cfg: cfg, opt: opt, redisVer: redisVersion(ctx, client), load: loadAverage()}
	wcfg := worklist.Config{Prefix: cfg.prefix + "wl:", StreamMaxLen: 10000}
	wl, err := worklist.New(client, wcfg)
	if err != nil {
		return err
	}
	src := &studies{base: time.Now()}

	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "worklistbench: "+format+"\n", a...) }
	logf("redis %s at %s db %d, prefix %q; preloading %d studies", res.redisVer, opt.Addr, opt.DB, cfg.prefix, cfg.studies)
	t0 := time.Now()
	if err := preload(ctx, client, wcfg, src, cfg.studies, cfg.preloadConns); err != nil {
		return err
	}
	res.preloadTime = time.Since(t0)
	// The queue's key is documented in worklist.Config.Prefix.
	queueLen := func(when string) error {
		n, err := client.ZCard(ctx, wcfg.Prefix+"queue").Result()
		if err == nil && n != int64(cfg.studies) {
			err = fmt.Errorf("%d studies in the queue %s, want %d", n, when, cfg.studies)
		}
		return err
	}
	if err := queueLen("after the preload"); err != nil {
		return err
	}
	logf("preloaded in %v (%.0f studies/s)", res.preloadTime.Round(time.Millisecond), float64(cfg.studies)/res.preloadTime.Seconds())

	workers := make([]*worker, cfg.workers)
	for i := range workers {
		var ids []uint64
		for n := uint64(i); n < uint64(cfg.studies); n += uint64(cfg.workers) {
			ids = append(ids, n)
		}
		workers[i] = newWorker(ctx, i, wl, src, ids)
	}
	// Warm up: open the connections and load every script (a first
	// EVALSHA of a script the server lacks costs a second round trip).
	runPhase(ctx, workers, 300*time.Millisecond, (*worker).mixed)
	for _, w := range workers {
		w.stats = [numOps]opStats{}
	}

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	logf("mix: %d goroutines for %v", cfg.workers, cfg.duration)
	res.mixElapsed = runPhase(ctx, workers, cfg.duration, (*worker).mixed)
	var all opStats
	for op := range numWorklistOps {
		var s opStats
		for _, w := range workers {
			s.merge(&w.stats[op])
		}
		all.merge(&s)
		res.mix = append(res.mix, s.summarize(opNames[op], cfg.workers, res.mixElapsed))
	}
	res.mix = append(res.mix, all.summarize("worklist: all operations of the mix", cfg.workers, res.mixElapsed))
	if err := ctx.Err(); err != nil {
		return err
	}
	if all.errs == 0 {
		if err := queueLen("after the mix"); err != nil {
			return err
		}
	}

	// The 100,000-member sorted set of the ZRANGE baselines.
	zrange := cfg.prefix + "rb:zrange"
	if err := fillZset(ctx, client, zrange, 100000); err != nil {
		return err
	}

	if cfg.single > 0 {
		w := workers[0]
		w.rdb, w.zadd, w.zrng = client, cfg.prefix+"go:zadd", zrange
		res.single, res.shares, res.rbErr = singleClient(ctx, cfg, opt, client, w, zrange, logf)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if cfg.redisBenchmark != "" && res.rbErr == nil {
		logf("redis-benchmark: ZADD and ZRANGE 0 49 with 8 clients, %d requests each", cfg.rbRequests)
		for _, x := range rbRuns(cfg, zrange) {
			s, err := x.run(ctx, cfg, opt, client, 8, cfg.rbRequests)
			if err != nil {
				res.rbErr = err
				break
			}
			res.rb8 = append(res.rb8, s)
		}
	}
	if res.rbErr != nil {
		logf("%v", res.rbErr)
	}

	res.loadEnd = loadAverage()
	report := res.markdown()
	fmt.Fprint(stdout, report)
	if cfg.out != "-" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.out)
	}
	if res.rbErr != nil {
		return res.rbErr
	}
	for _, s := range append(res.mix, res.single...) {
		if s.errs > 0 {
			return fmt.Errorf("%d failed operations (%s), first: %w", s.errs, s.name, s.firstErr)
		}
	}
	return nil
}

// preload upserts studies 0..n-1 of src from conns goroutines through the
// client's auto-pipeliner, which sends concurrent commands in pipelines.
func preload(ctx context.Context, client *redis.Client, wcfg worklist.Config, src *studies, n, conns int) error {
	ap, err := client.AutoPipeline()
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	defer ap.Close()
	wl, err := worklist.New(ap, wcfg)
	if err != nil {
		return err
	}
	// Load the upsert script on the server first: a pipelined EVALSHA of an
	// unknown script would fail in every command of the first batch.
	plain, err := worklist.New(client, wcfg)
	if err != nil {
		return err
	}
	if _, err := plain.Upsert(ctx, src.study(src.next.Add(1)-1, 0), "bench.pacs"); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := src.next.Add(1) - 1
				if k >= uint64(n) {
					src.next.Add(^uint64(0)) // undo: the mix numbers new studies from n
					return
				}
				if _, err := wl.Upsert(ctx, src.study(k, 0), "bench.pacs"); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, fmt.Errorf("preload: %w", err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if src.next.Load() != uint64(n) {
		return fmt.Errorf("preload: stopped after %d of %d studies: %w", src.next.Load(), n, ctx.Err())
	}
	return ctx.Err()
}

// rbRun is one redis-benchmark test: a command line for redis-benchmark
// and the INFO commandstats name of its command.
type rbRun struct {
	name     string
	keyspace int // -r: __rand_int__ takes values below it (0: no -r)
	stat     string
	command  []string
}

// rbRuns are the redis-benchmark tests: ZADD of random members (the
// built-in ZADD test with -r 100000, on a key of ours) and ZRANGE 0 49 on
// zrange, a sorted set of 100,000 members.
func rbRuns(cfg config, zrange string) []rbRun {
	return []rbRun{
		{"redis-benchmark ZADD (-r 100000)", 100000, "zadd", []string{"ZADD", cfg.prefix + "rb:zadd", "__rand_int__", "member:__rand_int__"}},
		{"redis-benchmark ZRANGE 0 49 (100,000 members)", 0, "zrange", []string{"ZRANGE", zrange, "0", "49"}},
	}
}

// run runs x with clients connections and requests requests and returns
// its row.
func (x rbRun) run(ctx context.Context, cfg config, opt *redis.Options, client *redis.Client, clients, requests int) (summary, error) {
	before, _ := commandStats(ctx, client)
	r, err := redisBenchmark(ctx, cfg.redisBenchmark, opt, clients, requests, x.keyspace, x.command...)
	if err != nil {
		return summary{}, err
	}
	after, _ := commandStats(ctx, client)
	return summary{
		name: x.name, command: r.command, clients: clients, n: requests,
		opsPerS: r.rps, p50: r.p50, p99: r.p99, rtMean: 1, rtMax: 1,
		serverUS: serverMicros(before, after, x.stat),
	}, nil
}

// singleClient runs the single-client phases in cfg.rounds interleaved
// rounds, so that a disturbance of a shared machine hits all of them
// alike. Each round runs redis-benchmark's ZADD with one client and
// cfg.rbRequests/cfg.rounds requests (unless cfg.redisBenchmark is ""),
// then one goroutine for cfg.single doing only upserts of new studies,
// only upserts of existing ones, plain ZADDs, only top-50 listings, plain
// ZRANGE 0 49s, then redis-benchmark's ZRANGE with one client. Each row is
// the round with the median rate. shares holds, for the upserts and the
// plain ZADD, the rate over redis-benchmark's ZADD rate of the same round,
// one per round. A redis-benchmark failure is returned (with what was
// measured) after the rounds are done.
func singleClient(ctx context.Context, cfg config, opt *redis.Options, client *redis.Client, w *worker, zrange string, logf func(string, ...any)) (rows []summary, shares map[string][]float64, rbErr error) {
	rb := rbRuns(cfg, zrange)
	type phase struct {
		op   int
		step func(*worker) error
		rb   *rbRun
	}
	phases := []phase{
		{rb: &rb[0]},
		{op: opUpsertNew, step: (*worker).upsertNew},
		{op: opUpsertExisting, step: (*worker).upsertExisting},
		{op: opGoZadd, step: (*worker).goZadd},
		{op: opList, step: (*worker).list},
		{op: opGoZrange, step: (*worker).goZrange},
		{rb: &rb[1]},
	}
	shareOf := []int{1, 2, 3} // phases compared with phases[0]
	if cfg.redisBenchmark == "" {
		phases = phases[1 : len(phases)-1]
		shareOf = nil
	}
	rounds := make([][]summary, len(phases))
	shares = map[string][]float64{}
	for r := range cfg.rounds {
		logf("single client, round %d of %d", r+1, cfg.rounds)
		for i, p := range phases {
			if p.rb != nil {
				if rbErr != nil {
					continue
				}
				s, err := p.rb.run(ctx, cfg, opt, client, 1, max(cfg.rbRequests/cfg.rounds, 1000))
				if err != nil {
					rbErr = err
					continue
				}
				rounds[i] = append(rounds[i], s)
				continue
			}
			w.stats, w.names = [numOps]opStats{}, map[string]int{}
			before, _ := commandStats(ctx, client)
			el := runPhase(ctx, []*worker{w}, cfg.single, p.step)
			after, _ := commandStats(ctx, client)
			s := w.stats[p.op].summarize(opNames[p.op], 1, el)
			s.serverUS = serverMicrosPerOp(before, after, w.names, s.n)
			rounds[i] = append(rounds[i], s)
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if rbErr == nil {
			for _, i := range shareOf {
				s := rounds[i][r]
				shares[s.name] = append(shares[s.name], s.opsPerS/rounds[0][r].opsPerS)
			}
		}
	}
	w.names = nil
	// Rows in table order: the worklist, go-redis, then redis-benchmark.
	order := []int{opUpsertNew, opUpsertExisting, opList, opGoZadd, opGoZrange}
	for _, op := range order {
		for i, p := range phases {
			if p.rb == nil && p.op == op && len(rounds[i]) > 0 {
				rows = append(rows, medianRound(rounds[i]))
			}
		}
	}
	for i, p := range phases {
		if p.rb != nil && len(rounds[i]) > 0 {
			rows = append(rows, medianRound(rounds[i]))
		}
	}
	return rows, shares, rbErr
}

// median returns the median of xs (the mean of the middle two of an even
// number), or 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianRound returns the round with the median rate (the lower middle
// one of an even number), with the errors of all rounds and the least
// server time per call of any round (other clients of a shared server can
// only add to it).
func medianRound(rs []summary) summary {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b summary) int { return cmp.Compare(a.opsPerS, b.opsPerS) })
	m := sorted[(len(sorted)-1)/2]
	m.errs, m.handshakes, m.short = 0, 0, 0
	for _, r := range rs {
		m.errs += r.errs
		m.short += r.short
		m.handshakes += r.handshakes
		if m.firstErr == nil {
			m.firstErr = r.firstErr
		}
		if r.serverUS >= 0 && (m.serverUS < 0 || r.serverUS < m.serverUS) {
			m.serverUS = r.serverUS
		}
	}
	return m
}

// fillZset adds n members with random scores to the sorted set key.
func fillZset(ctx context.Context, client *redis.Client, key string, n int) error {
	const batch = 1000
	pipe := client.Pipeline()
	zs := make([]redis.Z, 0, batch)
	for i := 0; i < n; i++ {
		zs = append(zs, redis.Z{Score: float64(i * 7919 % n), Member: fmt.Sprintf("member:%012d", i)})
		if len(zs) == batch || i == n-1 {
			pipe.ZAdd(ctx, key, zs...)
			zs = zs[:0]
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("filling %s: %w", key, err)
	}
	return nil
}

// deleteByPrefix deletes every key that starts with prefix (SCAN MATCH +
// UNLINK) and returns how many it deleted.
func deleteByPrefix(ctx context.Context, client *redis.Client, prefix string) (int, error) {
	n := 0
	iter := client.Scan(ctx, 0, escapeGlob(prefix)+"*", 10000).Iterator()
	keys := make([]string, 0, 1000)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		d, err := client.Unlink(ctx, keys...).Result()
		n += int(d)
		keys = keys[:0]
		return err
	}
	for iter.Next(ctx) {
		if k := iter.Val(); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		if len(keys) == cap(keys) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// escapeGlob quotes the characters that SCAN MATCH patterns treat
// specially (* ? [ ] \), so that the pattern matches s literally.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func redisVersion(ctx context.Context, client *redis.Client) string {
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		return "(version unknown)"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "(version unknown)"
}

// loadAverage returns the 1-minute load average from /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
