package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/worklist"
)

// The findings, jobs and STOW-to-worklist tests run on a real store
// (SQLite, and PostgreSQL on RADTRIAGE_TEST_DATABASE_URL) and, where a
// worklist or the job stream takes part, on real Redis and the embedded
// store (forEachWorklistBackend).

// Studies of the findings tests.
const (
	uidBleed   = "1.2.826.0.1.3680043.10.7.1" // result with a mask
	uidNormal  = "1.2.826.0.1.3680043.10.7.2" // result without a mask
	uidQueued  = "1.2.826.0.1.3680043.10.7.3" // job, no result
	uidDead    = "1.2.826.0.1.3680043.10.7.4" // dead job, no result
	uidNothing = "1.2.826.0.1.3680043.10.7.5" // neither
	uidSeries  = "1.2.826.0.1.3680043.10.7.100"
)

// openDB opens a fresh store on backend b.
func openDB(t *testing.T, b backend) *store.DB {
	t.Helper()
	db, ok := b.open(t).(*store.DB)
	if !ok {
		t.Fatalf("%s archive is not a *store.DB", b.name)
	}
	return db
}

// testResult is a small triage result of study: one finding with its
// explanation when withMask, none otherwise, and a gzip "mask" when
// withMask.
func testResult(t *testing.T, study string, withMask bool) triage.StoredResult {
	t.Helper()
	r := triage.Result{
		StudyUID: study, SeriesUID: uidSeries, Tier: "routine",
		Scores: map[string]float64{"ich": 0.04}, Models: []string{"ich-seg@0.1.0"}, Demonstration: true,
		Findings: []triage.Finding{},
	}
	if withMask {
		r.Tier = "critical"
		r.Scores["ich"] = 0.93
		r.Findings = []triage.Finding{{
			Code: "ich", Label: "intracranial haemorrhage", Probability: 0.93, Tier: "critical",
			VolumeML: 12.5, Lesions: 1, ModelVersions: []string{"ich-seg@0.1.0"},
			Explanation: "ich-seg@0.1.0 peak 0.93 >= threshold 0.5 & lesion 12.5 mL >= 0.1 mL",
		}}
		r.MaskCodes = []string{"ich"}
	}
	js, err := json.MarshalIndent(r, "", "  ") // stored as the CLI prints it
	if err != nil {
		t.Fatal(err)
	}
	sr := triage.StoredResult{StudyUID: study, SeriesUID: uidSeries, Tier: r.Tier, JSON: js,
		At: time.Date(2026, 3, 2, 8, 15, 0, 0, time.UTC)}
	if withMask {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(bytes.Repeat([]byte{0, 1, 2, 1, 0}, 400))
		zw.Close()
		sr.Mask = buf.Bytes()
	}
	return sr
}

// findingsJSON decodes a findings answer, the result kept raw.
type findingsJSON struct {
	StudyUID  string          `json:"study_uid"`
	SeriesUID string          `json:"series_uid"`
	Tier      string          `json:"tier"`
	At        time.Time       `json:"at"`
	AI        string          `json:"ai"`
	Result    json.RawMessage `json:"result"`
	MaskURL   *string         `json:"mask_url"`
	Job       *jobJSON        `json:"job"`
}

func decodeFindings(t *testing.T, rec *httptest.ResponseRecorder) findingsJSON {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var f findingsJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil {
		t.Fatalf("findings: %v\n%s", err, rec.Body)
	}
	return f
}

func TestFindings(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testFindings(t, b)
		})
	}
}

