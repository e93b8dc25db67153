package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/worklist"
)

// The triage side of the store (migration 0003): the latest triage result
// of each study, one row of triage_results, with its label mask as a file
// in the data directory:
//
//	masks/{study}/{sha256}-{nonce}.nii.gz
//
// A mask file is never replaced or shared: every save writes a file of its
// own (the nonce makes the name unique), fsyncs it and its directory, and
// only then commits the row that names it. The file the row named before
// is removed after that commit. So an acknowledged result never names a
// missing file, even with several processes saving the same study at once
// (they share the data directory); a crash, or such a race, can at worst
// leave a file that no row names, which PruneTriageMasks removes.

var _ triage.ResultStore = (*DB)(nil)

// ErrInvalidResult: a triage result that cannot be saved (a bad study UID,
// JSON that is empty or invalid, an unknown tier, a mask that is not
// gzip data). Nothing was written.
var ErrInvalidResult = errors.New("invalid triage result")

const (
	// maxResultJSON and maxMaskBytes bound what SaveTriageResult accepts
	// (a Result's JSON is a few kB; a mask 10-500 kB).
	maxResultJSON = 16 << 20
	maxMaskBytes  = 256 << 20
	// masksDir is the mask files' directory in the data directory.
	masksDir = "masks"
)

// SaveTriageResult records r as the latest triage result of its study,
// replacing any earlier one (triage.ResultStore). The mask, when r has
// one, is durable on disk before the row naming it commits; the previous
// result's mask file is removed afterwards. A zero r.At means now; times
// are kept to the microsecond. Bad input is an error wrapping
// ErrInvalidResult, and nothing is written.
func (db *DB) SaveTriageResult(ctx context.Context, r triage.StoredResult) error {
	return db.saveTriageResult(ctx, r, nil)
}

// saveTriageResult is SaveTriageResult and, when job is not nil, the end
// of that job in the same transaction (SaveTriageResultForJob).
func (db *DB) saveTriageResult(ctx context.Context, r triage.StoredResult, job *jobClaim) error {
	if err := checkStoredResult(&r); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	study := r.StudyUID
	var mask *maskRef
	if r.Mask != nil {
		m, err := db.writeMask(study, r.Mask)
		if err != nil {
			return err
		}
		mask = m
	}
	// Saves of one study queue within the process; across processes the
	// row lock (PostgreSQL) or the write lock (SQLite) orders them.
	unlock := db.locks.lock("triage\x00" + study)
	defer unlock()

	old, committed, err := db.upsertTriageResult(ctx, &r, mask, job)
	if err != nil {
		if mask != nil && !committed {
			// The row certainly does not name the new file: drop it. When
			// the commit itself failed, the row may name it, so it stays
			// (an orphan at worst).
			db.removeMask(mask.path)
		}
		return wrapDBErr(ctx, fmt.Errorf("store: save triage result of %s: %w", study, err))
	}
	if old != "" && (mask == nil || old != mask.path) {
		db.removeMask(old)
	}
	return nil
}

// upsertTriageResult writes the row (and, when job is not nil, marks that
// job done first: ErrJobLost, and nothing written, when it no longer
// holds) and returns the mask path that the previous row named ("" when
// none). committed is true when the commit was attempted (its outcome is
// then unknown if err is not nil).
func (db *DB) upsertTriageResult(ctx context.Context, r *triage.StoredResult, mask *maskRef, job *jobClaim) (old string, committed bool, err error) {
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return "", false, err
	}
	defer tx.Rollback()
	if job != nil {
		// The job's row lock (PostgreSQL) also orders this save against a
		// claim or a new version of the job.
		if err := db.finishJob(ctx, tx, r.StudyUID, job); err != nil {
			return "", false, err
		}
	}
	lock := ""
	if db.dialect == postgresDialect {
		lock = " FOR UPDATE"
	}
	var prev sql.NullString
	err = tx.QueryRowContext(ctx, db.dialect.q(`SELECT mask_path FROM triage_results WHERE study_uid = ?`+lock),
		r.StudyUID).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", false, err
	}
	var mpath, msum, msize any // NULL without a mask
	if mask != nil {
		mpath, msum, msize = mask.path, mask.sum, mask.size
	}
	at := db.stamp(r.At).UnixMicro()
	// The JSON goes in as a string: SQLite would keep []byte as a BLOB,
	// which its JSON functions do not read as text.
	_, err = tx.ExecContext(ctx, db.dialect.q(`INSERT INTO triage_results
		(study_uid, series_uid, tier, result, mask_path, mask_size, mask_sha256, finished_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (study_uid) DO UPDATE SET series_uid = excluded.series_uid,
			tier = excluded.tier, result = excluded.result, mask_path = excluded.mask_path,
			mask_size = excluded.mask_size, mask_sha256 = excluded.mask_sha256,
			finished_at = excluded.finished_at, updated_at = excluded.updated_at`),
		r.StudyUID, r.SeriesUID, r.Tier, string(r.JSON), mpath, msize, msum, at, db.now().UnixMicro())
	if err != nil {
		return "", false, err
	}
	if err := tx.Commit(); err != nil {
		return "", true, err
	}
	return prev.String, true, nil
}

