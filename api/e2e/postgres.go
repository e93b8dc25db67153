package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDatabaseURL is used when RADTRIAGE_TEST_DATABASE_URL is unset.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// TestDatabaseURL returns RADTRIAGE_TEST_DATABASE_URL or the default.
func TestDatabaseURL() string {
	if u := os.Getenv("RADTRIAGE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// CreateSchema creates a fresh schema named after prefix in the database at
// base and returns a URL whose connections use it (search_path, which pgx
// sends as a run-time parameter), and a function that drops it.
func CreateSchema(ctx context.Context, base, prefix string) (schemaURL string, drop func() error, err error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", base, err)
	}
	defer conn.Close(context.Background())
	schema := strings.ToLower(prefix) + "_" + strings.ReplaceAll(NewUID(16)[5:], ".", "")
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
	}
	return u.String(), drop, nil
}
