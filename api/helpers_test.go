package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/store"
)

// fixtureDir is the folder sub of ../shared/dicom.
func fixtureDir(t *testing.T, sub string) string {
	t.Helper()
	return filepath.Join(testenv.SharedDICOM(t), sub)
}

// backend opens a fresh archive.
type backend struct {
	name string
	open func(t *testing.T) store.Archive
}

func backends() []backend {
	return []backend{
		{"sqlite", openSQLite},
		{"postgres", openPostgres},
	}
}

func openSQLite(t *testing.T) store.Archive {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), StableAge: time.Hour})
	if err != nil {
		t.Fatalf("store.Open(sqlite): %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPostgres opens the archive on RADTRIAGE_TEST_DATABASE_URL in a
// schema of its own (search_path), dropped at cleanup.
func openPostgres(t *testing.T) store.Archive {
	t.Helper()
	dsn := os.Getenv("RADTRIAGE_TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s unreachable under CI: %v", dsn, err)
		}
		t.Skipf("PostgreSQL at %s unreachable: %v", dsn, err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "api_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := store.Open(context.Background(), store.Config{DatabaseURL: u.String(), DataDir: t.TempDir(), StableAge: time.Hour})
	if err != nil {
		t.Fatalf("store.Open(postgres): %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// part is one part of a STOW-RS body.
type part struct {
	name string // for messages
	ct   string
	body []byte
}

func filePart(t *testing.T, path string) part {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return part{name: path, ct: dicomio.MediaTypeDICOM, body: b}
}

// multipartBody builds a STOW-RS body and its Content-Type.
func multipartBody(t *testing.T, parts []part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := dicomio.NewMultipartWriter(&buf, dicomio.MediaTypeDICOM)
	for _, p := range parts {
		pw, err := w.CreatePart(p.ct, "")
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(p.body)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.ContentType()
}

func do(t *testing.T, h http.Handler, method, target string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func stow(t *testing.T, h http.Handler, target string, parts []part) (*httptest.ResponseRecorder, jsonDS) {
	t.Helper()
	body, ct := multipartBody(t, parts)
	rec := do(t, h, http.MethodPost, target, bytes.NewReader(body), "Content-Type", ct, "Accept", "application/dicom+json")
	return rec, decodeDS(t, rec)
}

func decodeDS(t *testing.T, rec *httptest.ResponseRecorder) jsonDS {
	t.Helper()
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/dicom+json") {
		return nil
	}
	var ds jsonDS
	if err := json.Unmarshal(rec.Body.Bytes(), &ds); err != nil {
		t.Fatalf("response is not a DICOM JSON object: %v\n%s", err, rec.Body)
	}
	return ds
}

// jsonDS is a decoded DICOM JSON object.
type jsonDS map[string]jsonAttr

type jsonAttr struct {
	VR          string            `json:"vr"`
	Value       []json.RawMessage `json:"Value"`
	BulkDataURI string            `json:"BulkDataURI"`
}

func (d jsonDS) str(tag string) string {
	a, ok := d[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(a.Value[0], &s); err != nil {
		var pn struct{ Alphabetic string }
		if json.Unmarshal(a.Value[0], &pn) == nil {
			return pn.Alphabetic
		}
		return string(a.Value[0])
	}
	return s
}

func (d jsonDS) num(tag string) int {
	a, ok := d[tag]
	if !ok || len(a.Value) == 0 {
		return -1
	}
	n, err := strconv.Atoi(string(a.Value[0]))
	if err != nil {
		return -2
	}
	return n
}

func (d jsonDS) items(tag string) []jsonDS {
	a, ok := d[tag]
	if !ok {
		return nil
	}
	var out []jsonDS
	for _, v := range a.Value {
		var it jsonDS
		json.Unmarshal(v, &it)
		out = append(out, it)
	}
	return out
}

// localPath turns an absolute RetrieveURL of the test server into a path.
func localPath(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Host != "example.com" {
		t.Fatalf("RetrieveURL %q is not an absolute URL of the server", u)
	}
	return p.EscapedPath()
}

// readMultipart splits a WADO-RS response into its parts.
func readMultipart(t *testing.T, rec *httptest.ResponseRecorder, wantType string) (types []string, bodies [][]byte, locations []string) {
	t.Helper()
	ct := rec.Header().Get("Content-Type")
	if !strings.Contains(ct, `type="`+wantType+`"`) {
		t.Fatalf("Content-Type %q, want multipart/related; type=%q", ct, wantType)
	}
	// dicomio's reader refuses non-DICOM roots; split octet-streams by
	// presenting them as DICOM (parts keep their own types).
	mr, err := dicomio.NewMultipartReader(rec.Body, strings.Replace(ct, wantType, dicomio.MediaTypeDICOM, 1))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, p.ContentType)
		bodies = append(bodies, b)
		locations = append(locations, p.Location)
	}
}
