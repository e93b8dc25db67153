package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/volume"
)

func TestTriageSQLite(t *testing.T)   { runTriageSuite(t, sqliteEnv) }
func TestTriagePostgres(t *testing.T) { runTriageSuite(t, postgresEnv) }

// triageResult is a triage.Result as the ensemble makes one: findings,
// scores and, when lesions > 0, a label mask on a small grid with that
// many voxels of label 1 (ICH) and seed of label 2 (SDH).
func triageResult(study, series string, lesions, seed int) *triage.Result {
	key := 3
	r := &triage.Result{
		StudyUID:  study,
		SeriesUID: series,
		Scores:    map[string]float64{"ich": 0.5 + float64(seed)/100, "sdh": 0.25},
		Tier:      "routine",
		TimingsMS: triage.Timings{Assemble: 12.5, Total: 340.25},
		Models:    []string{"ich-seg@0.1.0", "ich-cls@0.1.0"},
	}
	if lesions == 0 {
		return r
	}
	r.Tier = "critical"
	r.Findings = []triage.Finding{{
		Code: "ich", Label: "Intracranial haemorrhage", Probability: 0.5 + float64(seed)/100,
		Tier: "critical", VolumeML: float64(lesions) * 0.4, Lesions: 1,
		CentroidLPS: &[3]float64{1.5, -20.25, 33}, KeySlice: &key,
		ModelVersions: []string{"ich-seg@0.1.0", "ich-cls@0.1.0"},
	}}
	m := &volume.Volume{
		Size:    [4]int{16, 12, 6, 1},
		Spacing: [3]float64{0.5, 0.5, 5},
		Origin:  [3]float64{-4, -3, 10},
		Axes:    [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
		Stored:  make([]int16, 16*12*6),
		Slope:   1, StoredSigned: true, StoredBits: 16,
	}
	for i := 0; i < lesions; i++ {
		m.Stored[(i*7+seed)%len(m.Stored)] = 1
	}
	for i := 0; i < seed; i++ {
		m.Stored[len(m.Stored)-1-i] = 2
	}
	r.Mask, r.MaskCodes = m, []string{"ich", "sdh"}
	return r
}

func storedResult(t *testing.T, r *triage.Result, at time.Time) triage.StoredResult {
	t.Helper()
	s, err := r.Stored(at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// maskFiles lists the mask files of a study (relative, slash-separated).
func maskFiles(t *testing.T, dir, study string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "masks", study))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, "masks/"+study+"/"+e.Name())
	}
	return out
}

// labelCounts decodes a .nii.gz mask and counts its voxels by label.
func labelCounts(t *testing.T, nii []byte) map[float32]int {
	t.Helper()
	v, err := volume.ReadNIfTI(bytes.NewReader(nii))
	if err != nil {
		t.Fatalf("stored mask does not decode: %v", err)
	}
	n := map[float32]int{}
	for _, x := range v.Values() {
		n[x]++
	}
	return n
}

