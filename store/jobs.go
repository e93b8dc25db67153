package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/radtriage/radtriage/triage"
)

// The job side of the store (migration 0004): the triage job of each
// study, one row of triage_jobs. SQL is the source of truth of the
// pipeline; the Redis stream only carries {study, version} messages, so a
// message seen twice is harmless: ClaimJob, a conditional UPDATE, lets one
// process at a time own a job version, and SaveTriageResultForJob commits
// the result and the end of the job in one transaction, only while the
// caller still owns it.
//
// The version of a job is the study's instance count when it became
// stable. A study that receives new instances after triage becomes stable
// again with another version, which replaces the row (whatever its state):
// the study is triaged again, and the worker still running the old version
// finds that it lost the job (ErrJobLost).
//
// Life of a job:
//
//	queued  --ClaimJob-->  running  --SaveTriageResultForJob-->  done
//	running --FailJob-->   retry (next_at) --ClaimJob once due--> running
//	running --FailJob(dead)--> dead
//	running --ReleaseJob--> queued (the attempt does not count)
//	running, lease lapsed --ClaimJob by another worker--> running
//
// DueJobs lists what the reconciler adds to the stream again: queued jobs
// not added for a while, retries that are due, running jobs whose lease
// has lapsed.

// JobState is the state of a study's triage job.
type JobState string

// Triage job states.
const (
	JobQueued  JobState = "queued"  // to run: on the stream, or due to be added
	JobRunning JobState = "running" // owned by a worker until its lease lapses
	JobRetry   JobState = "retry"   // failed; may run again from NextAt
	JobDone    JobState = "done"    // its result is stored
	JobDead    JobState = "dead"    // failed for good; LastError says why
)

// jobStates lists every state, in the order of a job's life.
var jobStates = []JobState{JobQueued, JobRunning, JobRetry, JobDone, JobDead}

// ErrJobLost: the caller no longer owns the job (another version replaced
// it, or its lease lapsed and another worker claimed it). Nothing was
// written.
var ErrJobLost = errors.New("triage job no longer held")

// maxJobError bounds Job.LastError, in bytes.
const maxJobError = 2000

// Job is a study's triage job (a row of triage_jobs).
type Job struct {
	StudyUID string
	Version  int64 // the study's instance count when it was enqueued
	State    JobState
	Attempts int    // attempts claimed (a released one does not count)
	Owner    string // the worker holding a running job
	// LeaseUntil: a running job's claim lapses then. NextAt: when a retry
	// is due. EnqueuedAt: when it was last added to the stream.
	// CreatedAt: when this version was enqueued. UpdatedAt: the last
	// change of state. FinishedAt: when it became done or dead. Each is
	// zero when unset.
	LeaseUntil, NextAt, EnqueuedAt, CreatedAt, UpdatedAt, FinishedAt time.Time
	LastError                                                        string // why the last attempt failed
}

// jobCols are the columns scanJob reads, in its order.
const jobCols = `study_uid, version, state, attempts, owner, lease_until, next_at,
	enqueued_at, created_at, updated_at, finished_at, last_error`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var (
		j                                            Job
		state                                        string
		lease, next, enq, created, updated, finished int64
	)
	if err := row.Scan(&j.StudyUID, &j.Version, &state, &j.Attempts, &j.Owner,
		&lease, &next, &enq, &created, &updated, &finished, &j.LastError); err != nil {
		return Job{}, err
	}
	j.State = JobState(state)
	j.LeaseUntil, j.NextAt, j.EnqueuedAt = jobTime(lease), jobTime(next), jobTime(enq)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = jobTime(created), jobTime(updated), jobTime(finished)
	return j, nil
}

// jobTime is the time of a Unix-microsecond job column, zero for 0.
func jobTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

// jobMicros is t in Unix microseconds, 0 for the zero time.
func jobMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// checkJob validates a study UID, version and, when owner is needed, the
// owner of a job call. Errors wrap ErrInvalidResult.
func checkJob(what, studyUID string, version int64, owner *string) error {
	if err := checkUID("study UID", studyUID); err != nil {
		return fmt.Errorf("store: %s: %w: %w", what, ErrInvalidResult, err)
	}
	if version < 0 {
		return fmt.Errorf("store: %s of %s: %w: negative version %d", what, studyUID, ErrInvalidResult, version)
	}
	if owner != nil && *owner == "" {
		return fmt.Errorf("store: %s of %s: %w: no owner", what, studyUID, ErrInvalidResult)
	}
	return nil
}

