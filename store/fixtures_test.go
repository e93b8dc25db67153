package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
)

const ctHeadDir = "../../shared/dicom/ct-head-5mm"

// slice is one fixture file with what dicomio reads from it.
type slice struct {
	name string
	data []byte
	inst *dicomio.Instance
}

var (
	ctOnce   sync.Once
	ctSlices []slice
	ctBad    []slice // files that must be refused (DIRFILE)
	ctErr    error
)

// ctHead returns the 28 images of ct-head-5mm (in instance-number order)
// and the files that must be refused.
func ctHead(tb testing.TB) (images, refused []slice) {
	tb.Helper()
	ctOnce.Do(func() {
		ents, err := os.ReadDir(ctHeadDir)
		if err != nil {
			ctErr = err
			return
		}
		for _, e := range ents {
			if e.Name() == "LICENSE" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(ctHeadDir, e.Name()))
			if err != nil {
				ctErr = err
				return
			}
			inst, err := dicomio.ReadInstance(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				ctBad = append(ctBad, slice{name: e.Name(), data: data})
				continue
			}
			ctSlices = append(ctSlices, slice{name: e.Name(), data: data, inst: inst})
		}
		sort.Slice(ctSlices, func(i, j int) bool { return ctSlices[i].inst.InstanceNumber < ctSlices[j].inst.InstanceNumber })
	})
	if os.IsNotExist(ctErr) {
		tb.Skipf("fixtures absent: %v", ctErr)
	}
	if ctErr != nil {
		tb.Fatal(ctErr)
	}
	return ctSlices, ctBad
}

// newUID returns a random valid UID of exactly n characters (n >= 8).
func newUID(n int) string {
	const prefix = "2.25."
	digits := n - len(prefix)
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; i < digits; i++ {
		lo := int64(0)
		if i == 0 {
			lo = 1
		}
		d, _ := rand.Int(rand.Reader, big.NewInt(10-lo))
		b.WriteByte(byte('0' + lo + d.Int64()))
	}
	return b.String()
}

// uidMap rewrites UIDs consistently across a set of files: every study,
// series and SOP Instance UID gets a fresh one of the same length, so the
// element lengths (and the files' validity) do not change.
type uidMap map[string]string

func (m uidMap) rewrite(s slice) []byte {
	olds := []string{s.inst.StudyInstanceUID, s.inst.SeriesInstanceUID, s.inst.SOPInstanceUID}
	// Longest first, so that no UID is replaced inside a longer one.
	slices.SortFunc(olds, func(a, b string) int { return len(b) - len(a) })
	data := s.data
	for _, old := range olds {
		nu, ok := m[old]
		if !ok {
			nu = newUID(len(old))
			m[old] = nu
		}
		data = bytes.ReplaceAll(data, []byte(old), []byte(nu))
	}
	return data
}

// freshStudy returns copies of images under new UIDs (one new study).
func freshStudy(images []slice) [][]byte {
	m := uidMap{}
	out := make([][]byte, len(images))
	for i, s := range images {
		out[i] = m.rewrite(s)
	}
	return out
}

// testInstance is a synthetic parsed instance for the SQL layer.
func testInstance(study, series, sop string) *dicomio.Instance {
	return &dicomio.Instance{
		TransferSyntaxUID: "1.2.840.10008.1.2.1",
		SOPClassUID:       "1.2.840.10008.5.1.4.1.1.2",
		SOPInstanceUID:    sop,
		StudyInstanceUID:  study,
		SeriesInstanceUID: series,
		PatientID:         "P1",
		PatientName:       "DOE^JOHN",
		Modality:          "CT",
		SeriesNumber:      1,
		InstanceNumber:    1,
		Rows:              2,
		Columns:           2,
		NumberOfFrames:    1,
		BitsAllocated:     16,
	}
}

// indexSynthetic indexes inst without a blob (query and stability tests).
func indexSynthetic(t *testing.T, db *DB, inst *dicomio.Instance) {
	t.Helper()
	rel := blobRel(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID)
	if err := os.MkdirAll(filepath.Dir(db.abs(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	ok, err := db.index(context.Background(), inst, 10, "00", rel)
	if err != nil || !ok {
		t.Fatalf("index %s: inserted=%v err=%v", inst.SOPInstanceUID, ok, err)
	}
}

// Environments: each returns a Config for a fresh, empty archive.

func sqliteEnv(t testing.TB) Config {
	return Config{DataDir: t.TempDir(), Logger: quiet}
}

var quiet = slog.New(slog.DiscardHandler)

const defaultTestPG = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testPGURL() string {
	if u := os.Getenv("RADTRIAGE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestPG
}

// postgresEnv creates a schema of its own on the test server and drops it
// after the test. Without a server it skips, or fails under CI=true.
func postgresEnv(t testing.TB) Config {
	t.Helper()
	base := testPGURL()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s unreachable: %v", redact(base), err)
		}
		t.Skipf("PostgreSQL at %s unreachable (set RADTRIAGE_TEST_DATABASE_URL): %v", redact(base), err)
	}
	schema := "t_" + strings.ReplaceAll(newUID(21)[5:], ".", "")
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	v := u.Query()
	v.Set("search_path", schema)
	u.RawQuery = v.Encode()
	return Config{DatabaseURL: u.String(), DataDir: t.TempDir(), Logger: quiet}
}

// countFiles counts regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// must unwraps a result that a test expects to succeed; a failure panics
// with the error (and a stack pointing at the call).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

func uidN(prefix string, i int) string { return fmt.Sprintf("%s.%d", prefix, i+1) }
