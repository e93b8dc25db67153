package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/worklist"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestClockOffset(t *testing.T) {
	before := time.UnixMilli(1_700_000_000_000)
	after := before.Add(4 * time.Millisecond)
	// The page read 1_700_000_000_007.5 ms: 5.5 ms after the midpoint.
	off, bound := clockOffset(before, after, 1_700_000_000_007.5)
	if off != 5500*time.Microsecond || bound != 2*time.Millisecond {
		t.Errorf("clockOffset = %v ± %v, want 5.5ms ± 2ms", off, bound)
	}
	if got := fromMillis(12.3456); got != 12346*time.Microsecond {
		t.Errorf("fromMillis(12.3456) = %v", got)
	}
}

func TestSeedStudies(t *testing.T) {
	now := time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)
	a := seedStudies(3000, now, 1)
	b := seedStudies(3000, now, 1)
	if len(a) != 3000 {
		t.Fatalf("%d studies, want 3000", len(a))
	}
	seen := map[string]bool{}
	tiers := map[worklist.Tier]int{}
	findings := 0
	for i, s := range a {
		if s.study != b[i].study || len(s.findings) != len(b[i].findings) {
			t.Fatalf("study %d differs between two runs with the same seed", i)
		}
		if err := dicomio.ValidateUID(s.study.StudyUID); err != nil {
			t.Fatalf("study %d: %v", i, err)
		}
		if seen[s.study.StudyUID] {
			t.Fatalf("study UID %s twice", s.study.StudyUID)
		}
		seen[s.study.StudyUID] = true
		if age := now.Sub(s.study.Received); age < 0 || age > 6*time.Hour {
			t.Errorf("study %d received %v before now, want within 6 h", i, age)
		}
		tier := worklist.PriorityTier(s.study.OrderPriority)
		for _, f := range s.findings {
			tier = worklist.MoreUrgent(tier, f.Tier)
		}
		tiers[tier]++
		if len(s.findings) > 0 {
			findings++
		}
	}
	// Every tier is there, routine the most: a realistic mix.
	if tiers[worklist.TierCritical] == 0 || tiers[worklist.TierUrgent] == 0 || tiers[worklist.TierRoutine] < len(a)/2 {
		t.Errorf("tiers %v: want some critical and urgent, mostly routine", tiers)
	}
	if findings < len(a)/5 || findings > len(a)/2 {
		t.Errorf("%d of %d studies with findings, want about a third", findings, len(a))
	}
	if c := seedStudies(10, now, 2); c[0].study.StudyUID == a[0].study.StudyUID {
		t.Errorf("seeds 1 and 2 give the same UID %s", a[0].study.StudyUID)
	}
}

func TestReorderCandidates(t *testing.T) {
	now := time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)
	studies := seedStudies(500, now, 3)
	c := reorderCandidates(studies, 20)
	if len(c) != 20 {
		t.Fatalf("%d candidates, want 20", len(c))
	}
	for i, s := range c {
		if len(s.findings) > 0 || worklist.PriorityTier(s.study.OrderPriority) != worklist.TierRoutine {
			t.Errorf("candidate %d (%s) is not routine without findings", i, s.study.StudyUID)
		}
		if i > 0 && s.study.Received.Before(c[i-1].study.Received) {
			t.Errorf("candidate %d received before candidate %d: want the earliest first", i, i-1)
		}
	}
	// None left out that was received earlier than the last one kept.
	last := c[len(c)-1].study.Received
	n := 0
	for _, s := range studies {
		if len(s.findings) == 0 && worklist.PriorityTier(s.study.OrderPriority) == worklist.TierRoutine && s.study.Received.Before(last) {
			n++
		}
	}
	if n != 19 {
		t.Errorf("%d routine studies without findings received before the last candidate, want 19", n)
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		name    string
		m       measure
		verdict string
	}{
		{"under target", measure{target: 100 * time.Millisecond, samples: ms(40, 50, 99)}, "pass"},
		{"p95 at target fails", measure{target: 100 * time.Millisecond, samples: ms(40, 50, 100)}, "FAIL"},
		{"no target", measure{samples: ms(500)}, "-"},
		{"error", measure{target: time.Second, err: errors.New("boom")}, "error"},
		{"no samples", measure{target: time.Second}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.verdict(); got != tt.verdict {
				t.Errorf("verdict = %q, want %q", got, tt.verdict)
			}
		})
	}

	r := &report{when: time.Now(), machine: "cpu", browser: "HeadlessChrome/1", goVer: "go1", studies: 5000, rows: 5000,
		tiers: map[string]int{"critical": 1, "urgent": 2, "routine": 4997},
		measures: []measure{
			{name: "first render", how: "mark", target: 300 * time.Millisecond, samples: ms(120, 130)},
			{name: "key image", how: "GET", target: 100 * time.Millisecond, samples: ms(20)},
		}}
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| first render | mark | < 300.0 ms | 2 | 120.0 | 130.0 | 130.0 | pass |", "5000 open studies", "every target met"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	r.measures = append(r.measures, measure{name: "re-order", target: 100 * time.Millisecond, samples: ms(150)})
	b.Reset()
	r.write(&b)
	if r.passed() || !strings.Contains(b.String(), "| FAIL |") || !strings.Contains(b.String(), "a target was missed") {
		t.Errorf("a missed target is not reported:\n%s", b.String())
	}
}
