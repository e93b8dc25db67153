package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Config selects the database and the data directory.
type Config struct {
	// DatabaseURL: "" for the embedded SQLite file in DataDir
	// (DataDir/index.db), "sqlite:///path/file.db", or "postgres://…".
	DatabaseURL string
	// DataDir holds blobs/ and the default SQLite file.
	DataDir string
	// StableAge: a study with no new instance for this long becomes stable.
	StableAge time.Duration
	Logger    *slog.Logger
}

//go:embed migrations
var migrations embed.FS

// DB is the archive: SQL index plus blob store. It implements Archive.
//
// Layout of DataDir:
//
//	index.db                              default SQLite index (with -wal, -shm)
//	blobs/{study}/{series}/{sop}.dcm      instances exactly as received
//	masks/{study}/{sha256}-{nonce}.nii.gz triage label masks (triage.go)
//	conflicts/{sop}/{sha256}.dcm          later, different bytes under a stored SOP UID
//	quarantine/                           blobs that could not be indexed (never served)
//	tmp/                                  ingest temp files
type DB struct {
	cfg     Config
	log     *slog.Logger
	dialect dialect
	dir     string // absolute data directory

	// rdb serves queries; wdb serves writes. They are the same pool on
	// PostgreSQL; on SQLite wdb holds the single writer connection (its
	// transactions BEGIN IMMEDIATE) so that writers queue in-process
	// instead of failing with SQLITE_BUSY, and rdb a few WAL readers.
	rdb, wdb *sql.DB

	locks stripedMutex
	now   func() time.Time // replaced in tests

	// batch feeds the group committer.
	batch   chan *indexReq
	closing chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var _ Archive = (*DB)(nil)

// dialect is what differs between the SQL databases.
type dialect int

const (
	sqliteDialect dialect = iota + 1
	postgresDialect
)

func (d dialect) String() string {
	if d == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// target is a parsed Config.DatabaseURL.
type target struct {
	dialect dialect
	dsn     string // file path (SQLite) or connection URL (PostgreSQL)
}

func parseTarget(cfg Config) (target, error) {
	u := cfg.DatabaseURL
	switch {
	case u == "":
		if cfg.DataDir == "" {
			return target{}, errors.New("store: neither DatabaseURL nor DataDir is set")
		}
		return target{sqliteDialect, filepath.Join(cfg.DataDir, "index.db")}, nil
	case strings.HasPrefix(u, "sqlite://"):
		p := strings.TrimPrefix(u, "sqlite://")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if p == "" {
			return target{}, fmt.Errorf("store: database URL %q names no file", u)
		}
		return target{sqliteDialect, p}, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if _, err := url.Parse(u); err != nil {
			return target{}, fmt.Errorf("store: database URL: %w", err)
		}
		return target{postgresDialect, u}, nil
	default:
		return target{}, fmt.Errorf("store: unsupported database URL %q (want sqlite://… or postgres://…)", redact(u))
	}
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// sqliteDSN is the modernc.org/sqlite DSN for path. synchronous=FULL makes
// every commit durable in WAL mode; busy_timeout lets writers of other
// processes wait for the lock instead of failing.
func sqliteDSN(path string, write bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(30000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "foreign_keys(1)")
	if write {
		v.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + v.Encode()
}

func openSQL(ctx context.Context, t target) (rdb, wdb *sql.DB, err error) {
	switch t.dialect {
	case sqliteDialect:
		if dir := filepath.Dir(t.dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, nil, fmt.Errorf("store: %w", err)
			}
		}
		wdb, err = sql.Open("sqlite", sqliteDSN(t.dsn, true))
		if err != nil {
			return nil, nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		wdb.SetMaxOpenConns(1)
		wdb.SetMaxIdleConns(1)
		wdb.SetConnMaxIdleTime(0)
		rdb, err = sql.Open("sqlite", sqliteDSN(t.dsn, false))
		if err != nil {
			wdb.Close()
			return nil, nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		rdb.SetMaxOpenConns(8)
		rdb.SetMaxIdleConns(8)
	case postgresDialect:
		wdb, err = sql.Open("pgx", t.dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("store: open postgres: %w", err)
		}
		wdb.SetMaxOpenConns(32)
		wdb.SetMaxIdleConns(32)
		wdb.SetConnMaxIdleTime(5 * time.Minute)
		rdb = wdb
	}
	if err := wdb.PingContext(ctx); err != nil {
		closeBoth(rdb, wdb)
		return nil, nil, wrapDBErr(ctx, fmt.Errorf("store: connect %s: %w", t.dialect, err))
	}
	return rdb, wdb, nil
}

func closeBoth(rdb, wdb *sql.DB) error {
	err := wdb.Close()
	if rdb != wdb {
		err = errors.Join(err, rdb.Close())
	}
	return err
}

// Open opens (and migrates up) the database and the blob store, and
// reconciles blobs left by a crash with the index.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: Config.DataDir is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cfg.DataDir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t, err := parseTarget(cfg)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"blobs", "tmp", "conflicts", "quarantine"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("store: data directory: %w", err)
		}
	}
	if _, _, err := Migrate(ctx, cfg, "up"); err != nil {
		return nil, err
	}
	rdb, wdb, err := openSQL(ctx, t)
	if err != nil {
		return nil, err
	}
	db := &DB{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "store"),
		dialect: t.dialect,
		dir:     dir,
		rdb:     rdb,
		wdb:     wdb,
		now:     time.Now,
		closing: make(chan struct{}),
	}
	db.batch = make(chan *indexReq)
	db.wg.Add(1)
	go db.committer()
	if t.dialect == sqliteDialect {
		db.log.Info("index database: embedded SQLite", "path", t.dsn)
	} else {
		db.log.Info("index database: PostgreSQL", "url", redact(t.dsn))
	}
	rep, err := db.Reconcile(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if rep != (ReconcileReport{}) {
		db.log.Info("reconciled blob store with index", "report", rep)
	}
	return db, nil
}

// Close releases the database.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.closing)
		db.wg.Wait()
		db.closeErr = closeBoth(db.rdb, db.wdb)
	})
	return db.closeErr
}

