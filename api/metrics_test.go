package api

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// scrape GETs /metrics and returns its samples, "name{labels}" → value.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := do(t, h, "GET", "/metrics", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want the text format", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// wantSamples checks samples against want (a NaN-free exact match each).
func wantSamples(t *testing.T, what string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no sample %s", what, k)
		case g != v:
			t.Errorf("%s: %s = %v, want %v", what, k, g, v)
		}
	}
}

func TestMetrics(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
				testMetrics(t, b, env)
			})
		})
	}
}

func testMetrics(t *testing.T, b backend, env *wlEnv) {
	ctx := context.Background()
	db := openDB(t, b)
	q, err := worklist.NewQueue(env.c, worklist.QueueConfig{Prefix: env.wl.Config().Prefix})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	m.CollectFrom(db, q, env.wl)
	h := New(db, Config{Worklist: env.wl, Results: db, Jobs: db, Queue: q, Metrics: m, Logger: quietLogger()})

	got := scrape(t, h)
	wantSamples(t, "before any work", got, map[string]float64{
		"radtriage_ingest_instances_total":               0,
		"radtriage_ingest_bytes_total":                   0,
		"radtriage_ingest_duration_seconds_count":        0,
		"radtriage_studies_stable_total":                 0,
		"radtriage_jobs_done_total":                      0,
		`radtriage_job_failures_total{reason="dead"}`:    0,
		"radtriage_queue_length":                         0,
		"radtriage_queue_pending":                        0,
		"radtriage_queue_oldest_age_seconds":             0,
		`radtriage_jobs{state="queued"}`:                 0,
		`radtriage_jobs{state="dead"}`:                   0,
		`radtriage_worklist_studies{tier="routine"}`:     0,
		`radtriage_worklist_studies{tier="critical"}`:    0,
		`radtriage_metrics_source_up{source="queue"}`:    1,
		`radtriage_metrics_source_up{source="jobs"}`:     1,
		`radtriage_metrics_source_up{source="worklist"}`: 1,
	})

	parts := ctHeadParts(t, 3)
	var size int
	for _, p := range parts {
		size += len(p.body)
	}
	study := stowStudy(t, h, parts)
	stowStudy(t, h, parts[:1]) // a re-send: acknowledged again
	if again, err := db.EnqueueJob(ctx, study, 3); err != nil || !again {
		t.Fatalf("EnqueueJob: %v %v", again, err)
	}
	if _, err := q.Add(ctx, worklist.JobMessage{StudyUID: study, Version: 3}); err != nil {
		t.Fatal(err)
	}
	// A second study, made critical by its findings.
	if _, err := env.wl.Upsert(ctx, worklist.Study{StudyUID: uidBleed, Modality: "CT"}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.wl.SetFindings(ctx, uidBleed, []worklist.Finding{{Code: "ich", Probability: 0.9, Tier: worklist.TierCritical}}, "test"); err != nil {
		t.Fatal(err)
	}
	m.StudyStable()
	m.JobStage("assemble", 300*time.Millisecond)
	m.JobStage("model:ich-seg", 2*time.Second)
	m.JobStage("total", 3*time.Second)
	m.JobFailed(FailureLost)
	m.JobDone()
	m.SetBackend("cpu")
	m.SetBackend("cuda")

	got = scrape(t, h)
	wantSamples(t, "after work", got, map[string]float64{
		"radtriage_ingest_instances_total":                                    4,
		"radtriage_ingest_bytes_total":                                        float64(size + len(parts[0].body)),
		"radtriage_ingest_duration_seconds_count":                             2,
		`radtriage_ingest_requests_total{code="200"}`:                         2,
		"radtriage_studies_stable_total":                                      1,
		`radtriage_job_stage_duration_seconds_count{stage="total"}`:           1,
		`radtriage_job_stage_duration_seconds_sum{stage="model:ich-seg"}`:     2,
		`radtriage_job_stage_duration_seconds_bucket{stage="total",le="5"}`:   1,
		`radtriage_job_stage_duration_seconds_bucket{stage="total",le="2.5"}`: 0,
		`radtriage_job_failures_total{reason="lost"}`:                         1,
		`radtriage_job_failures_total{reason="error"}`:                        0,
		"radtriage_jobs_done_total":                                           1,
		`radtriage_backend_info{backend="cuda"}`:                              1,
		"radtriage_queue_length":                                              1,
		"radtriage_queue_pending":                                             0,
		`radtriage_jobs{state="queued"}`:                                      1,
		`radtriage_jobs{state="running"}`:                                     0,
		`radtriage_worklist_studies{tier="routine"}`:                          1,
		`radtriage_worklist_studies{tier="critical"}`:                         1,
		`radtriage_worklist_studies{tier="urgent"}`:                           0,
		`radtriage_worklist_ai_studies{ai="pending"}`:                         1,
		`radtriage_worklist_ai_studies{ai="done"}`:                            1,
	})
	if _, ok := got[`radtriage_backend_info{backend="cpu"}`]; ok {
		t.Errorf("the backend replaced by SetBackend is still shown")
	}
	if age := got["radtriage_queue_oldest_age_seconds"]; age < 0 || age > 60 {
		t.Errorf("radtriage_queue_oldest_age_seconds = %v", age)
	}
}

// TestMetricsSourcesDown: sources that fail at scrape time are marked
// down, and /metrics still answers.
func TestMetricsSourcesDown(t *testing.T) {
	db := openDB(t, backends()[0])
	rc := unreachableRedis(t)
	q, err := worklist.NewQueue(rc, worklist.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := worklist.New(rc, worklist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	m.CollectFrom(db, q, wl)
	h := New(db, Config{Metrics: m, Logger: quietLogger()})
	got := scrape(t, h)
	wantSamples(t, "Redis down", got, map[string]float64{
		`radtriage_metrics_source_up{source="queue"}`:    0,
		`radtriage_metrics_source_up{source="worklist"}`: 0,
		`radtriage_metrics_source_up{source="jobs"}`:     1,
		`radtriage_jobs{state="queued"}`:                 0,
	})
	for _, name := range []string{"radtriage_queue_length", `radtriage_worklist_studies{tier="routine"}`} {
		if _, ok := got[name]; ok {
			t.Errorf("%s shown although its source is down", name)
		}
	}
	// NewMetrics(nil) adds the Go and process collectors.
	if _, ok := got["go_goroutines"]; !ok {
		t.Errorf("NewMetrics(nil): no go_goroutines")
	}

	m.CollectFrom(nil, nil, nil)
	got = scrape(t, h)
	if _, ok := got[`radtriage_metrics_source_up{source="jobs"}`]; ok {
		t.Errorf("CollectFrom(nil, nil, nil) still reads the job source")
	}
}

// TestMetricsNil: a nil *Metrics takes every call and does nothing.
func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.IngestObserved(1, 2, time.Second)
	m.ingestStatus(200)
	m.StudyStable()
	m.JobStage("total", time.Second)
	m.JobFailed(FailureDead)
	m.JobDone()
	m.SetBackend("cpu")
	m.CollectFrom(nil, nil, nil)
}

// TestSTOWUnavailable: with PostgreSQL unreachable, STOW-RS answers 503
// with Retry-After (and counts it), and once the database is back the
// re-send stores the study.
func TestSTOWUnavailable(t *testing.T) {
	dsn := os.Getenv("RADTRIAGE_TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := startProxy(t, target)
	u.Host = p.addr()
	t.Setenv("RADTRIAGE_TEST_DATABASE_URL", u.String())
	db := openDB(t, backend{"postgres", openPostgres}) // through the proxy
	t.Cleanup(func() { p.block(false) })               // for the schema's removal

	m := NewMetrics(prometheus.NewRegistry())
	m.CollectFrom(db, nil, nil)
	h := New(db, Config{Metrics: m, Logger: quietLogger()})
	parts := ctHeadParts(t, 2)

	p.block(true)
	body, ct := multipartBody(t, parts)
	rec := do(t, h, http.MethodPost, "/dicomweb/studies", bytes.NewReader(body), "Content-Type", ct)
	want(t, "STOW with the database down", rec, http.StatusServiceUnavailable, "unavailable")
	if rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", rec.Header())
	}
	got := scrape(t, h)
	wantSamples(t, "database down", got, map[string]float64{
		`radtriage_ingest_requests_total{code="503"}`: 1,
		"radtriage_ingest_instances_total":            0,
		`radtriage_metrics_source_up{source="jobs"}`:  0,
	})

	p.block(false)
	stowStudy(t, h, parts)
	got = scrape(t, h)
	wantSamples(t, "database back", got, map[string]float64{
		`radtriage_ingest_requests_total{code="200"}`: 1,
		"radtriage_ingest_instances_total":            2,
		`radtriage_metrics_source_up{source="jobs"}`:  1,
	})
	if recs, err := db.FindInstances(context.Background(), store.Query{}); err != nil || len(recs) != 2 {
		t.Errorf("after the re-send: %d instances, %v", len(recs), err)
	}
}

// tcpProxy forwards TCP connections to a target; while blocked it cuts
// every connection and closes new ones at once (a database that went
// away).
type tcpProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.block(true)
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.blocked {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// block cuts every connection and refuses new ones (on), or lets them
// through again (off).
func (p *tcpProxy) block(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = on
	if on {
		for c := range p.conns {
			c.Close()
		}
	}
}
