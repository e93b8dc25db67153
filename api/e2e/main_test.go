package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	serverBin      string
	serverBuildErr error
	buildOnce      sync.Once
	buildDir       string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test, or fails it under CI=true.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// serverBinary builds ./cmd/radtriage once per test run, or returns
// RADTRIAGE_E2E_BIN when set (a binary built beforehand).
func serverBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("RADTRIAGE_E2E_BIN"); bin != "" {
			serverBin = bin
			return
		}
		var err error
		buildDir, err = os.MkdirTemp("", "radtriage-e2e-bin-")
		if err != nil {
			serverBuildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		serverBin, serverBuildErr = BuildServer(ctx, buildDir)
	})
	if serverBuildErr != nil {
		t.Fatalf("build radtriage: %v", serverBuildErr)
	}
	return serverBin
}

// series loads ../shared/dicom/<name>.
func series(t testing.TB, name string) []Instance {
	t.Helper()
	dir, err := FixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(dir, name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		skipOrFail(t, "fixtures absent: %s", dir)
	}
	s, err := LoadSeries(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// backend is one index database variant.
type backend struct {
	name string
	url  func(t *testing.T) string // "" for SQLite
}

var backends = []backend{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", pgSchemaURL},
}

// pgSchemaURL makes a fresh schema for t and drops it afterwards.
func pgSchemaURL(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "e2e_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	u, drop, err := CreateSchema(ctx, TestDatabaseURL(), prefix)
	if err != nil {
		skipOrFail(t, "PostgreSQL unavailable (RADTRIAGE_TEST_DATABASE_URL): %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return u
}

// server is a running radtriage with its data directory and client.
type server struct {
	*Process
	dataDir string
	dbURL   string
	client  *Client
}

// startServer starts radtriage on a fresh data dir (or dataDir if set) and
// stops it when the test ends; the log tail is printed if the test failed.
func startServer(t *testing.T, dbURL, dataDir string) *server {
	t.Helper()
	bin := serverBinary(t)
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := StartServer(ctx, ServerOptions{
		Bin: bin, DataDir: dataDir, DatabaseURL: dbURL,
		LogPath: filepath.Join(t.TempDir(), "radtriage.log"),
	})
	if err != nil {
		t.Fatalf("start radtriage: %v", err)
	}
	s := &server{Process: p, dataDir: dataDir, dbURL: dbURL,
		client: &Client{Root: p.DICOMweb(), HTTP: httpClient(2 * time.Minute)}}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			if exited, _ := p.Exited(); !exited || !strings.Contains(err.Error(), "signal: killed") {
				t.Logf("stop radtriage: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("radtriage log tail (%s):\n%s", p.LogPath, p.LogTail(60))
		}
	})
	return s
}

// restart starts a new process on the same data dir and database.
func (s *server) restart(t *testing.T) *server {
	t.Helper()
	return startServer(t, s.dbURL, s.dataDir)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// studyCounts returns NumberOfStudyRelatedInstances per study from QIDO-RS.
func studyCounts(ctx context.Context, c *Client) (map[string]int, error) {
	ds, err := c.Query(ctx, "/studies?includefield=00201208")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, d := range ds {
		uid := d.String("0020000D")
		if uid == "" {
			return nil, fmt.Errorf("QIDO-RS study without 0020000D: %v", d)
		}
		out[uid] = d.Int("00201208")
	}
	return out, nil
}

// checkIndexMatchesBlobs compares QIDO-RS instance counts per study with the
// distinct SOP Instance UIDs found under DATA/blobs, and that no SOP has
// two blobs.
func checkIndexMatchesBlobs(t *testing.T, ctx context.Context, s *server) (map[string]int, *BlobScan) {
	t.Helper()
	counts, err := studyCounts(ctx, s.client)
	if err != nil {
		t.Fatalf("QIDO-RS /studies: %v", err)
	}
	scan, err := ScanBlobs(filepath.Join(s.dataDir, "blobs"))
	if err != nil {
		t.Fatalf("scan blobs: %v", err)
	}
	for sop, paths := range scan.BySOP {
		if len(paths) != 1 {
			t.Errorf("SOP %s has %d blobs: %v", sop, len(paths), paths)
		}
	}
	if len(scan.Other) > 0 {
		t.Logf("%d non-instance files under blobs/ (temporary or aside): %v", len(scan.Other), head(scan.Other, 5))
	}
	onDisk := scan.PerStudy()
	for study, n := range onDisk {
		if counts[study] != n {
			t.Errorf("study %s: QIDO-RS NumberOfStudyRelatedInstances %d, blobs on disk %d", study, counts[study], n)
		}
	}
	for study, n := range counts {
		if _, ok := onDisk[study]; !ok {
			t.Errorf("study %s: QIDO-RS reports %d instances, no blobs on disk", study, n)
		}
	}
	return counts, scan
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
