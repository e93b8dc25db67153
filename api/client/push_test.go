package client

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/radtriage/radtriage/api"
	"github.com/radtriage/radtriage/store"
)

// newServer starts the real radtriage DICOMweb handler on a fresh SQLite
// store; wrap, when set, sits in front of it (to count requests or drop
// some). It returns the DICOMweb base URL.
func newServer(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir(), StableAge: time.Hour, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var h http.Handler = api.New(db, api.Config{MaxRequestBytes: 1 << 30, MaxInstanceBytes: 64 << 20, Logger: logger})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/dicomweb"
}

func scan(t *testing.T, fsys fs.FS) *Inventory {
	t.Helper()
	inv, err := Scan(t.Context(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestPushCTHead(t *testing.T) {
	base := newServer(t, nil)
	fsys := os.DirFS(ctHead)
	inv := scan(t, fsys)
	_, total := inv.Files()
	var progress atomic.Int64
	c := &Client{URL: base, Concurrency: 3, MaxBatchBytes: 2 << 20, Progress: func(n int64) { progress.Add(n) }}
	if n := len(Batches(inv, c.MaxBatchBytes)); n < 4 {
		t.Fatalf("only %d batches: the test wants several requests in flight", n)
	}
	sum, err := c.Push(t.Context(), fsys, inv)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Stored) != 28 || !sum.OK() {
		var buf bytes.Buffer
		sum.Print(&buf)
		t.Fatalf("want 28 stored:\n%s", buf.String())
	}
	if got := progress.Load(); got != total {
		t.Errorf("progress reported %d bytes, want %d", got, total)
	}
	var skipped []string
	for _, s := range sum.Skipped {
		skipped = append(skipped, s.Path)
	}
	if strings.Join(skipped, " ") != "DIRFILE LICENSE" {
		t.Errorf("skipped %v, want DIRFILE and LICENSE", skipped)
	}

	// A re-send is harmless: every instance is reported stored again.
	sum, err = (&Client{URL: base}).Push(t.Context(), fsys, inv)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Stored) != 28 {
		var buf bytes.Buffer
		sum.Print(&buf)
		t.Errorf("re-send: want 28 stored:\n%s", buf.String())
	}
}

// TestPushConflict sends a second version of an instance under the same
// SOP Instance UID: the server keeps the first and warns.
func TestPushConflict(t *testing.T) {
	base := newServer(t, nil)
	orig, err := os.ReadFile(path.Join(ctHead, "I10"))
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(orig)
	changed[len(changed)-1] ^= 0xFF // last pixel byte
	c := &Client{URL: base}
	for i, data := range [][]byte{orig, changed} {
		fsys := fstest.MapFS{"I10": {Data: data}}
		sum, err := c.Push(t.Context(), fsys, scan(t, fsys))
		if err != nil {
			t.Fatal(err)
		}
		want := []Status{Stored, Warned}[i]
		if len(sum.Results) != 1 || sum.Results[0].Status != want {
			t.Fatalf("push %d: %+v, want one %v", i+1, sum.Results, want)
		}
		if want == Warned && (sum.Results[0].Code == 0 || sum.Results[0].Reason == "") {
			t.Errorf("warning without a code and reason: %+v", sum.Results[0])
		}
	}
}

// TestPushRetries puts a flaky front in front of the real server: the
// first requests get 503 with Retry-After, then the server answers.
func TestPushRetries(t *testing.T) {
	var requests atomic.Int32
	base := newServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if requests.Add(1) <= 2 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Retry-After", "0")
				http.Error(w, "index database unavailable", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	fsys := fstest.MapFS{}
	for _, name := range []string{"I10", "I20", "DIRFILE"} {
		data, err := os.ReadFile(path.Join(ctHead, name))
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: data}
	}
	var progress atomic.Int64
	c := &Client{URL: base, Backoff: time.Millisecond, Progress: func(n int64) { progress.Add(n) }}
	inv := scan(t, fsys)
	sum, err := c.Push(t.Context(), fsys, inv)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Stored) != 2 || !sum.OK() {
		t.Fatalf("want 2 stored after retries: %+v", sum.Results)
	}
	if got := requests.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (two 503 answers, then success)", got)
	}
	if _, total := inv.Files(); progress.Load() != total {
		t.Errorf("progress %d bytes after retries, want %d", progress.Load(), total)
	}

	// Retries run out: every instance of the batch fails with the reason.
	requests.Store(-100)
	sum, err = (&Client{URL: base, Retries: 2, Backoff: time.Millisecond}).Push(t.Context(), fsys, inv)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Failed) != 2 || !strings.Contains(sum.Results[0].Reason, "503") {
		t.Errorf("want 2 failed with 503: %+v", sum.Results)
	}
	if got := requests.Load(); got != -97 {
		t.Errorf("%d requests, want 3 (first attempt and two retries)", got+100)
	}
}

// TestPushNoRetryOn4xx: a client error is final.
func TestPushNoRetryOn4xx(t *testing.T) {
	var requests atomic.Int32
	base := newServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	fsys := os.DirFS(ctHead)
	inv := scan(t, fsys)
	inv.Studies[0].Files = inv.Studies[0].Files[:1]
	sum, err := (&Client{URL: base + "/no-such-route", Backoff: time.Millisecond}).Push(t.Context(), fsys, inv)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Failed) != 1 || !strings.Contains(sum.Results[0].Reason, "404") {
		t.Errorf("want 1 failed with 404: %+v", sum.Results)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

// TestPushCancel: ending ctx stops the push and says so.
func TestPushCancel(t *testing.T) {
	base := newServer(t, nil)
	fsys := os.DirFS(ctHead)
	inv := scan(t, fsys)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sum, err := (&Client{URL: base}).Push(ctx, fsys, inv)
	if err != context.Canceled {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if sum.Count(Stored) != 0 {
		t.Errorf("stored %d after cancel", sum.Count(Stored))
	}
}

// TestPushRefused: an instance the server refuses is reported failed with
// the server's code and sentence (the 409 path: nothing stored).
func TestPushRefused(t *testing.T) {
	base := newServer(t, nil)
	data, err := os.ReadFile(path.Join(ctHead, "../robustness/MR_truncated.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"MR_truncated.dcm": {Data: data}}
	sum, err := (&Client{URL: base}).Push(t.Context(), fsys, scan(t, fsys))
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Results) != 1 || sum.Results[0].Status != Failed || sum.Results[0].Code == 0 ||
		!strings.Contains(sum.Results[0].Reason, "truncated") {
		t.Errorf("want one failure naming the truncation: %+v", sum.Results)
	}
}
