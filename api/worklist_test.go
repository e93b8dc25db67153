package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/worklist"
)

// The worklist API tests run against the real redis-server named by
// RADTRIAGE_TEST_REDIS_URL (skipped when unset, failed under CI=true),
// each under a random key prefix removed at cleanup, and against the
// embedded store (worklist.StartEmbedded).

// testClock is the worklist's Config.Now in these tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// wlEnv is one worklist on one backend, and the API serving it.
type wlEnv struct {
	c     *redis.Client
	wl    *worklist.Worklist
	h     http.Handler
	clock *testClock
}

// forEachWorklistBackend runs fn as subtests "redis" and "embedded".
func forEachWorklistBackend(t *testing.T, fn func(t *testing.T, env *wlEnv)) {
	t.Helper()
	forEachWorklistBackendWith(t, nil, fn)
}

// forEachWorklistBackendWith is forEachWorklistBackend with the Redis
// client options adjusted by opt (when not nil).
func forEachWorklistBackendWith(t *testing.T, opt func(*redis.Options), fn func(t *testing.T, env *wlEnv)) {
	t.Helper()
	if opt == nil {
		opt = func(*redis.Options) {}
	}
	t.Run("redis", func(t *testing.T) {
		u := testenv.RedisURL(t)
		o, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("RADTRIAGE_TEST_REDIS_URL: %v", err)
		}
		opt(o)
		c := redis.NewClient(o)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		if err != nil {
			c.Close()
			if os.Getenv("CI") == "true" {
				t.Fatalf("redis at %s unreachable under CI: %v", u, err)
			}
			t.Skipf("redis at %s unreachable: %v", u, err)
		}
		var b [8]byte
		rand.Read(b[:])
		prefix := "radtriage-apitest:" + hex.EncodeToString(b[:]) + ":"
		t.Cleanup(func() {
			ctx := context.Background()
			iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			c.Close()
		})
		fn(t, newWLEnv(t, c, prefix))
	})
	t.Run("embedded", func(t *testing.T) {
		e, err := worklist.StartEmbedded(quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		o, err := redis.ParseURL(e.URL())
		if err != nil {
			t.Fatal(err)
		}
		opt(o)
		c := redis.NewClient(o)
		t.Cleanup(func() {
			c.Close()
			e.Close()
		})
		fn(t, newWLEnv(t, c, ""))
	})
}

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func newWLEnv(t *testing.T, c *redis.Client, prefix string) *wlEnv {
	t.Helper()
	clock := &testClock{t: t0}
	wl, err := worklist.New(c, worklist.Config{Prefix: prefix, Now: clock.Now, Lease: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The worklist routes never touch the archive.
	return &wlEnv{c: c, wl: wl, h: New(nil, Config{Worklist: wl, Logger: quietLogger()}), clock: clock}
}

// The studies of the tests.
const (
	uidHead  = "1.2.826.0.1.3680043.10.1.1" // CT HEAD, routine, received 30 min ago
	uidBrain = "1.2.826.0.1.3680043.10.1.2" // MR HEAD, routine, received 10 min ago
	uidChest = "1.2.826.0.1.3680043.10.1.3" // CT CHEST, STAT, received 5 min ago
	uidNone  = "1.2.826.0.1.3680043.10.1.9" // never added
)

func (env *wlEnv) addStudies(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []worklist.Study{
		{StudyUID: uidHead, Modality: "CT", BodyPart: "HEAD", PatientID: "P1", Received: t0.Add(-30 * time.Minute)},
		{StudyUID: uidBrain, Modality: "MR", BodyPart: "HEAD", PatientID: "P2", Received: t0.Add(-10 * time.Minute)},
		{StudyUID: uidChest, Modality: "CT", BodyPart: "CHEST", PatientID: "P3", OrderPriority: "STAT", Received: t0.Add(-5 * time.Minute)},
	} {
		if _, err := env.wl.Upsert(ctx, s, "ingest"); err != nil {
			t.Fatalf("Upsert %s: %v", s.StudyUID, err)
		}
	}
}

// call makes a request; user "" sends no user header. body may be nil.
func (env *wlEnv) call(t *testing.T, method, target, user, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if user != "" {
		req.Header.Set(userHeader, user)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	return rec
}

// want checks the status of rec, and for errors that the answer is
// {"error": "..."} holding every one of the substrings.
func want(t *testing.T, what string, rec *httptest.ResponseRecorder, status int, substrings ...string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("%s: status %d, want %d\n%s", what, rec.Code, status, rec.Body)
		return
	}
	if status < 400 {
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Errorf("%s: error answer is not {\"error\": \"...\"}: %s", what, rec.Body)
		return
	}
	for _, s := range substrings {
		if !strings.Contains(e.Error, s) {
			t.Errorf("%s: error %q does not mention %q", what, e.Error, s)
		}
	}
}

func decodeItem(t *testing.T, rec *httptest.ResponseRecorder) worklistItem {
	t.Helper()
	var it worklistItem
	if err := json.Unmarshal(rec.Body.Bytes(), &it); err != nil {
		t.Fatalf("item: %v\n%s", err, rec.Body)
	}
	return it
}

func decodePage(t *testing.T, rec *httptest.ResponseRecorder) worklistPage {
	t.Helper()
	var p worklistPage
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("page: %v\n%s", err, rec.Body)
	}
	return p
}

// order lists the study UIDs of GET target, checking the status.
func (env *wlEnv) order(t *testing.T, target string) []string {
	t.Helper()
	rec := env.call(t, http.MethodGet, target, "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d\n%s", target, rec.Code, rec.Body)
	}
	var uids []string
	for _, it := range decodePage(t, rec).Items {
		uids = append(uids, it.StudyUID)
	}
	// Without paging, the streamed list (format=ndjson) holds the same
	// items in the same order.
	if !strings.Contains(target, "limit=") && !strings.Contains(target, "cursor=") {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		items, eventID := env.stream(t, target+sep+"format=ndjson")
		var streamed []string
		for _, it := range items {
			streamed = append(streamed, it.StudyUID)
		}
		checkOrder(t, "streamed "+target, streamed, uids...)
		if eventID == "" {
			t.Errorf("streamed %s: no event ID", target)
		}
	}
	return uids
}

