package main

import (
	"fmt"
	"runtime"
	"strings"
)

// Targets of the issue.
const (
	targetUpsertShare = 0.40 // upsert rate at one client / redis-benchmark ZADD rate at one client
	targetListP99     = 2.0  // ms, top-50 listing at 100,000 studies
	targetRoundTrips  = 3    // per worklist operation
)

// markdown renders the report.
func (r *results) markdown() string {
	var b strings.Builder
	c := r.cfg
	fmt.Fprintf(&b, "## Worklist on Redis: radtriage vs redis-benchmark\n\n")
	fmt.Fprintf(&b, "redis-server %s at %s (db %d, keys under %q, deleted afterwards); client and server on one machine with %d CPUs",
		r.redisVer, r.opt.Addr, r.opt.DB, c.prefix, runtime.NumCPU())
	if r.load != "" {
		fmt.Fprintf(&b, ", 1-minute load average %s at the start and %s at the end", r.load, r.loadEnd)
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "- Preload: %d open studies in %.1f s (%.0f studies/s; Upserts from %d goroutines, auto-pipelined).\n",
		c.studies, r.preloadTime.Seconds(), float64(c.studies)/r.preloadTime.Seconds(), c.preloadConns)
	fmt.Fprintf(&b, "- Mix (clients = %d): %d goroutines for %.1f s, each step with equal odds an upsert of an existing study, "+
		"a reprioritisation (SetFindings, one finding of a random tier), a claim + complete pair followed by an upsert of a new study "+
		"(so %d studies stay open, checked at the end), or a top-50 listing (List, Limit 50).\n",
		c.workers, c.workers, r.mixElapsed.Seconds(), c.studies)
	if c.single > 0 {
		fmt.Fprintf(&b, "- Single client (clients = 1): one goroutine doing one operation for %v, the worklist's, go-redis's plain ZADD / ZRANGE "+
			"and redis-benchmark's (%d requests) interleaved in %d rounds (redis-benchmark ZADD right before the upserts); each row is the round with the median rate.\n",
			c.single, max(c.rbRequests/c.rounds, 1000), c.rounds)
	}
	if len(r.rb8) > 0 {
		fmt.Fprintf(&b, "- redis-benchmark with 8 clients: %d requests.\n", c.rbRequests)
	}
	b.WriteString("- Latency: wall time per call, every sample kept (redis-benchmark: its own --csv p50/p99). " +
		"Round trips: counted by a go-redis hook, one per command or pipeline (mean per call, and the most any call took). " +
		"Server µs/op: the server's CPU time per operation in the commands it sent (EVALSHA, HGETALL...), from INFO commandstats deltas, " +
		"for the one-operation phases, the least of the rounds (other clients of a shared server count too).\n\n")

	b.WriteString("| operation | clients | ops/s | p50 ms | p99 ms | round trips | server µs/op |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range append(append(append([]summary{}, r.mix...), r.single...), r.rb8...) {
		name := s.name
		if s.errs > 0 {
			name += fmt.Sprintf(" (%d FAILED)", s.errs)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.3f | %.3f | %s | %s |\n", name, s.clients, s.opsPerS, s.p50, s.p99, roundTripCell(s), micros(s.serverUS))
	}
	handshakes := 0
	for _, s := range append(append([]summary{}, r.mix[:max(len(r.mix)-1, 0)]...), r.single...) {
		handshakes += s.handshakes
	}
	if handshakes > 0 {
		fmt.Fprintf(&b, "\n%d handshake commands of new connections (HELLO, CLIENT SETINFO...) went out during measured calls: in their latency, not in their round trips.\n", handshakes)
	}
	for _, s := range append(append([]summary{}, r.mix[:max(len(r.mix)-1, 0)]...), r.single...) {
		if s.short > 0 {
			fmt.Fprintf(&b, "\n%s (%d clients): %d of %d listings returned fewer than 50 items (studies completed while List ran).\n",
				s.name, s.clients, s.short, s.n)
		}
	}
	var cmds []string
	for _, s := range r.rb8 {
		cmds = append(cmds, "`redis-benchmark -c 8 "+s.command+"`")
	}
	if len(cmds) > 0 {
		fmt.Fprintf(&b, "\nredis-benchmark commands (plus -r 100000 for ZADD, --csv, -n, -c): %s.\n", strings.Join(cmds, ", "))
	}
	if r.rbErr != nil {
		fmt.Fprintf(&b, "\nredis-benchmark failed: %v\n", r.rbErr)
	}

	b.WriteString("\n### Targets\n\n")
	for _, t := range r.targets() {
		fmt.Fprintf(&b, "- %s\n", t)
	}
	return b.String()
}

func roundTripCell(s summary) string {
	if s.n == 0 {
		return "-"
	}
	if s.rtMean == float64(s.rtMax) {
		return fmt.Sprint(s.rtMax)
	}
	return fmt.Sprintf("%.2f (max %d)", s.rtMean, s.rtMax)
}

func micros(us float64) string {
	if us < 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", us)
}

// percents lists shares as "(rounds: 18%, 20%)".
func percents(shares []float64) string {
	p := make([]string, len(shares))
	for i, s := range shares {
		p[i] = fmt.Sprintf("%.0f%%", 100*s)
	}
	return "(rounds: " + strings.Join(p, ", ") + ")"
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// find returns the row of list named name.
func find(list []summary, name string) (summary, bool) {
	for _, s := range list {
		if s.name == name {
			return s, true
		}
	}
	return summary{}, false
}

// targets checks the targets against the results, one line each.
func (r *results) targets() []string {
	var out []string

	// Upserts at one client vs redis-benchmark ZADD at one client, round
	// by round (adjacent phases), the median of the rounds.
	zadd, _ := find(r.single, "redis-benchmark ZADD (-r 100000)")
	switch {
	case len(r.single) == 0:
		out = append(out, "Upsert rate at one client ≥ 40% of redis-benchmark's single-client ZADD: not measured (-single 0).")
	case zadd.n == 0:
		out = append(out, "Upsert rate at one client ≥ 40% of redis-benchmark's single-client ZADD: not measured (no redis-benchmark run).")
	default:
		ok := true
		var parts []string
		for _, name := range []string{opNames[opUpsertNew], opNames[opUpsertExisting]} {
			sh := r.shares[name]
			if len(sh) == 0 {
				ok = false
				continue
			}
			m := median(sh)
			ok = ok && m >= targetUpsertShare
			parts = append(parts, fmt.Sprintf("%s %.0f%% %s", strings.TrimPrefix(name, "worklist "), 100*m, percents(sh)))
		}
		line := fmt.Sprintf("Upsert rate at one client ≥ 40%% of redis-benchmark's single-client ZADD (median of the rounds of the upsert rate over the ZADD rate of the same round; ZADD median round %.0f/s): %s: %s.",
			zadd.opsPerS, strings.Join(parts, ", "), verdict(ok))
		if sh := r.shares[opNames[opGoZadd]]; len(sh) > 0 {
			line += fmt.Sprintf(" For scale: a plain ZADD from the same go-redis client, one round trip like an upsert: %.0f%% %s.", 100*median(sh), percents(sh))
		}
		out = append(out, line)
	}

	// Top-50 listing p99.
	if s, ok := find(r.mix, opNames[opList]); ok && s.n > 0 {
		line := fmt.Sprintf("p99 of a top-50 listing < 2 ms at %d open studies: %.3f ms with %d goroutines under the mix: %s",
			r.cfg.studies, s.p99, s.clients, verdict(s.p99 < targetListP99))
		if s1, ok := find(r.single, opNames[opList]); ok && s1.n > 0 {
			line += fmt.Sprintf("; %.3f ms at one client alone: %s", s1.p99, verdict(s1.p99 < targetListP99))
			if s1.serverUS >= 0 {
				line += fmt.Sprintf(" (%.0f µs of it on the server)", s1.serverUS)
			}
		}
		out = append(out, line+".")
	}

	// Round trips.
	worst, worstName := 0, ""
	for _, s := range append(append([]summary{}, r.mix...), r.single...) {
		if s.n > 0 && s.rtMax > worst && strings.HasPrefix(s.name, "worklist ") {
			worst, worstName = s.rtMax, s.name
		}
	}
	out = append(out, fmt.Sprintf("At most 3 Redis round trips per worklist operation: at most %d (%s): %s.",
		worst, worstName, verdict(worst > 0 && worst <= targetRoundTrips)))
	return out
}
