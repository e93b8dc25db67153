package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/radtriage/radtriage/internal/benchstat"
)

// report is everything the Markdown report shows.
type report struct {
	cfg                config
	cpus               int
	loadStart, loadEnd string
	version            string
	latency            []latencyResult
	throughput         []throughputResult
	cli                map[string]cliResult // by study UID: one CLI process per time-to-triage study
	cliAll             *cliResult           // one CLI process over every throughput study
}

// failures says what could not be measured; "" when everything was.
func (r *report) failures() string {
	var f []string
	for _, l := range r.latency {
		if l.err != "" {
			f = append(f, "time to triage ("+l.setup+") failed")
		}
	}
	for _, t := range r.throughput {
		if t.err != "" {
			f = append(f, fmt.Sprintf("throughput (%d workers) failed", t.workers))
		}
	}
	return strings.Join(f, "; ")
}

// cliOf is the reference CLI run of one study: its wall time and its own
// triage time, unknown each when missing.
func (r *report) cliOf(study string) (wall, compute time.Duration) {
	c, ok := r.cli[study]
	if !ok || c.err != "" || len(c.results) != 1 {
		return unknown, unknown
	}
	return c.wall, c.results[0].compute
}

// known keeps the durations that were measured.
func known(ds []time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range ds {
		if d != unknown {
			out = append(out, d)
		}
	}
	return out
}

// p is the q-quantile of the measured durations, unknown when none.
func p(ds []time.Duration, q float64) time.Duration {
	k := known(ds)
	if len(k) == 0 {
		return unknown
	}
	return benchstat.Percentile(k, q)
}

