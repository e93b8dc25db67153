package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The pipeline tests (issue 7): a study pushed over STOW-RS becomes
// stable, is triaged by a worker, and re-orders the worklist live, across
// processes, on the embedded defaults and on real Redis and PostgreSQL,
// through a worker killed mid-job, a Redis restarted empty and a
// PostgreSQL cut for a few seconds, and with two worker processes sharing
// 20 studies.

// triageBound bounds how long a pushed study may take to be triaged and
// placed: the stable age (1 s) plus CPU triage of one phantom (1 to 3 s
// here) leave a wide margin for a loaded machine.
const triageBound = 90 * time.Second

// pipeline is one deployment under test: a serve process, worker
// processes, their data dir, database and Redis.
type pipeline struct {
	bin      string
	root     string // the test's temp dir: logs, phantoms
	dataDir  string
	dbURL    string // "" for SQLite in dataDir
	redisURL string // "" for the embedded store
	prefix   string // --worklist-prefix; "" for the default
	serve    *Process
	api      *API
	dicomweb *Client
	workers  []*Process
}

func newPipeline(t *testing.T, dbURL, redisURL, prefix string) *pipeline {
	t.Helper()
	root := t.TempDir()
	return &pipeline{
		bin: serverBinary(t), root: root, dataDir: filepath.Join(root, "data"),
		dbURL: dbURL, redisURL: redisURL, prefix: prefix,
	}
}

// args are the flags serve and worker share.
func (p *pipeline) args() []string {
	args := []string{"--backend", "cpu"}
	if p.redisURL != "" {
		args = append(args, "--redis-url", p.redisURL)
	}
	if p.prefix != "" {
		args = append(args, "--worklist-prefix", p.prefix)
	}
	return args
}

// startServe starts `radtriage serve` with --stable-age 1s and extra
// flags; it is stopped when the test ends, its log tail printed if the
// test failed.
func (p *pipeline) startServe(t *testing.T, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	proc, err := StartServer(ctx, ServerOptions{
		Bin: p.bin, DataDir: p.dataDir, DatabaseURL: p.dbURL, StableAge: time.Second,
		ExtraArgs: append(p.args(), extra...),
		LogPath:   filepath.Join(p.root, "serve.log"),
	})
	if err != nil {
		t.Fatalf("start radtriage serve: %v", err)
	}
	stopOnCleanup(t, proc)
	p.serve = proc
	p.api = &API{Base: proc.BaseURL, HTTP: httpClient(30 * time.Second)}
	p.dicomweb = &Client{Root: proc.DICOMweb(), HTTP: httpClient(2 * time.Minute)}
}

// startWorker starts a `radtriage worker` process with extra flags.
func (p *pipeline) startWorker(t *testing.T, extra ...string) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n := len(p.workers) + 1
	proc, err := StartWorker(ctx, WorkerOptions{
		Bin: p.bin, DataDir: p.dataDir, DatabaseURL: p.dbURL, RedisURL: p.redisURL,
		ExtraArgs: append(p.args(), extra...),
		LogPath:   filepath.Join(p.root, fmt.Sprintf("worker%d.log", n)),
	})
	if err != nil {
		t.Fatalf("start radtriage worker %d: %v", n, err)
	}
	proc.Name = fmt.Sprintf("worker%d", n)
	stopOnCleanup(t, proc)
	p.workers = append(p.workers, proc)
	return proc
}

// stopOnCleanup stops proc when the test ends and prints its log tail if
// the test failed.
func stopOnCleanup(t *testing.T, proc *Process) {
	t.Cleanup(func() {
		if err := proc.Stop(40 * time.Second); err != nil && !strings.Contains(err.Error(), "signal: killed") {
			t.Logf("stop %s: %v", proc.Name, err)
		}
		if t.Failed() {
			t.Logf("%s log tail (%s):\n%s", proc.Name, proc.LogPath, proc.LogTail(60))
		}
	})
}

