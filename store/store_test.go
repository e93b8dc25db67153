package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
)

func TestSQLite(t *testing.T)   { runArchiveSuite(t, sqliteEnv) }
func TestPostgres(t *testing.T) { runArchiveSuite(t, postgresEnv) }

// runArchiveSuite is the one conformance suite of the archive, run on
// every database. env returns the Config of a fresh, empty archive.
func runArchiveSuite(t *testing.T, env func(testing.TB) Config) {
	open := func(t *testing.T, cfg Config) *DB {
		t.Helper()
		db, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	fresh := func(t *testing.T) (*DB, Config) {
		cfg := env(t)
		return open(t, cfg), cfg
	}
	ctx := context.Background()

	t.Run("StoreSeries", func(t *testing.T) {
		images, refused := ctHead(t)
		db, cfg := fresh(t)
		if len(images) != 28 || len(refused) != 1 {
			t.Fatalf("fixture: %d images, %d refused; want 28, 1", len(images), len(refused))
		}
		for _, s := range images {
			res, err := db.Store(ctx, bytes.NewReader(s.data), StoreOptions{})
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			sum := sha256.Sum256(s.data)
			if res.Outcome != Stored || res.Size != int64(len(s.data)) || res.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("%s: outcome %v size %d sha %s", s.name, res.Outcome, res.Size, res.SHA256)
			}
		}
		_, err := db.Store(ctx, bytes.NewReader(refused[0].data), StoreOptions{})
		if dicomio.AsReject(err) == nil {
			t.Fatalf("DIRFILE: got %v, want a *dicomio.RejectError", err)
		}

		study := images[0].inst.StudyInstanceUID
		studies := must(db.FindStudies(ctx, Query{}))
		if len(studies) != 1 {
			t.Fatalf("%d studies, want 1", len(studies))
		}
		st := studies[0]
		if st.StudyInstanceUID != study || st.NumSeries != 1 || st.NumInstances != 28 ||
			!slices.Equal(st.ModalitiesInStudy, []string{"CT"}) || st.Stable ||
			st.StudyDate != images[0].inst.StudyDate || st.PatientName != images[0].inst.PatientName {
			t.Errorf("study row: %+v", st)
		}
		if st.FirstReceived.IsZero() || st.LastReceived.Before(st.FirstReceived) {
			t.Errorf("received times: %v %v", st.FirstReceived, st.LastReceived)
		}
		series := must(db.FindSeries(ctx, Query{StudyInstanceUIDs: []string{study}}))
		if len(series) != 1 || series[0].NumInstances != 28 || series[0].Modality != "CT" ||
			series[0].Study.NumInstances != 28 {
			t.Fatalf("series: %+v", series)
		}
		recs := must(db.FindInstances(ctx, Query{SeriesInstanceUIDs: []string{series[0].SeriesInstanceUID}}))
		if len(recs) != 28 {
			t.Fatalf("%d instances, want 28", len(recs))
		}
		for i, r := range recs {
			want := images[i].inst
			if r.SOPInstanceUID != want.SOPInstanceUID || r.InstanceNumber != want.InstanceNumber ||
				r.Rows != want.Rows || r.Columns != want.Columns || r.BitsAllocated != want.BitsAllocated ||
				r.TransferSyntaxUID != want.TransferSyntaxUID ||
				!slices.Equal(r.ImagePositionPatient, want.ImagePositionPatient) ||
				!slices.Equal(r.ImageOrientationPatient, want.ImageOrientationPatient) ||
				!slices.Equal(r.PixelSpacing, want.PixelSpacing) || r.SliceThickness != want.SliceThickness ||
				r.RescaleSlope != want.RescaleSlope || r.RescaleIntercept != want.RescaleIntercept ||
				r.Series.Study.StudyInstanceUID != study {
				t.Fatalf("instance %d: %+v\nwant %+v", i, r, want)
			}
		}
		rc := must(db.Open(ctx, recs[3]))
		got := must(io.ReadAll(rc))
		rc.Close()
		if !bytes.Equal(got, images[3].data) {
			t.Error("Open returned other bytes than were stored")
		}
		if _, err := db.Open(ctx, InstanceRecord{SOPInstanceUID: "1.2.3.4"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open of unknown instance: %v, want ErrNotFound", err)
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "tmp")); n != 0 {
			t.Errorf("%d temp files left", n)
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "blobs")); n != 28 {
			t.Errorf("%d blobs, want 28", n)
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		images, _ := ctHead(t)
		db, cfg := fresh(t)
		s := images[5]
		for i, want := range []Outcome{Stored, AlreadyStored, AlreadyStored} {
			res, err := db.Store(ctx, bytes.NewReader(s.data), StoreOptions{})
			if err != nil || res.Outcome != want {
				t.Fatalf("store #%d: %v %v, want %v", i, res, err, want)
			}
		}
		st := must(db.FindStudies(ctx, Query{}))
		if len(st) != 1 || st[0].NumInstances != 1 || st[0].NumSeries != 1 {
			t.Errorf("counts after duplicates: %+v", st)
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "blobs")); n != 1 {
			t.Errorf("%d blobs, want 1", n)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		images, _ := ctHead(t)
		db, cfg := fresh(t)
		s := images[7]
		changed := bytes.Clone(s.data)
		changed[len(changed)-1] ^= 0x55 // one pixel byte
		must(db.Store(ctx, bytes.NewReader(s.data), StoreOptions{}))
		for range 2 {
			res, err := db.Store(ctx, bytes.NewReader(changed), StoreOptions{})
			if err != nil || res.Outcome != Conflict {
				t.Fatalf("different bytes under the same UID: %v %v, want Conflict", res, err)
			}
		}
		rc := must(db.Open(ctx, InstanceRecord{SOPInstanceUID: s.inst.SOPInstanceUID}))
		got := must(io.ReadAll(rc))
		rc.Close()
		if !bytes.Equal(got, s.data) {
			t.Error("the first version must be the one served")
		}
		sum := sha256.Sum256(changed)
		aside := filepath.Join(cfg.DataDir, "conflicts", s.inst.SOPInstanceUID, hex.EncodeToString(sum[:])+".dcm")
		if kept, err := os.ReadFile(aside); err != nil || !bytes.Equal(kept, changed) {
			t.Errorf("conflicting bytes not kept aside at %s: %v", aside, err)
		}
		var n int
		if err := db.rdb.QueryRow(`SELECT COUNT(*) FROM instance_conflicts`).Scan(&n); err != nil || n != 1 {
			t.Errorf("instance_conflicts rows: %d %v, want 1", n, err)
		}
		if st := must(db.FindStudies(ctx, Query{})); st[0].NumInstances != 1 {
			t.Errorf("NumInstances %d after conflict, want 1", st[0].NumInstances)
		}
	})

	t.Run("StudyMismatch", func(t *testing.T) {
		images, _ := ctHead(t)
		db, cfg := fresh(t)
		_, err := db.Store(ctx, bytes.NewReader(images[0].data), StoreOptions{Study: "1.2.3.4.5"})
		if r := dicomio.AsReject(err); r == nil || r.Code != dicomio.ReasonStudyMismatch ||
			r.SOPInstanceUID != images[0].inst.SOPInstanceUID {
			t.Fatalf("got %v, want a study-mismatch refusal", err)
		}
		res, err := db.Store(ctx, bytes.NewReader(images[0].data), StoreOptions{Study: images[0].inst.StudyInstanceUID})
		if err != nil || res.Outcome != Stored {
			t.Fatalf("matching study: %v %v", res, err)
		}
		if n := countFiles(t, filepath.Join(cfg.DataDir, "blobs")); n != 1 {
			t.Errorf("%d blobs, want 1", n)
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		images, _ := ctHead(t)
		db, cfg := fresh(t)
		r := &countingReader{r: bytes.NewReader(images[0].data)}
		_, err := db.Store(ctx, r, StoreOptions{MaxBytes: 4096})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
		if r.n > 4096+256<<10 {
			t.Errorf("read %d bytes of an instance over a 4096-byte bound", r.n)
		}
		if n := countFiles(t, cfg.DataDir+"/tmp") + countFiles(t, cfg.DataDir+"/blobs"); n != 0 {
			t.Errorf("%d files left behind", n)
		}
		if _, err := db.Store(ctx, bytes.NewReader(images[0].data), StoreOptions{MaxBytes: int64(len(images[0].data))}); err != nil {
			t.Errorf("instance of exactly MaxBytes: %v", err)
		}
	})

	t.Run("Queries", func(t *testing.T) { testQueries(t, fresh) })
	t.Run("Stability", func(t *testing.T) { testStability(t, env, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, env, open) })
	t.Run("Reconcile", func(t *testing.T) { testReconcile(t, env, open) })

	t.Run("Migrate", func(t *testing.T) {
		cfg := env(t)
		for _, step := range []struct {
			cmd  string
			want uint
		}{{"version", 0}, {"up", 4}, {"version", 4}, {"down", 3}, {"up", 4}} {
			v, dirty, err := Migrate(ctx, cfg, step.cmd)
			if err != nil || dirty || v != step.want {
				t.Fatalf("migrate %s: %d %v %v, want %d", step.cmd, v, dirty, err, step.want)
			}
		}
		if _, _, err := Migrate(ctx, cfg, "sideways"); err == nil {
			t.Error("unknown command accepted")
		}
		db := open(t, cfg) // already migrated: Open must not mind
		if err := db.Ping(ctx); err != nil {
			t.Error(err)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func testQueries(t *testing.T, fresh func(*testing.T) (*DB, Config)) {
	ctx := context.Background()
	db, _ := fresh(t)
	type st struct {
		uid, pid, name, date, time, acc, id, ref string
		series                                   []string // modality per series
	}
	studies := []st{
		{"1.1", "P1", "DOE^JOHN", "20240105", "101500", "ACC1", "S1", "HOUSE^G", []string{"CT", "SR"}},
		{"1.2", "P2", "doe^jane", "20240210", "083000.5", "ACC2", "S2", "WHO^D", []string{"MR"}},
		{"1.3", "P3", "AB_C%D", "20231231", "235959", "ACC3", "S3", "HOUSE^G", []string{"CT"}},
		{"1.4", "P4", "ABXCYD", "20240301", "120000", "ACC4", "S4", "", []string{"PT", "CT"}},
	}
	for _, s := range studies {
		for j, mod := range s.series {
			for k := range 2 {
				inst := testInstance(s.uid, fmt.Sprintf("%s.%d", s.uid, j+1), fmt.Sprintf("%s.%d.%d", s.uid, j+1, k+1))
				inst.PatientID, inst.PatientName, inst.StudyDate, inst.StudyTime = s.pid, s.name, s.date, s.time
				inst.AccessionNumber, inst.StudyID, inst.ReferringPhysicianName = s.acc, s.id, s.ref
				inst.Modality, inst.SeriesNumber, inst.InstanceNumber = mod, j+1, 2-k
				inst.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
				if mod == "SR" {
					inst.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
				}
				indexSynthetic(t, db, inst)
			}
		}
	}

	uids := func(ss []Study) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.StudyInstanceUID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []string // study UIDs in order
	}{
		{"all newest first", Query{}, []string{"1.4", "1.2", "1.1", "1.3"}},
		{"uid list", Query{StudyInstanceUIDs: []string{"1.3", "1.1"}}, []string{"1.1", "1.3"}},
		{"uid backslash list", Query{StudyInstanceUIDs: []string{`1.3\1.2`}}, []string{"1.2", "1.3"}},
		{"patient id", Query{PatientID: "P2"}, []string{"1.2"}},
		{"patient id wildcard", Query{PatientID: "P*"}, []string{"1.4", "1.2", "1.1", "1.3"}},
		{"name exact, case-insensitive", Query{PatientName: "Doe^John"}, []string{"1.1"}},
		{"name wildcard, case-insensitive", Query{PatientName: "doe*"}, []string{"1.2", "1.1"}},
		{"name question mark", Query{PatientName: "DOE^JA?E"}, []string{"1.2"}},
		{"name universal", Query{PatientName: "*"}, []string{"1.4", "1.2", "1.1", "1.3"}},
		{"underscore is literal", Query{PatientName: "AB_C*"}, []string{"1.3"}},
		{"percent is literal", Query{PatientName: "*%D"}, []string{"1.3"}},
		{"question matches underscore", Query{PatientName: "AB?C*"}, []string{"1.4", "1.3"}},
		{"date single", Query{StudyDate: "20240210"}, []string{"1.2"}},
		{"date range", Query{StudyDate: "20240101-20240228"}, []string{"1.2", "1.1"}},
		{"date open end", Query{StudyDate: "20240201-"}, []string{"1.4", "1.2"}},
		{"date open start", Query{StudyDate: "-20240105"}, []string{"1.1", "1.3"}},
		{"time range", Query{StudyTime: "0800-1000"}, []string{"1.2"}},
		{"time single", Query{StudyTime: "0830"}, []string{"1.2"}},
		{"accession", Query{AccessionNumber: "ACC3"}, []string{"1.3"}},
		{"study id", Query{StudyID: "S4"}, []string{"1.4"}},
		{"referring physician", Query{ReferringPhysician: "house*"}, []string{"1.1", "1.3"}},
		{"modalities in study", Query{ModalitiesInStudy: []string{"SR", "PT"}}, []string{"1.4", "1.1"}},
		{"modalities comma list", Query{ModalitiesInStudy: []string{"MR,PT"}}, []string{"1.4", "1.2"}},
		{"combined", Query{PatientName: "DOE*", StudyDate: "20240101-", ModalitiesInStudy: []string{"CT"}}, []string{"1.1"}},
		{"limit", Query{Limit: 2}, []string{"1.4", "1.2"}},
		{"offset", Query{Offset: 3}, []string{"1.3"}},
		{"limit offset", Query{Limit: 2, Offset: 1}, []string{"1.2", "1.1"}},
		{"no match", Query{PatientID: "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := must(db.FindStudies(ctx, tc.q))
			if !slices.Equal(uids(got), tc.want) {
				t.Errorf("got %v, want %v", uids(got), tc.want)
			}
		})
	}

	all := must(db.FindStudies(ctx, Query{StudyInstanceUIDs: []string{"1.4"}}))
	if s := all[0]; !slices.Equal(s.ModalitiesInStudy, []string{"CT", "PT"}) || s.NumSeries != 2 || s.NumInstances != 4 ||
		s.PatientID != "P4" || s.ReferringPhysicianName != "" {
		t.Errorf("study 1.4: %+v", s)
	}

	for _, bad := range []Query{{StudyDate: "2024"}, {StudyDate: "-"}, {StudyTime: "25:00"}, {SeriesNumber: "x"}, {InstanceNumber: "1.5"}} {
		if _, err := db.FindInstances(ctx, bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("query %+v: %v, want ErrInvalidQuery", bad, err)
		}
	}

	series := must(db.FindSeries(ctx, Query{Modality: []string{"CT"}}))
	var got []string
	for _, s := range series {
		got = append(got, s.SeriesInstanceUID)
		if s.NumInstances != 2 || s.Study.StudyInstanceUID == "" || len(s.Study.ModalitiesInStudy) == 0 {
			t.Errorf("series row %+v", s)
		}
	}
	if want := []string{"1.4.2", "1.1.1", "1.3.1"}; !slices.Equal(got, want) {
		t.Errorf("CT series: %v, want %v", got, want)
	}
	series = must(db.FindSeries(ctx, Query{StudyInstanceUIDs: []string{"1.1"}, SeriesNumber: "2"}))
	if len(series) != 1 || series[0].SeriesInstanceUID != "1.1.2" || series[0].Modality != "SR" {
		t.Errorf("series number 2 of 1.1: %+v", series)
	}
	// Flat series query by study-level keys.
	series = must(db.FindSeries(ctx, Query{PatientName: "doe^jane"}))
	if len(series) != 1 || series[0].SeriesInstanceUID != "1.2.1" {
		t.Errorf("series of doe^jane: %+v", series)
	}

	recs := must(db.FindInstances(ctx, Query{SeriesInstanceUIDs: []string{"1.1.1"}}))
	if len(recs) != 2 || recs[0].InstanceNumber != 1 || recs[0].SOPInstanceUID != "1.1.1.2" || recs[1].InstanceNumber != 2 {
		t.Errorf("instances of 1.1.1 by instance number: %+v", recs)
	}
	recs = must(db.FindInstances(ctx, Query{SOPClassUIDs: []string{"1.2.840.10008.5.1.4.1.1.88.22"}}))
	if len(recs) != 2 || recs[0].Series.SeriesInstanceUID != "1.1.2" || recs[0].Series.Study.PatientID != "P1" {
		t.Errorf("SR instances: %+v", recs)
	}
	recs = must(db.FindInstances(ctx, Query{SOPInstanceUIDs: []string{"1.3.1.1"}, InstanceNumber: "2"}))
	if len(recs) != 1 || recs[0].Size != 10 {
		t.Errorf("instance 1.3.1.1: %+v", recs)
	}
	recs = must(db.FindInstances(ctx, Query{ModalitiesInStudy: []string{"MR"}, Limit: 1, Offset: 1}))
	if len(recs) != 1 || recs[0].SOPInstanceUID != "1.2.1.1" {
		t.Errorf("paged instances of the MR study: %+v", recs)
	}
}

// notifier records StudyStable calls; fail makes the next calls fail.
type notifier struct {
	mu    sync.Mutex
	calls map[string]int
	fail  atomic.Bool
}

func (n *notifier) StudyStable(ctx context.Context, study string, instances int) error {
	if n.fail.Load() {
		return errors.New("queue down")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.calls == nil {
		n.calls = map[string]int{}
	}
	n.calls[study]++
	return nil
}

func (n *notifier) count(study string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[study]
}

func testStability(t *testing.T, env func(testing.TB) Config, open func(*testing.T, Config) *DB) {
	ctx := context.Background()
	cfg := env(t)
	cfg.StableAge = time.Minute
	db := open(t, cfg)
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return clock }
	n := &notifier{}
	stable := func() bool {
		t.Helper()
		s := must(db.FindStudies(ctx, Query{StudyInstanceUIDs: []string{"9.1"}}))
		return s[0].Stable
	}

	indexSynthetic(t, db, testInstance("9.1", "9.1.1", "9.1.1.1"))
	clock = clock.Add(30 * time.Second)
	if k := must(db.CheckStability(ctx, n)); k != 0 || stable() {
		t.Fatalf("stable after 30s of a 1m stable age (%d)", k)
	}
	clock = clock.Add(31 * time.Second)
	if k := must(db.CheckStability(ctx, n)); k != 1 || n.count("9.1") != 1 || !stable() {
		t.Fatalf("not stable after 61s: %d notified, %d calls", k, n.count("9.1"))
	}
	if k := must(db.CheckStability(ctx, n)); k != 0 || n.count("9.1") != 1 {
		t.Fatalf("notified twice for one transition")
	}

	// A later instance makes it unstable again, and stable again later.
	indexSynthetic(t, db, testInstance("9.1", "9.1.1", "9.1.1.2"))
	if stable() {
		t.Fatal("still stable after a new instance")
	}
	clock = clock.Add(2 * time.Minute)
	if k := must(db.CheckStability(ctx, n)); k != 1 || n.count("9.1") != 2 {
		t.Fatalf("second transition: %d notified, %d calls", k, n.count("9.1"))
	}

	// A failed notification is retried on the next pass.
	indexSynthetic(t, db, testInstance("9.1", "9.1.1", "9.1.1.3"))
	clock = clock.Add(2 * time.Minute)
	n.fail.Store(true)
	if _, err := db.CheckStability(ctx, n); err == nil || stable() {
		t.Fatalf("failed notification: err %v, stable %v", err, stable())
	}
	n.fail.Store(false)
	if k := must(db.CheckStability(ctx, n)); k != 1 || n.count("9.1") != 3 || !stable() {
		t.Fatalf("retry after failure: %d notified, %d calls", k, n.count("9.1"))
	}

	// Several processes watching: every transition is reported once.
	db2 := open(t, cfg)
	db2.now = db.now
	for i := range 40 {
		indexSynthetic(t, db, testInstance(uidN("8", i), uidN("8", i)+".1", uidN("8", i)+".1.1"))
	}
	clock = clock.Add(2 * time.Minute)
	var wg sync.WaitGroup
	for _, d := range []*DB{db, db2, db, db2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.CheckStability(ctx, n); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 40 {
		if c := n.count(uidN("8", i)); c != 1 {
			t.Errorf("study %s notified %d times, want 1", uidN("8", i), c)
		}
	}

	// WatchStability runs passes until its context ends.
	wctx, cancel := context.WithCancel(ctx)
	indexSynthetic(t, db, testInstance("7.1", "7.1.1", "7.1.1.1"))
	clock = clock.Add(2 * time.Minute)
	done := make(chan error)
	go func() { done <- db.WatchStability(wctx, n, 5*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for n.count("7.1") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || n.count("7.1") != 1 {
		t.Errorf("WatchStability: %v, %d calls", err, n.count("7.1"))
	}
}

func testConcurrency(t *testing.T, env func(testing.TB) Config, open func(*testing.T, Config) *DB) {
	images, _ := ctHead(t)
	images = images[:6]
	ctx := context.Background()
	cfg := env(t)
	db := open(t, cfg)
	other := open(t, cfg) // a second process on the same data

	// 8 writers, each its own study.
	var wg sync.WaitGroup
	own := make([][][]byte, 8)
	for i := range own {
		own[i] = freshStudy(images)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, data := range own[i] {
				if res, err := db.Store(ctx, bytes.NewReader(data), StoreOptions{}); err != nil || res.Outcome != Stored {
					t.Errorf("writer %d: %v %v", i, res, err)
				}
			}
		}()
	}
	// 4 writers in this process and 2 in the other, all storing one set.
	shared := freshStudy(images)
	var stored, already atomic.Int32
	for i := range 6 {
		d := db
		if i >= 4 {
			d = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range shared {
				data := shared[(j+i)%len(shared)]
				res, err := d.Store(ctx, bytes.NewReader(data), StoreOptions{})
				switch {
				case err != nil:
					t.Errorf("shared writer %d: %v", i, err)
				case res.Outcome == Stored:
					stored.Add(1)
				case res.Outcome == AlreadyStored:
					already.Add(1)
				default:
					t.Errorf("shared writer %d: outcome %v", i, res.Outcome)
				}
			}
		}()
	}
	wg.Wait()
	if stored.Load() != int32(len(shared)) || already.Load() != int32(5*len(shared)) {
		t.Errorf("shared set: %d stored, %d already stored; want %d, %d", stored.Load(), already.Load(), len(shared), 5*len(shared))
	}
	studies := must(db.FindStudies(ctx, Query{}))
	if len(studies) != 9 {
		t.Fatalf("%d studies, want 9", len(studies))
	}
	for _, s := range studies {
		if s.NumInstances != len(images) || s.NumSeries != 1 {
			t.Errorf("study %s: %d instances, %d series; want %d, 1", s.StudyInstanceUID, s.NumInstances, s.NumSeries, len(images))
		}
	}
	series := must(db.FindSeries(ctx, Query{}))
	for _, s := range series {
		if s.NumInstances != len(images) {
			t.Errorf("series %s: %d instances, want %d", s.SeriesInstanceUID, s.NumInstances, len(images))
		}
	}
	if n := countFiles(t, filepath.Join(cfg.DataDir, "blobs")); n != 9*len(images) {
		t.Errorf("%d blobs, want %d", n, 9*len(images))
	}
	if n := countFiles(t, filepath.Join(cfg.DataDir, "tmp")); n != 0 {
		t.Errorf("%d temp files left", n)
	}
}

func testReconcile(t *testing.T, env func(testing.TB) Config, open func(*testing.T, Config) *DB) {
	images, _ := ctHead(t)
	ctx := context.Background()
	cfg := env(t)
	db := open(t, cfg)
	set := freshStudy(images[:4])
	for _, data := range set[:2] {
		must(db.Store(ctx, bytes.NewReader(data), StoreOptions{}))
	}
	db.Close()

	// A crash between link and commit leaves blobs without rows; a crash
	// while receiving leaves temp files; a torn file is not an instance.
	link := func(data []byte) *dicomio.Instance {
		inst := must(dicomio.ReadInstance(bytes.NewReader(data), int64(len(data))))
		p := filepath.Join(cfg.DataDir, blobRel(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return inst
	}
	orphan := link(set[2])
	link(set[3])
	torn := filepath.Join(filepath.Dir(filepath.Join(cfg.DataDir, blobRel(orphan.StudyInstanceUID, orphan.SeriesInstanceUID, orphan.SOPInstanceUID))), "1.2.3.dcm")
	os.WriteFile(torn, []byte("DICM? no"), 0o644)
	stale := filepath.Join(cfg.DataDir, "tmp", "ingest-123.dcm")
	os.WriteFile(stale, []byte("partial"), 0o644)
	old := time.Now().Add(-2 * tmpGrace)
	os.Chtimes(stale, old, old)
	recent := filepath.Join(cfg.DataDir, "tmp", "ingest-456.dcm")
	os.WriteFile(recent, []byte("in progress elsewhere"), 0o644)

	// Open reconciles; run it explicitly too to see the report.
	db = open(t, cfg)
	if rep := must(db.Reconcile(ctx)); rep != (ReconcileReport{}) {
		t.Errorf("second reconcile found work: %+v", rep)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temp file not removed")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Error("recent temp file removed")
	}
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Error("torn blob not quarantined")
	}
	if n := countFiles(t, filepath.Join(cfg.DataDir, "quarantine")); n != 1 {
		t.Errorf("%d quarantined files, want 1", n)
	}
	st := must(db.FindStudies(ctx, Query{}))
	if len(st) != 1 || st[0].NumInstances != 4 {
		t.Fatalf("after reconcile: %+v", st)
	}
	if recs := must(db.FindInstances(ctx, Query{SOPInstanceUIDs: []string{orphan.SOPInstanceUID}})); len(recs) != 1 {
		t.Error("orphan blob not indexed")
	}
	res, err := db.Store(ctx, bytes.NewReader(set[3]), StoreOptions{})
	if err != nil || res.Outcome != AlreadyStored {
		t.Errorf("resend of an adopted instance: %v %v", res, err)
	}

	// Store itself adopts a blob that has no row (another process between
	// link and commit, or a crash since Open).
	extra := freshStudy(images[:1])[0]
	inst := link(extra)
	res, err = db.Store(ctx, bytes.NewReader(extra), StoreOptions{})
	if err != nil || res.Outcome != AlreadyStored {
		t.Fatalf("store over an unindexed blob: %v %v", res, err)
	}
	if recs := must(db.FindInstances(ctx, Query{SOPInstanceUIDs: []string{inst.SOPInstanceUID}})); len(recs) != 1 ||
		recs[0].Series.Study.NumInstances != 1 {
		t.Errorf("unindexed blob after Store: %+v", recs)
	}
}

func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{
		DatabaseURL: "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=5",
		DataDir:     t.TempDir(),
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unreachable PostgreSQL: %v, want ErrUnavailable", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		url, dir string
		want     target
		bad      bool
	}{
		{"", "/d", target{sqliteDialect, "/d/index.db"}, false},
		{"sqlite:///abs/x.db", "/d", target{sqliteDialect, "/abs/x.db"}, false},
		{"sqlite://rel.db?mode=rw", "/d", target{sqliteDialect, "rel.db"}, false},
		{"postgres://u@h/db", "/d", target{postgresDialect, "postgres://u@h/db"}, false},
		{"postgresql://u@h/db", "/d", target{postgresDialect, "postgresql://u@h/db"}, false},
		{"mysql://x", "/d", target{}, true},
		{"sqlite://", "/d", target{}, true},
	} {
		got, err := parseTarget(Config{DatabaseURL: tc.url, DataDir: tc.dir})
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%q: %v %v, want %v (error %v)", tc.url, got, err, tc.want, tc.bad)
		}
	}
}

func TestRebind(t *testing.T) {
	got := rebind(`SELECT a FROM t WHERE x = ? AND y LIKE '?%' ESCAPE '\' AND z IN (?, ?)`)
	want := `SELECT a FROM t WHERE x = $1 AND y LIKE '?%' ESCAPE '\' AND z IN ($2, $3)`
	if got != want {
		t.Errorf("rebind:\n got %s\nwant %s", got, want)
	}
}