// stream reads GET target as the streamed list: it checks the status,
// the media type, the header event ID (which the end line repeats) and
// the end line's count, and returns the items and the event ID.
func (env *wlEnv) stream(t *testing.T, target string) ([]worklistItem, string) {
	t.Helper()
	rec := env.call(t, http.MethodGet, target, "", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ndjsonType {
		t.Fatalf("GET %s: status %d, type %q\n%s", target, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	items, end := decodeStream(t, rec.Body.Bytes())
	if end == nil {
		t.Fatalf("GET %s: no end line\n%s", target, rec.Body)
	}
	if end.End.Count != len(items) || end.End.EventID != rec.Header().Get(eventIDHeader) {
		t.Fatalf("GET %s: end line %+v for %d items, header event ID %q", target, end.End, len(items), rec.Header().Get(eventIDHeader))
	}
	return items, end.End.EventID
}

// decodeStream splits a streamed list into its items and its end line
// (nil when missing), failing on anything else (an error line included).
func decodeStream(t *testing.T, body []byte) ([]worklistItem, *worklistStreamEnd) {
	t.Helper()
	var items []worklistItem
	lines := strings.Split(string(body), "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("streamed list does not end with a newline: %q", lines[len(lines)-1])
	}
	for i, line := range lines[:len(lines)-1] {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &probe); err != nil {
			t.Fatalf("line %d: %v: %q", i+1, err, line)
		}
		if _, ok := probe["end"]; ok {
			if i != len(lines)-2 {
				t.Fatalf("end line %d is not the last of %d", i+1, len(lines)-1)
			}
			var end worklistStreamEnd
			if err := json.Unmarshal([]byte(line), &end); err != nil {
				t.Fatal(err)
			}
			return items, &end
		}
		if _, ok := probe["error"]; ok {
			t.Fatalf("line %d is an error: %s", i+1, line)
		}
		var it worklistItem
		if err := json.Unmarshal([]byte(line), &it); err != nil || it.StudyUID == "" {
			t.Fatalf("line %d: not an item (%v): %q", i+1, err, line)
		}
		items = append(items, it)
	}
	return items, nil
}

func checkOrder(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: order\n %v\nwant\n %v", what, got, want)
	}
}

func TestWorklistNotConfigured(t *testing.T) {
	h := New(nil, Config{Logger: quietLogger()})
	for _, r := range []struct{ method, target string }{
		{http.MethodGet, "/api/v1/worklist"},
		{http.MethodGet, "/api/v1/worklist/events"},
		{http.MethodGet, "/api/v1/worklist/" + uidHead},
		{http.MethodPost, "/api/v1/worklist/" + uidHead + "/claim"},
		{http.MethodDelete, "/api/v1/worklist/" + uidHead + "/priority"},
	} {
		rec := do(t, h, r.method, r.target, nil, userHeader, "alice")
		want(t, r.method+" "+r.target, rec, http.StatusServiceUnavailable, "worklist is not configured")
	}
}

// TestWorklistRedisDown: with its Redis gone (the embedded store closed),
// the worklist routes and /readyz answer 503 with Retry-After, never 500.
func TestWorklistRedisDown(t *testing.T) {
	e, err := worklist.StartEmbedded(quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	o, err := redis.ParseURL(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	wl, err := worklist.New(c, worklist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := New(openSQLite(t), Config{Worklist: wl, Logger: quietLogger()})
	if rec := do(t, h, http.MethodGet, "/readyz", nil); rec.Code != http.StatusOK {
		t.Fatalf("readyz with Redis up: %d %s", rec.Code, rec.Body)
	}
	e.Close()
	for _, r := range []struct{ method, target string }{
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/api/v1/worklist"},
		{http.MethodGet, "/api/v1/worklist?format=ndjson"},
		{http.MethodGet, "/api/v1/worklist/" + uidHead},
		{http.MethodPost, "/api/v1/worklist/" + uidHead + "/claim"},
	} {
		rec := do(t, h, r.method, r.target, nil, userHeader, "alice")
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: %d %q, want 503 with Retry-After", r.method, r.target, rec.Code, rec.Body)
		}
	}
}

func TestWorklistList(t *testing.T) {
	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		ctx := context.Background()
		env.addStudies(t)

		// Due: chest STAT (critical) t0+10m; head t0+7h30m; brain t0+7h50m.
		checkOrder(t, "by due time", env.order(t, "/api/v1/worklist"), uidChest, uidHead, uidBrain)

		// Triage finds a bleed on the brain MR: due t0-10m+15m = t0+5m.
		_, err := env.wl.SetFindings(ctx, uidBrain, []worklist.Finding{
			{Code: "ich", Name: "intracranial haemorrhage", Probability: 0.93, Tier: worklist.TierCritical, VolumeML: 12},
			{Code: "none", Name: "no finding", Probability: 0.2, Tier: worklist.TierRoutine},
		}, "triage")
		if err != nil {
			t.Fatal(err)
		}
		rec := env.call(t, http.MethodGet, "/api/v1/worklist", "", "")
		want(t, "list", rec, http.StatusOK)
		page := decodePage(t, rec)
		if len(page.Items) != 3 || page.NextCursor != "" {
			t.Fatalf("list: %d items, next_cursor %q; want 3 and none", len(page.Items), page.NextCursor)
		}
		checkOrder(t, "after findings", env.order(t, "/api/v1/worklist"), uidBrain, uidChest, uidHead)
		top := page.Items[0]
		if top.StudyUID != uidBrain || top.Tier != worklist.TierCritical || !top.Due.Equal(t0.Add(5*time.Minute)) ||
			top.Finding == nil || top.Finding.Code != "ich" || top.Finding.VolumeML != 12 ||
			!strings.Contains(top.Reason, "intracranial haemorrhage") || !strings.Contains(top.Reason, "93%") {
			t.Errorf("top item %+v (finding %+v): want the brain MR, critical, due t0+5m, with the bleed as reason", top, top.Finding)
		}
		for _, it := range page.Items {
			if it.Reason == "" || it.Status != worklist.StatusOpen || it.Received.Location() != time.UTC {
				t.Errorf("item %s: reason %q, status %q, received %v", it.StudyUID, it.Reason, it.Status, it.Received)
			}
		}
		// Field names are snake_case.
		for _, key := range []string{`"items"`, `"next_cursor"`, `"study_uid"`, `"body_part"`, `"patient_id"`, `"order_priority"`, `"volume_ml"`} {
			if !strings.Contains(rec.Body.String(), key) {
				t.Errorf("list JSON lacks %s:\n%s", key, rec.Body)
			}
		}

		// Filters.
		checkOrder(t, "modality=ct", env.order(t, "/api/v1/worklist?modality=ct"), uidChest, uidHead)
		checkOrder(t, "body_part=HEAD", env.order(t, "/api/v1/worklist?body_part=HEAD"), uidBrain, uidHead)
		checkOrder(t, "tier=critical", env.order(t, "/api/v1/worklist?tier=critical"), uidBrain, uidChest)
		checkOrder(t, "modality+tier", env.order(t, "/api/v1/worklist?modality=CT&tier=routine"), uidHead)
		checkOrder(t, "status=claimed", env.order(t, "/api/v1/worklist?status=claimed"))
		checkOrder(t, "status=done", env.order(t, "/api/v1/worklist?status=done"))

		// Pages of one: the same order, nothing twice.
		var paged []string
		cursor := ""
		for i := 0; i < 10; i++ {
			target := "/api/v1/worklist?limit=1"
			if cursor != "" {
				target += "&cursor=" + url.QueryEscape(cursor)
			}
			rec := env.call(t, http.MethodGet, target, "", "")
			want(t, target, rec, http.StatusOK)
			p := decodePage(t, rec)
			if len(p.Items) > 1 {
				t.Fatalf("limit=1 gave %d items", len(p.Items))
			}
			for _, it := range p.Items {
				paged = append(paged, it.StudyUID)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		checkOrder(t, "paged", paged, uidBrain, uidChest, uidHead)

		// Bad queries.
		for _, c := range []struct{ query, mention string }{
			{"limit=0", "limit"},
			{"limit=501", "limit"},
			{"limit=ten", "limit"},
			{"limit=", "limit"},
			{"cursor=%21%21", "cursor"},
			{"cursor=" + url.QueryEscape(worklist.Cursor{Score: 1, Member: "a b"}.Encode()), "cursor"},
			{"tier=severe", "tier"},
			{"status=read", "status"},
			{"modality=C%24T", "modality"},
			{"body_part=" + strings.Repeat("A", 17), "body_part"},
			{"modalty=CT", "modalty"},
			{"tier=critical&tier=urgent", "tier"},
		} {
			want(t, "GET ?"+c.query, env.call(t, http.MethodGet, "/api/v1/worklist?"+c.query, "", ""), http.StatusBadRequest, c.mention)
		}
	})
}

// TestWorklistStream: the whole list as NDJSON, asked for by format=ndjson
// or by Accept; items as on a page, then the end line; an empty list is
// just the end line; paging and unknown formats are refused.
func TestWorklistStream(t *testing.T) {
	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		items, eventID := env.stream(t, "/api/v1/worklist?format=ndjson")
		if len(items) != 0 || eventID != "0" {
			t.Fatalf("empty worklist streamed %d items, event ID %q; want none and \"0\"", len(items), eventID)
		}
		env.addStudies(t)
		rec := env.call(t, http.MethodGet, "/api/v1/worklist", "", "")
		want(t, "page", rec, http.StatusOK)
		page := decodePage(t, rec)
		items, eventID = env.stream(t, "/api/v1/worklist?format=ndjson")
		if eventID != page.EventID || len(items) != len(page.Items) {
			t.Fatalf("streamed %d items from event %q; the page has %d from %q", len(items), eventID, len(page.Items), page.EventID)
		}
		for i := range items {
			a, _ := json.Marshal(items[i])
			b, _ := json.Marshal(page.Items[i])
			if string(a) != string(b) {
				t.Fatalf("item %d streamed as\n%s\non the page\n%s", i, a, b)
			}
		}
		// Content negotiation: Accept asks for it as well; format=json
		// and a browser's Accept keep pages.
		for _, c := range []struct {
			accept, query string
			stream        bool
		}{
			{ndjsonType, "", true},
			{ndjsonType + ", */*;q=0.1", "", true},
			{ndjsonType, "?format=json", false},
			{"application/json, " + ndjsonType, "", false},
			{"*/*", "", false},
		} {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/worklist"+c.query, nil)
			req.Header.Set("Accept", c.accept)
			rec := httptest.NewRecorder()
			env.h.ServeHTTP(rec, req)
			got := rec.Header().Get("Content-Type") == ndjsonType
			if rec.Code != http.StatusOK || got != c.stream {
				t.Errorf("Accept %q, query %q: status %d, type %q; want streamed %v", c.accept, c.query, rec.Code, rec.Header().Get("Content-Type"), c.stream)
			}
		}
		for _, c := range []struct{ query, mention string }{
			{"format=ndjson&limit=10", "limit"},
			{"format=ndjson&cursor=" + url.QueryEscape(page.NextCursor+"x"), "cursor"},
			{"format=xml", "format"},
			{"format=ndjson&format=json", "format"},
			{"format=ndjson&tier=severe", "tier"},
		} {
			want(t, "GET ?"+c.query, env.call(t, http.MethodGet, "/api/v1/worklist?"+c.query, "", ""), http.StatusBadRequest, c.mention)
		}
	})
}

// TestWorklistListEventID: every page carries the newest event ID read
// before its items ("0" on an empty stream), and a stream opened after
// listing with ?last_event_id=<event_id> delivers every change made since
// the page was read, so a page can list first and subscribe after.
func TestWorklistListEventID(t *testing.T) {
	fastSSE(t)

	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		ctx := context.Background()
		rec := env.call(t, http.MethodGet, "/api/v1/worklist", "", "")
		want(t, "empty list", rec, http.StatusOK, `"event_id":"0"`)

		env.addStudies(t)
		rec = env.call(t, http.MethodGet, "/api/v1/worklist?limit=2", "", "")
		want(t, "list", rec, http.StatusOK)
		page := decodePage(t, rec)
		last, err := env.wl.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if page.EventID != last || last == "0" {
			t.Fatalf("event_id %q, want the newest event %q", page.EventID, last)
		}
		// Changes after the first page: the second page and the stream
		// resumed from the first page's event_id both see them.
		if _, err := env.wl.Claim(ctx, uidHead, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.wl.SetFindings(ctx, uidBrain, []worklist.Finding{{Code: "ich", Name: "bleed", Probability: 0.9, Tier: worklist.TierCritical}}, "triage"); err != nil {
			t.Fatal(err)
		}
		rec = env.call(t, http.MethodGet, "/api/v1/worklist?limit=2&cursor="+url.QueryEscape(page.NextCursor), "", "")
		want(t, "second page", rec, http.StatusOK)
		if p2 := decodePage(t, rec); compareEventIDs(p2.EventID, page.EventID) <= 0 {
			t.Errorf("second page event_id %q, want one after %q (two changes since)", p2.EventID, page.EventID)
		}
		missed := allEvents(t, env.wl, page.EventID)
		if len(missed) != 2 || missed[0].Type != worklist.EventClaimed || missed[1].Type != worklist.EventReprioritised {
			t.Fatalf("events after the first page: %+v, want claimed and reprioritised", missed)
		}
		srv := httptest.NewServer(env.h)
		t.Cleanup(srv.Close)
		s := openSSE(t, srv, "/api/v1/worklist/events?last_event_id="+url.QueryEscape(page.EventID))
		checkEvents(t, "stream from the page's event_id", s, missed)
		s.close()
	})
}