// phantoms writes phantom studies under root/name.
func (p *pipeline) phantoms(t *testing.T, name string, o PhantomOptions) []PhantomStudy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	studies, err := WritePhantoms(ctx, p.bin, filepath.Join(p.root, name), o)
	if err != nil {
		t.Fatal(err)
	}
	return studies
}

// push sends dir with `radtriage push`.
func (p *pipeline) push(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := Push(ctx, p.bin, dir, p.serve.DICOMweb()); err != nil {
		t.Fatal(err)
	}
}

// openEvents connects an SSE client to the worklist events; it is closed
// when the test ends.
func (p *pipeline) openEvents(t *testing.T) *EventStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s, err := OpenEventStream(ctx, p.serve.BaseURL+"/api/v1/worklist/events")
	if err != nil {
		cancel()
		t.Fatalf("worklist events: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
	})
	return s
}

// waitFor polls cond every 250 ms until it returns true, and fails the
// test when it has not within d, with cond's last description of what it
// saw.
func waitFor(t *testing.T, d time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for {
		ok, last := cond(ctx)
		if ok {
			t.Logf("%s: after %v", what, time.Since(start).Round(10*time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v; last seen: %s", what, d, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// sharedRedis returns RADTRIAGE_TEST_REDIS_URL and a fresh key prefix for
// the test, whose keys are deleted when it ends.
func sharedRedis(t *testing.T) (url, prefix string) {
	t.Helper()
	url = os.Getenv("RADTRIAGE_TEST_REDIS_URL")
	if url == "" {
		skipOrFail(t, "RADTRIAGE_TEST_REDIS_URL is not set (a real Redis)")
	}
	var b [6]byte
	rand.Read(b[:])
	prefix = "e2e-pipeline-" + hex.EncodeToString(b[:]) + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := RedisKeyCount(ctx, url, prefix); err != nil {
		skipOrFail(t, "Redis at RADTRIAGE_TEST_REDIS_URL unavailable: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteRedisPrefix(ctx, url, prefix); err != nil {
			t.Errorf("deleting the test's Redis keys %s*: %v", prefix, err)
		}
	})
	return url, prefix
}

// privateRedis starts a redis-server of the test's own (without
// persistence), stopped when the test ends.
func privateRedis(t *testing.T) *RedisServer {
	t.Helper()
	bin, err := RedisServerPath()
	if err != nil {
		skipOrFail(t, "redis-server not found (RADTRIAGE_TEST_REDIS_SERVER or PATH): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := StartRedis(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Logf("stop redis-server: %v", err)
		}
		if t.Failed() {
			t.Logf("redis-server log tail:\n%s", r.LogTail(20))
		}
	})
	return r
}

// hasAttr reports whether a slog text line carries key=value exactly.
func hasAttr(line, key, value string) bool {
	return strings.Contains(line+" ", " "+key+"="+value+" ")
}

// jobLines returns the lines of proc's log with message msg (text
// format) for study.
func jobLines(proc *Process, msg, study string) []string {
	var out []string
	for _, line := range LogLines(proc, `msg="`+msg+`"`) {
		if hasAttr(line, "study", study) {
			out = append(out, line)
		}
	}
	return out
}

// describeItems summarises worklist items for failure messages.
func describeItems(items []WorklistItem) string {
	var parts []string
	for i, it := range items {
		f := "no finding"
		if it.Finding != nil {
			f = fmt.Sprintf("%s %.2f", it.Finding.Code, it.Finding.Probability)
		}
		parts = append(parts, fmt.Sprintf("#%d %s %s, AI %s (%s; %s)", i, it.StudyUID, it.Tier, it.AI, f, it.Reason))
	}
	if len(parts) == 0 {
		return "empty worklist"
	}
	return strings.Join(parts, "; ")
}

func itemIndex(items []WorklistItem, study string) int {
	return slices.IndexFunc(items, func(it WorklistItem) bool { return it.StudyUID == study })
}

// describeEvents summarises events for failure messages.
func describeEvents(evs []SSEEvent) string {
	var parts []string
	for _, ev := range evs {
		we, err := DecodeWorklistEvent(ev)
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s (undecodable: %v)", ev.Type, err))
		case we.Item != nil:
			parts = append(parts, fmt.Sprintf("%s %s tier %s", ev.Type, we.StudyUID, we.Item.Tier))
		default:
			parts = append(parts, ev.Type+" "+we.StudyUID)
		}
	}
	if len(parts) == 0 {
		return "no events"
	}
	return strings.Join(parts, "; ")
}

// critical reports whether the worklist lists study as critical with an
// ICH finding.
func criticalICH(it WorklistItem) bool {
	return it.Tier == "critical" && it.Finding != nil && it.Finding.Code == "ICH"
}

// waitTriaged waits until study's findings say AI done and its job is
// done, and returns the findings.
func (p *pipeline) waitTriaged(t *testing.T, d time.Duration, study string) *Findings {
	t.Helper()
	var f *Findings
	waitFor(t, d, "study "+study+" triaged (findings: ai done)", func(ctx context.Context) (bool, string) {
		var err error
		f, err = p.api.Findings(ctx, study)
		if err != nil {
			return false, err.Error()
		}
		desc := fmt.Sprintf("ai %s, tier %q", f.AI, f.Tier)
		if f.Job != nil {
			desc += fmt.Sprintf(", job %s attempts %d %s", f.Job.State, f.Job.Attempts, f.Job.LastError)
			if f.Job.State == "dead" {
				t.Fatalf("study %s: triage job dead: %s", study, f.Job.LastError)
			}
		}
		return f.AI == "done" && len(f.Result) > 0, desc
	})
	return f
}

// TestPipelineEndToEnd pushes a normal phantom study, then one with a
// bleed, and checks that within triageBound the worklist lists the bleed
// first with its ICH finding, and that an SSE client connected before the
// push saw the bleed's "reprioritised" event; on the embedded defaults
// (SQLite, in-process Redis) and on real Redis and PostgreSQL.
func TestPipelineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server and triage")
	}
	variants := []struct {
		name  string
		setup func(t *testing.T) (dbURL, redisURL, prefix string)
	}{
		{"embedded", func(*testing.T) (string, string, string) { return "", "", "" }},
		{"redis-postgres", func(t *testing.T) (string, string, string) {
			url, prefix := sharedRedis(t)
			return pgSchemaURL(t), url, prefix
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dbURL, redisURL, prefix := v.setup(t)
			p := newPipeline(t, dbURL, redisURL, prefix)
			p.startServe(t, "--workers", "1")
			normal := p.phantoms(t, "normal", PhantomOptions{Seed: 7001, Lesion: "none"})[0]
			bleed := p.phantoms(t, "bleed", PhantomOptions{Seed: 7002, Lesion: "ich"})[0]
			events := p.openEvents(t)

			p.push(t, normal.Dir)
			p.push(t, bleed.Dir)
			pushed := time.Now()

			ctx, cancel := context.WithTimeout(context.Background(), triageBound)
			defer cancel()
			ev, err := events.Wait(ctx, func(ev SSEEvent) bool {
				we, err := DecodeWorklistEvent(ev)
				return err == nil && ev.Type == "reprioritised" && we.StudyUID == bleed.StudyUID
			})
			if err != nil {
				t.Fatalf("no \"reprioritised\" event for the bleed %s within %v of the push: %v; events seen: %s",
					bleed.StudyUID, triageBound, err, describeEvents(events.Events()))
			}
			t.Logf("the bleed's reprioritised event came %v after the last STOW", ev.At.Sub(pushed).Round(time.Millisecond))
			we, _ := DecodeWorklistEvent(ev)
			if we.Item == nil || !criticalICH(*we.Item) {
				t.Errorf("the reprioritised event's item is not critical with an ICH finding: %s", ev.Data)
			}
			// Both studies entered the worklist when stored, before triage.
			for _, s := range []PhantomStudy{normal, bleed} {
				ev, err := events.Wait(ctx, func(ev SSEEvent) bool {
					we, err := DecodeWorklistEvent(ev)
					return err == nil && ev.Type == "added" && we.StudyUID == s.StudyUID
				})
				if err != nil {
					t.Errorf("no \"added\" event for %s: %v; events seen: %s", s.StudyUID, err, describeEvents(events.Events()))
					continue
				}
				if we, _ := DecodeWorklistEvent(ev); we.Item == nil || we.Item.AI != "pending" {
					t.Errorf("the \"added\" event of %s does not mark it AI pending: %s", s.StudyUID, ev.Data)
				}
			}

			// The normal study is triaged too, and stays behind the bleed.
			fn := p.waitTriaged(t, triageBound, normal.StudyUID)
			if fn.Tier == "critical" {
				t.Errorf("the normal phantom was triaged critical: %s", fn.Result)
			}
			fb := p.waitTriaged(t, triageBound, bleed.StudyUID)
			if fb.Tier != "critical" || !bytes.Contains(fb.Result, []byte(`"ICH"`)) {
				t.Errorf("bleed findings: tier %q, result %s; want critical with ICH", fb.Tier, fb.Result)
			}
			waitFor(t, triageBound, "worklist: the bleed first with ICH, the normal study after it", func(ctx context.Context) (bool, string) {
				items, err := p.api.Worklist(ctx)
				if err != nil {
					return false, err.Error()
				}
				ok := len(items) == 2 && items[0].StudyUID == bleed.StudyUID && criticalICH(items[0]) && items[0].AI == "done" &&
					items[1].StudyUID == normal.StudyUID && items[1].Tier != "critical" && items[1].AI == "done"
				return ok, describeItems(items)
			})
		})
	}
}