// runTriageSuite checks the store as triage.ResultStore on one database.
func runTriageSuite(t *testing.T, env func(testing.TB) Config) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	open := func(t *testing.T, cfg Config) *DB {
		t.Helper()
		db, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.now = func() time.Time { return t0.Add(time.Hour) }
		return db
	}
	fresh := func(t *testing.T) (*DB, Config) {
		cfg := env(t)
		return open(t, cfg), cfg
	}
	const (
		study  = "1.2.826.0.1.3680043.8.498.1"
		series = "1.2.826.0.1.3680043.8.498.1.2"
	)
	var rs triage.ResultStore // the interface, as the triage worker sees the store

	t.Run("RoundTrip", func(t *testing.T) {
		db, cfg := fresh(t)
		rs = db
		res := triageResult(study, series, 40, 3)
		want := storedResult(t, res, t0)
		if len(want.Mask) == 0 || len(want.JSON) == 0 {
			t.Fatalf("Result.Stored gave no mask or no JSON: %d, %d bytes", len(want.Mask), len(want.JSON))
		}
		if err := rs.SaveTriageResult(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := rs.TriageResult(ctx, study)
		if err != nil {
			t.Fatal(err)
		}
		if got.StudyUID != study || got.SeriesUID != series || got.Tier != "critical" || !got.At.Equal(t0) {
			t.Errorf("got %s %s %s %v, want %s %s critical %v", got.StudyUID, got.SeriesUID, got.Tier, got.At, study, series, t0)
		}
		if !bytes.Equal(got.JSON, want.JSON) {
			t.Errorf("JSON changed:\n got %s\nwant %s", got.JSON, want.JSON)
		}
		if !bytes.Equal(got.Mask, want.Mask) {
			t.Errorf("mask changed: %d bytes back, %d saved", len(got.Mask), len(want.Mask))
		}
		var back triage.Result
		if err := json.Unmarshal(got.JSON, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Findings, res.Findings) || !reflect.DeepEqual(back.Scores, res.Scores) {
			t.Errorf("findings back: %+v %v\nwant %+v %v", back.Findings, back.Scores, res.Findings, res.Scores)
		}
		if n := labelCounts(t, got.Mask); n[1] != 40 || n[2] != 3 || n[0] != 16*12*6-43 {
			t.Errorf("mask labels back: %v, want 40 of 1 and 3 of 2", n)
		}
		files := maskFiles(t, cfg.DataDir, study)
		if len(files) != 1 {
			t.Fatalf("mask files %v, want one", files)
		}
		if onDisk := must(os.ReadFile(filepath.Join(cfg.DataDir, files[0]))); !bytes.Equal(onDisk, want.Mask) {
			t.Error("the mask file holds other bytes")
		}
		// The row: JSON that the database reads as JSON (text, not a
		// blob), the mask file named, the write time.
		q := `SELECT json_extract(result, '$.tier'), mask_path, updated_at FROM triage_results WHERE study_uid = ?`
		if db.dialect == postgresDialect {
			q = `SELECT result->>'tier', mask_path, updated_at FROM triage_results WHERE study_uid = ?`
		}
		var (
			tier, path string
			updated    int64
		)
		if err := db.rdb.QueryRow(db.dialect.q(q), study).Scan(&tier, &path, &updated); err != nil {
			t.Fatal(err)
		}
		if tier != "critical" || path != files[0] || updated != t0.Add(time.Hour).UnixMicro() {
			t.Errorf("row: tier %q, mask %q, updated %d; want critical, %s, %d", tier, path, updated, files[0], t0.Add(time.Hour).UnixMicro())
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "tmp")); n != 0 {
			t.Errorf("%d temp files left", n)
		}
		// The archive's own reconciliation must leave masks alone.
		rep, err := db.Reconcile(ctx)
		if err != nil || rep != (ReconcileReport{}) {
			t.Errorf("Reconcile with a mask stored: %+v, %v", rep, err)
		}
		if _, err := db.TriageResult(ctx, study); err != nil {
			t.Errorf("after Reconcile: %v", err)
		}
	})

	t.Run("ExactJSON", func(t *testing.T) {
		db, _ := fresh(t)
		// Key order, spacing, escapes and number spelling that a JSONB
		// column would normalise.
		js := []byte(`{ "tier": "urgent",  "study_uid": "` + study + `", "b": [1.50, 2e3, -0],` +
			"\n\t" + `"a": {"z": "\u00e9\"", "y": null}, "b": "duplicate key" }`)
		if err := db.SaveTriageResult(ctx, triage.StoredResult{StudyUID: study, SeriesUID: series,
			Tier: "urgent", JSON: js, At: t0}); err != nil {
			t.Fatal(err)
		}
		got := must(db.TriageResult(ctx, study))
		if !bytes.Equal(got.JSON, js) {
			t.Errorf("JSON changed:\n got %s\nwant %s", got.JSON, js)
		}
	})

	t.Run("NilMask", func(t *testing.T) {
		db, cfg := fresh(t)
		res := triageResult(study, "", 0, 0)
		want := storedResult(t, res, t0)
		if want.Mask != nil {
			t.Fatal("a result without findings has a mask")
		}
		if err := db.SaveTriageResult(ctx, want); err != nil {
			t.Fatal(err)
		}
		got := must(db.TriageResult(ctx, study))
		if got.Mask != nil || got.Tier != "routine" || got.SeriesUID != "" || !bytes.Equal(got.JSON, want.JSON) {
			t.Errorf("got %+v", got)
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "masks")); n != 0 {
			t.Errorf("%d mask files for a result without a mask", n)
		}
	})

	t.Run("Replace", func(t *testing.T) {
		db, cfg := fresh(t)
		first := storedResult(t, triageResult(study, series, 40, 3), t0)
		if err := db.SaveTriageResult(ctx, first); err != nil {
			t.Fatal(err)
		}
		firstFiles := maskFiles(t, cfg.DataDir, study)

		// A later run with another mask, at a time in another zone with
		// nanoseconds: kept to the microsecond, in UTC.
		at := t0.Add(time.Minute + 789*time.Nanosecond).In(time.FixedZone("X", 7200))
		second := storedResult(t, triageResult(study, series+".9", 7, 5), at)
		second.At = at
		if err := db.SaveTriageResult(ctx, second); err != nil {
			t.Fatal(err)
		}
		got := must(db.TriageResult(ctx, study))
		if !bytes.Equal(got.JSON, second.JSON) || !bytes.Equal(got.Mask, second.Mask) ||
			got.SeriesUID != series+".9" || !got.At.Equal(at.Truncate(time.Microsecond)) || got.At.Location() != time.UTC {
			t.Errorf("after replacing: %s %s %v, want the second result at %v", got.SeriesUID, got.JSON, got.At, at)
		}
		if n := labelCounts(t, got.Mask); n[1] != 7 || n[2] != 5 {
			t.Errorf("mask labels: %v", n)
		}
		files := maskFiles(t, cfg.DataDir, study)
		if len(files) != 1 || len(firstFiles) != 1 || files[0] == firstFiles[0] {
			t.Fatalf("mask files: %v before, %v after; want one each, different", firstFiles, files)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, firstFiles[0])); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("replaced mask %s still there: %v", firstFiles[0], err)
		}

		// The same mask again: a file of its own, the old one gone.
		if err := db.SaveTriageResult(ctx, second); err != nil {
			t.Fatal(err)
		}
		again := maskFiles(t, cfg.DataDir, study)
		if len(again) != 1 || again[0] == files[0] {
			t.Errorf("mask files after saving the same mask: %v (before %v)", again, files)
		}

		// A run without a mask removes the mask.
		third := storedResult(t, triageResult(study, series, 0, 0), t0.Add(2*time.Minute))
		if err := db.SaveTriageResult(ctx, third); err != nil {
			t.Fatal(err)
		}
		got = must(db.TriageResult(ctx, study))
		if got.Mask != nil || got.Tier != "routine" || !bytes.Equal(got.JSON, third.JSON) {
			t.Errorf("after a run without findings: %+v", got)
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 0 {
			t.Errorf("mask files left: %v", files)
		}

		// Other studies are untouched.
		other := storedResult(t, triageResult(study+"0", series, 4, 1), t0)
		if err := db.SaveTriageResult(ctx, other); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveTriageResult(ctx, first); err != nil {
			t.Fatal(err)
		}
		if got := must(db.TriageResult(ctx, study+"0")); !bytes.Equal(got.Mask, other.Mask) {
			t.Error("another study's result changed")
		}
		var n int
		if err := db.rdb.QueryRow(`SELECT COUNT(*) FROM triage_results`).Scan(&n); err != nil || n != 2 {
			t.Errorf("%d rows (%v), want 2", n, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		db, _ := fresh(t)
		if err := db.SaveTriageResult(ctx, storedResult(t, triageResult(study, series, 3, 1), t0)); err != nil {
			t.Fatal(err)
		}
		_, err := db.TriageResult(ctx, study+"1")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown study: %v, want ErrNotFound", err)
		}
		_, err = db.TriageResult(ctx, "../"+study)
		if !errors.Is(err, ErrInvalidResult) || errors.Is(err, ErrNotFound) {
			t.Errorf("invalid study UID: %v, want ErrInvalidResult", err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		db, cfg := fresh(t)
		good := storedResult(t, triageResult(study, series, 5, 2), t0)
		long := "1." + strings.Repeat("2", 63)
		for _, tt := range []struct {
			name string
			edit func(*triage.StoredResult)
			msg  string
		}{
			{"NoStudy", func(r *triage.StoredResult) { r.StudyUID = "" }, "invalid study UID"},
			{"LongStudy", func(r *triage.StoredResult) { r.StudyUID = long }, "invalid study UID"},
			{"PathStudy", func(r *triage.StoredResult) { r.StudyUID = "../../etc" }, "invalid study UID"},
			{"SlashStudy", func(r *triage.StoredResult) { r.StudyUID = "1.2/3" }, "invalid study UID"},
			{"LetterStudy", func(r *triage.StoredResult) { r.StudyUID = "1.2.abc" }, "invalid study UID"},
			{"LeadingZero", func(r *triage.StoredResult) { r.StudyUID = "1.02.3" }, "invalid study UID"},
			{"BadSeries", func(r *triage.StoredResult) { r.SeriesUID = "1..2" }, "invalid series UID"},
			{"NoTier", func(r *triage.StoredResult) { r.Tier = "" }, "unknown tier"},
			{"BadTier", func(r *triage.StoredResult) { r.Tier = "whenever" }, "unknown tier"},
			{"NoJSON", func(r *triage.StoredResult) { r.JSON = nil }, "no JSON"},
			{"BlankJSON", func(r *triage.StoredResult) { r.JSON = []byte(" \n") }, "no JSON"},
			{"CutJSON", func(r *triage.StoredResult) { r.JSON = r.JSON[:len(r.JSON)/2] }, "JSON is not valid"},
			{"TwoValues", func(r *triage.StoredResult) { r.JSON = []byte(`{} {}`) }, "JSON is not valid"},
			{"NotUTF8", func(r *triage.StoredResult) { r.JSON = []byte("{\"a\": \"\xff\"}") }, "UTF-8"},
			{"Array", func(r *triage.StoredResult) { r.JSON = []byte(`[1, 2]`) }, "not an object"},
			{"Null", func(r *triage.StoredResult) { r.JSON = []byte(` null`) }, "not an object"},
			{"WrongType", func(r *triage.StoredResult) { r.JSON = []byte(`{"study_uid": 7}`) }, "JSON: "},
			{"OtherStudy", func(r *triage.StoredResult) {
				r.JSON = bytes.Replace(r.JSON, []byte(study), []byte(study+"7"), 1)
			}, "result of study"},
			{"EmptyMask", func(r *triage.StoredResult) { r.Mask = []byte{} }, "empty mask"},
			{"NotGzip", func(r *triage.StoredResult) { r.Mask = bytes.Repeat([]byte("nifti"), 100) }, "not gzip"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := good
				r.JSON = bytes.Clone(good.JSON)
				tt.edit(&r)
				err := db.SaveTriageResult(ctx, r)
				if !errors.Is(err, ErrInvalidResult) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("got %v, want ErrInvalidResult saying %q", err, tt.msg)
				}
			})
		}
		var n int
		if err := db.rdb.QueryRow(`SELECT COUNT(*) FROM triage_results`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d rows after bad input (%v)", n, err)
		}
		for _, sub := range []string{"masks", "tmp"} {
			if n := countFiles(t, filepath.Join(cfg.DataDir, sub)); n != 0 {
				t.Errorf("%d files in %s after bad input", n, sub)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "etc")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a path came out of a hostile UID: %v", err)
		}

		// A bad save leaves the study's result as it was.
		if err := db.SaveTriageResult(ctx, good); err != nil {
			t.Fatal(err)
		}
		bad := good
		bad.JSON = []byte(`{"study_uid":`)
		bad.Mask = triageMask(t, 9)
		if err := db.SaveTriageResult(ctx, bad); !errors.Is(err, ErrInvalidResult) {
			t.Fatalf("got %v", err)
		}
		got := must(db.TriageResult(ctx, study))
		if !bytes.Equal(got.JSON, good.JSON) || !bytes.Equal(got.Mask, good.Mask) {
			t.Error("a refused save changed the stored result")
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 1 {
			t.Errorf("mask files %v, want one", files)
		}
	})

	t.Run("FailedWrite", func(t *testing.T) {
		// A row that cannot be written leaves no mask file behind and the
		// earlier result in place.
		db, cfg := fresh(t)
		first := storedResult(t, triageResult(study, series, 6, 1), t0)
		if err := db.SaveTriageResult(ctx, first); err != nil {
			t.Fatal(err)
		}
		trigger := `CREATE TRIGGER triage_block BEFORE UPDATE ON triage_results
			BEGIN SELECT RAISE(ABORT, 'blocked by test'); END`
		if db.dialect == postgresDialect {
			if _, err := db.wdb.Exec(`CREATE FUNCTION triage_block() RETURNS trigger LANGUAGE plpgsql
				AS $$ BEGIN RAISE EXCEPTION 'blocked by test'; END $$`); err != nil {
				t.Fatal(err)
			}
			trigger = `CREATE TRIGGER triage_block BEFORE UPDATE ON triage_results
				FOR EACH ROW EXECUTE FUNCTION triage_block()`
		}
		if _, err := db.wdb.Exec(trigger); err != nil {
			t.Fatal(err)
		}
		second := storedResult(t, triageResult(study, series, 9, 2), t0.Add(time.Minute))
		err := db.SaveTriageResult(ctx, second)
		if err == nil || !strings.Contains(err.Error(), "blocked by test") {
			t.Fatalf("save with the row blocked: %v", err)
		}
		got := must(db.TriageResult(ctx, study))
		if !bytes.Equal(got.Mask, first.Mask) || !bytes.Equal(got.JSON, first.JSON) {
			t.Error("a failed save changed the stored result")
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 1 {
			t.Errorf("mask files %v, want only the first result's", files)
		}
	})

	t.Run("CorruptMask", func(t *testing.T) {
		db, cfg := fresh(t)
		if err := db.SaveTriageResult(ctx, storedResult(t, triageResult(study, series, 6, 1), t0)); err != nil {
			t.Fatal(err)
		}
		files := maskFiles(t, cfg.DataDir, study)
		p := filepath.Join(cfg.DataDir, files[0])
		data := must(os.ReadFile(p))
		data[len(data)/2] ^= 1
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := db.TriageResult(ctx, study); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("corrupt mask read back: %v", err)
		}
		os.Remove(p)
		if _, err := db.TriageResult(ctx, study); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("missing mask file: %v, want an error other than ErrNotFound", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Saves of one study racing each other: whichever wins, the row
		// names an intact file and no other file is left.
		db, cfg := fresh(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := triageResult(study, series, 10+i, i+1).Stored(t0.Add(time.Duration(i) * time.Second))
				if err == nil {
					err = db.SaveTriageResult(ctx, r)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		got := must(db.TriageResult(ctx, study))
		var back triage.Result
		if err := json.Unmarshal(got.JSON, &back); err != nil {
			t.Fatal(err)
		}
		lesions := int(back.Findings[0].VolumeML/0.4 + 0.5)
		if n := labelCounts(t, got.Mask); n[1] != lesions {
			t.Errorf("the mask (%v) is not the one of the JSON (%d lesions)", n, lesions)
		}
		if files := maskFiles(t, cfg.DataDir, study); len(files) != 1 {
			t.Errorf("mask files %v, want one", files)
		}
	})

	t.Run("Migrate", func(t *testing.T) {
		cfg := env(t)
		db := open(t, cfg)
		old := storedResult(t, triageResult(study, series, 5, 1), t0)
		if err := db.SaveTriageResult(ctx, old); err != nil {
			t.Fatal(err)
		}
		oldFiles := maskFiles(t, cfg.DataDir, study)
		db.Close()
		for _, step := range []struct {
			cmd  string
			want uint
		}{{"version", 4}, {"down", 3}, {"down", 2}, {"version", 2}, {"up", 4}} {
			v, dirty, err := Migrate(ctx, cfg, step.cmd)
			if err != nil || dirty || v != step.want {
				t.Fatalf("migrate %s: %d %v %v, want %d", step.cmd, v, dirty, err, step.want)
			}
		}
		db = open(t, cfg)
		if _, err := db.TriageResult(ctx, study); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after down and up: %v, want ErrNotFound", err)
		}
		nu := storedResult(t, triageResult(study, series, 8, 2), t0.Add(time.Minute))
		if err := db.SaveTriageResult(ctx, nu); err != nil {
			t.Fatal(err)
		}
		if got := must(db.TriageResult(ctx, study)); !bytes.Equal(got.Mask, nu.Mask) {
			t.Error("the result saved after down and up does not come back")
		}
		// The mask of the dropped row is an orphan: young, it stays;
		// old, it goes, and the one a row names stays.
		if n, err := db.PruneTriageMasks(ctx); n != 0 || err != nil {
			t.Errorf("PruneTriageMasks removed %d young files (%v)", n, err)
		}
		if n, err := db.pruneTriageMasks(ctx, time.Now().Add(time.Hour)); n != 1 || err != nil {
			t.Errorf("pruneTriageMasks removed %d files (%v), want 1", n, err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, oldFiles[0])); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s still there: %v", oldFiles[0], err)
		}
		if got := must(db.TriageResult(ctx, study)); !bytes.Equal(got.Mask, nu.Mask) {
			t.Error("pruning removed a mask a result names")
		}
	})
}

// triageMask is a valid .nii.gz mask of a result with n lesion voxels.
func triageMask(t *testing.T, n int) []byte {
	t.Helper()
	m, err := triageResult("1.2.3", "1.2.3.4", n, 1).MaskNIfTI()
	if err != nil {
		t.Fatal(fmt.Errorf("MaskNIfTI: %w", err))
	}
	return m
}