func TestWorklistStudyRoutes(t *testing.T) {
	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		env.addStudies(t)
		base := "/api/v1/worklist/"

		// GET one.
		rec := env.call(t, http.MethodGet, base+uidHead, "", "")
		want(t, "GET head", rec, http.StatusOK)
		if it := decodeItem(t, rec); it.StudyUID != uidHead || it.Modality != "CT" || it.BodyPart != "HEAD" || it.Tier != worklist.TierRoutine ||
			!it.Due.Equal(t0.Add(-30*time.Minute+8*time.Hour)) || it.Status != worklist.StatusOpen {
			t.Errorf("GET head: %+v", it)
		}
		want(t, "GET unknown", env.call(t, http.MethodGet, base+uidNone, "", ""), http.StatusNotFound)
		for _, bad := range []string{"1..2", "abc", "1.2.", "01.2", strings.Repeat("1", 65), "1.2%2F3"} {
			want(t, "GET "+bad, env.call(t, http.MethodGet, base+bad, "", ""), http.StatusBadRequest, "Study Instance UID")
			want(t, "claim "+bad, env.call(t, http.MethodPost, base+bad+"/claim", "alice", ""), http.StatusBadRequest, "Study Instance UID")
		}

		// Every change needs a valid user header.
		for _, r := range []struct{ method, path string }{
			{http.MethodPost, "/claim"}, {http.MethodPost, "/release"}, {http.MethodPost, "/complete"},
			{http.MethodPut, "/priority"}, {http.MethodDelete, "/priority"},
		} {
			for _, user := range []string{"", "   ", strings.Repeat("u", 65), "al\x01ice", "bad\xffutf8"} {
				body := ""
				if r.method == http.MethodPut {
					body = `{"tier":"critical","reason":"x"}`
				}
				want(t, fmt.Sprintf("%s %s as %q", r.method, r.path, user), env.call(t, r.method, base+uidHead+r.path, user, body), http.StatusBadRequest, userHeader)
			}
		}
		if rec := env.call(t, http.MethodPost, base+uidHead+"/claim", strings.Repeat("é", 64), ""); rec.Code != http.StatusOK {
			t.Errorf("claim as 64 non-ASCII characters: status %d, want 200\n%s", rec.Code, rec.Body)
		}
		env.call(t, http.MethodPost, base+uidHead+"/release", strings.Repeat("é", 64), "")

		// Claim.
		rec = env.call(t, http.MethodPost, base+uidHead+"/claim", " alice ", "")
		want(t, "alice claims", rec, http.StatusOK)
		claimed := decodeItem(t, rec)
		if claimed.Status != worklist.StatusClaimed || claimed.ClaimedBy != "alice" || !claimed.LeaseUntil.Equal(t0.Add(10*time.Minute)) || claimed.UpdatedBy != "alice" {
			t.Errorf("claimed item: status %q by %q until %v updated by %q", claimed.Status, claimed.ClaimedBy, claimed.LeaseUntil, claimed.UpdatedBy)
		}
		want(t, "alice renews", env.call(t, http.MethodPost, base+uidHead+"/claim", "alice", ""), http.StatusOK)
		want(t, "bob claims alice's study", env.call(t, http.MethodPost, base+uidHead+"/claim", "bob", ""), http.StatusConflict,
			"alice", t0.Add(10*time.Minute).Format(time.RFC3339))
		want(t, "claim unknown", env.call(t, http.MethodPost, base+uidNone+"/claim", "bob", ""), http.StatusNotFound)
		checkOrder(t, "status=claimed", env.order(t, "/api/v1/worklist?status=claimed"), uidHead)
		checkOrder(t, "status=open", env.order(t, "/api/v1/worklist?status=open"), uidChest, uidBrain)

		// Release.
		want(t, "bob releases alice's claim", env.call(t, http.MethodPost, base+uidHead+"/release", "bob", ""), http.StatusConflict, "alice")
		rec = env.call(t, http.MethodPost, base+uidHead+"/release", "alice", "")
		want(t, "alice releases", rec, http.StatusOK)
		if it := decodeItem(t, rec); it.Status != worklist.StatusOpen || it.ClaimedBy != "" || !it.LeaseUntil.IsZero() {
			t.Errorf("released item: status %q by %q until %v", it.Status, it.ClaimedBy, it.LeaseUntil)
		}
		want(t, "release unclaimed", env.call(t, http.MethodPost, base+uidHead+"/release", "alice", ""), http.StatusConflict)
		want(t, "release unknown", env.call(t, http.MethodPost, base+uidNone+"/release", "alice", ""), http.StatusNotFound)

		// Priority override.
		for _, c := range []struct{ name, body, mention string }{
			{"bad JSON", `{"tier":`, "JSON"},
			{"not an object", `["critical"]`, "JSON object"},
			{"two values", `{"tier":"critical","reason":"a"} {}`, "more than one"},
			{"unknown field", `{"tier":"critical","reason":"a","urgency":1}`, "urgency"},
			{"bad tier", `{"tier":"severe","reason":"a"}`, "severe"},
			{"bad due", `{"due":"tomorrow","reason":"a"}`, "RFC 3339"},
			{"no reason", `{"tier":"critical"}`, "reason"},
			{"blank reason", `{"tier":"critical","reason":"  "}`, "reason"},
			{"neither tier nor due", `{"reason":"a"}`, "neither tier nor due"},
		} {
			want(t, "PUT priority: "+c.name, env.call(t, http.MethodPut, base+uidHead+"/priority", "alice", c.body), http.StatusBadRequest, c.mention)
		}
		want(t, "PUT priority: empty body", env.call(t, http.MethodPut, base+uidHead+"/priority", "alice", ""), http.StatusBadRequest, "empty")
		req := httptest.NewRequest(http.MethodPut, base+uidHead+"/priority", strings.NewReader(`{"tier":"critical","reason":"a"}`))
		req.Header.Set(userHeader, "alice")
		req.Header.Set("Content-Type", "text/plain")
		rec = httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		want(t, "PUT priority as text/plain", rec, http.StatusUnsupportedMediaType, "application/json")
		req = httptest.NewRequest(http.MethodPut, base+uidHead+"/priority", strings.NewReader(`{"tier":"critical","reason":"`+strings.Repeat("a", maxPriorityBody)+`"}`))
		req.Header.Set(userHeader, "alice")
		rec = httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		want(t, "PUT priority, huge body", rec, http.StatusRequestEntityTooLarge)
		want(t, "PUT priority unknown", env.call(t, http.MethodPut, base+uidNone+"/priority", "alice", `{"tier":"critical","reason":"a"}`), http.StatusNotFound)

		rec = env.call(t, http.MethodPut, base+uidHead+"/priority", "dr.x", `{"tier":"critical","reason":"clinician called"}`)
		want(t, "PUT priority tier", rec, http.StatusOK)
		if it := decodeItem(t, rec); it.Tier != worklist.TierCritical || it.Override == nil || it.Override.By != "dr.x" ||
			it.Override.Reason != "clinician called" || !strings.Contains(it.Reason, "clinician called") || !it.Due.Equal(t0.Add(-15*time.Minute)) {
			t.Errorf("overridden item: tier %q due %v override %+v reason %q", it.Tier, it.Due, it.Override, it.Reason)
		}
		checkOrder(t, "after override", env.order(t, "/api/v1/worklist"), uidHead, uidChest, uidBrain)
		due := t0.Add(9 * time.Hour)
		rec = env.call(t, http.MethodPut, base+uidChest+"/priority", "dr.x", `{"due":"`+due.Format(time.RFC3339)+`","reason":"patient not yet back from ward"}`)
		want(t, "PUT priority due", rec, http.StatusOK)
		if it := decodeItem(t, rec); !it.Due.Equal(due) || it.Override == nil || !it.Override.Due.Equal(due) {
			t.Errorf("chest due %v override %+v, want due %v", it.Due, it.Override, due)
		}
		checkOrder(t, "after due override", env.order(t, "/api/v1/worklist"), uidHead, uidBrain, uidChest)

		rec = env.call(t, http.MethodDelete, base+uidChest+"/priority", "dr.x", "")
		want(t, "DELETE priority", rec, http.StatusOK)
		if it := decodeItem(t, rec); it.Override != nil || !it.Due.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("cleared item: due %v override %+v", it.Due, it.Override)
		}
		want(t, "DELETE priority again", env.call(t, http.MethodDelete, base+uidChest+"/priority", "dr.x", ""), http.StatusOK)
		want(t, "DELETE priority unknown", env.call(t, http.MethodDelete, base+uidNone+"/priority", "dr.x", ""), http.StatusNotFound)
		checkOrder(t, "after clearing", env.order(t, "/api/v1/worklist"), uidHead, uidChest, uidBrain)

		// Complete.
		want(t, "alice claims chest", env.call(t, http.MethodPost, base+uidChest+"/claim", "alice", ""), http.StatusOK)
		want(t, "bob completes alice's study", env.call(t, http.MethodPost, base+uidChest+"/complete", "bob", ""), http.StatusConflict, "alice")
		rec = env.call(t, http.MethodPost, base+uidChest+"/complete", "alice", "")
		want(t, "alice completes", rec, http.StatusOK)
		if it := decodeItem(t, rec); it.Status != worklist.StatusDone || it.CompletedAt.IsZero() || it.UpdatedBy != "alice" {
			t.Errorf("completed item: status %q completed %v by %q", it.Status, it.CompletedAt, it.UpdatedBy)
		}
		want(t, "complete again", env.call(t, http.MethodPost, base+uidChest+"/complete", "alice", ""), http.StatusConflict)
		want(t, "claim completed", env.call(t, http.MethodPost, base+uidChest+"/claim", "bob", ""), http.StatusConflict)
		want(t, "complete unknown", env.call(t, http.MethodPost, base+uidNone+"/complete", "alice", ""), http.StatusNotFound)
		want(t, "GET completed", env.call(t, http.MethodGet, base+uidChest, "", ""), http.StatusOK)
		checkOrder(t, "queue after complete", env.order(t, "/api/v1/worklist"), uidHead, uidBrain)
		checkOrder(t, "status=done", env.order(t, "/api/v1/worklist?status=done"), uidChest)
		// A study completed without a claim.
		want(t, "complete unclaimed", env.call(t, http.MethodPost, base+uidBrain+"/complete", "bob", ""), http.StatusOK)
		checkOrder(t, "queue at the end", env.order(t, "/api/v1/worklist"), uidHead)
	})
}