// TestPipelineWorkerKill runs serve without workers and two worker
// processes with a 3 s job lease, pushes one study, SIGKILLs the worker
// that started it in the middle of the job, and checks that the other
// worker finishes it: findings appear and the job is done at its second
// attempt.
func TestPipelineWorkerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server, workers and triage")
	}
	redisURL, prefix := sharedRedis(t)
	p := newPipeline(t, pgSchemaURL(t), redisURL, prefix)
	p.startServe(t, "--workers", "0", "--job-lease", "3s")
	p.startWorker(t, "--job-lease", "3s")
	p.startWorker(t, "--job-lease", "3s")
	study := p.phantoms(t, "bleed", PhantomOptions{Seed: 7101, Lesion: "ich"})[0]
	p.push(t, study.Dir)

	// Poll the logs closely: triage of a phantom takes a second or more.
	var victim, survivor *Process
	deadline := time.Now().Add(triageBound)
	for victim == nil {
		for i, w := range p.workers {
			if len(jobLines(w, "triage job started", study.StudyUID)) > 0 {
				victim, survivor = w, p.workers[1-i]
				break
			}
		}
		if victim != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker started the job of %s within %v", study.StudyUID, triageBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim.Kill()
	killed := time.Now()
	if done := jobLines(victim, "triage job done", study.StudyUID); len(done) > 0 {
		t.Fatalf("%s finished the job before SIGKILL reached it (%s): the test could not kill it mid-job", victim.Name, done[0])
	}
	t.Logf("SIGKILLed %s in the middle of the job: %s", victim.Name, jobLines(victim, "triage job started", study.StudyUID)[0])

	f := p.waitTriaged(t, triageBound, study.StudyUID)
	t.Logf("taken over and finished %v after the kill", time.Since(killed).Round(time.Millisecond))
	if f.Tier != "critical" {
		t.Errorf("findings tier %q, want critical (an ICH phantom)", f.Tier)
	}
	ctx := ctxT(t, 30*time.Second)
	jobs, err := p.api.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j, ok := jobs.Job(study.StudyUID)
	switch {
	case !ok:
		t.Errorf("GET /api/v1/jobs does not list %s: %+v", study.StudyUID, jobs)
	case j.State != "done" || j.Attempts != 2:
		t.Errorf("job of %s: state %s, attempts %d; want done at attempt 2 (%+v)", study.StudyUID, j.State, j.Attempts, j)
	}
	if len(jobLines(survivor, "triage job done", study.StudyUID)) != 1 {
		t.Errorf("%s's log does not show the job done once: %q", survivor.Name, jobLines(survivor, "triage job done", study.StudyUID))
	}
	items, err := p.api.Worklist(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := itemIndex(items, study.StudyUID); i < 0 || !criticalICH(items[i]) {
		t.Errorf("worklist after the takeover: %s; want %s critical with ICH", describeItems(items), study.StudyUID)
	}
}

// TestPipelineRedisRestart runs serve without workers on a private
// redis-server, pushes a bleed and waits until its job is queued, then
// stops Redis and starts it again empty on the same port. The worklist
// comes back from the store (the study is listed), the job goes back on
// the stream, and a worker started afterwards runs it (the bleed is
// re-tiered critical).
func TestPipelineRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server, a worker, redis-server and triage")
	}
	rs := privateRedis(t)
	p := newPipeline(t, pgSchemaURL(t), rs.URL(), "")
	p.startServe(t, "--workers", "0")
	study := p.phantoms(t, "bleed", PhantomOptions{Seed: 7201, Lesion: "ich"})[0]
	p.push(t, study.Dir)

	waitFor(t, triageBound, "job queued and study listed", func(ctx context.Context) (bool, string) {
		jobs, err := p.api.Jobs(ctx)
		if err != nil {
			return false, err.Error()
		}
		j, ok := jobs.Job(study.StudyUID)
		items, err := p.api.Worklist(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ok && j.State == "queued" && itemIndex(items, study.StudyUID) >= 0,
			fmt.Sprintf("job %+v (listed %v); worklist: %s", j, ok, describeItems(items))
	})

	ctx := ctxT(t, 5*time.Minute)
	before, err := RedisKeyCount(ctx, rs.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := RedisKeyCount(ctx, rs.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis restarted: %d keys before, %d just after", before, after)

	waitFor(t, 60*time.Second, "worklist rebuilt from the store and job back on the stream", func(ctx context.Context) (bool, string) {
		items, err := p.api.Worklist(ctx)
		if err != nil {
			return false, err.Error()
		}
		jobs, err := p.api.Jobs(ctx)
		if err != nil {
			return false, err.Error()
		}
		if jobs.Queue == nil {
			return false, "worklist: " + describeItems(items) + "; no queue statistics: " + jobs.QueueError
		}
		return itemIndex(items, study.StudyUID) >= 0 && jobs.Queue.Length >= 1,
			fmt.Sprintf("worklist: %s; stream length %d", describeItems(items), jobs.Queue.Length)
	})
	if !p.serve.LogContains("rebuilt from the store") {
		t.Errorf("serve did not log that it rebuilt the worklist from the store")
	}

	w := p.startWorker(t)
	f := p.waitTriaged(t, triageBound, study.StudyUID)
	if f.Tier != "critical" {
		t.Errorf("findings tier %q, want critical (an ICH phantom)", f.Tier)
	}
	if len(jobLines(w, "triage job done", study.StudyUID)) != 1 {
		t.Errorf("the worker's log does not show the job done once")
	}
	waitFor(t, 30*time.Second, "bleed re-tiered critical on the rebuilt worklist", func(ctx context.Context) (bool, string) {
		items, err := p.api.Worklist(ctx)
		if err != nil {
			return false, err.Error()
		}
		i := itemIndex(items, study.StudyUID)
		return i >= 0 && criticalICH(items[i]), describeItems(items)
	})
}

// stowOutcome is one STOW-RS request of TestPipelinePostgresUnavailable.
type stowOutcome struct {
	inst       Instance
	status     int
	retryAfter string
	acked      bool
	err        error
	at         time.Time
}

// TestPipelinePostgresUnavailable runs serve on PostgreSQL through a TCP
// proxy and cuts the proxy for about 4 s while instances are STOWed one
// per request: the STOWs during the cut answer 503 with Retry-After;
// after the restore the refused ones are sent again, and QIDO-RS lists
// every instance that was ever acknowledged, and the index agrees with
// the blob store.
func TestPipelinePostgresUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	base := pgSchemaURL(t)
	addr, err := DatabaseAddr(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := StartTCPProxy(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	dbURL, err := ProxiedURL(base, proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, dbURL, "", "")
	p.startServe(t, "--workers", "0")
	studies := p.phantoms(t, "studies", PhantomOptions{Count: 4, Seed: 7301, Lesion: "none", Size: "16x128x128"})
	var insts []Instance
	for _, s := range studies {
		ser, err := LoadSeries(s.SeriesDir)
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, ser...)
	}

	ctx := ctxT(t, 5*time.Minute)
	store := func(in Instance) stowOutcome {
		o := stowOutcome{inst: in, at: time.Now()}
		res, err := p.dicomweb.Store(ctx, [][]byte{in.Bytes})
		if res == nil {
			o.err = err
			return o
		}
		// An error answer (503) is JSON, not a DICOM dataset: only its
		// status counts.
		o.status, o.retryAfter = res.Status, res.Header.Get("Retry-After")
		o.acked = err == nil && res.Status == http.StatusOK && slices.Contains(res.Stored, in.SOP)
		if res.Status == http.StatusOK {
			o.err = err
		}
		return o
	}

	// Send one instance per request, paced, while the main goroutine cuts
	// the database for 4 s after the first few are acknowledged.
	var (
		mu       sync.Mutex
		outcomes []stowOutcome
		acked    int
	)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, in := range insts {
			o := store(in)
			mu.Lock()
			outcomes = append(outcomes, o)
			if o.acked {
				acked++
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waitFor(t, time.Minute, "5 instances acknowledged before the cut", func(context.Context) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return acked >= 5, fmt.Sprintf("%d acknowledged of %d sent", acked, len(outcomes))
	})
	proxy.Cut()
	cutAt := time.Now()
	time.Sleep(4 * time.Second)
	proxy.Restore()
	restoredAt := time.Now()
	<-sent
	accepted, refused := proxy.Counts()
	t.Logf("database cut %v; proxy forwarded %d connections, refused %d while cut", restoredAt.Sub(cutAt).Round(time.Millisecond), accepted, refused)

	var unavailable, during int
	var resend []Instance
	for _, o := range outcomes {
		if !o.at.Before(cutAt) && o.at.Before(restoredAt) {
			during++
		}
		switch {
		case o.err != nil:
			t.Errorf("STOW of %s at %v (cut at %v): %v", o.inst.SOP, o.at.Format("15:04:05.000"), cutAt.Format("15:04:05.000"), o.err)
			resend = append(resend, o.inst)
		case o.status == http.StatusServiceUnavailable:
			unavailable++
			if n, err := strconv.Atoi(o.retryAfter); err != nil || n <= 0 {
				t.Errorf("STOW 503 of %s: Retry-After %q, want a number of seconds", o.inst.SOP, o.retryAfter)
			}
			resend = append(resend, o.inst)
		case !o.acked:
			t.Errorf("STOW of %s at %v (cut %v to %v): HTTP %d, not acknowledged; want 200, or 503 while the database is cut",
				o.inst.SOP, o.at.Format("15:04:05.000"), cutAt.Format("15:04:05.000"), restoredAt.Format("15:04:05.000"), o.status)
			resend = append(resend, o.inst)
		}
	}
	t.Logf("%d STOW requests, %d during the cut, %d answered 503", len(outcomes), during, unavailable)
	if unavailable == 0 {
		t.Fatalf("no STOW answered 503 while the database was cut (%d requests during the cut)", during)
	}

	// After the restore the refused instances go in, at most 30 s later.
	for _, in := range resend {
		var o stowOutcome
		for deadline := time.Now().Add(30 * time.Second); ; {
			o = store(in)
			if o.acked || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !o.acked {
			t.Errorf("re-sent STOW of %s after the restore: HTTP %d %v", in.SOP, o.status, o.err)
		}
	}

	// Nothing acknowledged is lost: QIDO-RS lists every instance.
	for _, s := range studies {
		ds, err := p.dicomweb.Query(ctx, "/studies/"+s.StudyUID+"/instances")
		if err != nil {
			t.Fatalf("QIDO-RS instances of %s: %v", s.StudyUID, err)
		}
		listed := map[string]bool{}
		for _, d := range ds {
			listed[d.String("00080018")] = true
		}
		for _, in := range insts {
			if in.Study == s.StudyUID && !listed[in.SOP] {
				t.Errorf("study %s: instance %s acknowledged but not listed by QIDO-RS", s.StudyUID, in.SOP)
			}
		}
	}
	checkIndexMatchesBlobs(t, ctx, &server{Process: p.serve, dataDir: p.dataDir, dbURL: dbURL, client: p.dicomweb})
}

// TestPipelineScaleOut runs one serve process without workers and two
// worker processes on real Redis and PostgreSQL, pushes 20 studies, and
// checks that each is triaged exactly once (its job done at attempt 1,
// started and done once in the workers' logs) and that both workers took
// a share.
func TestPipelineScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server, workers and triage")
	}
	const n = 20
	redisURL, prefix := sharedRedis(t)
	p := newPipeline(t, pgSchemaURL(t), redisURL, prefix)
	p.startServe(t, "--workers", "0")
	p.startWorker(t)
	p.startWorker(t)
	studies := p.phantoms(t, "studies", PhantomOptions{Count: n, Seed: 7401, Lesion: "random", Size: "16x128x128"})
	p.push(t, filepath.Join(p.root, "studies"))
	pushed := time.Now()

	waitFor(t, 5*time.Minute, fmt.Sprintf("%d jobs done", n), func(ctx context.Context) (bool, string) {
		jobs, err := p.api.Jobs(ctx)
		if err != nil {
			return false, err.Error()
		}
		if jobs.Counts["dead"] > 0 {
			for _, j := range jobs.Jobs {
				if j.State == "dead" {
					t.Fatalf("job of %s dead: %s", j.StudyUID, j.LastError)
				}
			}
		}
		return jobs.Counts["done"] == n, fmt.Sprintf("counts %v", jobs.Counts)
	})
	took := time.Since(pushed)
	t.Logf("%d studies triaged by 2 worker processes in %v after the push (%.0f studies/hour)", n, took.Round(time.Millisecond), n/took.Hours())

	ctx := ctxT(t, time.Minute)
	jobs, err := p.api.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Jobs) != n {
		t.Errorf("GET /api/v1/jobs lists %d jobs, want %d", len(jobs.Jobs), n)
	}
	share := make([]int, len(p.workers))
	for _, s := range studies {
		j, ok := jobs.Job(s.StudyUID)
		if !ok || j.State != "done" || j.Attempts != 1 {
			t.Errorf("job of %s: %+v (listed %v); want done at attempt 1", s.StudyUID, j, ok)
		}
		var started, done int
		for i, w := range p.workers {
			started += len(jobLines(w, "triage job started", s.StudyUID))
			d := len(jobLines(w, "triage job done", s.StudyUID))
			done += d
			share[i] += d
		}
		if started != 1 || done != 1 {
			t.Errorf("study %s: started %d times, done %d times in the workers' logs; want once each", s.StudyUID, started, done)
		}
	}
	t.Logf("jobs per worker: %v", share)
	for i, k := range share {
		if k == 0 {
			t.Errorf("%s ran no job (shares %v): the load was not shared", p.workers[i].Name, share)
		}
	}
	if c := jobs.Counts; c["done"] != n || c["queued"]+c["running"]+c["retry"]+c["dead"] != 0 {
		t.Errorf("job counts %v, want %d done and nothing else", c, n)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("worklist lists the %d studies, AI done", n), func(ctx context.Context) (bool, string) {
		items, err := p.api.Worklist(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range studies {
			if i := itemIndex(items, s.StudyUID); i < 0 || items[i].AI != "done" {
				return false, fmt.Sprintf("%s not listed AI done; %d items: %s", s.StudyUID, len(items), describeItems(items))
			}
		}
		return len(items) == n, fmt.Sprintf("%d items", len(items))
	})
}
