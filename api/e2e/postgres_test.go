package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSchemaURL checks the harness: a CreateSchema URL puts new tables in
// the fresh schema, and the schema is gone after the drop.
func TestSchemaURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, drop, err := CreateSchema(ctx, TestDatabaseURL(), "e2e_harness")
	if err != nil {
		skipOrFail(t, "PostgreSQL unavailable: %v", err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		drop()
		t.Fatal(err)
	}
	var schema string
	err = conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema)
	conn.Close(ctx)
	if err != nil {
		drop()
		t.Fatal(err)
	}
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s → current_schema %s", u, schema)
	if schema == "" || schema == "public" {
		t.Fatalf("current_schema() = %q through %s", schema, u)
	}
}