// EnqueueJob records version as the study's job to run. It returns true
// when the caller must add it to the stream: there was no row, or the row
// has another version (in any state: a study that received new instances
// after triage is triaged again), which it replaces as a queued job with
// no attempts. When the row has this version already (in any state) it
// returns false and changes nothing. A bad study UID or a negative
// version is an error wrapping ErrInvalidResult.
func (db *DB) EnqueueJob(ctx context.Context, studyUID string, version int64) (bool, error) {
	if err := checkJob("enqueue triage job", studyUID, version, nil); err != nil {
		return false, err
	}
	now := db.now().UnixMicro()
	res, err := db.wdb.ExecContext(ctx, db.dialect.q(`INSERT INTO triage_jobs
		(study_uid, version, state, attempts, owner, lease_until, next_at, enqueued_at,
			created_at, updated_at, finished_at, last_error)
		VALUES (?, ?, 'queued', 0, '', 0, 0, 0, ?, ?, 0, '')
		ON CONFLICT (study_uid) DO UPDATE SET version = excluded.version, state = 'queued',
			attempts = 0, owner = '', lease_until = 0, next_at = 0, enqueued_at = 0,
			created_at = excluded.created_at, updated_at = excluded.updated_at,
			finished_at = 0, last_error = ''
		WHERE triage_jobs.version <> excluded.version`),
		studyUID, version, now, now)
	if err != nil {
		return false, wrapDBErr(ctx, fmt.Errorf("store: enqueue triage job of %s: %w", studyUID, err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: enqueue triage job of %s: %w", studyUID, err)
	}
	return n > 0, nil
}

// MarkEnqueued records that the job of that study and version was added
// to the stream at at (after a successful XADD). Nothing happens when the
// study's job has another version or none.
func (db *DB) MarkEnqueued(ctx context.Context, studyUID string, version int64, at time.Time) error {
	if err := checkJob("mark triage job enqueued", studyUID, version, nil); err != nil {
		return err
	}
	_, err := db.wdb.ExecContext(ctx, db.dialect.q(`UPDATE triage_jobs SET enqueued_at = ?
		WHERE study_uid = ? AND version = ?`), db.stamp(at).UnixMicro(), studyUID, version)
	if err != nil {
		return wrapDBErr(ctx, fmt.Errorf("store: mark triage job of %s enqueued: %w", studyUID, err))
	}
	return nil
}

// ClaimJob takes the study's job for owner when its version is version
// and it is queued, or a retry that is due (NextAt <= now), or running
// with a lapsed lease (LeaseUntil < now: its worker died or hangs). The
// job is then running, owned by owner until now+lease, with one more
// attempt; ClaimJob returns it and true. Otherwise it returns the job as
// it is and false, with no error (the caller acknowledges the message
// without running it); a study without a job gives Job{}, false. At most
// one caller, in any process, gets true for a job at a time.
func (db *DB) ClaimJob(ctx context.Context, studyUID string, version int64, owner string, lease time.Duration) (Job, bool, error) {
	if err := checkJob("claim triage job", studyUID, version, &owner); err != nil {
		return Job{}, false, err
	}
	if lease <= 0 {
		return Job{}, false, fmt.Errorf("store: claim triage job of %s: %w: lease %v", studyUID, ErrInvalidResult, lease)
	}
	now := db.now().UnixMicro()
	j, err := scanJob(db.wdb.QueryRowContext(ctx, db.dialect.q(`UPDATE triage_jobs
		SET state = 'running', owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE study_uid = ? AND version = ? AND (state = 'queued'
			OR (state = 'retry' AND next_at <= ?) OR (state = 'running' AND lease_until < ?))
		RETURNING `+jobCols),
		owner, now+lease.Microseconds(), now, studyUID, version, now, now))
	if err == nil {
		return j, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, wrapDBErr(ctx, fmt.Errorf("store: claim triage job of %s: %w", studyUID, err))
	}
	j, err = db.job(ctx, studyUID)
	if errors.Is(err, ErrNotFound) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, err
	}
	return j, false, nil
}

// RenewJob extends the lease of a running job to now+lease. It is an
// error wrapping ErrJobLost when the job is no longer (this version,
// running, owned by owner).
func (db *DB) RenewJob(ctx context.Context, studyUID string, version int64, owner string, lease time.Duration) error {
	if err := checkJob("renew triage job", studyUID, version, &owner); err != nil {
		return err
	}
	if lease <= 0 {
		return fmt.Errorf("store: renew triage job of %s: %w: lease %v", studyUID, ErrInvalidResult, lease)
	}
	return db.ownedJobUpdate(ctx, "renew", studyUID, version, owner,
		`lease_until = ?`, db.now().Add(lease).UnixMicro())
}

// FailJob records a failed attempt of a job that owner holds: with dead
// false the job becomes a retry due at retryAt (zero: now), with dead true
// it is dead. Its LastError becomes reason (valid UTF-8, at most 2000
// bytes). It is an error wrapping ErrJobLost when the job is no longer
// (this version, running, owned by owner).
func (db *DB) FailJob(ctx context.Context, studyUID string, version int64, owner, reason string, retryAt time.Time, dead bool) error {
	if err := checkJob("fail triage job", studyUID, version, &owner); err != nil {
		return err
	}
	now := db.now().UnixMicro()
	reason = jobError(reason)
	if dead {
		return db.ownedJobUpdate(ctx, "fail", studyUID, version, owner,
			`state = 'dead', owner = '', lease_until = 0, next_at = 0, finished_at = ?, updated_at = ?, last_error = ?`,
			now, now, reason)
	}
	return db.ownedJobUpdate(ctx, "fail", studyUID, version, owner,
		`state = 'retry', owner = '', lease_until = 0, next_at = ?, updated_at = ?, last_error = ?`,
		db.stamp(retryAt).UnixMicro(), now, reason)
}

// ReleaseJob gives back a running job that owner holds without counting
// the attempt (a graceful shutdown): it is queued again, with no owner.
// It is an error wrapping ErrJobLost when the job is no longer (this
// version, running, owned by owner).
func (db *DB) ReleaseJob(ctx context.Context, studyUID string, version int64, owner string) error {
	if err := checkJob("release triage job", studyUID, version, &owner); err != nil {
		return err
	}
	return db.ownedJobUpdate(ctx, "release", studyUID, version, owner,
		`state = 'queued', owner = '', lease_until = 0,
			attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ?`,
		db.now().UnixMicro())
}

// ownedJobUpdate runs UPDATE triage_jobs SET set (with args) on the job
// when it is (version, running, owned by owner); ErrJobLost when not.
func (db *DB) ownedJobUpdate(ctx context.Context, what, studyUID string, version int64, owner, set string, args ...any) error {
	args = append(args, studyUID, version, owner)
	res, err := db.wdb.ExecContext(ctx, db.dialect.q(`UPDATE triage_jobs SET `+set+`
		WHERE study_uid = ? AND version = ? AND owner = ? AND state = 'running'`), args...)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("store: %s triage job of %s (version %d, owner %q): %w", what, studyUID, version, owner, ErrJobLost)
		}
	}
	if err != nil {
		return wrapDBErr(ctx, fmt.Errorf("store: %s triage job of %s: %w", what, studyUID, err))
	}
	return nil
}

