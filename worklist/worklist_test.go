package worklist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/internal/testenv"
)

// The conformance suite: every test below runs through forEachBackend,
// against the real redis-server named by RADTRIAGE_TEST_REDIS_URL (skipped
// when unset, failed under CI=true) and against the embedded store.

// fakeClock is the Config.Now of the tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is one Redis the suite runs on.
type backend struct {
	name   string
	url    string // of client, for more clients
	client *redis.Client
	prefix string // unique per test
	clock  *fakeClock
	// private returns a client on a database no one else uses, which the
	// test may flush with flush.
	private func(t *testing.T) (c *redis.Client, flush func() error)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// forEachBackend runs fn as subtests "redis" and "embedded".
func forEachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Helper()
	t.Run("redis", func(t *testing.T) {
		url := testenv.RedisURL(t)
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("RADTRIAGE_TEST_REDIS_URL: %v", err)
		}
		c := redis.NewClient(opt)
		ctx := context.Background()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("redis at %s: %v", url, err)
		}
		prefix := "test:worklist:" + randomHex(6) + ":"
		t.Cleanup(func() {
			deleteKeys(t, c, prefix)
			c.Close()
		})
		fn(t, &backend{name: "redis", url: url, client: c, prefix: prefix, clock: newClock(), private: func(t *testing.T) (*redis.Client, func() error) {
			return privateDB(t, url)
		}})
	})
	t.Run("embedded", func(t *testing.T) {
		e, err := StartEmbedded(quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		opt, err := redis.ParseURL(e.URL())
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		fn(t, &backend{name: "embedded", url: e.URL(), client: c, prefix: "test:worklist:" + randomHex(6) + ":", clock: newClock(),
			private: func(t *testing.T) (*redis.Client, func() error) {
				return c, func() error { return c.FlushAll(context.Background()).Err() }
			}})
	})
}

// privateDB picks an empty database index 1..15 on the real server (never
// the shared DB 0) and returns a client on it and a FLUSHDB of it.
func privateDB(t *testing.T, url string) (*redis.Client, func() error) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := int(randomHex(1)[0]) // any start; we walk all of 1..15
	for i := range 15 {
		o := *opt
		o.DB = 1 + (start+i)%15
		c := redis.NewClient(&o)
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			c.Close()
			t.Fatalf("DBSIZE on db %d: %v", o.DB, err)
		}
		if n == 0 {
			t.Cleanup(func() {
				c.FlushDB(ctx)
				c.Close()
			})
			t.Logf("private database %d", o.DB)
			return c, func() error { return c.FlushDB(ctx).Err() }
		}
		c.Close()
	}
	t.Skip("no empty database among 1..15 on the test redis-server")
	return nil, nil
}

func deleteKeys(t testing.TB, c *redis.Client, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleanup scan: %v", err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		keys = keys[n:]
	}
}

// newWorklist returns a Worklist on b's client, prefix and clock; cfg's
// other fields are kept.
func (b *backend) newWorklist(t *testing.T, cfg Config) *Worklist {
	t.Helper()
	return b.newWorklistOn(t, b.client, cfg)
}

func (b *backend) newWorklistOn(t *testing.T, c redis.UniversalClient, cfg Config) *Worklist {
	t.Helper()
	cfg.Prefix = b.prefix
	cfg.Now = b.clock.Now
	w, err := New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// listAll pages through List with the given page size and returns every item.
func listAll(t *testing.T, w *Worklist, f Filter) []Item {
	t.Helper()
	var all []Item
	for range 100000 {
		items, next, err := w.List(context.Background(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		f.Cursor = next
	}
	t.Fatal("List did not finish paging")
	return nil
}

func uids(items []Item) []string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.StudyUID
	}
	return s
}

// mustItem returns a function that fails t on an error and returns the item:
// mustItem(t)(w.Claim(ctx, uid, user)).
func mustItem(t *testing.T) func(*Item, error) *Item {
	t.Helper()
	return func(it *Item, err error) *Item {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
}

func study(uid string, recv time.Time, prio string) Study {
	return Study{StudyUID: uid, PatientID: "P-" + uid, Modality: "CT", BodyPart: "HEAD", OrderPriority: prio, Received: recv}
}

func fmtItems(items []Item) string {
	s := ""
	for _, it := range items {
		s += fmt.Sprintf("\n  %s %s %s %s", it.StudyUID, it.Tier, it.Due.Format(time.RFC3339), it.Status)
	}
	return s
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}