func TestCheckUser(t *testing.T) {
	for _, c := range []struct {
		name string
		user string
		ok   bool
	}{
		{"plain", "alice", true},
		{"dotted with space", "Dr. A. Smith", true},
		{"64 characters", strings.Repeat("x", 64), true},
		{"64 non-ASCII", strings.Repeat("ü", 64), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("x", 65), false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"invalid UTF-8", "a\xc3", false},
		{"bidi override", "a\u202eb", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := checkUser(c.user); (err == nil) != c.ok {
				t.Errorf("checkUser(%q) = %v, want ok %v", c.user, err, c.ok)
			}
		})
	}
}

func TestCompareEventIDs(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"1", "1-0", 0},
		{"1-1", "1-0", 1},
		{"1-9", "2-0", -1},
		{"10-0", "9-99", 1},
		{"1763857505123-0", "1763857505123-10", -1},
	} {
		if got := compareEventIDs(c.a, c.b); got != c.want {
			t.Errorf("compareEventIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// sseEvent is one event, or comment, read from a stream.
type sseEvent struct {
	id, typ, data string
	comment       string
}

// sseStream reads a text/event-stream response on a goroutine.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

// openSSE opens target on srv with the given headers and checks the
// response headers.
func openSSE(t *testing.T, srv *httptest.Server, target string, header ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d\n%s", target, resp.StatusCode, b)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET %s: %s %q, want %q", target, k, got, v)
		}
	}
	s := &sseStream{resp: resp, cancel: cancel, events: make(chan sseEvent, 1000)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					ev.id = v
				case "event":
					ev.typ = v
				case "data":
					ev.data += v
				case "retry":
					ev.comment = "retry " + v
				}
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// close drops the connection.
func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event (not comment) within the timeout.
func (s *sseStream) next(t *testing.T, timeout time.Duration) (sseEvent, bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return sseEvent{}, false
			}
			if ev.comment != "" && ev.id == "" && ev.typ == "" {
				continue
			}
			return ev, true
		case <-deadline:
			return sseEvent{}, false
		}
	}
}

