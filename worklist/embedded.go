package worklist

import (
	"fmt"
	"log/slog"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-process Redis-compatible store (miniredis) listening on a
// loopback port, the default when no Redis URL is configured. It keeps
// everything in memory, for one process: it is not for production.
type Embedded struct {
	m *miniredis.Miniredis
}

// StartEmbedded starts the embedded store on 127.0.0.1 (a free port) and logs
// once, at Warn, that it is for single-process use only. A nil logger means
// slog.Default().
func StartEmbedded(logger *slog.Logger) (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("worklist: starting embedded store: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger.Warn("worklist: using the embedded in-process Redis-compatible store: single-process use only, not for production; set --redis-url for a real Redis",
		"addr", m.Addr())
	return &Embedded{m: m}, nil
}

// Addr returns the host:port the store listens on.
func (e *Embedded) Addr() string { return e.m.Addr() }

// URL returns a redis:// URL for the store, for redis.ParseURL.
func (e *Embedded) URL() string { return "redis://" + e.m.Addr() + "/0" }

// Close stops the store; its data is lost.
func (e *Embedded) Close() error {
	e.m.Close()
	return nil
}