// Ping checks the index database (readiness).
func (db *DB) Ping(ctx context.Context) error {
	if err := db.rdb.PingContext(ctx); err != nil {
		return wrapDBErr(ctx, fmt.Errorf("store: ping: %w", err))
	}
	return nil
}

// Migrate runs golang-migrate on the database of cfg: "up", "down" (one
// step) or "version"; it returns the version after the command.
func Migrate(ctx context.Context, cfg Config, cmd string) (version uint, dirty bool, err error) {
	switch cmd {
	case "up", "down", "version":
	default:
		return 0, false, fmt.Errorf("store: migrate: unknown command %q (want up, down or version)", cmd)
	}
	t, err := parseTarget(cfg)
	if err != nil {
		return 0, false, err
	}
	// golang-migrate closes the *sql.DB it is handed, so it gets its own.
	rdb, sdb, err := openSQL(ctx, t)
	if err != nil {
		return 0, false, err
	}
	if rdb != sdb {
		rdb.Close() // only the writer is needed
	}
	var (
		drv database.Driver
		dir string
	)
	switch t.dialect {
	case sqliteDialect:
		dir = "migrations/sqlite"
		drv, err = migratesqlite.WithInstance(sdb, &migratesqlite.Config{})
	case postgresDialect:
		dir = "migrations/postgres"
		drv, err = migratepgx.WithInstance(sdb, &migratepgx.Config{})
	}
	if err != nil {
		sdb.Close()
		return 0, false, wrapDBErr(ctx, fmt.Errorf("store: migrate: %w", err))
	}
	src, err := iofs.New(migrations, dir)
	if err != nil {
		drv.Close()
		return 0, false, fmt.Errorf("store: migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, t.dialect.String(), drv)
	if err != nil {
		drv.Close()
		return 0, false, fmt.Errorf("store: migrate: %w", err)
	}
	defer m.Close()
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()

	switch cmd {
	case "up":
		err = m.Up()
	case "down":
		err = m.Steps(-1)
	}
	if errors.Is(err, migrate.ErrNoChange) || errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return 0, false, wrapDBErr(ctx, fmt.Errorf("store: migrate %s: %w", cmd, err))
	}
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, wrapDBErr(ctx, fmt.Errorf("store: migrate version: %w", err))
	}
	return v, dirty, nil
}