// nextComment waits for a comment starting with prefix.
func (s *sseStream) nextComment(t *testing.T, prefix string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return false
			}
			if strings.HasPrefix(ev.comment, prefix) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// checkEvents reads len(want) events and checks that they are exactly
// the stream entries want, in order, with consistent JSON data; then that
// nothing else arrives for a while.
func checkEvents(t *testing.T, what string, s *sseStream, want []worklist.Event) {
	t.Helper()
	checkEventsQuiet(t, what, s, want, 3*sseBlock)
}

// checkEventsQuiet is checkEvents waiting quiet for extra events.
func checkEventsQuiet(t *testing.T, what string, s *sseStream, want []worklist.Event, quiet time.Duration) {
	t.Helper()
	for i, w := range want {
		ev, ok := s.next(t, 5*time.Second)
		if !ok {
			t.Fatalf("%s: event %d of %d (%s %s) did not arrive", what, i+1, len(want), w.ID, w.Type)
		}
		if ev.id != w.ID || ev.typ != w.Type {
			t.Fatalf("%s: event %d is %s %s, want %s %s", what, i+1, ev.id, ev.typ, w.ID, w.Type)
		}
		var data worklistEvent
		if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
			t.Fatalf("%s: event %s data: %v\n%s", what, ev.id, err, ev.data)
		}
		if data.ID != w.ID || data.Type != w.Type || data.StudyUID != w.StudyUID || data.By != w.By {
			t.Errorf("%s: event %s data %+v, want id %s type %s study %s by %s", what, ev.id, data, w.ID, w.Type, w.StudyUID, w.By)
		}
		if w.Item != nil && (data.Item == nil || data.Item.StudyUID != w.StudyUID || data.Item.Status != w.Item.Status) {
			t.Errorf("%s: event %s item %+v, want study %s status %s", what, ev.id, data.Item, w.StudyUID, w.Item.Status)
		}
	}
	if ev, ok := s.next(t, quiet); ok {
		t.Errorf("%s: unexpected extra event %s %s", what, ev.id, ev.typ)
	}
}

