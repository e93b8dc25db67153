package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// cmdStat is one line of INFO commandstats: how often the server ran a
// command and the CPU time it spent in it, in microseconds.
type cmdStat struct {
	calls int64
	usec  int64
}

// commandStats reads INFO commandstats, keyed by lower-case command name
// ("evalsha", "zadd", ...).
func commandStats(ctx context.Context, client *redis.Client) (map[string]cmdStat, error) {
	info, err := client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

// parseCommandStats parses lines like
//
//	cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=0
//
// ignoring anything else.
func parseCommandStats(info string) map[string]cmdStat {
	m := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var s cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "calls":
				s.calls = n
			case "usec":
				s.usec = n
			}
		}
		m[strings.ToLower(name)] = s
	}
	return m
}

// serverMicros returns the server's CPU time per call of the named commands
// between two snapshots, in microseconds, or -1 when none ran. On a shared
// server other clients' calls of the same commands are counted too.
func serverMicros(before, after map[string]cmdStat, names ...string) float64 {
	var calls, usec int64
	for _, n := range names {
		calls += after[n].calls - before[n].calls
		usec += after[n].usec - before[n].usec
	}
	if calls <= 0 || before == nil || after == nil {
		return -1
	}
	return float64(usec) / float64(calls)
}

// serverMicrosPerOp returns the server's CPU time in the commands named
// in sent between two snapshots, per operation of ops operations (that
// sent them), in microseconds, or -1 when not known. A command that also
// ran inside a script is counted twice (INFO commandstats counts it both
// in itself and in the script's command); other clients' calls of the same
// commands count too.
func serverMicrosPerOp(before, after map[string]cmdStat, sent map[string]int, ops int) float64 {
	if before == nil || after == nil || ops <= 0 || len(sent) == 0 {
		return -1
	}
	var usec int64
	for n := range sent {
		usec += after[n].usec - before[n].usec
	}
	return float64(usec) / float64(ops)
}
