package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// wrapDBErr adds ErrUnavailable to the chain of err when it says that the
// database cannot be reached or is too busy right now (the caller answers
// 503), so that nothing is acknowledged. Cancellation stays cancellation.
func wrapDBErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func unavailable(err error) bool {
	var (
		ce *pgconn.ConnectError
		pe *pgconn.PgError
		ne net.Error
		se *sqlite.Error
	)
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pe):
		// 08: connection exception; 57P01-03: shutdown, crash, starting;
		// 53300: too many connections; 40001/40P01 are retryable too.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") ||
			pe.Code == "53300" || pe.Code == "40001" || pe.Code == "40P01"
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED after busy_timeout
			return true
		}
	}
	return false
}

// q is a query written with ? placeholders, rebound for the dialect.
func (d dialect) q(query string) string {
	if d != postgresDialect {
		return query
	}
	return rebind(query)
}

// rebind turns ? placeholders into $1, $2, … outside quoted strings.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	quoted := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// stripedMutex serialises work on one key (a SOP Instance UID) within the
// process without a map that grows with the keys.
type stripedMutex struct {
	mu [1024]sync.Mutex
}

func (s *stripedMutex) lock(key string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &s.mu[h.Sum32()%uint32(len(s.mu))]
	m.Lock()
	return m.Unlock
}