// jobError is reason as LastError keeps it: valid UTF-8 without NUL (which
// PostgreSQL text refuses), at most maxJobError bytes.
func jobError(reason string) string {
	reason = strings.ToValidUTF8(strings.ReplaceAll(reason, "\x00", ""), "\uFFFD")
	if len(reason) <= maxJobError {
		return reason
	}
	cut := maxJobError
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// SaveTriageResultForJob is SaveTriageResult(r) and, in the same
// transaction, the end of the study's job: done, with no owner. Both
// happen only while the job is (version, running, owned by owner);
// otherwise the error wraps ErrJobLost, neither the result nor the job
// changes, and the mask file written for r is removed.
func (db *DB) SaveTriageResultForJob(ctx context.Context, r triage.StoredResult, version int64, owner string) error {
	if err := checkJob("save triage result for job", r.StudyUID, version, &owner); err != nil {
		return err
	}
	return db.saveTriageResult(ctx, r, &jobClaim{version: version, owner: owner})
}

// jobClaim is the job a result is saved for.
type jobClaim struct {
	version int64
	owner   string
}

// finishJob marks the claimed job done within tx; ErrJobLost when the
// claim no longer holds.
func (db *DB) finishJob(ctx context.Context, tx *sql.Tx, studyUID string, c *jobClaim) error {
	now := db.now().UnixMicro()
	res, err := tx.ExecContext(ctx, db.dialect.q(`UPDATE triage_jobs SET state = 'done', owner = '',
		lease_until = 0, next_at = 0, finished_at = ?, updated_at = ?, last_error = ''
		WHERE study_uid = ? AND version = ? AND owner = ? AND state = 'running'`),
		now, now, studyUID, c.version, c.owner)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("job version %d, owner %q: %w", c.version, c.owner, ErrJobLost)
	}
	return nil
}

