package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/worklist"
)

func TestWorklistSQLite(t *testing.T)   { runWorklistSuite(t, sqliteEnv) }
func TestWorklistPostgres(t *testing.T) { runWorklistSuite(t, postgresEnv) }

// wlInstance is a synthetic instance of study/series with the attributes
// the worklist reads.
func wlInstance(study string, seriesNumber int, sop, modality, bodyPart, priority string) *dicomio.Instance {
	inst := testInstance(study, uidN(study, seriesNumber+100), sop)
	inst.SeriesNumber = seriesNumber
	inst.Modality = modality
	inst.BodyPartExamined = bodyPart
	inst.RequestedProcedurePriority = priority
	inst.PatientID = "PID-" + study
	inst.PatientName = "DOE^" + study
	inst.AccessionNumber = "ACC-" + study
	inst.StudyDescription = "desc " + study
	return inst
}

// runWorklistSuite checks the store as worklist.Source and
// worklist.Recorder on one database.
func runWorklistSuite(t *testing.T, env func(testing.TB) Config) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	fresh := func(t *testing.T) (*DB, *time.Time) {
		t.Helper()
		db, err := Open(ctx, env(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		clock := t0
		db.now = func() time.Time { return clock }
		return db, &clock
	}
	// three studies, received one minute apart, the second first.
	populate := func(t *testing.T, db *DB, clock *time.Time) {
		t.Helper()
		*clock = t0.Add(time.Minute)
		// A: CT on two series out of three, body part HEAD on two
		// (case folded), one series without.
		indexSynthetic(t, db, wlInstance("1.1", 1, "1.1.1", "CT", "", "STAT"))
		indexSynthetic(t, db, wlInstance("1.1", 2, "1.1.2", "MR", "HEAD", "ROUTINE"))
		indexSynthetic(t, db, wlInstance("1.1", 3, "1.1.3", "ct", "head", ""))
		*clock = t0
		// B: a tie is won by the lowest series number.
		indexSynthetic(t, db, wlInstance("1.2", 5, "1.2.1", "CT", "CHEST", ""))
		indexSynthetic(t, db, wlInstance("1.2", 4, "1.2.2", "MR", "KNEE", ""))
		*clock = t0.Add(2 * time.Minute)
		indexSynthetic(t, db, wlInstance("1.3", 1, "1.3.1", "MR", "", "HIGH"))
		*clock = t0.Add(time.Hour)
	}
	study := func(uid, modality, bodyPart, priority string, received time.Time) worklist.Study {
		return worklist.Study{StudyUID: uid, PatientID: "PID-" + uid, PatientName: "DOE^" + uid,
			AccessionNumber: "ACC-" + uid, Description: "desc " + uid, Modality: modality, BodyPart: bodyPart,
			OrderPriority: priority, Received: received}
	}
	wantA := study("1.1", "CT", "HEAD", "STAT", t0.Add(time.Minute))
	wantB := study("1.2", "MR", "KNEE", "", t0)
	wantC := study("1.3", "MR", "", "HIGH", t0.Add(2*time.Minute))

	t.Run("OpenStudies", func(t *testing.T) {
		db, clock := fresh(t)
		if got := must(db.OpenStudies(ctx)); len(got) != 0 {
			t.Fatalf("empty index: %d open studies", len(got))
		}
		populate(t, db, clock)
		got := must(db.OpenStudies(ctx))
		// By first received, AI pending (no triage job yet).
		pending := worklist.AIPending
		want := []worklist.Entry{{Study: wantB, AI: pending}, {Study: wantA, AI: pending}, {Study: wantC, AI: pending}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("OpenStudies:\n got %+v\nwant %+v", got, want)
		}
		e, open, err := db.WorklistStudy(ctx, "1.1")
		if err != nil || !open || !reflect.DeepEqual(e, worklist.Entry{Study: wantA, AI: pending}) {
			t.Errorf("WorklistStudy(1.1) = %+v, %v, %v", e, open, err)
		}
		if _, _, err := db.WorklistStudy(ctx, "9.9"); !errors.Is(err, ErrNotFound) {
			t.Errorf("WorklistStudy of an unknown study: %v, want ErrNotFound", err)
		}
	})

	t.Run("Record", func(t *testing.T) {
		db, clock := fresh(t)
		populate(t, db, clock)
		at := t0.Add(90 * time.Minute)
		ich := worklist.Finding{Code: "ich", Name: "intracranial haemorrhage", Probability: 0.93,
			Tier: worklist.TierCritical, VolumeML: 12.5, Model: "ich-3d v1"}
		frac := worklist.Finding{Code: "fracture", Name: "skull fracture", Probability: 0.4,
			Tier: worklist.TierUrgent, Model: "frac v2"}
		ov := &worklist.Override{Tier: worklist.TierUrgent, Due: t0.Add(3 * time.Hour), Reason: "clinician called", By: "dr.house"}
		for _, c := range []worklist.Change{
			{Type: worklist.EventReprioritised, StudyUID: "1.1", By: "triage", At: at, Findings: []worklist.Finding{ich, frac}},
			{Type: worklist.EventReprioritised, StudyUID: "1.2", By: "triage", At: at, Findings: []worklist.Finding{frac}},
			{Type: worklist.EventReprioritised, StudyUID: "1.2", By: "triage", At: at, Findings: nil}, // a rerun found nothing
			{Type: worklist.EventOverridden, StudyUID: "1.3", By: "dr.house", At: at, Override: ov},
			{Type: worklist.EventClaimed, StudyUID: "1.3", By: "dr.house", At: at}, // Redis only: ignored
		} {
			if err := db.Record(ctx, c); err != nil {
				t.Fatalf("Record(%s %s): %v", c.Type, c.StudyUID, err)
			}
		}
		wantOv := *ov
		wantOv.At = at
		got := must(db.OpenStudies(ctx))
		want := []worklist.Entry{
			{Study: wantB, AI: worklist.AIPending},
			{Study: wantA, Findings: []worklist.Finding{ich, frac}, AI: worklist.AIPending},
			{Study: wantC, Override: &wantOv, AI: worklist.AIPending},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after findings and override:\n got %+v\nwant %+v", got, want)
		}
		var by string
		var created int64
		if err := db.rdb.QueryRow(`SELECT created_by, created_at FROM findings WHERE code = 'ich'`).Scan(&by, &created); err != nil ||
			by != "triage" || created != at.UnixMicro() {
			t.Errorf("finding recorded by %q at %d (%v), want triage at %d", by, created, err, at.UnixMicro())
		}

		// An override with a due time only, then cleared.
		dueOnly := worklist.Override{Due: t0.Add(5 * time.Minute), Reason: "ward round", By: "admin"}
		if err := db.Record(ctx, worklist.Change{Type: worklist.EventOverridden, StudyUID: "1.2", By: "admin", At: at, Override: &dueOnly}); err != nil {
			t.Fatal(err)
		}
		e, _, _ := db.WorklistStudy(ctx, "1.2")
		if e.Override == nil || e.Override.Tier != "" || !e.Override.Due.Equal(dueOnly.Due) || e.Override.By != "admin" {
			t.Errorf("due-only override read back as %+v", e.Override)
		}
		for _, uid := range []string{"1.2", "1.3", "1.1"} { // 1.1 has none: no change
			if err := db.Record(ctx, worklist.Change{Type: worklist.EventOverrideCleared, StudyUID: uid, By: "admin", At: at}); err != nil {
				t.Fatal(err)
			}
			if e, _, _ := db.WorklistStudy(ctx, uid); e.Override != nil {
				t.Errorf("%s: override %+v after clearing", uid, e.Override)
			}
		}
		var updatedBy string
		if err := db.rdb.QueryRow(`SELECT updated_by FROM worklist_state WHERE study_uid = '1.3'`).Scan(&updatedBy); err != nil || updatedBy != "admin" {
			t.Errorf("cleared override: updated_by %q (%v), want admin", updatedBy, err)
		}

		// Bad input and unknown studies.
		for _, c := range []worklist.Change{
			{Type: worklist.EventReprioritised, StudyUID: "1.1", By: "triage", Findings: []worklist.Finding{{Code: "x", Tier: "soon", Probability: 0.5}}},
			{Type: worklist.EventReprioritised, StudyUID: "1.1", By: "triage", Findings: []worklist.Finding{{Code: "x", Tier: worklist.TierUrgent, Probability: 1.5}}},
			{Type: worklist.EventReprioritised, StudyUID: "1.1", By: "triage", Findings: []worklist.Finding{{Tier: worklist.TierUrgent, Probability: 0.5}}},
			{Type: worklist.EventOverridden, StudyUID: "1.1", By: "a", Override: &worklist.Override{Reason: "neither"}},
			{Type: worklist.EventOverridden, StudyUID: "1.1", By: "a", Override: &worklist.Override{Tier: "asap"}},
			{Type: worklist.EventOverridden, StudyUID: "1.1", By: "a"},
		} {
			if err := db.Record(ctx, c); !errors.Is(err, worklist.ErrInvalid) {
				t.Errorf("Record(%+v): %v, want worklist.ErrInvalid", c, err)
			}
		}
		if e, _, _ := db.WorklistStudy(ctx, "1.1"); len(e.Findings) != 2 || e.Override != nil {
			t.Errorf("refused changes were applied: %+v", e)
		}
		for _, c := range []worklist.Change{
			{Type: worklist.EventCompleted, StudyUID: "9.9", By: "a"},
			{Type: worklist.EventOverridden, StudyUID: "9.9", By: "a", Override: ov},
			{Type: worklist.EventOverrideCleared, StudyUID: "9.9", By: "a"},
			{Type: worklist.EventReprioritised, StudyUID: "9.9", By: "a", Findings: []worklist.Finding{ich}},
		} {
			if err := db.Record(ctx, c); !errors.Is(err, ErrNotFound) {
				t.Errorf("Record(%s) of an unknown study: %v, want ErrNotFound", c.Type, err)
			}
		}
	})

	t.Run("Complete", func(t *testing.T) {
		db, clock := fresh(t)
		populate(t, db, clock)
		at := t0.Add(2 * time.Hour)
		if err := db.Record(ctx, worklist.Change{Type: worklist.EventCompleted, StudyUID: "1.1", By: "dr.grey", At: at}); err != nil {
			t.Fatal(err)
		}
		// A second completion keeps the first; new instances do not reopen.
		if err := db.Record(ctx, worklist.Change{Type: worklist.EventCompleted, StudyUID: "1.1", By: "dr.other", At: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		indexSynthetic(t, db, wlInstance("1.1", 9, "1.1.9", "CT", "HEAD", ""))
		got := must(db.OpenStudies(ctx))
		if len(got) != 2 || got[0].Study.StudyUID != "1.2" || got[1].Study.StudyUID != "1.3" {
			t.Errorf("open after completing 1.1: %+v", got)
		}
		e, open, err := db.WorklistStudy(ctx, "1.1")
		if err != nil || open || e.Study.StudyUID != "1.1" {
			t.Errorf("WorklistStudy of a completed study: %+v open=%v %v", e, open, err)
		}
		var (
			status, by string
			when       int64
		)
		if err := db.rdb.QueryRow(`SELECT status, completed_by, completed_at FROM worklist_state WHERE study_uid = '1.1'`).Scan(&status, &by, &when); err != nil ||
			status != "done" || by != "dr.grey" || when != at.UnixMicro() {
			t.Errorf("completion recorded as %s by %q at %d (%v); want done by dr.grey at %d", status, by, when, err, at.UnixMicro())
		}
		// An override or findings later (a race with the worklist) leave it done.
		if err := db.Record(ctx, worklist.Change{Type: worklist.EventOverridden, StudyUID: "1.1", By: "a", Override: &worklist.Override{Tier: worklist.TierCritical}}); err != nil {
			t.Fatal(err)
		}
		if _, open, _ := db.WorklistStudy(ctx, "1.1"); open {
			t.Error("an override reopened a completed study")
		}
	})

	t.Run("Migrate", func(t *testing.T) {
		cfg := env(t)
		db, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		db.now = func() time.Time { return t0 }
		indexSynthetic(t, db, wlInstance("1.1", 1, "1.1.1", "CT", "HEAD", ""))
		if err := db.CompleteStudy(ctx, "1.1", "a", t0); err != nil {
			t.Fatal(err)
		}
		db.Close()
		for _, step := range []struct {
			cmd  string
			want uint
		}{{"version", 4}, {"down", 3}, {"down", 2}, {"down", 1}, {"version", 1}, {"up", 4}} {
			v, dirty, err := Migrate(ctx, cfg, step.cmd)
			if err != nil || dirty || v != step.want {
				t.Fatalf("migrate %s: %d %v %v, want %d", step.cmd, v, dirty, err, step.want)
			}
		}
		db, err = Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// The archive (0001) survived; the worklist state started afresh.
		got := must(db.OpenStudies(ctx))
		if len(got) != 1 || got[0].Study.StudyUID != "1.1" || got[0].Study.Modality != "CT" {
			t.Errorf("after down and up: %+v", got)
		}
	})
}

func TestMajority(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"", ""}, ""},
		{[]string{"", "CT"}, "CT"},
		{[]string{"MR", "CT", "CT"}, "CT"},
		{[]string{"MR", "CT", "CT", "MR"}, "MR"},
		{[]string{"CT", "MR", "", "", "MR"}, "MR"},
	} {
		if got := majority(tt.in); got != tt.want {
			t.Errorf("majority(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// BenchmarkOpenStudies reads the open studies of an index of 100,000
// studies (one series each, a finding on one in five, one in ten
// completed): the work of a rebuild at start.
func BenchmarkOpenStudies(b *testing.B) {
	for _, bench := range []struct {
		name string
		env  func(testing.TB) Config
	}{{"SQLite", sqliteEnv}, {"Postgres", postgresEnv}} {
		b.Run(bench.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := Open(ctx, bench.env(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			const n = 100_000
			tx, err := db.wdb.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			exec := func(q string, args ...any) {
				if _, err := tx.ExecContext(ctx, db.dialect.q(q), args...); err != nil {
					b.Fatal(err)
				}
			}
			exec(`INSERT INTO patients (pk, patient_id, patient_name, name_key, birth_date, sex) VALUES (1, 'P', 'DOE', 'DOE', '', '')`)
			for i := range n {
				uid := uidN("2.25.7", i)
				exec(`INSERT INTO studies (uid, patient_pk, study_date, study_time, accession_number, study_id, study_description,
					referring_physician, referring_key, priority, num_series, num_instances, first_received, last_received)
					VALUES (?, 1, '20260101', '', ?, '', 'CT HEAD', '', '', 'ROUTINE', 1, 1, ?, ?)`, uid, "A"+uid, int64(i), int64(i))
				exec(`INSERT INTO series (uid, study_uid, modality, series_number, series_description, body_part, series_date, series_time)
					VALUES (?, ?, 'CT', 1, '', 'HEAD', '', '')`, uid+".1", uid)
				if i%5 == 0 {
					exec(`INSERT INTO findings (study_uid, code, name, probability, tier, volume_ml, model, created_at, created_by)
						VALUES (?, 'ich', 'haemorrhage', 0.9, 'critical', 3.5, 'm', 0, 'triage')`, uid)
				}
				if i%10 == 1 {
					exec(`INSERT INTO worklist_state (study_uid, status, completed_at, completed_by, updated_at, updated_by)
						VALUES (?, 'done', 0, 'dr', 0, 'dr')`, uid)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				list, err := db.OpenStudies(ctx)
				if err != nil || len(list) != n-n/10 {
					b.Fatalf("%d open studies, %v", len(list), err)
				}
			}
		})
	}
}