// allEvents returns every event of the stream after id, oldest first.
func allEvents(t *testing.T, wl *worklist.Worklist, after string) []worklist.Event {
	t.Helper()
	evs, err := wl.Events(context.Background(), after, 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// fastSSE shortens the stream's block and heartbeat intervals for a test.
func fastSSE(t *testing.T) {
	oldBlock, oldBeat := sseBlock, sseHeartbeat
	sseBlock, sseHeartbeat = 200*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { sseBlock, sseHeartbeat = oldBlock, oldBeat })
}

func TestWorklistEvents(t *testing.T) {
	fastSSE(t)

	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		ctx := context.Background()
		srv := httptest.NewServer(env.h)
		t.Cleanup(srv.Close)
		env.addStudies(t) // three "added" events before anyone listens
		before := allEvents(t, env.wl, "0")
		if len(before) != 3 {
			t.Fatalf("%d events after adding 3 studies, want 3", len(before))
		}
		base := srv.URL + "/api/v1/worklist/"
		change := func(method, path, user, body string) {
			t.Helper()
			req, err := http.NewRequest(method, base+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(userHeader, user)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: status %d\n%s", method, path, resp.StatusCode, b)
			}
		}

		// Without Last-Event-ID: only new events. The "retry" line comes
		// after the stream has taken its starting point.
		s1 := openSSE(t, srv, "/api/v1/worklist/events")
		if !s1.nextComment(t, "retry", 5*time.Second) {
			t.Fatal("no retry line at the start of the stream")
		}
		if !s1.nextComment(t, "heartbeat", 5*time.Second) {
			t.Error("no heartbeat comment on an idle stream")
		}
		change(http.MethodPost, uidHead+"/claim", "alice", "")
		if _, err := env.wl.SetFindings(ctx, uidBrain, []worklist.Finding{{Code: "ich", Name: "bleed", Probability: 0.9, Tier: worklist.TierCritical}}, "triage"); err != nil {
			t.Fatal(err)
		}
		change(http.MethodPut, uidChest+"/priority", "dr.x", `{"tier":"urgent","reason":"downgraded"}`)
		first := allEvents(t, env.wl, before[len(before)-1].ID)
		if len(first) != 3 {
			t.Fatalf("%d events for 3 changes, want 3", len(first))
		}
		// Read two of the three, then drop the connection.
		for i, w := range first[:2] {
			ev, ok := s1.next(t, 5*time.Second)
			if !ok || ev.id != w.ID || ev.typ != w.Type {
				t.Fatalf("live event %d: got %+v (ok %v), want %s %s", i+1, ev, ok, w.ID, w.Type)
			}
		}
		lastSeen := first[1].ID
		s1.close()

		// Changes while disconnected.
		change(http.MethodPost, uidHead+"/release", "alice", "")
		change(http.MethodDelete, uidChest+"/priority", "dr.x", "")
		change(http.MethodPost, uidBrain+"/complete", "bob", "")
		missed := allEvents(t, env.wl, lastSeen)
		if len(missed) != 4 {
			t.Fatalf("%d events after %s, want 4 (one unread + three while away)", len(missed), lastSeen)
		}
		for i, typ := range []string{worklist.EventOverridden, worklist.EventReleased, worklist.EventOverrideCleared, worklist.EventCompleted} {
			if missed[i].Type != typ {
				t.Fatalf("missed event %d is %s, want %s", i+1, missed[i].Type, typ)
			}
		}

		// Reconnect with Last-Event-ID: exactly the missed events, in order.
		s2 := openSSE(t, srv, "/api/v1/worklist/events", "Last-Event-ID", lastSeen)
		checkEvents(t, "resume with Last-Event-ID", s2, missed)
		// Then live ones.
		change(http.MethodPost, uidHead+"/claim", "carol", "")
		live := allEvents(t, env.wl, missed[len(missed)-1].ID)
		checkEvents(t, "live after resume", s2, live)
		s2.close()

		// The query parameter, for a first connection; the header wins.
		s3 := openSSE(t, srv, "/api/v1/worklist/events?last_event_id="+url.QueryEscape(first[0].ID))
		checkEvents(t, "resume with ?last_event_id", s3, allEvents(t, env.wl, first[0].ID))
		s3.close()
		s4 := openSSE(t, srv, "/api/v1/worklist/events?last_event_id=0", "Last-Event-ID", missed[2].ID)
		checkEvents(t, "header over query", s4, allEvents(t, env.wl, missed[2].ID))
		s4.close()
		// 0 replays everything kept.
		s5 := openSSE(t, srv, "/api/v1/worklist/events?last_event_id=0")
		checkEvents(t, "replay from 0", s5, allEvents(t, env.wl, "0"))
		s5.close()

		// An ID older than the oldest kept: told to reload first.
		s6 := openSSE(t, srv, "/api/v1/worklist/events", "Last-Event-ID", "1-0")
		ev, ok := s6.next(t, 5*time.Second)
		if !ok || ev.typ != "reset" || ev.id != "" || !strings.Contains(ev.data, "reload") {
			t.Errorf("resume from a trimmed ID: first event %+v (ok %v), want a reset without id", ev, ok)
		}
		checkEvents(t, "after reset", s6, allEvents(t, env.wl, "0"))
		s6.close()

		// Bad IDs.
		for _, bad := range []string{"abc", "1-", "-1", "1-2-3", "99999999999999999999999"} {
			resp, err := srv.Client().Do(func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/worklist/events", nil)
				req.Header.Set("Last-Event-ID", bad)
				return req
			}())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Last-Event-ID") {
				t.Errorf("Last-Event-ID %q: status %d, want 400 naming the header\n%s", bad, resp.StatusCode, b)
			}
		}
	})
}

