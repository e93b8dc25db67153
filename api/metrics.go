package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// Prometheus metrics, served at /metrics when Config.Metrics is set. Every
// name starts with radtriage_; durations are in seconds, sizes in bytes.
//
// Counted as things happen (by the STOW handler, the stability notifier
// and the triage workers of this process):
//
//	radtriage_ingest_instances_total            instances acknowledged by STOW-RS (stored or already stored)
//	radtriage_ingest_bytes_total                their bytes
//	radtriage_ingest_duration_seconds           STOW-RS request latency (histogram)
//	radtriage_ingest_requests_total{code}       STOW-RS requests by HTTP status (503: index database unavailable)
//	radtriage_studies_stable_total              studies that became stable
//	radtriage_job_stage_duration_seconds{stage} triage job time per stage (histogram; stage "total" is the whole job)
//	radtriage_job_failures_total{reason}        failed triage attempts: error (will retry), dead (gave up), lost (claim lost)
//	radtriage_jobs_done_total                   triage jobs whose result was committed
//	radtriage_backend_info{backend}             1 for the compute backend in use
//
// Read at scrape time from the sources given to CollectFrom:
//
//	radtriage_queue_length                      entries on the job stream
//	radtriage_queue_pending                     delivered to a worker, not acknowledged
//	radtriage_queue_oldest_age_seconds          age of the oldest entry (0 when empty)
//	radtriage_jobs{state}                       triage jobs per state (queued, running, retry, done, dead)
//	radtriage_worklist_studies{tier}            open or claimed studies on the worklist per tier
//	radtriage_worklist_ai_studies{ai}           the same studies per AI status (pending, done, failed)
//	radtriage_metrics_source_up{source}         1 when the source (jobs, queue, worklist) answered the scrape
//
// A source that fails (the database or Redis unreachable) only sets its
// radtriage_metrics_source_up to 0 and leaves its gauges out: /metrics
// still answers, and nothing else is held up longer than scrapeTimeout.

// JobLister lists triage jobs (store.DB implements it).
type JobLister interface {
	// Jobs lists jobs in the given states (all when empty), most recently
	// updated first, at most limit.
	Jobs(ctx context.Context, states []store.JobState, limit int) ([]store.Job, error)
	// JobCounts counts jobs per state, every state present.
	JobCounts(ctx context.Context) (map[store.JobState]int, error)
}

// QueueStatter describes the triage job stream (worklist.Queue implements
// it).
type QueueStatter interface {
	Stats(ctx context.Context) (worklist.QueueStats, error)
}

var (
	_ JobLister    = (*store.DB)(nil)
	_ QueueStatter = (*worklist.Queue)(nil)
)

// jobStates are the states of a triage job, in the order they are shown.
var jobStates = []store.JobState{store.JobQueued, store.JobRunning, store.JobRetry, store.JobDone, store.JobDead}

// Reasons of Metrics.JobFailed.
const (
	FailureError = "error" // the attempt failed and will be retried
	FailureDead  = "dead"  // the job gave up after its last attempt
	FailureLost  = "lost"  // the worker lost its claim (store.ErrJobLost)
)

// scrapeTimeout bounds the reads of one scrape from each source.
const scrapeTimeout = 5 * time.Second

// maxWorklistPages bounds the pages of worklist.MaxLimit items one scrape
// reads to count the worklist (100,000 studies).
const maxWorklistPages = 200

// Metrics holds radtriage's Prometheus metrics. Its methods are safe for
// concurrent use, and do nothing on a nil *Metrics, so that a part built
// without metrics can call them unconditionally.
type Metrics struct {
	gatherer prometheus.Gatherer

	ingestInstances prometheus.Counter
	ingestBytes     prometheus.Counter
	ingestDuration  prometheus.Histogram
	ingestRequests  *prometheus.CounterVec
	studiesStable   prometheus.Counter
	jobStage        *prometheus.HistogramVec
	jobFailures     *prometheus.CounterVec
	jobsDone        prometheus.Counter
	backend         *prometheus.GaugeVec

	mu   sync.Mutex
	jobs JobLister
	q    QueueStatter
	wl   *worklist.Worklist
}

