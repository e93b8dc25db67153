package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/radtriage/radtriage/internal/benchstat"
)

// measure is one row of the report: samples of one quantity, with a
// target on its p95 (0: none, shown for comparison only).
type measure struct {
	name    string
	how     string
	target  time.Duration
	samples []time.Duration
	err     error // the measurement failed
}

// verdict is "pass", "FAIL", "-" without a target, or "error".
func (m measure) verdict() string {
	switch {
	case m.err != nil || len(m.samples) == 0:
		return "error"
	case m.target == 0:
		return "-"
	case benchstat.Percentile(m.samples, 0.95) < m.target:
		return "pass"
	}
	return "FAIL"
}

// report is what the benchmark found.
type report struct {
	when     time.Time
	machine  string // CPU model and cores
	browser  string // chromium version
	goVer    string
	studies  int // open studies on the list
	tiers    map[string]int
	seedTime time.Duration
	rows     int           // studies the page listed (aria-rowcount less the header)
	domRows  int           // rows in its document (the rendered window)
	clockErr time.Duration // largest clock alignment error of the re-order samples
	notes    []string
	measures []measure
}

// passed reports whether every measure with a target passed.
func (r *report) passed() bool {
	for _, m := range r.measures {
		if v := m.verdict(); v == "FAIL" || v == "error" {
			return false
		}
	}
	return true
}

func (r *report) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Worklist page benchmark\n\n")
	fmt.Fprintf(&b, "`make bench` (.ci/bench-ui.sh, cmd/uibench), %s: %s; %s; %s.\n\n",
		r.when.UTC().Format("2006-01-02 15:04 UTC"), r.machine, r.browser, r.goVer)
	fmt.Fprintf(&b, "`radtriage serve --redis-url` (a private redis-server) with %d open studies", r.studies)
	if len(r.tiers) > 0 {
		fmt.Fprintf(&b, " (%d critical, %d urgent, %d routine)", r.tiers["critical"], r.tiers["urgent"], r.tiers["routine"])
	}
	fmt.Fprintf(&b, ": one 32x512x512 phantom with a bleed pushed and triaged, the rest seeded in Redis with the worklist package in %.1f s. The page listed %d studies (its table's aria-rowcount) with %d rows in the document (the rendered window).\n\n",
		r.seedTime.Seconds(), r.rows, r.domRows)
	b.WriteString("| measure | how | target (p95) | n | p50 ms | p95 ms | max ms | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, m := range r.measures {
		target := "-"
		if m.target > 0 {
			target = "< " + millis(m.target) + " ms"
		}
		if m.err != nil || len(m.samples) == 0 {
			fmt.Fprintf(&b, "| %s | %s | %s | 0 | - | - | - | error: %v |\n", m.name, m.how, target, m.err)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", m.name, m.how, target, len(m.samples),
			millis(benchstat.Percentile(m.samples, 0.5)), millis(benchstat.Percentile(m.samples, 0.95)), millis(benchstat.Percentile(m.samples, 1)), m.verdict())
	}
	b.WriteString("\n")
	if r.clockErr > 0 {
		fmt.Fprintf(&b, "Re-order times compare the program's clock with the page's (performance.timeOrigin + performance.now()), aligned before each sample to within %s ms.\n\n", millis(r.clockErr))
	}
	for _, n := range r.notes {
		b.WriteString(n + "\n\n")
	}
	if r.passed() {
		b.WriteString("**Result: every target met.**\n")
	} else {
		b.WriteString("**Result: a target was missed or a measurement failed (see above).**\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