// TestWorklistEventsFanOut opens many streams: they share one reader (one
// Redis connection), every stream gets every event, and the worklist
// still answers changes at once.
func TestWorklistEventsFanOut(t *testing.T) {
	fastSSE(t)
	const pool, streams = 4, 12
	forEachWorklistBackendWith(t, func(o *redis.Options) { o.PoolSize = pool; o.PoolTimeout = time.Second }, func(t *testing.T, env *wlEnv) {
		srv := httptest.NewServer(env.h)
		t.Cleanup(srv.Close)
		env.addStudies(t)
		start := allEvents(t, env.wl, "0")
		var ss []*sseStream
		for i := 0; i < streams; i++ {
			s := openSSE(t, srv, "/api/v1/worklist/events")
			if !s.nextComment(t, "retry", 5*time.Second) {
				t.Fatalf("stream %d: no retry line", i)
			}
			ss = append(ss, s)
		}
		time.Sleep(2 * sseBlock) // every stream past its catch-up, waiting on the hub
		if st := env.c.PoolStats(); st.TotalConns-st.IdleConns > 1 || st.Timeouts > 0 {
			t.Errorf("%d streams hold %d Redis connections (pool stats %+v), want 1", streams, st.TotalConns-st.IdleConns, *st)
		}
		for _, uid := range []string{uidHead, uidBrain, uidChest} {
			t0 := time.Now()
			rec := env.call(t, http.MethodPost, "/api/v1/worklist/"+uid+"/claim", "alice", "")
			want(t, "claim "+uid+" while streams are open", rec, http.StatusOK)
			if d := time.Since(t0); d > 500*time.Millisecond {
				t.Errorf("claim %s took %v with %d streams open on a pool of %d", uid, d, streams, pool)
			}
		}
		evs := allEvents(t, env.wl, start[len(start)-1].ID)
		if len(evs) != 3 {
			t.Fatalf("%d events for 3 claims", len(evs))
		}
		time.Sleep(3 * sseBlock)
		for i, s := range ss {
			checkEventsQuiet(t, fmt.Sprintf("stream %d", i), s, evs, time.Millisecond)
		}
		// Everyone gone: the reader stops within a block interval.
		for _, s := range ss {
			s.close()
		}
		time.Sleep(3 * sseBlock)
		if st := env.c.PoolStats(); st.TotalConns != st.IdleConns {
			t.Errorf("no stream open, yet %d Redis connections in use (pool stats %+v)", st.TotalConns-st.IdleConns, *st)
		}
	})
}

// TestWorklistEventsShutdown checks that open streams end when the server
// shuts down, instead of holding the shutdown for its grace period.
func TestWorklistEventsShutdown(t *testing.T) {
	fastSSE(t)
	forEachWorklistBackend(t, func(t *testing.T, env *wlEnv) {
		srv := httptest.NewServer(env.h)
		t.Cleanup(srv.Close)
		var ss []*sseStream
		for i := 0; i < 3; i++ {
			s := openSSE(t, srv, "/api/v1/worklist/events")
			if !s.nextComment(t, "retry", 5*time.Second) {
				t.Fatal("no retry line")
			}
			ss = append(ss, s)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := srv.Config.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with 3 open streams: %v after %v", err, time.Since(start))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Shutdown with 3 open streams took %v", d)
		}
		for i, s := range ss {
			if !s.nextComment(t, "server shutting down", 5*time.Second) {
				t.Errorf("stream %d: no shutdown comment", i)
			}
			if _, ok := <-s.events; ok {
				t.Errorf("stream %d: still open after shutdown", i)
			}
		}
	})
}