// DueJobs lists the jobs to add to the stream (again) at now: queued jobs
// never added or last added at least requeueAfter ago, retries due by
// now, running jobs whose lease lapsed before now. Oldest change first,
// at most limit (no limit when limit <= 0).
func (db *DB) DueJobs(ctx context.Context, now time.Time, requeueAfter time.Duration, limit int) ([]Job, error) {
	n := now.UnixMicro()
	return db.jobList(ctx, "due triage jobs", `WHERE (state = 'queued' AND enqueued_at <= ?)
		OR (state = 'retry' AND next_at <= ?) OR (state = 'running' AND lease_until < ?)
		ORDER BY updated_at, study_uid`, limit, n-requeueAfter.Microseconds(), n, n)
}

// Jobs lists the jobs in the given states (every state when states is
// empty), the most recently changed first, at most limit (no limit when
// limit <= 0).
func (db *DB) Jobs(ctx context.Context, states []JobState, limit int) ([]Job, error) {
	cond, args := "", []any(nil)
	if len(states) > 0 {
		cond = "WHERE state IN (?" + strings.Repeat(", ?", len(states)-1) + ")"
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	return db.jobList(ctx, "triage jobs", cond+" ORDER BY updated_at DESC, study_uid", limit, args...)
}

func (db *DB) jobList(ctx context.Context, what, tail string, limit int, args ...any) ([]Job, error) {
	if limit > 0 {
		tail += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(`SELECT `+jobCols+` FROM triage_jobs `+tail), args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: %s: %w", what, err))
	}
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, j)
	}
	if err := closeRows(ctx, rows, what); err != nil {
		return nil, err
	}
	return out, nil
}

