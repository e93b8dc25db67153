package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/api/e2e"
)

// defaultRedisURL is used when RADTRIAGE_TEST_REDIS_URL is unset.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

type config struct {
	bin       string
	runs      int
	studies   int
	workers   []int
	setups    []string
	stableAge time.Duration
	slack     time.Duration // target: time to triage <= stable age + slack
	dbURL     string
	redisURL  string
	out       string
	keep      bool
	seed      int
	timeout   time.Duration // per study
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pipelinebench", flag.ContinueOnError)
	var cfg config
	var workers, setups string
	redisDefault := os.Getenv("RADTRIAGE_TEST_REDIS_URL")
	if redisDefault == "" {
		redisDefault = defaultRedisURL
	}
	fs.IntVar(&cfg.runs, "runs", 8, "time-to-triage runs per setup, one bleed phantom each (0: skip)")
	fs.IntVar(&cfg.studies, "studies", 12, "phantoms pushed per throughput run (0: skip)")
	fs.StringVar(&workers, "workers", "1,2", "worker processes of each throughput run")
	fs.StringVar(&setups, "setups", "embedded,services", "time-to-triage setups: embedded (SQLite + in-process store), services (PostgreSQL + Redis)")
	fs.DurationVar(&cfg.stableAge, "stable-age", 2*time.Second, "radtriage serve --stable-age")
	fs.DurationVar(&cfg.slack, "target", 10*time.Second, "target: time to triage at most the stable age plus this")
	fs.StringVar(&cfg.dbURL, "database-url", e2e.TestDatabaseURL(), "PostgreSQL for the services runs (a fresh schema per run, dropped afterwards)")
	fs.StringVar(&cfg.redisURL, "redis-url", redisDefault, "Redis for the services runs (keys under a prefix of each run's own, deleted afterwards)")
	fs.StringVar(&cfg.bin, "bin", "", "radtriage binary (default: go build ./cmd/radtriage)")
	fs.StringVar(&cfg.out, "o", "", "also write the Markdown report to this file")
	fs.IntVar(&cfg.seed, "seed", 7001, "phantom seed of the first time-to-triage study (throughput: seed+1000 on)")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "longest wait for one study's triage")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary folder (server and worker logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, w := range splitList(workers) {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return fmt.Errorf("-workers: bad worker count %q", w)
		}
		cfg.workers = append(cfg.workers, n)
	}
	cfg.setups = splitList(setups)
	for _, s := range cfg.setups {
		if s != "embedded" && s != "services" {
			return fmt.Errorf("-setups: unknown setup %q (embedded, services)", s)
		}
	}
	if cfg.runs < 0 || cfg.studies < 0 {
		return errors.New("-runs and -studies must not be negative")
	}

	tmp, err := os.MkdirTemp("", "pipelinebench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		defer fmt.Fprintf(os.Stderr, "kept %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &bench{cfg: cfg, tmp: tmp, logf: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }}
	if cfg.bin == "" {
		b.logf("building ./cmd/radtriage")
		if cfg.bin, err = e2e.BuildServer(ctx, tmp); err != nil {
			return err
		}
		b.cfg.bin = cfg.bin
	}
	rep := &report{cfg: cfg, cpus: runtime.NumCPU(), loadStart: loadAvg(), version: binVersion(ctx, cfg.bin)}

	var latStudies, tpStudies []study
	if cfg.runs > 0 && len(cfg.setups) > 0 {
		if latStudies, err = b.phantoms(ctx, "latency", cfg.seed, cfg.runs, "ich"); err != nil {
			return err
		}
	}
	if cfg.studies > 0 && len(cfg.workers) > 0 {
		if tpStudies, err = b.phantoms(ctx, "throughput", cfg.seed+1000, cfg.studies, "random"); err != nil {
			return err
		}
	}

	for _, setup := range cfg.setups {
		if len(latStudies) == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := b.latency(ctx, setup, latStudies)
		if err != nil {
			b.logf("time to triage, %s: %v", setup, err)
			r.err = err.Error()
		}
		rep.latency = append(rep.latency, r)
	}
	for _, n := range cfg.workers {
		if len(tpStudies) == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := b.throughput(ctx, n, tpStudies)
		if err != nil {
			b.logf("throughput, %d workers: %v", n, err)
			r.err = err.Error()
		}
		rep.throughput = append(rep.throughput, r)
	}

	// The reference, with no server running.
	if len(latStudies) > 0 {
		rep.cli = map[string]cliResult{}
		for _, s := range latStudies {
			r := b.triageCLI(ctx, s.dir)
			if r.err == "" && len(r.results) == 1 {
				b.logf("reference: radtriage triage %s: %.2f s wall, %.2f s triage", filepath.Base(s.dir), r.wall.Seconds(), r.results[0].compute.Seconds())
			}
			rep.cli[s.uid] = r
		}
	}
	if len(tpStudies) > 0 {
		r := b.triageCLI(ctx, filepath.Join(tmp, "throughput"))
		rep.cliAll = &r
		b.logf("reference: radtriage triage over %d studies: %.2f s wall", len(tpStudies), r.wall.Seconds())
	}
	rep.loadEnd = loadAvg()

	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if failed := rep.failures(); failed != "" {
		return errors.New(failed)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// loadAvg is the 1-minute load average, "" when unknown.
func loadAvg() string {
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

// binVersion is the first line of `radtriage version`.
func binVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "(unknown version)"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

type bench struct {
	cfg  config
	tmp  string
	logf func(string, ...any)
	seq  int
}

// study is one phantom, ready to push.
type study struct {
	dir   string // the phantom's folder (NNNN, with dicom/ and truth.json)
	uid   string
	truth string // its lesions, "ICH 3.0 mL", or "none"
	parts [][]byte
}

// phantoms writes n phantoms with `radtriage phantom` into tmp/name and
// loads them.
func (b *bench) phantoms(ctx context.Context, name string, seed, n int, lesion string) ([]study, error) {
	root := filepath.Join(b.tmp, name)
	b.logf("writing %d phantoms (--lesion %s, seeds %d-%d)", n, lesion, seed, seed+n-1)
	cmd := exec.CommandContext(ctx, b.cfg.bin, "phantom", "-o", root, "--count", strconv.Itoa(n), "--seed", strconv.Itoa(seed), "--lesion", lesion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("radtriage phantom: %w\n%s", err, out)
	}
	var out []study
	for i := 1; i <= n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("%04d", i))
		inst, err := e2e.LoadSeries(filepath.Join(dir, "dicom"))
		if err != nil {
			return nil, err
		}
		s := study{dir: dir, uid: inst[0].Study}
		for _, in := range inst {
			if in.Study != s.uid {
				return nil, fmt.Errorf("%s: two studies in one phantom", dir)
			}
			s.parts = append(s.parts, in.Bytes)
		}
		if s.truth, err = readTruth(filepath.Join(dir, "truth.json")); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// readTruth summarises a phantom's truth.json.
func readTruth(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var t struct {
		Lesions []struct {
			Kind     string  `json:"kind"`
			VolumeML float64 `json:"volume_ml"`
		} `json:"lesions"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(t.Lesions) == 0 {
		return "none", nil
	}
	var ls []string
	for _, l := range t.Lesions {
		ls = append(ls, fmt.Sprintf("%s %.1f mL", strings.ToUpper(l.Kind), l.VolumeML))
	}
	return strings.Join(ls, ", "), nil
}

// pipeline is one running serve process with its worker processes.
type pipeline struct {
	name    string
	serve   *e2e.Process
	workers []*e2e.Process
	cleanup []func() error
	logf    func(string, ...any)
}

// stop ends the processes, then drops what the run created in the shared
// services.
func (p *pipeline) stop() {
	for _, w := range p.workers {
		if err := w.Stop(30 * time.Second); err != nil {
			p.logf("%s: %s: %v", p.name, w.Name, err)
		}
	}
	if p.serve != nil {
		if err := p.serve.Stop(30 * time.Second); err != nil {
			p.logf("%s: serve: %v", p.name, err)
		}
	}
	for _, c := range slices.Backward(p.cleanup) {
		if err := c(); err != nil {
			p.logf("%s: cleanup: %v", p.name, err)
		}
	}
}

// logTails is the end of every process log, for errors.
func (p *pipeline) logTails() string {
	var b strings.Builder
	for _, q := range append([]*e2e.Process{p.serve}, p.workers...) {
		if q != nil {
			fmt.Fprintf(&b, "\n--- %s (%s), last lines:\n%s", q.Name, q.LogPath, q.LogTail(15))
		}
	}
	return b.String()
}

func randomHex(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

// start starts serve with inproc in-process workers and workers worker
// processes; services puts it on PostgreSQL (a fresh schema) and Redis (a
// fresh key prefix), else on the embedded defaults.
func (b *bench) start(ctx context.Context, name string, services bool, inproc, workers int) (*pipeline, error) {
	b.seq++
	dir := filepath.Join(b.tmp, fmt.Sprintf("%02d-%s", b.seq, name))
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	p := &pipeline{name: name, logf: b.logf}
	common := []string{"--backend", "cpu"}
	var dbURL string
	if services {
		schemaURL, drop, err := e2e.CreateSchema(ctx, b.cfg.dbURL, "pipelinebench")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL at -database-url: %w", err)
		}
		p.cleanup = append(p.cleanup, drop)
		prefix := "pipelinebench:" + randomHex(6) + ":"
		opt, err := redis.ParseURL(b.cfg.redisURL)
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		p.cleanup = append(p.cleanup, func() error { return deleteKeys(opt, prefix) })
		dbURL = schemaURL
		common = append(common, "--redis-url", b.cfg.redisURL, "--worklist-prefix", prefix)
	} else {
		// Explicitly empty: RADTRIAGE_* in the environment must not
		// move the embedded setup onto services.
		common = append(common, "--redis-url=", "--database-url=")
	}
	srv, err := e2e.StartServer(ctx, e2e.ServerOptions{
		Bin:         b.cfg.bin,
		DataDir:     data,
		DatabaseURL: dbURL,
		StableAge:   b.cfg.stableAge,
		ExtraArgs:   append([]string{"--workers", strconv.Itoa(inproc)}, common...),
		LogPath:     filepath.Join(dir, "serve.log"),
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("serve: %w", err)
	}
	p.serve = srv
	for i := range workers {
		port, err := e2e.FreePort()
		if err != nil {
			p.stop()
			return nil, err
		}
		args := append([]string{"worker", "--data-dir", data, "--database-url", dbURL, "--workers", "1",
			"--metrics-addr", "127.0.0.1:" + strconv.Itoa(port)}, common...)
		w, err := e2e.Start(fmt.Sprintf("worker-%d", i+1), b.cfg.bin, args, nil, port, filepath.Join(dir, fmt.Sprintf("worker-%d.log", i+1)))
		if err != nil {
			p.stop()
			return nil, err
		}
		p.workers = append(p.workers, w)
		if err := w.WaitReady(ctx, w.BaseURL+"/metrics", 2*time.Minute); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// deleteKeys deletes the keys under prefix (SCAN, never FLUSHDB).
func deleteKeys(opt *redis.Options, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redis.NewClient(opt)
	defer c.Close()
	iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for k := range slices.Chunk(keys, 500) {
		if err := c.Del(ctx, k...).Err(); err != nil {
			return err
		}
	}
	return nil
}

// escapeGlob escapes the SCAN MATCH pattern characters of s.
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

// events is a pipeline's worklist event stream.
type events struct {
	ch  <-chan arrival
	err error // why the stream ended; read only after ch is closed
}

func (p *pipeline) subscribe(ctx context.Context) (*events, error) {
	ev := &events{}
	ch, err := subscribe(ctx, p.serve.BaseURL, &ev.err)
	if err != nil {
		return nil, err
	}
	ev.ch = ch
	return ev, nil
}

// wait returns the "reprioritised" events of every study of want that
// arrives within timeout, by study UID; an error when some never came.
func (p *pipeline) wait(ctx context.Context, ev *events, want []string, timeout time.Duration) (map[string]arrival, error) {
	got := map[string]arrival{}
	open := map[string]bool{}
	for _, u := range want {
		open[u] = true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(open) > 0 {
		select {
		case a, ok := <-ev.ch:
			if !ok {
				return got, fmt.Errorf("%v%s", ev.err, p.logTails())
			}
			if a.Type == "reprioritised" && open[a.StudyUID] {
				got[a.StudyUID] = a
				delete(open, a.StudyUID)
			}
		case <-timer.C:
			return got, fmt.Errorf("%d of %d studies not triaged (no \"reprioritised\" event) after %v%s", len(open), len(want), timeout, p.logTails())
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
	return got, nil
}

// store sends one study in one STOW-RS request.
func store(ctx context.Context, p *pipeline, s study) error {
	c := &e2e.Client{Root: p.serve.DICOMweb()}
	res, err := c.Store(ctx, s.parts)
	if err != nil {
		return fmt.Errorf("STOW-RS %s: %w", s.uid, err)
	}
	if res.Status != http.StatusOK || len(res.Stored) != len(s.parts) {
		return fmt.Errorf("STOW-RS %s: HTTP %d, %d of %d stored: %.300s", s.uid, res.Status, len(res.Stored), len(s.parts), res.Body)
	}
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %s: %.300s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// job is the part of a GET /api/v1/jobs row the benchmark reads.
type job struct {
	StudyUID   string    `json:"study_uid"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at"`
	LastError  string    `json:"last_error"`
}

// jobs returns the server's triage jobs by study UID.
func (p *pipeline) jobs(ctx context.Context) (map[string]job, error) {
	var a struct {
		Jobs []job `json:"jobs"`
	}
	if err := getJSON(ctx, p.serve.BaseURL+"/api/v1/jobs?limit=1000", &a); err != nil {
		return nil, err
	}
	out := map[string]job{}
	for _, j := range a.Jobs {
		out[j.StudyUID] = j
	}
	return out, nil
}

// triageTime is the worker's own triage time of a study (timings_ms.total
// of its stored result), or unknown.
func (p *pipeline) triageTime(ctx context.Context, studyUID string) time.Duration {
	var a struct {
		Result struct {
			Timings struct {
				Total float64 `json:"total"`
			} `json:"timings_ms"`
		} `json:"result"`
	}
	if err := getJSON(ctx, p.serve.BaseURL+"/api/v1/studies/"+studyUID+"/findings", &a); err != nil || a.Result.Timings.Total <= 0 {
		return unknown
	}
	return msDuration(a.Result.Timings.Total)
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// since is b-a, or unknown when either is unset.
func since(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() {
		return unknown
	}
	return b.Sub(a)
}

// sample is one time-to-triage run.
type sample struct {
	study   string
	truth   string
	finding string // the worklist's top finding after triage
	tier    string
	e2e     time.Duration // last STOW-RS response to the "reprioritised" event
	toJob   time.Duration // response to the job's creation (stable age and its detection)
	toDone  time.Duration // job created to job done (queue, claim, read, triage, commit)
	toEvent time.Duration // job done to the event's arrival (worklist update, SSE)
	triage  time.Duration // the worker's own triage time
}

// latencyResult is one setup's time-to-triage runs.
type latencyResult struct {
	setup   string
	samples []sample
	err     string
}

// latency pushes each study alone and times it to its worklist event.
func (b *bench) latency(ctx context.Context, setup string, studies []study) (latencyResult, error) {
	r := latencyResult{setup: setup}
	b.logf("time to triage, %s: starting serve --workers 1 --stable-age %v", setup, b.cfg.stableAge)
	p, err := b.start(ctx, "latency-"+setup, setup == "services", 1, 0)
	if err != nil {
		return r, err
	}
	defer p.stop()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev, err := p.subscribe(sctx)
	if err != nil {
		return r, err
	}
	stowed := map[string]time.Time{}
	for i, s := range studies {
		if err := store(ctx, p, s); err != nil {
			return r, err
		}
		t0 := time.Now()
		stowed[s.uid] = t0
		got, err := p.wait(ctx, ev, []string{s.uid}, b.cfg.timeout)
		if err != nil {
			return r, err
		}
		a := got[s.uid]
		smp := sample{study: s.uid, truth: s.truth, e2e: a.At.Sub(t0), tier: "?", finding: "?"}
		if a.Item != nil {
			smp.tier, smp.finding = a.Item.Tier, a.Item.topFinding()
		}
		r.samples = append(r.samples, smp)
		b.logf("  run %d/%d: %.2f s to the event (%s, %s; truth %s)", i+1, len(studies), smp.e2e.Seconds(), smp.tier, smp.finding, s.truth)
	}
	jobs, err := p.jobs(ctx)
	if err != nil {
		return r, err
	}
	for i := range r.samples {
		s := &r.samples[i]
		j := jobs[s.study]
		t0 := stowed[s.study]
		s.toJob = since(t0, j.CreatedAt)
		s.toDone = since(j.CreatedAt, j.FinishedAt)
		s.toEvent = unknown
		if !j.FinishedAt.IsZero() {
			s.toEvent = t0.Add(s.e2e).Sub(j.FinishedAt)
		}
		s.triage = p.triageTime(ctx, s.study)
	}
	return r, nil
}

// throughputResult is one throughput run.
type throughputResult struct {
	workers  int
	studies  int
	pushed   time.Duration // first STOW-RS request to the last response
	wall     time.Duration // first STOW-RS request to the last event
	span     time.Duration // first job created to the last job done
	done     []float64     // radtriage_jobs_done_total of each worker
	cpu      []time.Duration
	attempts int // claims of every job together (each study once: = studies)
	triaged  int // jobs done
	err      string
}

// throughput pushes every study back to back to serve --workers 0 with n
// worker processes and times them to the last worklist event.
func (b *bench) throughput(ctx context.Context, n int, studies []study) (throughputResult, error) {
	r := throughputResult{workers: n, studies: len(studies)}
	b.logf("throughput: serve --workers 0 and %d worker processes on PostgreSQL + Redis", n)
	p, err := b.start(ctx, fmt.Sprintf("throughput-%dw", n), true, 0, n)
	if err != nil {
		return r, err
	}
	defer p.stop()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev, err := p.subscribe(sctx)
	if err != nil {
		return r, err
	}
	var uids []string
	start := time.Now()
	for _, s := range studies {
		if err := store(ctx, p, s); err != nil {
			return r, err
		}
		uids = append(uids, s.uid)
	}
	r.pushed = time.Since(start)
	got, err := p.wait(ctx, ev, uids, b.cfg.timeout*time.Duration(len(uids)))
	if err != nil {
		return r, err
	}
	var last time.Time
	for _, a := range got {
		if a.At.After(last) {
			last = a.At
		}
	}
	r.wall = last.Sub(start)
	for _, w := range p.workers {
		cpu, err := w.CPUTime()
		if err != nil {
			cpu = unknown
		}
		r.cpu = append(r.cpu, cpu)
		var text string
		if t, err := getText(ctx, w.BaseURL+"/metrics"); err == nil {
			text = t
		}
		v, ok := metricValue(text, "radtriage_jobs_done_total")
		if !ok {
			v = -1
		}
		r.done = append(r.done, v)
	}
	jobs, err := p.jobs(ctx)
	if err != nil {
		return r, err
	}
	var first, end time.Time
	var problems []string
	for _, u := range uids {
		j, ok := jobs[u]
		if !ok {
			problems = append(problems, u+": no job")
			continue
		}
		r.attempts += j.Attempts
		if j.State != "done" {
			problems = append(problems, fmt.Sprintf("%s: job %s (%s)", u, j.State, j.LastError))
			continue
		}
		r.triaged++
		if first.IsZero() || j.CreatedAt.Before(first) {
			first = j.CreatedAt
		}
		if j.FinishedAt.After(end) {
			end = j.FinishedAt
		}
	}
	r.span = since(first, end)
	b.logf("  %d studies triaged, %s s from the first STOW-RS request to the last event, %s s from the first job to the last done; jobs done per worker %v, attempts %d",
		r.triaged, seconds(r.wall), seconds(r.span), r.done, r.attempts)
	if len(problems) > 0 {
		return r, fmt.Errorf("not every study triaged: %s", strings.Join(problems, "; "))
	}
	return r, nil
}

func getText(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	return string(b), err
}

// cliStudy is one study of a `radtriage triage --json` run.
type cliStudy struct {
	study   string
	tier    string
	compute time.Duration // its timings_ms.total
}

// cliResult is one `radtriage triage --json DIR` process.
type cliResult struct {
	wall    time.Duration
	results []cliStudy
	err     string
}

// triageCLI runs radtriage triage --json on dir (one study or many) and
// times the whole process.
func (b *bench) triageCLI(ctx context.Context, dir string) cliResult {
	cmd := exec.CommandContext(ctx, b.cfg.bin, "triage", "--backend", "cpu", "--json", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	r := cliResult{wall: time.Since(start)}
	if err != nil {
		r.err = fmt.Sprintf("radtriage triage %s: %v: %.300s", dir, err, stderr.String())
		b.logf("reference: %s", r.err)
		return r
	}
	res, err := parseTriageJSON(out)
	if err != nil {
		r.err = err.Error()
	}
	r.results = res
	return r
}

// parseTriageJSON reads the lines of radtriage triage --json.
func parseTriageJSON(out []byte) ([]cliStudy, error) {
	var res []cliStudy
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var v struct {
			StudyUID string `json:"study_uid"`
			Tier     string `json:"tier"`
			Timings  struct {
				Total float64 `json:"total"`
			} `json:"timings_ms"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			return res, fmt.Errorf("radtriage triage --json: %w: %.200s", err, l)
		}
		res = append(res, cliStudy{study: v.StudyUID, tier: v.Tier, compute: msDuration(v.Timings.Total)})
	}
	return res, nil
}
