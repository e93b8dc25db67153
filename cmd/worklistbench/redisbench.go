package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// benchResult is one redis-benchmark run, as its --csv output reports it.
type benchResult struct {
	command  string // the command line redis-benchmark ran, as it names the test
	rps      float64
	p50, p99 float64 // milliseconds
}

// redisBenchmark runs Debian's redis-benchmark (the binary at path) against
// the server and database of opt with clients connections, requests
// requests and the given command (a custom command line, which
// redis-benchmark sends as is, expanding __rand_int__ when keyspace > 0),
// and parses its --csv report.
func redisBenchmark(ctx context.Context, path string, opt *redis.Options, clients, requests, keyspace int, command ...string) (benchResult, error) {
	host, port, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return benchResult{}, fmt.Errorf("redis address %q: %w", opt.Addr, err)
	}
	args := []string{"-h", host, "-p", port, "--dbnum", strconv.Itoa(opt.DB),
		"-c", strconv.Itoa(clients), "-n", strconv.Itoa(requests), "--csv"}
	if opt.Password != "" {
		args = append(args, "-a", opt.Password)
		if opt.Username != "" {
			args = append(args, "--user", opt.Username)
		}
	}
	if keyspace > 0 {
		args = append(args, "-r", strconv.Itoa(keyspace))
	}
	args = append(args, command...)
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return benchResult{}, fmt.Errorf("%s %s: %w: %s", path, strings.Join(command, " "), err, strings.TrimSpace(stderr.String()))
	}
	r, err := parseBenchCSV(stdout.Bytes())
	if err != nil {
		return benchResult{}, fmt.Errorf("%s %s: %w", path, strings.Join(command, " "), err)
	}
	return r, nil
}

// parseBenchCSV reads the first result of redis-benchmark --csv output:
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"ZADD","34482.76","0.026","0.000","0.015","0.063","0.071","0.991"
//
// Columns are found by their header names, so a version that adds columns
// still parses; one that lacks rps, p50 or p99 is an error.
func parseBenchCSV(out []byte) (benchResult, error) {
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return benchResult{}, fmt.Errorf("reading its CSV output: %w", err)
	}
	if len(recs) < 2 {
		return benchResult{}, fmt.Errorf("no result in its CSV output %q", out)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var r benchResult
	fields := []struct {
		name string
		dst  *float64
	}{{"rps", &r.rps}, {"p50_latency_ms", &r.p50}, {"p99_latency_ms", &r.p99}}
	row := recs[1]
	for _, f := range fields {
		i, ok := col[f.name]
		if !ok || i >= len(row) {
			return benchResult{}, fmt.Errorf("its CSV output has no %s column (header %q)", f.name, recs[0])
		}
		v, err := strconv.ParseFloat(row[i], 64)
		if err != nil {
			return benchResult{}, fmt.Errorf("its CSV %s %q: %w", f.name, row[i], err)
		}
		*f.dst = v
	}
	if i, ok := col["test"]; ok && i < len(row) {
		r.command = row[i]
	}
	return r, nil
}
