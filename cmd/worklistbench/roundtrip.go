package main

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// roundTrips counts the Redis round trips made under one context: one per
// command sent on its own, one per pipeline (MULTI/EXEC included), however
// many commands the pipeline holds. A go-redis Script.Run that finds its
// script missing (EVALSHA, then EVAL) counts two. When a call has to open
// a connection, go-redis's handshake commands (HELLO, CLIENT SETINFO,
// AUTH, SELECT...) go through the hook under the call's context too: they
// are counted in handshakes, not in n, being the pool's cost rather than
// the operation's. A roundTrips is used by one goroutine at a time.
type roundTrips struct {
	n          int // round trips since the last reset
	commands   int // commands since the last reset
	handshakes int // handshake commands since the last reset
	// names, when not nil, counts the commands sent (handshakes left out)
	// by name, across resets: whoever resets keeps the map.
	names map[string]int
}

type roundTripsKey struct{}

// withRoundTrips returns a context under which the client's commands are
// counted in rt.
func withRoundTrips(ctx context.Context, rt *roundTrips) context.Context {
	return context.WithValue(ctx, roundTripsKey{}, rt)
}

// countHook is a redis.Hook that adds each command or pipeline to the
// roundTrips carried by its context, if any. Commands made with another
// context (preload, cleanup) are not counted.
type countHook struct{}

var _ redis.Hook = countHook{}

func (countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// handshake reports whether cmd is one go-redis sends when it opens a
// connection (a worklist operation sends none of them).
func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "select", "client", "readonly":
		return true
	}
	return false
}

func (countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if rt, ok := ctx.Value(roundTripsKey{}).(*roundTrips); ok {
			if handshake(cmd) {
				rt.handshakes++
			} else {
				rt.n++
				rt.commands++
				if rt.names != nil {
					rt.names[cmd.Name()]++
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if rt, ok := ctx.Value(roundTripsKey{}).(*roundTrips); ok && len(cmds) > 0 {
			if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !handshake(c) }) {
				rt.n++
				rt.commands += len(cmds)
				if rt.names != nil {
					for _, c := range cmds {
						rt.names[c.Name()]++
					}
				}
			} else {
				rt.handshakes += len(cmds)
			}
		}
		return next(ctx, cmds)
	}
}
