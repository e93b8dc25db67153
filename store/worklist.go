package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/radtriage/radtriage/worklist"
)

// The worklist side of the store (migration 0002): the SQL index is the
// source of truth for each study's reading state (open or done), its
// manual priority override and its AI findings; Redis (package worklist)
// holds only the order, the claims and the events, and is rebuilt from
// here (worklist.Rebuild over DB.OpenStudies).
//
// A study is open from the moment its first instance is indexed until
// CompleteStudy marks it done: every study in the index without a
// worklist_state row of status 'done' is open, whether or not it is
// stable yet. A completed study stays done; new instances of it do not
// reopen it (the worklist never resurrects a completed study either).
//
// Tables:
//
//	worklist_state  one row per study that has been completed or
//	                overridden (absent: open, no override)
//	findings        the AI findings of each study's latest triage run
//
// and, read only, triage_jobs (jobs.go) for each study's AI status.

var (
	_ worklist.Source   = (*DB)(nil)
	_ worklist.Recorder = (*DB)(nil)
)

// worklistEntry is what the store knows of one study for the worklist.
type worklistEntry struct {
	study    worklist.Study
	findings []worklist.Finding
	override *worklist.Override
	done     bool
	ai       worklist.AIStatus
	aiError  string
}

func (e *worklistEntry) entry() worklist.Entry {
	return worklist.Entry{Study: e.study, Findings: e.findings, Override: e.override, AI: e.ai, AIError: e.aiError}
}

// aiStatus is the worklist's AI status of a study whose triage job is in
// state (JobState, "" when it has none).
func aiStatus(state string) worklist.AIStatus {
	switch JobState(state) {
	case JobDone:
		return worklist.AIDone
	case JobDead:
		return worklist.AIFailed
	}
	return worklist.AIPending
}

// OpenStudies returns every study that is not completed, with its
// attributes as worklist.Study has them, its findings and its override,
// in the order the studies were first received. It implements
// worklist.Source.
//
// AI comes from the study's triage job: done when it is done, failed
// (AIError its last error) when it is dead, pending otherwise or without
// a job.
//
// Modality and BodyPart come from the study's series: the value held by
// the most series, ties going to the series with the lowest number
// (BodyPart ignores series without one). OrderPriority is the
// RequestedProcedurePriority first received; Received is when the first
// instance arrived.
func (db *DB) OpenStudies(ctx context.Context) ([]worklist.Entry, error) {
	list, err := db.worklistEntries(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]worklist.Entry, len(list))
	for i, e := range list {
		out[i] = e.entry()
	}
	return out, nil
}

// WorklistStudy returns one study as the worklist sees it (as
// OpenStudies would list it) and whether it is still open (false: it was
// completed, and must not be put back on the worklist). An unknown study
// is an error wrapping ErrNotFound.
func (db *DB) WorklistStudy(ctx context.Context, studyUID string) (e worklist.Entry, open bool, err error) {
	list, err := db.worklistEntries(ctx, studyUID)
	if err != nil {
		return worklist.Entry{}, false, err
	}
	if len(list) == 0 {
		return worklist.Entry{}, false, fmt.Errorf("store: study %s: %w", studyUID, ErrNotFound)
	}
	return list[0].entry(), !list[0].done, nil
}