// TriageResult returns the latest triage result of a study with its mask
// bytes (triage.ResultStore), checked against the size and SHA-256
// recorded when it was saved. A study without a result is an error
// wrapping ErrNotFound.
func (db *DB) TriageResult(ctx context.Context, studyUID string) (triage.StoredResult, error) {
	if err := checkUID("study UID", studyUID); err != nil {
		return triage.StoredResult{}, fmt.Errorf("store: triage result: %w: %w", ErrInvalidResult, err)
	}
	// A save of the same study may replace the row and remove the file it
	// named between our query and our read: then the row has changed, and
	// the query is run again.
	for attempt := 0; ; attempt++ {
		r, mask, err := db.triageRow(ctx, studyUID)
		if err != nil || mask == nil {
			return r, err
		}
		data, err := os.ReadFile(db.abs(filepath.FromSlash(mask.path)))
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			db.log.Error("TRIAGE RESULT HAS NO MASK FILE", "study", studyUID, "path", mask.path, "err", err)
			return triage.StoredResult{}, fmt.Errorf("store: mask of triage result of %s: %w", studyUID, err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); int64(len(data)) != mask.size || got != mask.sum {
			db.log.Error("TRIAGE MASK FILE IS CORRUPT", "study", studyUID, "path", mask.path,
				"size", len(data), "want_size", mask.size, "sha256", got, "want_sha256", mask.sum)
			return triage.StoredResult{}, fmt.Errorf("store: mask of triage result of %s: %s is corrupt (%d bytes, sha256 %s; saved %d bytes, sha256 %s)",
				studyUID, mask.path, len(data), got, mask.size, mask.sum)
		}
		r.Mask = data
		return r, nil
	}
}

// triageRow reads a study's row; mask is nil when it has none.
func (db *DB) triageRow(ctx context.Context, studyUID string) (triage.StoredResult, *maskRef, error) {
	var (
		r           triage.StoredResult
		finished    int64
		mpath, msum sql.NullString
		msize       sql.NullInt64
	)
	err := db.rdb.QueryRowContext(ctx, db.dialect.q(`SELECT series_uid, tier, result,
		mask_path, mask_size, mask_sha256, finished_at
		FROM triage_results WHERE study_uid = ?`), studyUID).
		Scan(&r.SeriesUID, &r.Tier, &r.JSON, &mpath, &msize, &msum, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return triage.StoredResult{}, nil, fmt.Errorf("store: triage result of study %s: %w", studyUID, ErrNotFound)
	}
	if err != nil {
		return triage.StoredResult{}, nil, wrapDBErr(ctx, fmt.Errorf("store: triage result of %s: %w", studyUID, err))
	}
	r.StudyUID = studyUID
	r.At = fromMicros(finished)
	if !mpath.Valid {
		return r, nil, nil
	}
	return r, &maskRef{path: mpath.String, sum: msum.String, size: msize.Int64}, nil
}

// checkStoredResult validates a result before anything is written.
func checkStoredResult(r *triage.StoredResult) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("store: triage result of %q: %w: %s", r.StudyUID, ErrInvalidResult, fmt.Sprintf(format, args...))
	}
	if err := checkUID("study UID", r.StudyUID); err != nil {
		return bad("%v", err)
	}
	// A result computed from a NIfTI file rather than a series has no
	// series UID; one that is there must be valid.
	if r.SeriesUID != "" {
		if err := checkUID("series UID", r.SeriesUID); err != nil {
			return bad("%v", err)
		}
	}
	if !worklist.Tier(r.Tier).Valid() {
		return bad("unknown tier %q", r.Tier)
	}
	switch {
	case len(bytes.TrimSpace(r.JSON)) == 0:
		return bad("no JSON")
	case len(r.JSON) > maxResultJSON:
		return bad("JSON of %d bytes (at most %d)", len(r.JSON), maxResultJSON)
	case !utf8.Valid(r.JSON):
		return bad("JSON is not valid UTF-8")
	case !json.Valid(r.JSON):
		return bad("JSON is not valid: %v", jsonError(r.JSON))
	}
	if bytes.TrimSpace(r.JSON)[0] != '{' {
		return bad("JSON is not an object")
	}
	var head struct {
		StudyUID *string `json:"study_uid"`
	}
	if err := json.Unmarshal(r.JSON, &head); err != nil {
		return bad("JSON: %v", err)
	}
	if head.StudyUID != nil && *head.StudyUID != r.StudyUID {
		return bad("JSON is the result of study %q", *head.StudyUID)
	}
	if r.Mask != nil {
		switch {
		case len(r.Mask) == 0:
			return bad("empty mask (nil means none)")
		case len(r.Mask) > maxMaskBytes:
			return bad("mask of %d bytes (at most %d)", len(r.Mask), maxMaskBytes)
		case len(r.Mask) < 18 || r.Mask[0] != 0x1f || r.Mask[1] != 0x8b:
			return bad("mask is not gzip data (.nii.gz)")
		}
	}
	return nil
}

