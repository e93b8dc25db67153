package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// defaultWorklistFlags are the defaults of the worklist flags.
var defaultWorklistFlags = worklistFlags{Prefix: worklist.DefaultPrefix, Critical: 15 * time.Minute, Urgent: time.Hour,
	Routine: 8 * time.Hour, Lease: 10 * time.Minute}

const mrStudy = "../../../shared/dicom/wg04/REF/MR1_UNC"

func TestSweepInterval(t *testing.T) {
	for lease, want := range map[time.Duration]time.Duration{
		10 * time.Minute:       5 * time.Second,
		4 * time.Second:        time.Second,
		time.Millisecond:       50 * time.Millisecond,
		400 * time.Millisecond: 100 * time.Millisecond,
	} {
		if got := sweepInterval(lease); got != want {
			t.Errorf("sweepInterval(%v) = %v, want %v", lease, got, want)
		}
	}
}

func TestParseServeWorklist(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    worklistFlags
		wantErr string
	}{
		{name: "defaults", want: defaultWorklistFlags},
		{name: "flags", args: []string{"--worklist-prefix", "site2:", "--deadline-critical", "5m", "--deadline-urgent=30m",
			"--deadline-routine", "24h", "--claim-lease", "90s"},
			want: worklistFlags{Prefix: "site2:", Critical: 5 * time.Minute, Urgent: 30 * time.Minute, Routine: 24 * time.Hour, Lease: 90 * time.Second}},
		{name: "environment", env: map[string]string{"RADTRIAGE_WORKLIST_PREFIX": "x:", "RADTRIAGE_CLAIM_LEASE": "1m", "RADTRIAGE_DEADLINE_ROUTINE": "2h"},
			want: worklistFlags{Prefix: "x:", Critical: 15 * time.Minute, Urgent: time.Hour, Routine: 2 * time.Hour, Lease: time.Minute}},
		{name: "zero deadline", args: []string{"--deadline-urgent", "0s"}, wantErr: `invalid --deadline-urgent "0s": must be positive`},
		{name: "negative lease", env: map[string]string{"RADTRIAGE_CLAIM_LEASE": "-1m"}, wantErr: `invalid RADTRIAGE_CLAIM_LEASE "-1m": must be positive`},
		{name: "bad deadline", args: []string{"--deadline-critical", "soon"}, wantErr: `invalid --deadline-critical "soon"`},
		{name: "empty prefix", args: []string{"--worklist-prefix", " "}, wantErr: `invalid --worklist-prefix " ": must not be empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := testEnv(tt.env)
			c, err := parseServe(env, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != 2 {
					t.Fatalf("error %v (status %d), want one containing %q (status 2)", err, exitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Worklist != tt.want {
				t.Errorf("got %+v, want %+v", c.Worklist, tt.want)
			}
		})
	}
}

// testPrefix returns a fresh key prefix on the Redis at u and deletes its
// keys after the test.
func testPrefix(t *testing.T, u string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "radtriage-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		opts, err := redis.ParseURL(u)
		if err != nil {
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// redisTarget is a Redis the worklist tests run on.
type redisTarget struct {
	name   string
	url    string // "" for serve's embedded default
	client *redis.Client
	prefix string
}

// redisTargets returns the embedded store and the real Redis (when there
// is one; without, its subtest skips or fails under CI).
func redisTargets() []func(t *testing.T) redisTarget {
	return []func(t *testing.T) redisTarget{
		func(t *testing.T) redisTarget {
			e, err := worklist.StartEmbedded(slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			opts, _ := redis.ParseURL(e.URL())
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			return redisTarget{name: "embedded", url: e.URL(), client: c, prefix: worklist.DefaultPrefix}
		},
		func(t *testing.T) redisTarget {
			u := testenv.RedisURL(t)
			opts, err := redis.ParseURL(u)
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			return redisTarget{name: "redis", url: u, client: c, prefix: testPrefix(t, u)}
		},
	}
}

var targetNames = []string{"Embedded", "Redis"}

// storeStudies opens a SQLite store in dataDir and stores every valid
// DICOM file under dirs; it returns the store and the study UIDs in the
// order stored.
func storeStudies(t *testing.T, dataDir string, dirs ...string) (*store.DB, []string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var studies []string
	for _, dir := range dirs {
		var files []string
		if fi, err := os.Stat(dir); err != nil {
			t.Skipf("fixture absent: %v", err)
		} else if fi.IsDir() {
			files, _ = filepath.Glob(filepath.Join(dir, "*"))
		} else {
			files = []string{dir}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Store(ctx, bytes.NewReader(data), store.StoreOptions{})
			if dicomio.AsReject(err) != nil {
				continue // LICENSE, DIRFILE
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if uid := res.Instance.StudyInstanceUID; len(studies) == 0 || studies[len(studies)-1] != uid {
				studies = append(studies, uid)
			}
		}
	}
	return db, studies
}

var ich = worklist.Finding{Code: "ich", Name: "intracranial haemorrhage", Probability: 0.93, Tier: worklist.TierCritical, VolumeML: 12, Model: "demo"}

// TestWorklistRebuildCommand runs radtriage worklist rebuild against the
// real Redis: the worklist it builds holds the open studies with their
// findings; a completed study does not come back.
func TestWorklistRebuildCommand(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testPrefix(t, u)
	ctx := t.Context()
	dataDir := t.TempDir()
	db, studies := storeStudies(t, dataDir, ctHead, mrStudy)
	if len(studies) != 2 {
		t.Fatalf("fixtures hold %d studies, want 2", len(studies))
	}
	head, mr := studies[0], studies[1]
	if err := db.ReplaceFindings(ctx, head, []worklist.Finding{ich}, "triage", time.Time{}); err != nil {
		t.Fatal(err)
	}
	rebuild := func(t *testing.T) string {
		t.Helper()
		env, stdout, _ := testEnv(map[string]string{"RADTRIAGE_REDIS_URL": u, "RADTRIAGE_LOG_LEVEL": "warn"})
		err := runEnv(ctx, env, []string{"worklist", "rebuild", "--data-dir", dataDir, "--worklist-prefix", prefix})
		if err != nil {
			t.Fatalf("worklist rebuild: %v", err)
		}
		return stdout.String()
	}
	if out := rebuild(t); out != "worklist rebuilt: 2 open studies\n" {
		t.Errorf("output %q", out)
	}

	opts, _ := redis.ParseURL(u)
	client := redis.NewClient(opts)
	defer client.Close()
	wl, err := worklist.New(client, defaultWorklistFlags.config(db))
	if err != nil {
		t.Fatal(err)
	}
	wl2, err := worklist.New(client, worklist.Config{Prefix: prefix, Recorder: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wl.Get(ctx, head); !errors.Is(err, worklist.ErrNotFound) {
		t.Errorf("the default prefix was touched: %v", err)
	}
	items, _, err := wl2.List(ctx, worklist.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].StudyUID != head || items[0].Tier != worklist.TierCritical ||
		items[0].Finding == nil || items[0].Finding.Code != "ich" || items[0].Modality != "CT" || items[1].StudyUID != mr {
		t.Fatalf("worklist after rebuild: %+v", items)
	}

	// Completed through the worklist, recorded in the store: a rebuild
	// does not bring it back.
	if _, err := wl2.Complete(ctx, head, "dr.grey"); err != nil {
		t.Fatal(err)
	}
	if out := rebuild(t); out != "worklist rebuilt: 1 open studies\n" {
		t.Errorf("output %q", out)
	}
	if _, err := wl2.Get(ctx, head); !errors.Is(err, worklist.ErrNotFound) {
		t.Errorf("completed study after rebuild: %v, want ErrNotFound", err)
	}
	if _, err := wl2.Get(ctx, mr); err != nil {
		t.Errorf("open study after rebuild: %v", err)
	}
}

func TestWorklistCommandErrors(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantErr    string
		wantStatus int
	}{
		{"no action", []string{"worklist"}, "missing argument: rebuild", 2},
		{"unknown action", []string{"worklist", "flush"}, `unknown action "flush"`, 2},
		{"embedded", []string{"worklist", "rebuild"}, "--redis-url (RADTRIAGE_REDIS_URL) is required", 2},
		{"unreachable", []string{"worklist", "rebuild", "--redis-url", "redis://127.0.0.1:1/0", "--data-dir", t.TempDir()},
			"cannot reach Redis at --redis-url redis://127.0.0.1:1/0", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := testEnv(map[string]string{"RADTRIAGE_LOG_LEVEL": "error"})
			err := runEnv(t.Context(), env, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != tt.wantStatus {
				t.Fatalf("error %v (status %d), want one containing %q (status %d)", err, exitCode(err), tt.wantErr, tt.wantStatus)
			}
		})
	}
	env, stdout, _ := testEnv(nil)
	if err := runEnv(t.Context(), env, []string{"help", "worklist"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"separate process cannot reach it", "RADTRIAGE_WORKLIST_PREFIX", "--claim-lease"} {
		if !strings.Contains(strings.Join(strings.Fields(stdout.String()), " "), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestServeWorklist starts serve on a store that already holds studies:
// on an empty worklist it rebuilds it from the store; on a worklist that
// holds studies it leaves it alone.
func TestServeWorklist(t *testing.T) {
	for i, target := range redisTargets() {
		t.Run(targetNames[i], func(t *testing.T) {
			r := target(t)
			dataDir := t.TempDir()
			db, studies := storeStudies(t, dataDir, ctHead, mrStudy)
			db.Close()
			start := func(t *testing.T) string {
				t.Helper()
				env, _, _ := testEnv(map[string]string{"RADTRIAGE_DATA_DIR": dataDir, "RADTRIAGE_REDIS_URL": r.url, "RADTRIAGE_WORKLIST_PREFIX": r.prefix})
				if r.name == "embedded" {
					env, _, _ = testEnv(map[string]string{"RADTRIAGE_DATA_DIR": dataDir}) // serve starts its own
				}
				c, err := parseServe(env, []string{"--addr", "127.0.0.1:0", "--log-level", "debug"})
				if err != nil {
					t.Fatal(err)
				}
				srv := startServe(t, c)
				if err := srv.stop(t); err != nil {
					t.Fatalf("serve returned %v after cancel", err)
				}
				return srv.logs.String()
			}
			logs := start(t)
			if !strings.Contains(logs, "worklist was empty: rebuilt from the store") || !strings.Contains(logs, "studies=2") {
				t.Errorf("first start did not rebuild:\n%s", logs)
			}
			if r.name == "embedded" {
				if !strings.Contains(logs, "single-process use only") {
					t.Errorf("no warning about the embedded store:\n%s", logs)
				}
				return // its data went with the process
			}
			wl, err := worklist.New(r.client, worklist.Config{Prefix: r.prefix})
			if err != nil {
				t.Fatal(err)
			}
			items, _, err := wl.List(t.Context(), worklist.Filter{})
			if err != nil || len(items) != 2 || items[0].StudyUID != studies[0] && items[1].StudyUID != studies[0] {
				t.Fatalf("worklist after start: %+v %v", items, err)
			}
			if logs := start(t); strings.Contains(logs, "rebuilt from the store") {
				t.Errorf("second start rebuilt a worklist that was not empty:\n%s", logs)
			}
		})
	}
}

// TestWorklistNotifier: a study that becomes stable goes on the worklist
// as the store describes it; a completed one never comes back, not even
// after its done entry has left Redis.
func TestWorklistNotifier(t *testing.T) {
	for i, target := range redisTargets() {
		t.Run(targetNames[i], func(t *testing.T) {
			r := target(t)
			ctx := t.Context()
			db, studies := storeStudies(t, t.TempDir(), ctHead)
			head := studies[0]
			wl, err := worklist.New(r.client, worklist.Config{Prefix: r.prefix, Recorder: db})
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			n := worklistNotifier{db: db, wl: wl, logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if err := n.StudyStable(ctx, head, 28); err != nil {
				t.Fatal(err)
			}
			it, err := wl.Get(ctx, head)
			if err != nil {
				t.Fatal(err)
			}
			want, _, _ := db.WorklistStudy(ctx, head)
			if it.Modality != "CT" || it.PatientID != want.Study.PatientID || it.Status != worklist.StatusOpen ||
				!it.Received.Equal(want.Study.Received.Truncate(time.Millisecond)) || it.UpdatedBy != upsertUser {
				t.Errorf("item %+v\nfrom %+v", it, want.Study)
			}
			if !strings.Contains(logs.String(), "study stable") || !strings.Contains(logs.String(), "instances=28") {
				t.Errorf("log: %s", logs.String())
			}
			if err := n.StudyStable(ctx, "1.2.3.4", 1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("unknown study: %v, want store.ErrNotFound", err)
			}

			if _, err := wl.Complete(ctx, head, "dr.grey"); err != nil {
				t.Fatal(err)
			}
			if err := n.StudyStable(ctx, head, 29); err != nil { // an instance arrived after reading
				t.Fatal(err)
			}
			if it, err := wl.Get(ctx, head); err != nil || it.Status != worklist.StatusDone {
				t.Errorf("completed study after a new stable: %+v %v", it, err)
			}
			// Past the done retention (here: gone with a rebuild), the store
			// keeps it off.
			if _, err := wl.Rebuild(ctx, db); err != nil {
				t.Fatal(err)
			}
			if err := n.StudyStable(ctx, head, 30); err != nil {
				t.Fatal(err)
			}
			if _, err := wl.Get(ctx, head); !errors.Is(err, worklist.ErrNotFound) {
				t.Errorf("completed study resurrected: %v", err)
			}
		})
	}
}

// TestSweepLeases: the sweeper returns a lapsed claim to the queue and
// stops with its context.
func TestSweepLeases(t *testing.T) {
	for i, target := range redisTargets() {
		t.Run(targetNames[i], func(t *testing.T) {
			r := target(t)
			var (
				mu    sync.Mutex
				clock = time.Now()
			)
			now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
			wl, err := worklist.New(r.client, worklist.Config{Prefix: r.prefix, Lease: time.Minute, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if _, err := wl.Upsert(ctx, worklist.Study{StudyUID: "1.2.3"}, "test"); err != nil {
				t.Fatal(err)
			}
			if _, err := wl.Claim(ctx, "1.2.3", "dr.grey"); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			stopped := make(chan struct{})
			go func() {
				sweepLeases(ctx, wl, sweepInterval(time.Millisecond), slog.New(slog.NewTextHandler(&logs, nil)))
				close(stopped)
			}()
			time.Sleep(50 * time.Millisecond)
			if it, _ := wl.Get(ctx, "1.2.3"); it == nil || it.Status != worklist.StatusClaimed {
				t.Fatalf("a live claim was swept: %+v", it)
			}
			mu.Lock()
			clock = clock.Add(2 * time.Minute)
			mu.Unlock()
			deadline := time.Now().Add(5 * time.Second)
			for {
				it, err := wl.Get(ctx, "1.2.3")
				if err == nil && it.Status == worklist.StatusOpen && it.ClaimedBy == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("lapsed claim not returned: %+v %v", it, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				t.Fatal("sweeper did not stop")
			}
			if !strings.Contains(logs.String(), "lapsed claims returned to the queue") {
				t.Errorf("log: %s", logs.String())
			}
		})
	}
}

// TestServeWorklistEndToEnd runs serve on its embedded defaults, pushes
// the CT head study, and follows it through the worklist API: it appears
// once stable, and its completion is recorded in the index, so that it
// stays off the worklist after a restart.
func TestServeWorklistEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	env, _, _ := testEnv(map[string]string{"RADTRIAGE_DATA_DIR": dataDir})
	c, err := parseServe(env, []string{"--addr", "127.0.0.1:0", "--stable-age", "300ms", "--claim-lease", "400ms"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	srv := startServe(t, c)
	base, logs := srv.base, srv.logs
	if err := push(ctx, &pushConfig{Dir: ctHead, URL: base + "/dicomweb", Concurrency: 2, BatchSize: 4 << 20, Retries: 1}, io.Discard, io.Discard); err != nil {
		t.Fatalf("push: %v", err)
	}

	type page struct {
		Items []struct {
			StudyUID string `json:"study_uid"`
			Modality string `json:"modality"`
			Status   string `json:"status"`
			Tier     string `json:"tier"`
		} `json:"items"`
	}
	list := func() page {
		t.Helper()
		resp, err := http.Get(base + "/api/v1/worklist")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/worklist: %s", resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deadline := time.Now().Add(15 * time.Second)
	var p page
	for p = list(); len(p.Items) == 0 && time.Now().Before(deadline); p = list() {
		time.Sleep(50 * time.Millisecond)
	}
	if len(p.Items) != 1 || p.Items[0].Modality != "CT" || p.Items[0].Status != "open" || p.Items[0].Tier != "routine" {
		t.Fatalf("worklist after push: %+v\n%s", p, logs.String())
	}
	study := p.Items[0].StudyUID
	post := func(action string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/worklist/"+study+"/"+action, nil)
		req.Header.Set("X-Radtriage-User", "dr.grey")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", action, resp.Status)
		}
	}

	// The sweeper returns a claim left to lapse (400ms) to the queue.
	post("claim")
	if p := list(); len(p.Items) != 1 || p.Items[0].Status != "claimed" {
		t.Fatalf("after claim: %+v", p)
	}
	for p = list(); p.Items[0].Status != "open" && time.Now().Before(deadline); p = list() {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Items[0].Status != "open" {
		t.Fatalf("lapsed claim still held: %+v", p)
	}

	post("complete")
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}

	// The completion is in the index: a fresh embedded worklist does not
	// bring it back.
	db, err := store.Open(t.Context(), store.Config{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_, open, err := db.WorklistStudy(t.Context(), study)
	db.Close()
	if err != nil || open {
		t.Fatalf("study after completion through the API: open=%v %v", open, err)
	}
	srv = startServe(t, c)
	base = srv.base
	if p := list(); len(p.Items) != 0 {
		t.Errorf("completed study back on the worklist after a restart: %+v", p)
	}
	srv.stop(t)
}
