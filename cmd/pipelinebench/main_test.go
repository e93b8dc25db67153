package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPSkipsUnknown(t *testing.T) {
	if got := p([]time.Duration{unknown, unknown}, 0.5); got != unknown {
		t.Errorf("p of unknowns = %v, want unknown", got)
	}
	if got := p([]time.Duration{unknown, 3 * time.Second, -time.Second}, 0.95); got != 3*time.Second {
		t.Errorf("p = %v, want 3s (unknown skipped, negative kept)", got)
	}
	if got := seconds(unknown); got != "-" {
		t.Errorf("seconds(unknown) = %q", got)
	}
	if got := seconds(1234 * time.Millisecond); got != "1.23" {
		t.Errorf("seconds(1.234s) = %q", got)
	}
	if got := overSigned(-110 * time.Millisecond); got != "-0.11" {
		t.Errorf("overSigned(-0.11s) = %q", got)
	}
	if got := overSigned(990 * time.Millisecond); got != "+0.99" {
		t.Errorf("overSigned(0.99s) = %q", got)
	}
}

func TestPerHour(t *testing.T) {
	if got := perHour(12, 36*time.Second); got != 1200 {
		t.Errorf("perHour(12, 36s) = %v, want 1200", got)
	}
	if got := perHour(12, 0); got != 0 {
		t.Errorf("perHour(12, 0) = %v, want 0", got)
	}
}

func TestSSEReader(t *testing.T) {
	stream := "retry: 2000\n\n" +
		": heartbeat\n\n" +
		"id: 1-0\nevent: added\ndata: {\"type\":\"added\"}\n\n" +
		"id: 2-0\r\nevent: reprioritised\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n" +
		"event: reset\rdata:no space\r\r" +
		"data: last without event\n"
	r := newSSEReader(strings.NewReader(stream))
	at := time.Unix(100, 0)
	r.now = func() time.Time { return at }
	want := []sseEvent{
		{ID: "1-0", Type: "added", Data: []byte(`{"type":"added"}`), At: at},
		{ID: "2-0", Type: "reprioritised", Data: []byte("{\"a\":\n1}"), At: at},
		{Type: "reset", Data: []byte("no space"), At: at},
	}
	for i, w := range want {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got.ID != w.ID || got.Type != w.Type || string(got.Data) != string(w.Data) || !got.At.Equal(w.At) {
			t.Errorf("event %d = %+v (data %q), want %+v (data %q)", i, got, got.Data, w, w.Data)
		}
	}
	// The last event has no blank line after it: a stream cut off there
	// never dispatched it.
	if got, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last event: %+v, %v; want io.EOF", got, err)
	}
}