func testFindings(t *testing.T, b backend) {
	ctx := context.Background()
	db := openDB(t, b)
	h := New(db, Config{Results: db, Jobs: db, Logger: quietLogger()})

	bleed, normal := testResult(t, uidBleed, true), testResult(t, uidNormal, false)
	for _, r := range []triage.StoredResult{bleed, normal} {
		if err := db.SaveTriageResult(ctx, r); err != nil {
			t.Fatalf("SaveTriageResult %s: %v", r.StudyUID, err)
		}
	}
	for _, j := range []struct {
		study   string
		version int64
	}{{uidQueued, 3}, {uidDead, 7}} {
		if again, err := db.EnqueueJob(ctx, j.study, j.version); err != nil || !again {
			t.Fatalf("EnqueueJob %s: %v %v", j.study, again, err)
		}
	}
	if _, ok, err := db.ClaimJob(ctx, uidDead, 7, "worker-1", time.Minute); err != nil || !ok {
		t.Fatalf("ClaimJob: %v %v", ok, err)
	}
	if err := db.FailJob(ctx, uidDead, 7, "worker-1", "model exploded", time.Now(), true); err != nil {
		t.Fatalf("FailJob: %v", err)
	}

	t.Run("result with mask", func(t *testing.T) {
		rec := do(t, h, "GET", "/api/v1/studies/"+uidBleed+"/findings", nil)
		want(t, "findings", rec, http.StatusOK)
		f := decodeFindings(t, rec)
		if f.StudyUID != uidBleed || f.SeriesUID != uidSeries || f.Tier != "critical" || !f.At.Equal(bleed.At) || f.AI != "done" || f.Job != nil {
			t.Errorf("findings header %+v, want study %s series %s tier critical at %v ai done, no job", f, uidBleed, uidSeries, bleed.At)
		}
		var stored, got bytes.Buffer
		json.Compact(&stored, bleed.JSON)
		json.Compact(&got, f.Result)
		if stored.String() != got.String() {
			t.Errorf("result is not the stored JSON:\n got %s\nwant %s", got.String(), stored.String())
		}
		if !strings.Contains(string(f.Result), `"explanation":"ich-seg@0.1.0 peak 0.93`) {
			t.Errorf("result lacks the finding's explanation: %s", f.Result)
		}
		wantURL := "http://example.com/api/v1/studies/" + uidBleed + "/findings/mask.nii.gz"
		if f.MaskURL == nil || *f.MaskURL != wantURL {
			t.Fatalf("maskURL %v, want %s", f.MaskURL, wantURL)
		}
		rec = do(t, h, "GET", strings.TrimPrefix(*f.MaskURL, "http://example.com"), nil)
		want(t, "mask", rec, http.StatusOK)
		if ct := rec.Header().Get("Content-Type"); ct != "application/gzip" {
			t.Errorf("mask Content-Type %q, want application/gzip", ct)
		}
		if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="`+uidBleed+`.nii.gz"` {
			t.Errorf("mask Content-Disposition %q", cd)
		}
		if !bytes.Equal(rec.Body.Bytes(), bleed.Mask) {
			t.Errorf("mask: %d bytes, not the %d saved", rec.Body.Len(), len(bleed.Mask))
		}
	})

	t.Run("result without mask", func(t *testing.T) {
		rec := do(t, h, "GET", "/api/v1/studies/"+uidNormal+"/findings", nil, "Accept", "application/json")
		want(t, "findings", rec, http.StatusOK)
		f := decodeFindings(t, rec)
		if f.MaskURL != nil || f.Tier != "routine" || f.AI != "done" || len(f.Result) == 0 {
			t.Errorf("findings without mask: %s", rec.Body)
		}
		rec = do(t, h, "GET", "/api/v1/studies/"+uidNormal+"/findings/mask.nii.gz", nil)
		want(t, "mask of a result without one", rec, http.StatusNotFound, uidNormal, "no mask")
	})

	t.Run("job without result", func(t *testing.T) {
		for _, tc := range []struct {
			study, ai string
			state     store.JobState
			attempts  int
			lastError string
		}{
			{uidQueued, "pending", store.JobQueued, 0, ""},
			{uidDead, "failed", store.JobDead, 1, "model exploded"},
		} {
			rec := do(t, h, "GET", "/api/v1/studies/"+tc.study+"/findings", nil)
			want(t, "findings of "+tc.study, rec, http.StatusOK)
			f := decodeFindings(t, rec)
			if f.AI != tc.ai || f.Job == nil || f.Job.State != tc.state || f.Job.Attempts != tc.attempts || f.Job.LastError != tc.lastError {
				t.Errorf("%s: %s\nwant ai %s, job state %s, attempts %d, lastError %q", tc.study, rec.Body, tc.ai, tc.state, tc.attempts, tc.lastError)
			}
			if f.Result != nil || f.MaskURL != nil || f.Tier != "" {
				t.Errorf("%s: a result without one: %s", tc.study, rec.Body)
			}
			rec = do(t, h, "GET", "/api/v1/studies/"+tc.study+"/findings/mask.nii.gz", nil)
			want(t, "mask of "+tc.study, rec, http.StatusNotFound)
		}
	})

	t.Run("result with a newer job pending", func(t *testing.T) {
		// New instances after triage: the study is triaged again, and
		// meanwhile its last result is shown with ai pending.
		if again, err := db.EnqueueJob(ctx, uidNormal, 40); err != nil || !again {
			t.Fatalf("EnqueueJob: %v %v", again, err)
		}
		rec := do(t, h, "GET", "/api/v1/studies/"+uidNormal+"/findings", nil)
		f := decodeFindings(t, rec)
		if f.AI != "pending" || f.Job == nil || f.Job.Version != 40 || len(f.Result) == 0 {
			t.Errorf("result with a queued job: %s", rec.Body)
		}
	})

	t.Run("unknown study", func(t *testing.T) {
		for _, p := range []string{"/findings", "/findings/mask.nii.gz"} {
			rec := do(t, h, "GET", "/api/v1/studies/"+uidNothing+p, nil)
			want(t, p+" of an unknown study", rec, http.StatusNotFound, uidNothing)
		}
	})

	t.Run("hostile UIDs", func(t *testing.T) {
		for _, uid := range []string{
			"..", "1.2.3%2F..%2F..%2Fetc", "1.2.3%5C..", "abc", "1.2..3", "1.2.03", "1.2.3.",
			strings.Repeat("1.", 40) + "1", "1.2.3%00", "%2E%2E",
		} {
			for _, p := range []string{"/findings", "/findings/mask.nii.gz"} {
				rec := do(t, h, "GET", "/api/v1/studies/"+uid+p, nil)
				want(t, "GET "+uid+p, rec, http.StatusBadRequest, "invalid Study Instance UID")
			}
		}
	})

	t.Run("Accept", func(t *testing.T) {
		for _, tc := range []struct {
			path, accept string
			status       int
		}{
			{"/findings", "application/json", http.StatusOK},
			{"/findings", "application/*", http.StatusOK},
			{"/findings", "text/html, */*;q=0.1", http.StatusOK},
			{"/findings", "application/dicom+json", http.StatusNotAcceptable},
			{"/findings", "text/html", http.StatusNotAcceptable},
			{"/findings", "application/json;q=0", http.StatusNotAcceptable},
			{"/findings/mask.nii.gz", "application/gzip", http.StatusOK},
			{"/findings/mask.nii.gz", "application/octet-stream", http.StatusOK},
			{"/findings/mask.nii.gz", "*/*", http.StatusOK},
			{"/findings/mask.nii.gz", "application/json", http.StatusNotAcceptable},
			{"/findings/mask.nii.gz", "image/png", http.StatusNotAcceptable},
		} {
			rec := do(t, h, "GET", "/api/v1/studies/"+uidBleed+tc.path, nil, "Accept", tc.accept)
			want(t, tc.path+" Accept: "+tc.accept, rec, tc.status)
		}
	})

	t.Run("not configured", func(t *testing.T) {
		bare := New(db, Config{Logger: quietLogger()})
		for _, p := range []string{"/api/v1/studies/" + uidBleed + "/findings", "/api/v1/studies/" + uidBleed + "/findings/mask.nii.gz", "/api/v1/jobs"} {
			rec := do(t, bare, "GET", p, nil)
			want(t, p+" without a store", rec, http.StatusServiceUnavailable, "not configured")
		}
		if rec := do(t, bare, "GET", "/metrics", nil); rec.Code != http.StatusNotFound {
			t.Errorf("/metrics without Config.Metrics: %d, want 404", rec.Code)
		}
	})
}

// jobsList decodes the answer of GET /api/v1/jobs.
type jobsList struct {
	Counts map[string]int `json:"counts"`
	Queue  *struct {
		Length           int64   `json:"length"`
		Pending          int64   `json:"pending"`
		OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	} `json:"queue"`
	QueueError string    `json:"queue_error"`
	Jobs       []jobJSON `json:"jobs"`
}

func TestJobs(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
				testJobs(t, b, env)
			})
		})
	}
}

func testJobs(t *testing.T, b backend, env *wlEnv) {
	ctx := context.Background()
	db := openDB(t, b)
	q, err := worklist.NewQueue(env.c, worklist.QueueConfig{Prefix: env.wl.Config().Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	h := New(db, Config{Results: db, Jobs: db, Queue: q, Logger: quietLogger()})

	get := func(t *testing.T, query string) jobsList {
		t.Helper()
		rec := do(t, h, "GET", "/api/v1/jobs"+query, nil)
		want(t, "GET /api/v1/jobs"+query, rec, http.StatusOK)
		var l jobsList
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
			t.Fatalf("jobs: %v\n%s", err, rec.Body)
		}
		return l
	}

	l := get(t, "")
	if len(l.Jobs) != 0 || l.Jobs == nil || l.Queue == nil || l.Queue.Length != 0 || len(l.Counts) != 5 || l.Counts["queued"] != 0 {
		t.Errorf("no jobs: %+v", l)
	}

	studies := []string{uidHead, uidBrain, uidChest, uidQueued}
	for i, s := range studies {
		if again, err := db.EnqueueJob(ctx, s, int64(10+i)); err != nil || !again {
			t.Fatalf("EnqueueJob %s: %v %v", s, again, err)
		}
		if _, err := q.Add(ctx, worklist.JobMessage{StudyUID: s, Version: int64(10 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := db.ClaimJob(ctx, uidChest, 12, "worker-1", time.Minute); err != nil || !ok {
		t.Fatalf("ClaimJob: %v %v", ok, err)
	}
	if err := db.FailJob(ctx, uidChest, 12, "worker-1", "volume: no series to assemble", time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.ClaimJob(ctx, uidHead, 10, "worker-2", time.Minute); err != nil || !ok {
		t.Fatalf("ClaimJob: %v %v", ok, err)
	}
	if d, err := q.Read(ctx, "worker-2", 100*time.Millisecond); err != nil || d == nil {
		t.Fatalf("Read: %v %v", d, err)
	}

	l = get(t, "")
	wantCounts := map[string]int{"queued": 2, "running": 1, "retry": 0, "done": 0, "dead": 1}
	for k, v := range wantCounts {
		if l.Counts[k] != v {
			t.Errorf("counts[%s] = %d, want %d (%v)", k, l.Counts[k], v, l.Counts)
		}
	}
	if len(l.Jobs) != 4 {
		t.Errorf("%d jobs, want 4", len(l.Jobs))
	}
	if l.Queue == nil || l.Queue.Length != 4 || l.Queue.Pending != 1 || l.Queue.OldestAgeSeconds < 0 || l.Queue.OldestAgeSeconds > 60 {
		t.Errorf("queue %+v, want length 4, pending 1", l.Queue)
	}

	l = get(t, "?state=dead")
	if len(l.Jobs) != 1 || l.Jobs[0].StudyUID != uidChest || l.Jobs[0].State != store.JobDead ||
		l.Jobs[0].LastError != "volume: no series to assemble" || l.Jobs[0].Attempts != 1 || l.Jobs[0].FinishedAt.IsZero() {
		t.Errorf("dead letters: %+v", l.Jobs)
	}
	l = get(t, "?state=running,dead")
	if len(l.Jobs) != 2 {
		t.Errorf("state=running,dead: %d jobs, want 2", len(l.Jobs))
	}
	for _, j := range l.Jobs {
		if j.State == store.JobRunning && (j.Owner != "worker-2" || j.LeaseUntil.IsZero()) {
			t.Errorf("running job without owner or lease: %+v", j)
		}
	}
	if l := get(t, "?state=queued&state=RUNNING"); len(l.Jobs) != 3 {
		t.Errorf("state=queued&state=RUNNING: %d jobs, want 3", len(l.Jobs))
	}
	if l := get(t, "?limit=1"); len(l.Jobs) != 1 {
		t.Errorf("limit=1: %d jobs", len(l.Jobs))
	}

	for _, tc := range []struct{ query, msg string }{
		{"?state=lost", "state"},
		{"?state=dead,", "state"},
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=x", "limit"},
		{"?limit=1&limit=2", "limit"},
		{"?sort=age", "unknown query parameter"},
	} {
		rec := do(t, h, "GET", "/api/v1/jobs"+tc.query, nil)
		want(t, "GET /api/v1/jobs"+tc.query, rec, http.StatusBadRequest, tc.msg)
	}
	rec := do(t, h, "GET", "/api/v1/jobs", nil, "Accept", "text/html")
	want(t, "jobs as text/html", rec, http.StatusNotAcceptable)

	t.Run("queue unreachable", func(t *testing.T) {
		dead, err := worklist.NewQueue(unreachableRedis(t), worklist.QueueConfig{})
		if err != nil {
			t.Fatal(err)
		}
		h := New(db, Config{Jobs: db, Queue: dead, Logger: quietLogger()})
		rec := do(t, h, "GET", "/api/v1/jobs?state=dead", nil)
		want(t, "jobs with Redis down", rec, http.StatusOK)
		var l jobsList
		json.Unmarshal(rec.Body.Bytes(), &l)
		if l.Queue != nil || l.QueueError == "" || len(l.Jobs) != 1 || l.Counts["dead"] != 1 {
			t.Errorf("jobs with Redis down: %s", rec.Body)
		}
	})
}

// unreachableRedis is a client of a Redis that is not there.
func unreachableRedis(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// ctHeadParts returns the first n slices of ct-head-5mm as STOW-RS parts.
func ctHeadParts(t *testing.T, n int) []part {
	t.Helper()
	dir := fixtureDir(t, "ct-head-5mm")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var parts []part
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "I") && len(parts) < n {
			parts = append(parts, filePart(t, filepath.Join(dir, e.Name())))
		}
	}
	if len(parts) != n {
		t.Fatalf("%d slices in %s, want %d", len(parts), dir, n)
	}
	return parts
}

// stowStudy STOWs parts, wants 200, and returns the study UID.
func stowStudy(t *testing.T, h http.Handler, parts []part) string {
	t.Helper()
	rec, ds := stow(t, h, "/dicomweb/studies", parts)
	if rec.Code != http.StatusOK {
		t.Fatalf("STOW: status %d, want 200\n%s", rec.Code, rec.Body)
	}
	return strings.TrimPrefix(localPath(t, ds.str("00081190")), "/dicomweb/studies/")
}

func TestSTOWPutsStudyOnWorklist(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
				ctx := context.Background()
				db := openDB(t, b)
				h := New(db, Config{Worklist: env.wl, Logger: quietLogger()})
				study := stowStudy(t, h, ctHeadParts(t, 3))
				it, err := env.wl.Get(ctx, study)
				if err != nil {
					t.Fatalf("study not on the worklist after STOW: %v", err)
				}
				if it.AI != worklist.AIPending || it.Status != worklist.StatusOpen || it.Modality != "CT" || it.Received.IsZero() {
					t.Errorf("worklist item after STOW: %+v", it)
				}
				if !strings.Contains(it.Reason, "AI pending") {
					t.Errorf("reason %q does not say AI pending", it.Reason)
				}
				// The API lists it too, before the study is stable.
				rec := env.call(t, "GET", "/api/v1/worklist/"+study, "", "")
				want(t, "worklist item", rec, http.StatusOK)

				// More instances of the study: still one item, AI status
				// kept.
				if _, err := env.wl.SetAIStatus(ctx, study, worklist.AIFailed, "test", "tester"); err != nil {
					t.Fatal(err)
				}
				parts := ctHeadParts(t, 5)
				stowStudy(t, h, parts[3:])
				items, _, err := env.wl.List(ctx, worklist.Filter{})
				if err != nil || len(items) != 1 || items[0].AI != worklist.AIFailed {
					t.Errorf("after a second STOW: %d items, %v (%+v)", len(items), err, items)
				}

				// A completed study stays off the worklist.
				if _, err := env.wl.Claim(ctx, study, "dr.a"); err != nil {
					t.Fatal(err)
				}
				if _, err := env.wl.Complete(ctx, study, "dr.a"); err != nil {
					t.Fatal(err)
				}
				if err := db.CompleteStudy(ctx, study, "dr.a", time.Now()); err != nil {
					t.Fatal(err)
				}
				stowStudy(t, h, ctHeadParts(t, 6)[5:])
				if it, err := env.wl.Get(ctx, study); err != nil || it.Status != worklist.StatusDone {
					t.Errorf("completed study after STOW: %+v %v", it, err)
				}
			})
		})
	}
}

// TestSTOWWorklistDown: a worklist that cannot be reached does not fail
// the STOW; the study is stored.
func TestSTOWWorklistDown(t *testing.T) {
	db := openDB(t, backends()[0])
	wl, err := worklist.New(unreachableRedis(t), worklist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := New(db, Config{Worklist: wl, Logger: quietLogger()})
	start := time.Now()
	study := stowStudy(t, h, ctHeadParts(t, 2))
	if d := time.Since(start); d > worklistUpsertTimeout+2*time.Second {
		t.Errorf("STOW took %v with the worklist down", d)
	}
	if got, err := db.FindStudies(context.Background(), store.Query{StudyInstanceUIDs: []string{study}}); err != nil || len(got) != 1 || got[0].NumInstances != 2 {
		t.Errorf("study after STOW with the worklist down: %+v %v", got, err)
	}
}