// NewMetrics creates the metrics and registers them with reg, which
// /metrics then serves when reg is also a prometheus.Gatherer (a
// *prometheus.Registry; otherwise /metrics serves
// prometheus.DefaultGatherer). A nil reg means a new registry holding,
// besides these, the Go runtime and process collectors. It panics when reg
// already holds metrics of the same names, as prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg = r
	}
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		g = prometheus.DefaultGatherer
	}
	m := &Metrics{
		gatherer: g,
		ingestInstances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radtriage_ingest_instances_total",
			Help: "Instances acknowledged by STOW-RS (stored, or already stored with identical bytes).",
		}),
		ingestBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radtriage_ingest_bytes_total",
			Help: "Bytes of the instances acknowledged by STOW-RS.",
		}),
		ingestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "radtriage_ingest_duration_seconds",
			Help:    "STOW-RS request latency, from the request to the response.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		ingestRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radtriage_ingest_requests_total",
			Help: "STOW-RS requests by HTTP status code (503: the index database was unavailable).",
		}, []string{"code"}),
		studiesStable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radtriage_studies_stable_total",
			Help: "Studies that became stable (no new instance for the stable age).",
		}),
		jobStage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radtriage_job_stage_duration_seconds",
			Help:    "Triage job time per stage (assemble, upload, denoise, resample, window, model:<name>, postprocess, save; total for the whole job).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"stage"}),
		jobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radtriage_job_failures_total",
			Help: "Failed triage attempts by reason: error (retried later), dead (no attempt left), lost (the claim was lost).",
		}, []string{"reason"}),
		jobsDone: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radtriage_jobs_done_total",
			Help: "Triage jobs whose result was committed.",
		}),
		backend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "radtriage_backend_info",
			Help: "1 for the compute backend the triage workers of this process use.",
		}, []string{"backend"}),
	}
	for _, r := range []string{FailureError, FailureDead, FailureLost} {
		m.jobFailures.WithLabelValues(r)
	}
	reg.MustRegister(m.ingestInstances, m.ingestBytes, m.ingestDuration, m.ingestRequests,
		m.studiesStable, m.jobStage, m.jobFailures, m.jobsDone, m.backend, scrapeCollector{m})
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// IngestObserved records one STOW-RS request: the instances it got
// acknowledged, their bytes, and its latency.
func (m *Metrics) IngestObserved(instances int, bytes int64, d time.Duration) {
	if m == nil {
		return
	}
	m.ingestInstances.Add(float64(instances))
	m.ingestBytes.Add(float64(bytes))
	m.ingestDuration.Observe(d.Seconds())
}

// ingestStatus counts one STOW-RS request by its HTTP status.
func (m *Metrics) ingestStatus(code int) {
	if m == nil {
		return
	}
	m.ingestRequests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// StudyStable counts a study that became stable.
func (m *Metrics) StudyStable() {
	if m == nil {
		return
	}
	m.studiesStable.Inc()
}

// JobStage records the time one stage of a triage job took: assemble,
// upload, denoise, resample, window, model:<name>, postprocess, save, or
// total for the whole job.
func (m *Metrics) JobStage(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.jobStage.WithLabelValues(stage).Observe(d.Seconds())
}

// JobFailed counts a failed triage attempt: FailureError, FailureDead or
// FailureLost.
func (m *Metrics) JobFailed(reason string) {
	if m == nil {
		return
	}
	m.jobFailures.WithLabelValues(reason).Inc()
}

// JobDone counts a triage job whose result was committed.
func (m *Metrics) JobDone() {
	if m == nil {
		return
	}
	m.jobsDone.Inc()
}

// SetBackend records the compute backend in use (radtriage_backend_info
// is 1 for it alone).
func (m *Metrics) SetBackend(name string) {
	if m == nil {
		return
	}
	m.backend.Reset()
	m.backend.WithLabelValues(name).Set(1)
}

// CollectFrom sets the sources of the gauges read at scrape time: the job
// counts, the job stream, the worklist. A nil source is left out (its
// gauges are absent); a later call replaces all three.
func (m *Metrics) CollectFrom(jobs JobLister, q QueueStatter, wl *worklist.Worklist) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs, m.q, m.wl = jobs, q, wl
}