// worklistEntries reads the open studies (uid == "") or the study uid
// (open or not).
func (db *DB) worklistEntries(ctx context.Context, uid string) ([]*worklistEntry, error) {
	cond, args := "(w.status IS NULL OR w.status = 'open')", []any(nil)
	if uid != "" {
		cond, args = "s.uid = ?", []any{uid}
	}
	// One read transaction, so that studies, series and findings agree.
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: worklist studies: %w", err))
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, db.dialect.q(`SELECT s.uid, p.patient_id, p.patient_name, s.accession_number,
		s.study_description, s.priority, s.first_received, w.status,
		w.override_tier, w.override_due, w.override_reason, w.override_by, w.override_at,
		j.state, j.last_error
		FROM studies s JOIN patients p ON p.pk = s.patient_pk
		LEFT JOIN worklist_state w ON w.study_uid = s.uid
		LEFT JOIN triage_jobs j ON j.study_uid = s.uid
		WHERE `+cond+`
		ORDER BY s.first_received, s.uid`), args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: worklist studies: %w", err))
	}
	var (
		list  []*worklistEntry
		byUID = map[string]*worklistEntry{}
	)
	for rows.Next() {
		var (
			e              worklistEntry
			received       int64
			status, ovTier sql.NullString
			ovReason, ovBy sql.NullString
			ovDue, ovAt    sql.NullInt64
			jobState       sql.NullString
			jobError       sql.NullString
		)
		st := &e.study
		if err := rows.Scan(&st.StudyUID, &st.PatientID, &st.PatientName, &st.AccessionNumber,
			&st.Description, &st.OrderPriority, &received, &status,
			&ovTier, &ovDue, &ovReason, &ovBy, &ovAt, &jobState, &jobError); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: worklist studies: %w", err)
		}
		st.Received = fromMicros(received)
		e.done = status.String == "done"
		if e.ai = aiStatus(jobState.String); e.ai == worklist.AIFailed {
			e.aiError = jobError.String
		}
		if ovTier.String != "" || ovDue.Valid {
			e.override = &worklist.Override{
				Tier:   worklist.Tier(ovTier.String),
				Reason: ovReason.String,
				By:     ovBy.String,
			}
			if ovDue.Valid {
				e.override.Due = fromMicros(ovDue.Int64)
			}
			if ovAt.Valid {
				e.override.At = fromMicros(ovAt.Int64)
			}
		}
		list = append(list, &e)
		byUID[st.StudyUID] = &e
	}
	if err := closeRows(ctx, rows, "worklist studies"); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}

	// Series: modality and body part by majority.
	// For the whole list, every row is read and those of completed
	// studies are dropped here: cheaper than joining.
	subCond := ""
	if uid != "" {
		subCond = "WHERE study_uid = ?"
	}
	rows, err = tx.QueryContext(ctx, db.dialect.q(`SELECT study_uid, modality, body_part FROM series `+subCond+`
		ORDER BY study_uid, series_number, uid`), args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: worklist series: %w", err))
	}
	type votes struct{ modality, bodyPart []string }
	seen := map[string]*votes{}
	for rows.Next() {
		var study, modality, bodyPart string
		if err := rows.Scan(&study, &modality, &bodyPart); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: worklist series: %w", err)
		}
		if byUID[study] == nil {
			continue
		}
		v := seen[study]
		if v == nil {
			v = &votes{}
			seen[study] = v
		}
		v.modality = append(v.modality, strings.ToUpper(strings.TrimSpace(modality)))
		v.bodyPart = append(v.bodyPart, strings.ToUpper(strings.TrimSpace(bodyPart)))
	}
	if err := closeRows(ctx, rows, "worklist series"); err != nil {
		return nil, err
	}
	for uid, v := range seen {
		if e := byUID[uid]; e != nil {
			e.study.Modality = majority(v.modality)
			e.study.BodyPart = majority(v.bodyPart)
		}
	}

	// Findings, in the order they were recorded.
	rows, err = tx.QueryContext(ctx, db.dialect.q(`SELECT study_uid, code, name, probability, tier, volume_ml, model
		FROM findings `+subCond+`
		ORDER BY study_uid, pk`), args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: worklist findings: %w", err))
	}
	for rows.Next() {
		var (
			study, tier string
			f           worklist.Finding
			vol         sql.NullFloat64
		)
		if err := rows.Scan(&study, &f.Code, &f.Name, &f.Probability, &tier, &vol, &f.Model); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: worklist findings: %w", err)
		}
		f.Tier = worklist.Tier(tier)
		f.VolumeML = vol.Float64
		if e := byUID[study]; e != nil {
			e.findings = append(e.findings, f)
		}
	}
	if err := closeRows(ctx, rows, "worklist findings"); err != nil {
		return nil, err
	}
	return list, nil
}

// majority returns the most frequent non-empty value of vals, ties going
// to the one seen first; "" when there is none.
func majority(vals []string) string {
	count := map[string]int{}
	most := 0
	for _, v := range vals {
		if v != "" {
			count[v]++
			most = max(most, count[v])
		}
	}
	for _, v := range vals {
		if v != "" && count[v] == most {
			return v
		}
	}
	return ""
}

// closeRows closes rows and returns the first error of the iteration.
func closeRows(ctx context.Context, rows *sql.Rows, what string) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return wrapDBErr(ctx, fmt.Errorf("store: %s: %w", what, err))
	}
	return nil
}

// fromMicros is the time of a Unix-microsecond column, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// CompleteStudy marks a study done (read), recording by whom and when; a
// done study is no longer among OpenStudies. Completing a done study
// again keeps the first completion. An unknown study is an error wrapping
// ErrNotFound.
func (db *DB) CompleteStudy(ctx context.Context, studyUID, by string, at time.Time) error {
	at = db.stamp(at)
	return db.worklistWrite(ctx, studyUID, "complete", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.dialect.q(`INSERT INTO worklist_state
			(study_uid, status, completed_at, completed_by, updated_at, updated_by)
			VALUES (?, 'done', ?, ?, ?, ?)
			ON CONFLICT (study_uid) DO UPDATE SET status = 'done',
				completed_at = excluded.completed_at, completed_by = excluded.completed_by,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by
			WHERE worklist_state.status <> 'done'`),
			studyUID, at.UnixMicro(), by, at.UnixMicro(), by)
		return err
	})
}

