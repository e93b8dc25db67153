package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/worklist"
)

func embeddedURL(t *testing.T) string {
	t.Helper()
	e, err := worklist.StartEmbedded(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e.URL()
}

func newClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func testPrefix(t *testing.T) string {
	return fmt.Sprintf("worklistbench-test:%s:%x:", t.Name(), rand.Uint64())
}

// keysUnder lists the keys that start with prefix.
func keysUnder(t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, escapeGlob(prefix)+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestParseBenchCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    benchResult
		wantErr string
	}{{
		name: "redis-benchmark 7.0",
		in: `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"ZADD k __rand_int__ m:__rand_int__","12578.62","0.077","0.024","0.071","0.103","0.407","0.775"
`,
		want: benchResult{command: "ZADD k __rand_int__ m:__rand_int__", rps: 12578.62, p50: 0.071, p99: 0.407},
	}, {
		name: "columns found by name",
		in:   "\"p99_latency_ms\",\"extra\",\"p50_latency_ms\",\"rps\",\"test\"\n\"2.5\",\"x\",\"1.5\",\"100\",\"ZRANGE\"\n",
		want: benchResult{command: "ZRANGE", rps: 100, p50: 1.5, p99: 2.5},
	}, {
		name:    "older version without percentiles",
		in:      "\"test\",\"rps\"\n\"ZADD\",\"34482.76\"\n",
		wantErr: "no p50_latency_ms column",
	}, {
		name:    "no result",
		in:      "\"test\",\"rps\",\"p50_latency_ms\",\"p99_latency_ms\"\n",
		wantErr: "no result",
	}, {
		name:    "not a number",
		in:      "\"test\",\"rps\",\"p50_latency_ms\",\"p99_latency_ms\"\n\"ZADD\",\"fast\",\"1\",\"2\"\n",
		wantErr: `rps "fast"`,
	}, {
		name:    "not CSV",
		in:      "ZADD: 34482.76 requests per second\n\"",
		wantErr: "CSV",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchCSV([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestCommandStats(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\ncmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\ncmdstat_zadd:calls=5,usec=10,usec_per_call=2.00\r\n")
	after := parseCommandStats("# Commandstats\r\ncmdstat_evalsha:calls=20,usec=800,usec_per_call=40.00,rejected_calls=0,failed_calls=0\r\ncmdstat_eval:calls=5,usec=500\r\ncmdstat_zadd:calls=5,usec=10\r\n")
	if got := after["evalsha"]; got != (cmdStat{calls: 20, usec: 800}) {
		t.Fatalf("evalsha: got %+v", got)
	}
	// (800-300 + 500) µs over (10 + 5) calls.
	if got := serverMicros(before, after, "evalsha", "eval"); got != 1000.0/15 {
		t.Errorf("scripts: got %v µs/call, want %v", got, 1000.0/15)
	}
	if got := serverMicrosPerOp(before, after, map[string]int{"evalsha": 10, "eval": 5, "zadd": 5}, 4); got != 1000.0/4 {
		t.Errorf("per op: got %v µs, want %v", got, 1000.0/4)
	}
	if got := serverMicrosPerOp(before, after, nil, 4); got != -1 {
		t.Errorf("per op, nothing sent: got %v µs, want -1", got)
	}
	if got := serverMicros(before, after, "zadd"); got != -1 {
		t.Errorf("zadd, no calls between: got %v, want -1", got)
	}
	if got := serverMicros(nil, after, "evalsha"); got != -1 {
		t.Errorf("no first snapshot: got %v, want -1", got)
	}
}

// TestRoundTrips checks the hook's counts on a real server and on the
// embedded store.
func TestRoundTrips(t *testing.T) {
	for _, backend := range []struct {
		name string
		url  func(*testing.T) string
	}{{"redis", func(t *testing.T) string { return testenv.RedisURL(t) }}, {"embedded", embeddedURL}} {
		t.Run(backend.name, func(t *testing.T) {
			c := newClient(t, backend.url(t))
			c.AddHook(countHook{})
			prefix := testPrefix(t)
			t.Cleanup(func() { deleteByPrefix(context.Background(), c, prefix) })
			var rt roundTrips
			ctx := withRoundTrips(context.Background(), &rt)
			count := func(name string, wantRT, wantCmds int, f func() error) {
				t.Helper()
				rt = roundTrips{}
				if err := f(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if rt.n != wantRT || rt.commands != wantCmds || rt.handshakes != 0 {
					t.Errorf("%s: %+v; want %d round trips, %d commands, no handshake", name, rt, wantRT, wantCmds)
				}
			}
			// The first command opens a connection: its handshake is
			// counted apart.
			rt = roundTrips{}
			if err := c.Set(ctx, prefix+"a", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if rt.n != 1 || rt.commands != 1 || rt.handshakes == 0 {
				t.Errorf("first command: %+v; want 1 round trip, 1 command and a handshake", rt)
			}
			count("one command", 1, 1, func() error { return c.Get(ctx, prefix+"a").Err() })
			count("pipeline of 3", 1, 3, func() error {
				_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, prefix+"a")
					p.Incr(ctx, prefix+"a")
					p.Get(ctx, prefix+"a")
					return nil
				})
				return err
			})
			// A script the server has never seen: EVALSHA fails, EVAL runs it.
			script := redis.NewScript(fmt.Sprintf("return %d", rand.Int64()))
			count("first script run", 2, 2, func() error { return script.Run(ctx, c, nil).Err() })
			count("second script run", 1, 1, func() error { return script.Run(ctx, c, nil).Err() })
			count("another context", 0, 0, func() error { return c.Get(context.Background(), prefix+"a").Err() })

			names := map[string]int{}
			rt = roundTrips{names: names}
			c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, prefix+"a")
				p.Get(ctx, prefix+"a")
				return nil
			})
			rt = roundTrips{names: names}
			c.Incr(ctx, prefix+"a")
			if want := map[string]int{"incr": 2, "get": 1}; !maps.Equal(names, want) {
				t.Errorf("commands by name: got %v, want %v", names, want)
			}
		})
	}
}

func TestDeleteByPrefix(t *testing.T) {
	c := newClient(t, testenv.RedisURL(t))
	ctx := context.Background()
	base := testPrefix(t)
	prefix := base + "a*[b]?\\:"       // glob characters must match literally
	sibling := base + "aX[b]?\\:other" // matches prefix's glob unescaped
	t.Cleanup(func() { c.Del(ctx, sibling) })
	for i := range 2500 {
		c.Set(ctx, fmt.Sprintf("%s%d", prefix, i), "x", 0)
	}
	c.Set(ctx, sibling, "keep", 0)
	n, err := deleteByPrefix(ctx, c, prefix)
	if err != nil || n != 2500 {
		t.Fatalf("deleted %d, %v; want 2500", n, err)
	}
	if left := keysUnder(t, c, prefix); len(left) != 0 {
		t.Errorf("left under the prefix: %q", left)
	}
	if v, err := c.Get(ctx, sibling).Result(); err != nil || v != "keep" {
		t.Errorf("sibling key: %q, %v; want it kept", v, err)
	}
}

// runSmall runs the benchmark small and returns its report.
func runSmall(t *testing.T, url string, extra ...string) (string, string) {
	t.Helper()
	prefix := testPrefix(t)
	out := t.TempDir() + "/bench.md"
	args := append([]string{"-redis-url", url, "-prefix", prefix, "-studies", "600", "-workers", "3",
		"-preload-conns", "8", "-duration", "400ms", "-single", "100ms", "-rounds", "2", "-rb-requests", "2000", "-out", out}, extra...)
	var stdout bytes.Buffer
	if err := run(context.Background(), args, &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != stdout.String() {
		t.Errorf("-out differs from stdout:\n%s\n---\n%s", file, stdout.String())
	}
	if left := keysUnder(t, newClient(t, url), prefix); len(left) != 0 {
		t.Errorf("%d keys left under %q, e.g. %q", len(left), prefix, left[0])
	}
	return stdout.String(), prefix
}

// checkRows checks that the report has a row for each name with a rate
// and at least one round trip, and no failures.
func checkRows(t *testing.T, report string, names ...string) {
	t.Helper()
	if strings.Contains(report, "FAILED") {
		t.Errorf("failures in report:\n%s", report)
	}
	for _, name := range names {
		found := false
		for _, line := range strings.Split(report, "\n") {
			if !strings.HasPrefix(line, "| "+name+" |") {
				continue
			}
			found = true
			cells := strings.Split(line, " | ")
			if len(cells) < 6 || cells[2] == "0" {
				t.Errorf("row %q: want a rate", line)
				continue
			}
			if rt, err := strconv.ParseFloat(strings.Fields(cells[5])[0], 64); err != nil || rt < 1 {
				t.Errorf("row %q: want at least 1 round trip", line)
			}
		}
		if !found {
			t.Errorf("no row %q in report:\n%s", name, report)
		}
	}
}

// TestRunEmbedded runs the whole benchmark, small, on the embedded store
// (without redis-benchmark, which needs a real server).
func TestRunEmbedded(t *testing.T) {
	report, _ := runSmall(t, embeddedURL(t), "-redis-benchmark", "")
	checkRows(t, report, opNames[:]...)
	checkRows(t, report, "worklist: all operations of the mix")
	for _, want := range []string{"Preload: 600 open studies", "not measured (no redis-benchmark run)", "At most 3 Redis round trips per worklist operation: at most "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestRunRedis runs the whole benchmark, small, on the real server beside
// redis-benchmark.
func TestRunRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs redis-benchmark processes")
	}
	url := testenv.RedisURL(t)
	rb := testenv.Tool(t, "redis-benchmark", "redis-tools")
	report, prefix := runSmall(t, url, "-redis-benchmark", rb)
	checkRows(t, report, opNames[:]...)
	checkRows(t, report, "redis-benchmark ZADD (-r 100000)", "redis-benchmark ZRANGE 0 49 (100,000 members)")
	for _, want := range []string{
		"| redis-benchmark ZADD (-r 100000) | 1 |", "| redis-benchmark ZADD (-r 100000) | 8 |",
		"| redis-benchmark ZRANGE 0 49 (100,000 members) | 8 |",
		"redis-benchmark -c 8 ZRANGE " + prefix + "rb:zrange 0 49",
		"Upsert rate at one client ≥ 40% of redis-benchmark's single-client ZADD (",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no redis", []string{"-redis-url", ""}, "no Redis"},
		{"fewer studies than workers", []string{"-redis-url", "redis://x", "-studies", "3", "-workers", "4"}, "one study per worker"},
		{"zero rounds", []string{"-redis-url", "redis://x", "-rounds", "0"}, "at least 1"},
		{"stray argument", []string{"-redis-url", "redis://x", "extra"}, "unexpected arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RADTRIAGE_TEST_REDIS_URL", "")
			_, err := parseFlags(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMedianRound(t *testing.T) {
	rs := []summary{
		{name: "a", opsPerS: 300, p99: 3, serverUS: 40, errs: 1},
		{name: "a", opsPerS: 100, p99: 1, serverUS: -1},
		{name: "a", opsPerS: 200, p99: 2, serverUS: 30, handshakes: 4},
	}
	got := medianRound(rs)
	if got.opsPerS != 200 || got.p99 != 2 || got.serverUS != 30 || got.errs != 1 || got.handshakes != 4 {
		t.Errorf("got %+v; want the 200/s round with 30 µs, 1 error, 4 handshakes", got)
	}
	if got := medianRound(rs[:2]); got.opsPerS != 100 || got.serverUS != 40 {
		t.Errorf("even count: got %+v; want the lower middle (100/s), 40 µs", got)
	}
}

func TestTargets(t *testing.T) {
	row := func(name string, clients int, rate, p99 float64, rt int) summary {
		return summary{name: name, clients: clients, n: 100, opsPerS: rate, p99: p99, rtMean: float64(rt), rtMax: rt, serverUS: -1}
	}
	r := &results{
		cfg: config{studies: 100000, single: time.Second},
		mix: []summary{
			row(opNames[opUpsertExisting], 8, 1000, 1, 1),
			row(opNames[opList], 8, 1000, 2.5, 2),
			row("worklist: all operations of the mix", 8, 4000, 2, 2),
		},
		single: []summary{
			row(opNames[opUpsertNew], 1, 4100, 1, 1),
			row(opNames[opUpsertExisting], 1, 3900, 1, 4),
			row(opNames[opList], 1, 1000, 1.5, 2),
			row("redis-benchmark ZADD (-r 100000)", 1, 10000, 0.1, 1),
		},
		shares: map[string][]float64{
			opNames[opUpsertNew]:      {0.5, 0.41, 0.2},
			opNames[opUpsertExisting]: {0.39, 0.6, 0.1, 0.2},
			opNames[opGoZadd]:         {0.7},
		},
	}
	got := strings.Join(r.targets(), "\n")
	for _, want := range []string{
		"ZADD median round 10000/s): upsert (new study) 41% (rounds: 50%, 41%, 20%), upsert (existing study) 30% (rounds: 39%, 60%, 10%, 20%): **not met**.",
		"same go-redis client, one round trip like an upsert: 70% (rounds: 70%).",
		"2.500 ms with 8 goroutines under the mix: **not met**; 1.500 ms at one client alone: **met**.",
		"at most 4 (worklist upsert (existing study)): **not met**.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	r.shares[opNames[opUpsertExisting]] = []float64{0.4}
	r.single[1].rtMax, r.mix[1].p99 = 3, 1.9
	got = strings.Join(r.targets(), "\n")
	for _, want := range []string{"upsert (existing study) 40% (rounds: 40%): **met**.", "1.900 ms with 8 goroutines under the mix: **met**", "at most 3 (worklist upsert (existing study)): **met**."} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	r.single = r.single[:3] // no redis-benchmark
	if got := strings.Join(r.targets(), "\n"); !strings.Contains(got, "not measured (no redis-benchmark run)") {
		t.Errorf("without redis-benchmark: %s", got)
	}
}