// jsonError says where invalid JSON goes wrong.
func jsonError(js []byte) error {
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		return err
	}
	return errors.New("syntax error")
}

// maskRef is a mask file as a row names it.
type maskRef struct {
	path string // slash-separated, relative to the data directory
	sum  string // hex SHA-256
	size int64
}

// writeMask writes data to a new file masks/{study}/{sha256}-{nonce}.nii.gz
// and makes it durable (the file, the directories created, the final
// directory fsynced). The study UID must have passed checkUID.
func (db *DB) writeMask(study string, data []byte) (*maskRef, error) {
	sp, err := db.writeTemp(bytes.NewReader(data), 0)
	if err != nil {
		return nil, fmt.Errorf("store: mask of %s: %w", study, err)
	}
	defer sp.release()
	if err := sp.synced(); err != nil {
		return nil, fmt.Errorf("store: mask of %s: %w", study, err)
	}
	for attempt := 0; ; attempt++ {
		var nonce [8]byte
		rand.Read(nonce[:])
		rel := path.Join(masksDir, study, sp.sum+"-"+hex.EncodeToString(nonce[:])+".nii.gz")
		err := db.publish(sp.path, filepath.FromSlash(rel))
		if err == nil {
			return &maskRef{path: rel, sum: sp.sum, size: sp.size}, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return nil, fmt.Errorf("store: mask of %s: %w", study, err)
		}
	}
}

// removeMask removes a mask file that no row names any more. It is best
// effort: a file left behind is an orphan for PruneTriageMasks.
func (db *DB) removeMask(rel string) {
	if !strings.HasPrefix(rel, masksDir+"/") {
		db.log.Error("not removing a triage mask outside masks/", "path", rel)
		return
	}
	p := db.abs(filepath.FromSlash(rel))
	if err := os.Remove(p); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			db.log.Warn("could not remove replaced triage mask", "path", rel, "err", err)
		}
		return
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		db.log.Warn("fsync after removing a replaced triage mask", "path", rel, "err", err)
	}
}

// PruneTriageMasks removes the mask files that no triage result names and
// that are older than an hour (younger ones may belong to a save in
// progress, here or in another process sharing the data directory). Such
// files are left by a crash between writing a mask and committing its
// row, by a failed removal, or by migrating 0003 down. It returns how many
// files it removed.
func (db *DB) PruneTriageMasks(ctx context.Context) (int, error) {
	return db.pruneTriageMasks(ctx, time.Now().Add(-tmpGrace))
}

func (db *DB) pruneTriageMasks(ctx context.Context, before time.Time) (int, error) {
	// Candidates are listed before the rows are read: a file written after
	// the listing is not a candidate, and one listed is old enough that
	// its row, if any, committed before the query.
	var cand []string
	root := db.abs(masksDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return fs.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if fi.ModTime().Before(before) {
			rel, err := filepath.Rel(db.dir, p)
			if err != nil {
				return err
			}
			cand = append(cand, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune triage masks: %w", err)
	}
	if len(cand) == 0 {
		return 0, nil
	}
	named := make(map[string]bool)
	rows, err := db.rdb.QueryContext(ctx, `SELECT mask_path FROM triage_results WHERE mask_path IS NOT NULL`)
	if err != nil {
		return 0, wrapDBErr(ctx, fmt.Errorf("store: prune triage masks: %w", err))
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: prune triage masks: %w", err)
		}
		named[p] = true
	}
	if err := closeRows(ctx, rows, "prune triage masks"); err != nil {
		return 0, err
	}
	n := 0
	for _, rel := range cand {
		if named[rel] {
			continue
		}
		if err := os.Remove(db.abs(filepath.FromSlash(rel))); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			db.log.Warn("could not remove orphan triage mask", "path", rel, "err", err)
		}
	}
	return n, nil
}