func TestMetricValue(t *testing.T) {
	text := `# HELP radtriage_jobs_done_total Triage jobs whose result was committed.
# TYPE radtriage_jobs_done_total counter
radtriage_jobs_done_total 7
radtriage_jobs_done_total_other 9
radtriage_job_failures_total{reason="dead"} 1
radtriage_queue_length 2.5e+00
`
	tests := []struct {
		name string
		want float64
		ok   bool
	}{
		{"radtriage_jobs_done_total", 7, true},
		{"radtriage_queue_length", 2.5, true},
		{"radtriage_job_failures_total", 0, false}, // labelled only
		{"radtriage_missing", 0, false},
	}
	for _, tt := range tests {
		got, ok := metricValue(text, tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("metricValue(%s) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseTriageJSON(t *testing.T) {
	out := `{"study_uid":"1.2.3","tier":"critical","timings_ms":{"total":1234.5,"assemble":10}}
{"study_uid":"1.2.4","tier":"routine","timings_ms":{"total":900}}
`
	got, err := parseTriageJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []cliStudy{{"1.2.3", "critical", 1234500 * time.Microsecond}, {"1.2.4", "routine", 900 * time.Millisecond}}
	if len(got) != len(want) {
		t.Fatalf("got %d studies, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("study %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parseTriageJSON([]byte("{\"study_uid\":\"1\"}\nnot json\n")); err == nil {
		t.Error("a line that is not JSON parsed")
	}
}

func TestTopFinding(t *testing.T) {
	var it *worklistItem
	if got := it.topFinding(); got != "none" {
		t.Errorf("nil item: %q", got)
	}
	it = &worklistItem{Tier: "critical"}
	it.Finding = &struct {
		Code        string  `json:"code"`
		Probability float64 `json:"probability"`
		VolumeML    float64 `json:"volume_ml"`
	}{"ICH", 0.716, 13.24}
	if got := it.topFinding(); got != "ICH 72% 13.2 mL" {
		t.Errorf("topFinding = %q", got)
	}
	it.Finding.VolumeML = 0
	if got := it.topFinding(); got != "ICH 72%" {
		t.Errorf("topFinding without volume = %q", got)
	}
}

// testReport is a report of made-up measurements: embedded within the
// target, services over it, one throughput run per worker count and the
// CLI reference.
func testReport() *report {
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	cfg := config{runs: 2, studies: 4, stableAge: 2 * time.Second, slack: 10 * time.Second, seed: 7001, workers: []int{1, 2}}
	return &report{
		cfg: cfg, cpus: 2, loadStart: "1.00", loadEnd: "2.00", version: "radtriage test",
		latency: []latencyResult{
			{setup: "embedded", samples: []sample{
				{study: "1.1", e2e: sec(3.5), toJob: sec(2.3), toDone: sec(1.1), triage: sec(1.0), toEvent: sec(0.1), tier: "critical", finding: "ICH 72% 13.2 mL", truth: "ICH 14.6 mL"},
				{study: "1.2", e2e: sec(3.1), toJob: unknown, toDone: unknown, triage: unknown, toEvent: unknown, tier: "routine", finding: "none", truth: "ICH 1.0 mL"},
			}},
			{setup: "services", samples: []sample{
				{study: "1.1", e2e: sec(13), tier: "critical"},
				{study: "1.2", e2e: sec(4), tier: "critical"},
			}},
		},
		throughput: []throughputResult{
			{workers: 1, studies: 4, pushed: sec(1), wall: sec(14), span: sec(12), done: []float64{4}, cpu: []time.Duration{sec(8)}, attempts: 4, triaged: 4},
			{workers: 2, studies: 4, pushed: sec(1), wall: sec(10), span: sec(8), done: []float64{2, 1}, cpu: []time.Duration{sec(4), sec(4)}, attempts: 4, triaged: 4},
		},
		cli: map[string]cliResult{
			"1.1": {wall: sec(1.4), results: []cliStudy{{"1.1", "critical", sec(1.2)}}},
			"1.2": {err: "failed"},
		},
		cliAll: &cliResult{wall: sec(6), results: []cliStudy{{"a", "", sec(1)}, {"b", "", sec(1)}, {"c", "", sec(1)}, {"d", "", sec(1)}}},
	}
}

func TestMarkdown(t *testing.T) {
	md := testReport().markdown()
	for _, want := range []string{
		// embedded: p50 3.1, p95 3.5 (nearest rank of 2: the larger), after stable 1.1/1.5.
		"| embedded | 2 | 3.10 | 3.50 | 2.00 | 1.10 | 1.50 | 12.00 | **PASS** | 1 of 2 |",
		"| services | 2 | 4.00 | 13.00 | 2.00 | 2.00 | 11.00 | 12.00 | **FAIL** | 2 of 2 |",
		// Breakdown: run 2 unknown everywhere, so run 1's values; overhead 3.5-2-1.4 and 3.5-2-1.2.
		"| embedded | 2.30 | 1.10 | 1.00 | 0.10 | 1.40 | 1.20 | +0.10 | +0.30 |",
		"| embedded | 2 | 3.10 | - | - | - | - | - | routine | none | ICH 1.0 mL |",
		// 4 studies in 12 s = 1200/h; 8 s = 1800/h; CPU 8 s / 4.
		"| 1 | 4 | 1.00 | 14.00 | 12.00 | 1200 | 4 | 2.00 | yes |",
		"| 2 | 4 | 1.00 | 10.00 | 8.00 | 1800 | 2, 1 | 2.00 | **no** (4 done, 4 attempts, workers' count 3) |",
		"| CLI reference (1 process) | 4 | – | 6.00 (wall) | 4.00 (its triage times) | 2400 |",
		"2 workers vs 1: 1.50× the studies per hour.",
		"embedded: p95 3.50 s over 2 runs: **PASS**.",
		"services: p95 13.00 s over 2 runs: **FAIL**.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownFailures(t *testing.T) {
	r := testReport()
	if f := r.failures(); f != "" {
		t.Errorf("failures() = %q with every measurement made", f)
	}
	r.latency[1].err = "serve: exited\nlog tail"
	r.throughput[0] = throughputResult{workers: 1, studies: 4, err: "not every study triaged: x | y"}
	md := r.markdown()
	for _, want := range []string{
		"| services | 2 | 4.00 | 13.00 | 2.00 | 2.00 | 11.00 | 12.00 | **FAIL** (error) | 2 of 2 |",
		"services failed after 2 runs: serve: exited\n",
		`| 1 | 4 | FAILED: not every study triaged: x \| y |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if f := r.failures(); !strings.Contains(f, "services") || !strings.Contains(f, "1 workers") {
		t.Errorf("failures() = %q", f)
	}
}