// SetOverride records a manual priority for a study (replacing any
// previous one); ov.At zero means now. At least one of ov.Tier (a valid
// tier) and ov.Due is required; otherwise the error wraps
// worklist.ErrInvalid. An unknown study is an error wrapping ErrNotFound.
func (db *DB) SetOverride(ctx context.Context, studyUID string, ov worklist.Override) error {
	if ov.Tier == "" && ov.Due.IsZero() {
		return fmt.Errorf("store: override of %s: %w: neither tier nor due time", studyUID, worklist.ErrInvalid)
	}
	if ov.Tier != "" && !ov.Tier.Valid() {
		return fmt.Errorf("store: override of %s: %w: unknown tier %q", studyUID, worklist.ErrInvalid, ov.Tier)
	}
	at := db.stamp(ov.At)
	var due any
	if !ov.Due.IsZero() {
		due = ov.Due.UnixMicro()
	}
	return db.worklistWrite(ctx, studyUID, "set override", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.dialect.q(`INSERT INTO worklist_state
			(study_uid, override_tier, override_due, override_reason, override_by, override_at, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (study_uid) DO UPDATE SET override_tier = excluded.override_tier,
				override_due = excluded.override_due, override_reason = excluded.override_reason,
				override_by = excluded.override_by, override_at = excluded.override_at,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
			studyUID, string(ov.Tier), due, ov.Reason, ov.By, at.UnixMicro(), at.UnixMicro(), ov.By)
		return err
	})
}

// ClearOverride removes a study's manual priority (nothing happens when
// it has none), recording by whom and when. An unknown study is an error
// wrapping ErrNotFound.
func (db *DB) ClearOverride(ctx context.Context, studyUID, by string, at time.Time) error {
	at = db.stamp(at)
	return db.worklistWrite(ctx, studyUID, "clear override", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.dialect.q(`UPDATE worklist_state SET override_tier = '', override_due = NULL,
			override_reason = '', override_by = '', override_at = NULL, updated_at = ?, updated_by = ?
			WHERE study_uid = ?`), at.UnixMicro(), by, studyUID)
		return err
	})
}

// ReplaceFindings records the findings of a triage run on a study,
// replacing those of earlier runs (an empty list clears them), with who
// (the model runner) and when. A finding needs a code and a valid tier
// and a probability in [0, 1], or the error wraps worklist.ErrInvalid.
// An unknown study is an error wrapping ErrNotFound.
func (db *DB) ReplaceFindings(ctx context.Context, studyUID string, findings []worklist.Finding, by string, at time.Time) error {
	for i, f := range findings {
		if f.Code == "" || !f.Tier.Valid() || !(f.Probability >= 0 && f.Probability <= 1) || f.VolumeML < 0 {
			return fmt.Errorf("store: finding %d of %s: %w: want a code, a valid tier, probability in [0, 1] and volume >= 0 (got %+v)",
				i, studyUID, worklist.ErrInvalid, f)
		}
	}
	at = db.stamp(at)
	return db.worklistWrite(ctx, studyUID, "record findings", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.dialect.q(`DELETE FROM findings WHERE study_uid = ?`), studyUID); err != nil {
			return err
		}
		for _, f := range findings {
			var vol any
			if f.VolumeML > 0 {
				vol = f.VolumeML
			}
			if _, err := tx.ExecContext(ctx, db.dialect.q(`INSERT INTO findings
				(study_uid, code, name, probability, tier, volume_ml, model, created_at, created_by)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				studyUID, f.Code, f.Name, f.Probability, string(f.Tier), vol, f.Model, at.UnixMicro(), by); err != nil {
				return err
			}
		}
		return nil
	})
}

// stamp is at, or now when at is zero.
func (db *DB) stamp(at time.Time) time.Time {
	if at.IsZero() {
		return db.now()
	}
	return at
}

// worklistWrite runs fn in a write transaction after checking that the
// study exists (ErrNotFound otherwise).
func (db *DB) worklistWrite(ctx context.Context, studyUID, what string, fn func(*sql.Tx) error) (err error) {
	defer func() {
		if err != nil && !errors.Is(err, ErrNotFound) {
			err = wrapDBErr(ctx, fmt.Errorf("store: %s of study %s: %w", what, studyUID, err))
		}
	}()
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, db.dialect.q(`SELECT 1 FROM studies WHERE uid = ?`), studyUID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: %s: study %s: %w", what, studyUID, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Record persists a worklist change (worklist.Recorder): completions
// (CompleteStudy), overrides set and cleared (SetOverride, ClearOverride)
// and findings (ReplaceFindings), each with c.By and c.At. Other change
// types live only in Redis and are ignored.
func (db *DB) Record(ctx context.Context, c worklist.Change) error {
	switch c.Type {
	case worklist.EventCompleted:
		return db.CompleteStudy(ctx, c.StudyUID, c.By, c.At)
	case worklist.EventOverridden:
		if c.Override == nil {
			return fmt.Errorf("store: record %s of %s: %w: no override", c.Type, c.StudyUID, worklist.ErrInvalid)
		}
		ov := *c.Override
		if ov.By == "" {
			ov.By = c.By
		}
		if ov.At.IsZero() {
			ov.At = c.At
		}
		return db.SetOverride(ctx, c.StudyUID, ov)
	case worklist.EventOverrideCleared:
		return db.ClearOverride(ctx, c.StudyUID, c.By, c.At)
	case worklist.EventReprioritised:
		return db.ReplaceFindings(ctx, c.StudyUID, c.Findings, c.By, c.At)
	}
	return nil
}