// JobCounts counts the jobs in each state; every state is a key, with 0
// when no job is in it.
func (db *DB) JobCounts(ctx context.Context) (map[JobState]int, error) {
	counts := make(map[JobState]int, len(jobStates))
	for _, s := range jobStates {
		counts[s] = 0
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT state, COUNT(*) FROM triage_jobs GROUP BY state`)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: count triage jobs: %w", err))
	}
	for rows.Next() {
		var (
			s string
			n int
		)
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: count triage jobs: %w", err)
		}
		counts[JobState(s)] = n
	}
	if err := closeRows(ctx, rows, "count triage jobs"); err != nil {
		return nil, err
	}
	return counts, nil
}

// Job returns the study's triage job. A study without one is an error
// wrapping ErrNotFound; a bad study UID one wrapping ErrInvalidResult.
func (db *DB) Job(ctx context.Context, studyUID string) (Job, error) {
	if err := checkJob("triage job", studyUID, 0, nil); err != nil {
		return Job{}, err
	}
	return db.job(ctx, studyUID)
}

func (db *DB) job(ctx context.Context, studyUID string) (Job, error) {
	j, err := scanJob(db.rdb.QueryRowContext(ctx, db.dialect.q(`SELECT `+jobCols+` FROM triage_jobs WHERE study_uid = ?`), studyUID))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("store: triage job of study %s: %w", studyUID, ErrNotFound)
	}
	if err != nil {
		return Job{}, wrapDBErr(ctx, fmt.Errorf("store: triage job of %s: %w", studyUID, err))
	}
	return j, nil
}

// StudyFS returns the stored instances of a study as a read-only fs.FS
// rooted at its blob directory, with one file {series}/{sop}.dcm per
// indexed instance (files in that directory that the index does not name
// are not in it), for volume.LoadDir. A study without instances is an
// error wrapping ErrNotFound; a bad study UID one wrapping
// ErrInvalidResult.
func (db *DB) StudyFS(ctx context.Context, studyUID string) (fs.FS, error) {
	if err := checkJob("study files", studyUID, 0, nil); err != nil {
		return nil, err
	}
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(`SELECT blob_path FROM instances WHERE study_uid = ?`), studyUID)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: study files of %s: %w", studyUID, err))
	}
	sfs := &studyFS{files: map[string]bool{}, dirs: map[string]bool{".": true}}
	prefix := filepath.ToSlash(studyBlobs(studyUID)) + "/"
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: study files of %s: %w", studyUID, err)
		}
		rel, ok := strings.CutPrefix(filepath.ToSlash(p), prefix)
		if !ok || !fs.ValidPath(rel) || rel == "." {
			db.log.Warn("instance blob outside its study's directory; left out", "study", studyUID, "path", p)
			continue
		}
		sfs.files[rel] = true
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			sfs.dirs[d] = true
		}
	}
	if err := closeRows(ctx, rows, "study files"); err != nil {
		return nil, err
	}
	if len(sfs.files) == 0 {
		return nil, fmt.Errorf("store: study files of %s: %w", studyUID, ErrNotFound)
	}
	sfs.root = os.DirFS(db.abs(studyBlobs(studyUID)))
	return sfs, nil
}

// studyFS is root restricted to the files (and the directories leading to
// them) that the index names.
type studyFS struct {
	root  fs.FS
	files map[string]bool
	dirs  map[string]bool
}

var _ fs.ReadDirFS = (*studyFS)(nil)

// Open opens a named file or directory.
func (s *studyFS) Open(name string) (fs.File, error) {
	switch {
	case s.files[name]:
		return s.root.Open(name)
	case s.dirs[name]:
		f, err := s.root.Open(name)
		if err != nil {
			return nil, err
		}
		return &studyDir{File: f, fsys: s, name: name}, nil
	case !fs.ValidPath(name):
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadDir lists the named entries of a directory, sorted by name.
func (s *studyFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !s.dirs[name] {
		if s.files[name] {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	ents, err := fs.ReadDir(s.root, name)
	if err != nil {
		return nil, err
	}
	out := ents[:0]
	for _, e := range ents {
		p := path.Join(name, e.Name())
		if (s.files[p] && e.Type().IsRegular()) || (s.dirs[p] && e.IsDir()) {
			out = append(out, e)
		}
	}
	return out, nil
}

// studyDir is an open directory of a studyFS.
type studyDir struct {
	fs.File
	fsys *studyFS
	name string
	ents []fs.DirEntry
	read bool
}

// ReadDir lists the directory's named entries as fs.ReadDirFile does.
func (d *studyDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fsys.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}

// TriageJobs returns the store as triage workers use it: the job table
// and the results, with ErrJobLost also matching triage.ErrJobLost.
func (db *DB) TriageJobs() triage.JobStore { return triageJobs{db} }

type triageJobs struct{ db *DB }

// lost makes an ErrJobLost error match triage.ErrJobLost as well.
func lost(err error) error {
	if errors.Is(err, ErrJobLost) {
		return fmt.Errorf("%w: %w", triage.ErrJobLost, err)
	}
	return err
}

func (s triageJobs) Claim(ctx context.Context, study string, version int64, owner string, lease time.Duration) (int, string, bool, error) {
	j, ok, err := s.db.ClaimJob(ctx, study, version, owner, lease)
	if err != nil {
		return 0, "", false, err
	}
	state := string(j.State)
	if j.Version != version {
		state = "" // another version replaced it
	}
	return j.Attempts, state, ok, nil
}

func (s triageJobs) Renew(ctx context.Context, study string, version int64, owner string, lease time.Duration) error {
	return lost(s.db.RenewJob(ctx, study, version, owner, lease))
}

func (s triageJobs) Commit(ctx context.Context, r triage.StoredResult, version int64, owner string) error {
	return lost(s.db.SaveTriageResultForJob(ctx, r, version, owner))
}

func (s triageJobs) Fail(ctx context.Context, study string, version int64, owner, reason string, retryAt time.Time, dead bool) error {
	return lost(s.db.FailJob(ctx, study, version, owner, reason, retryAt, dead))
}

func (s triageJobs) Release(ctx context.Context, study string, version int64, owner string) error {
	return lost(s.db.ReleaseJob(ctx, study, version, owner))
}

func (s triageJobs) StudyFS(ctx context.Context, study string) (fs.FS, error) {
	return s.db.StudyFS(ctx, study)
}

func (s triageJobs) TriageResult(ctx context.Context, study string) (triage.StoredResult, error) {
	return s.db.TriageResult(ctx, study)
}