// The descriptions of the scrape-time gauges.
var (
	descQueueLength = prometheus.NewDesc("radtriage_queue_length",
		"Entries on the triage job stream (waiting, or delivered and not acknowledged).", nil, nil)
	descQueuePending = prometheus.NewDesc("radtriage_queue_pending",
		"Triage job messages delivered to a worker and not acknowledged.", nil, nil)
	descQueueOldest = prometheus.NewDesc("radtriage_queue_oldest_age_seconds",
		"Age of the oldest entry on the triage job stream (0 when empty).", nil, nil)
	descJobs = prometheus.NewDesc("radtriage_jobs",
		"Triage jobs per state, from the index database.", []string{"state"}, nil)
	descWorklist = prometheus.NewDesc("radtriage_worklist_studies",
		"Open or claimed studies on the worklist per tier.", []string{"tier"}, nil)
	descWorklistAI = prometheus.NewDesc("radtriage_worklist_ai_studies",
		"Open or claimed studies on the worklist per AI status.", []string{"ai"}, nil)
	descSourceUp = prometheus.NewDesc("radtriage_metrics_source_up",
		"1 when the source answered this scrape, 0 when it failed (its gauges are then absent).", []string{"source"}, nil)
)

// scrapeCollector reads the sources of CollectFrom at every scrape.
type scrapeCollector struct{ m *Metrics }

func (c scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueLength, descQueuePending, descQueueOldest, descJobs, descWorklist, descWorklistAI, descSourceUp} {
		ch <- d
	}
}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	jobs, q, wl := c.m.jobs, c.m.q, c.m.wl
	c.m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := func(source string, err error) {
		v := 1.0
		if err != nil {
			v = 0
		}
		gauge(descSourceUp, v, source)
	}
	// The sources are read one after another, each within scrapeTimeout.
	if q != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		st, err := q.Stats(ctx)
		cancel()
		if err == nil {
			gauge(descQueueLength, float64(st.Length))
			gauge(descQueuePending, float64(st.Pending))
			gauge(descQueueOldest, st.OldestAge.Seconds())
		}
		up("queue", err)
	}
	if jobs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		counts, err := jobs.JobCounts(ctx)
		cancel()
		if err == nil {
			for _, s := range jobStates {
				gauge(descJobs, float64(counts[s]), string(s))
			}
		}
		up("jobs", err)
	}
	if wl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		tiers, ai, err := countWorklist(ctx, wl)
		cancel()
		if err == nil {
			for _, t := range []worklist.Tier{worklist.TierCritical, worklist.TierUrgent, worklist.TierRoutine} {
				gauge(descWorklist, float64(tiers[t]), string(t))
			}
			for _, s := range []worklist.AIStatus{worklist.AIPending, worklist.AIDone, worklist.AIFailed} {
				gauge(descWorklistAI, float64(ai[s]), string(s))
			}
		}
		up("worklist", err)
	}
}

// countWorklist counts the open and claimed studies of the worklist per
// tier and per AI status, paging through it (at most maxWorklistPages
// pages).
func countWorklist(ctx context.Context, wl *worklist.Worklist) (map[worklist.Tier]int, map[worklist.AIStatus]int, error) {
	tiers, ai := map[worklist.Tier]int{}, map[worklist.AIStatus]int{}
	cursor := ""
	for range maxWorklistPages {
		items, next, err := wl.List(ctx, worklist.Filter{Limit: worklist.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, nil, err
		}
		for i := range items {
			tiers[items[i].Tier]++
			ai[items[i].AI]++ // never "": an item without one reads as pending
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return tiers, ai, nil
}
