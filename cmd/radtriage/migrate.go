package main

import (
	"context"
	"fmt"

	"github.com/radtriage/radtriage/store"
)

func runMigrate(ctx context.Context, env *environ, args []string) error {
	var (
		dataDir, databaseURL string
		log                  logConfig
	)
	fs := newFlagSet("migrate", "up|down|version", `Migrate the index database. "up" applies every pending migration, "down" reverts
the last one, "version" prints the current version. serve migrates up by itself.`, env)
	databaseFlags(fs, &dataDir, &databaseURL)
	log.register(fs)
	pos, err := fs.parse(args, 1)
	if err != nil {
		return err
	}
	cmd := pos[0]
	if cmd != "up" && cmd != "down" && cmd != "version" {
		return usagef("migrate: unknown direction %q: want up, down or version", cmd)
	}
	v, dirty, err := store.Migrate(ctx, store.Config{DatabaseURL: databaseURL, DataDir: dataDir, Logger: log.newLogger(env.stderr)}, cmd)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", cmd, err)
	}
	state := ""
	if dirty {
		state = " (dirty: a migration failed half-way; fix the database, then migrate again)"
	}
	fmt.Fprintf(env.stdout, "%s database at version %d%s\n", databaseKind(databaseURL), v, state)
	return nil
}