// column collects one value of every sample (f may return unknown).
func column(ss []sample, f func(*sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i := range ss {
		out[i] = f(&ss[i])
	}
	return out
}

// target is the bound on the time to triage.
func (r *report) target() time.Duration { return r.cfg.stableAge + r.cfg.slack }

// verdict is PASS or FAIL of one setup's p95 against the target.
func (r *report) verdict(l latencyResult) (time.Duration, bool) {
	p95 := p(column(l.samples, func(s *sample) time.Duration { return s.e2e }), 0.95)
	return p95, p95 != unknown && p95 <= r.target()
}

func (r *report) markdown() string {
	var b strings.Builder
	c := r.cfg
	b.WriteString("## Triage pipeline end to end: STOW-RS to a re-ordered worklist\n\n")
	fmt.Fprintf(&b, "%s, CPU backend (`--backend cpu`), the built-in demonstration ensemble; everything on this machine: %d CPUs", r.version, r.cpus)
	if r.loadStart != "" {
		fmt.Fprintf(&b, ", 1-minute load average %s at the start and %s at the end", r.loadStart, r.loadEnd)
	}
	b.WriteString(". Studies: synthetic head CTs from `radtriage phantom` (32 slices of 256×256, one STOW-RS request of 32 instances each). " +
		"Services: PostgreSQL (a fresh schema per run) and Redis (a key prefix per run, deleted afterwards).\n\n")

	if len(r.latency) > 0 {
		fmt.Fprintf(&b, "### Time to triage: last STOW-RS response to the worklist event\n\n")
		fmt.Fprintf(&b, "Each run pushes one phantom with an intraparenchymal bleed (`--lesion ich`, seeds %d–%d) alone to a `radtriage serve --workers 1 --stable-age %v` "+
			"and times from its STOW-RS response to the arrival of the study's `reprioritised` Server-Sent Event at a client of GET /api/v1/worklist/events "+
			"connected before the push; the next run starts after it. embedded: SQLite and the in-process worklist store (no --database-url, no --redis-url); "+
			"services: PostgreSQL and Redis. p95 is the nearest rank (with %d runs, the slowest). "+
			"\"After stable\" is the time minus the stable age: the stability check's granularity (a quarter of the stable age), the job, triage, saving and the event.\n\n",
			c.seed, c.seed+c.runs-1, c.stableAge, c.runs)
		b.WriteString("| setup | runs | p50 s | p95 s | stable age s | after stable p50 s | after stable p95 s | target ≤ s | result | tier critical |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
		for _, l := range r.latency {
			e2e := column(l.samples, func(s *sample) time.Duration { return s.e2e })
			after := column(l.samples, func(s *sample) time.Duration { return s.e2e - c.stableAge })
			crit := 0
			for _, s := range l.samples {
				if s.tier == "critical" {
					crit++
				}
			}
			_, ok := r.verdict(l)
			res := "**PASS**"
			if !ok {
				res = "**FAIL**"
			}
			if l.err != "" {
				res = "**FAIL** (error)"
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d of %d |\n", l.setup, len(l.samples),
				seconds(p(e2e, 0.5)), seconds(p(e2e, 0.95)), seconds(c.stableAge), seconds(p(after, 0.5)), seconds(p(after, 0.95)),
				seconds(r.target()), res, crit, len(l.samples))
		}
		b.WriteString("\nWhere the time after the stable age goes (medians over the runs; job times from GET /api/v1/jobs, the worker's triage time from the stored result's timings_ms.total), " +
			"beside the outside reference: `radtriage triage --backend cpu --json DIR` on the same study in a process of its own (start, model load, reading, triage), run after the servers stopped. " +
			"Pipeline overhead = time to triage − stable age − that CLI wall time (per run, then the median); its compute-only variant subtracts the CLI's own triage time instead.\n\n")
		b.WriteString("| setup | response → job created s | job created → done s | worker's triage s | done → event s | CLI wall s | CLI triage s | overhead vs CLI wall s | overhead vs CLI triage s |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range r.latency {
			col := func(f func(*sample) time.Duration) string { return seconds(p(column(l.samples, f), 0.5)) }
			cliWall := func(s *sample) time.Duration { w, _ := r.cliOf(s.study); return w }
			cliTriage := func(s *sample) time.Duration { _, t := r.cliOf(s.study); return t }
			over := func(ref func(*sample) time.Duration) func(*sample) time.Duration {
				return func(s *sample) time.Duration {
					v := ref(s)
					if v == unknown {
						return unknown
					}
					return s.e2e - c.stableAge - v
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.setup,
				col(func(s *sample) time.Duration { return s.toJob }),
				col(func(s *sample) time.Duration { return s.toDone }),
				col(func(s *sample) time.Duration { return s.triage }),
				col(func(s *sample) time.Duration { return s.toEvent }),
				col(cliWall), col(cliTriage), overSigned(p(column(l.samples, over(cliWall)), 0.5)), overSigned(p(column(l.samples, over(cliTriage)), 0.5)))
		}
		for _, l := range r.latency {
			if l.err != "" {
				fmt.Fprintf(&b, "\n%s failed after %d runs: %s\n", l.setup, len(l.samples), firstLine(l.err))
			}
		}
		b.WriteString("\nEvery run:\n\n")
		b.WriteString("| setup | run | time s | response → job s | job → done s | worker's triage s | done → event s | CLI wall s | tier | top finding | phantom truth |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n")
		for _, l := range r.latency {
			for i, s := range l.samples {
				w, _ := r.cliOf(s.study)
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.setup, i+1, seconds(s.e2e),
					seconds(s.toJob), seconds(s.toDone), seconds(s.triage), seconds(s.toEvent), seconds(w), s.tier, s.finding, s.truth)
			}
		}
		b.WriteString("\n")
	}

	if len(r.throughput) > 0 {
		b.WriteString("### Throughput: studies per hour with 1 and more CPU worker processes\n\n")
		fmt.Fprintf(&b, "Each run: a fresh `radtriage serve --workers 0 --stable-age %v` and N `radtriage worker --workers 1 --backend cpu` processes sharing PostgreSQL, Redis and the data dir; "+
			"%d phantoms (`--lesion random`, seeds %d–%d) pushed back to back, one STOW-RS request each, then waited for until every study's `reprioritised` event arrived. "+
			"Studies per hour = studies / (last job done − first job created), from GET /api/v1/jobs. Jobs done per worker from each worker's radtriage_jobs_done_total; "+
			"triaged exactly once = every job done with one attempt and the workers' counts summing to the studies. "+
			"Worker CPU s per study: the worker processes' user + system CPU time (start and model load included) over the studies. "+
			"Reference: `radtriage triage --backend cpu --json DIR` over the same studies in one process (models loaded once), wall time. "+
			"With %d CPUs, workers beyond that share cores (each CPU worker uses every core for its kernels).\n\n",
			c.stableAge, c.studies, c.seed+1000, c.seed+1000+c.studies-1, r.cpus)
		b.WriteString("| workers | studies | push s | first STOW → last event s | first job → last done s | studies/hour | jobs done per worker | worker CPU s per study | triaged exactly once |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---|---:|---|\n")
		for _, t := range r.throughput {
			if t.err != "" && t.triaged == 0 {
				fmt.Fprintf(&b, "| %d | %d | FAILED: %s | | | | | | |\n", t.workers, t.studies, mdEscape(firstLine(t.err)))
				continue
			}
			var done []string
			sum := 0.0
			for _, d := range t.done {
				if d < 0 {
					done = append(done, "?")
					continue
				}
				done = append(done, fmt.Sprintf("%.0f", d))
				sum += d
			}
			var cpu time.Duration
			for _, d := range t.cpu {
				if d == unknown {
					cpu = unknown
					break
				}
				cpu += d
			}
			cpuPer := unknown
			if cpu != unknown {
				cpuPer = cpu / time.Duration(max(t.triaged, 1))
			}
			once := "yes"
			if t.err != "" || t.triaged != t.studies || t.attempts != t.studies || int(sum+0.5) != t.studies {
				once = fmt.Sprintf("**no** (%d done, %d attempts, workers' count %.0f)", t.triaged, t.attempts, sum)
			}
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %.0f | %s | %s | %s |\n", t.workers, t.studies, seconds(t.pushed), seconds(t.wall), seconds(t.span),
				perHour(t.triaged, t.span), strings.Join(done, ", "), seconds(cpuPer), once)
		}
		if a := r.cliAll; a != nil {
			if a.err != "" {
				fmt.Fprintf(&b, "| CLI reference | %d | | FAILED: %s | | | | | |\n", c.studies, mdEscape(firstLine(a.err)))
			} else {
				var sum time.Duration
				for _, s := range a.results {
					sum += s.compute
				}
				fmt.Fprintf(&b, "| CLI reference (1 process) | %d | – | %s (wall) | %s (its triage times) | %.0f | – | – | – |\n",
					len(a.results), seconds(a.wall), seconds(sum), perHour(len(a.results), a.wall))
			}
		}
		if len(r.throughput) >= 2 {
			one, more := r.throughput[0], r.throughput[len(r.throughput)-1]
			if r1, r2 := perHour(one.triaged, one.span), perHour(more.triaged, more.span); r1 > 0 && r2 > 0 {
				fmt.Fprintf(&b, "\n%d workers vs %d: %.2f× the studies per hour.\n", more.workers, one.workers, r2/r1)
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("### Target\n\n")
	if len(r.latency) == 0 {
		b.WriteString("- Time to triage at most the stable age plus 10 s on CPU: not measured (-runs 0).\n")
	}
	for _, l := range r.latency {
		p95, ok := r.verdict(l)
		v := "**PASS**"
		if !ok {
			v = "**FAIL**"
		}
		fmt.Fprintf(&b, "- Time to triage ≤ stable age + %v on CPU (%s), %s: p95 %s s over %d runs: %s.\n",
			c.slack, seconds(r.target()), l.setup, seconds(p95), len(l.samples), v)
	}
	return b.String()
}

// overSigned renders an overhead that may be negative (the CLI pays its
// start and model load, which a running worker does not).
func overSigned(d time.Duration) string {
	if d == unknown {
		return "-"
	}
	return fmt.Sprintf("%+.2f", d.Seconds())
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// mdEscape keeps a message inside one table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
