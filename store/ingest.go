package store

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/radtriage/radtriage/dicomio"
)

// Store reads one instance from r, validates it (dicomio), and makes it
// durable: the bytes are spooled to DataDir/tmp (hashed, size-checked,
// fsynced), parsed, hard-linked to blobs/{study}/{series}/{sop}.dcm (never
// over an existing file), the directory fsynced, and the index committed.
// Only then does it return. Per-instance refusals are *dicomio.RejectError;
// an unreachable database is ErrUnavailable.
//
// Store is Receive followed by Commit.
func (db *DB) Store(ctx context.Context, r io.Reader, opts StoreOptions) (*StoreResult, error) {
	p, err := db.Receive(ctx, r, opts)
	if err != nil {
		return nil, err
	}
	return p.Commit(ctx)
}

// Pending is an instance that has been received (spooled to DataDir/tmp,
// hashed, its fsync under way) but not yet validated or committed. Nothing
// about it may be acknowledged until Commit returns. Exactly one of Commit
// or Discard must be called.
type Pending struct {
	db   *DB
	sp   *spool
	opts StoreOptions
}

// Size is the instance's size in bytes.
func (p *Pending) Size() int64 { return p.sp.size }

// Receive reads one instance from r into a temp file and returns it
// pending. It consumes r completely (or up to opts.MaxBytes, failing with
// ErrTooLarge), so a caller reading a multipart body can go on to the next
// part while the Commit of this one runs.
func (db *DB) Receive(ctx context.Context, r io.Reader, opts StoreOptions) (*Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sp, err := db.writeTemp(r, opts.MaxBytes)
	if err != nil {
		return nil, err
	}
	return &Pending{db: db, sp: sp, opts: opts}, nil
}

// Discard drops a pending instance that will not be committed.
func (p *Pending) Discard() { p.sp.release() }

// Commit validates the pending instance and makes it durable, as Store
// describes. The temp file is gone afterwards, whatever the outcome.
func (p *Pending) Commit(ctx context.Context) (*StoreResult, error) {
	db, sp, opts := p.db, p.sp, p.opts
	defer p.Discard()

	inst, err := parseInstance(sp.data, sp.path, sp.size)
	if err != nil {
		return nil, err
	}
	if err := checkInstanceUIDs(inst); err != nil {
		return nil, err
	}
	if opts.Study != "" && inst.StudyInstanceUID != opts.Study {
		return nil, &dicomio.RejectError{
			SOPClassUID:    inst.SOPClassUID,
			SOPInstanceUID: inst.SOPInstanceUID,
			Code:           dicomio.ReasonStudyMismatch,
			Reason:         fmt.Sprintf("instance belongs to study %s, not to the target study %s", inst.StudyInstanceUID, opts.Study),
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := sp.synced(); err != nil {
		return nil, err
	}

	unlock := db.locks.lock(inst.SOPInstanceUID)
	defer unlock()
	res, err := db.commit(ctx, sp, inst)
	if err != nil {
		return nil, wrapDBErr(ctx, err)
	}
	return res, nil
}

// commit publishes a parsed, spooled instance and indexes it. The caller
// holds the instance's SOP lock.
func (db *DB) commit(ctx context.Context, sp *spool, inst *dicomio.Instance) (*StoreResult, error) {
	sop := inst.SOPInstanceUID
	existing, err := db.lookup(ctx, sop)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return db.compare(ctx, sp, inst, existing)
	}

	rel := blobRel(inst.StudyInstanceUID, inst.SeriesInstanceUID, sop)
	for attempt := 0; ; attempt++ {
		err = db.link(sp.path, rel) // index fsyncs the directory before it commits
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return nil, fmt.Errorf("store: publish %s: %w", rel, err)
		}
		// A blob is there without an index row: a crash, or another
		// process between its link and its commit. Index that file, then
		// compare with it.
		existing, err = db.adopt(ctx, rel)
		if errors.Is(err, errQuarantined) {
			continue // the bad file is out of the way: link ours
		}
		if err != nil {
			return nil, err
		}
		return db.compare(ctx, sp, inst, existing)
	}

	inserted, err := db.index(ctx, inst, sp.size, sp.sum, rel)
	if err != nil {
		// The blob stays: a retry finds and indexes it, and so does
		// Reconcile at the next start. Nothing was acknowledged.
		return nil, err
	}
	if inserted {
		return &StoreResult{Instance: inst, Outcome: Stored, Size: sp.size, SHA256: sp.sum}, nil
	}
	// Another process indexed this SOP between our lookup and our insert.
	existing, err = db.lookup(ctx, sop)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return nil, fmt.Errorf("store: %s: index row vanished during insert", sop)
	}
	if existing.blobPath == filepath.ToSlash(rel) {
		// It indexed the very file we linked.
		return &StoreResult{Instance: inst, Outcome: Stored, Size: sp.size, SHA256: sp.sum}, nil
	}
	res, err := db.compare(ctx, sp, inst, existing)
	if err != nil {
		return nil, err
	}
	// Our link under another study/series is referenced by nothing.
	if err := os.Remove(db.abs(rel)); err == nil {
		syncDir(filepath.Dir(db.abs(rel)))
	}
	return res, nil
}

// stored is what the index holds about one stored instance.
type stored struct {
	sum      string
	size     int64
	blobPath string // slash-separated, relative to the data directory
}

func (db *DB) lookup(ctx context.Context, sop string) (*stored, error) {
	var s stored
	err := db.rdb.QueryRowContext(ctx, db.dialect.q(
		`SELECT sha256, size, blob_path FROM instances WHERE sop_uid = ?`), sop).
		Scan(&s.sum, &s.size, &s.blobPath)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: look up %s: %w", sop, err)
	}
	return &s, nil
}

// compare decides the outcome for bytes that arrive under a SOP Instance
// UID the index already holds.
func (db *DB) compare(ctx context.Context, sp *spool, inst *dicomio.Instance, existing *stored) (*StoreResult, error) {
	res := &StoreResult{Instance: inst, Size: sp.size, SHA256: sp.sum}
	if existing.sum == sp.sum {
		res.Outcome = AlreadyStored
		return res, nil
	}
	if err := db.keepConflict(ctx, sp.path, inst.SOPInstanceUID, sp.sum, sp.size); err != nil {
		return nil, err
	}
	db.log.Warn("different bytes under a stored SOP Instance UID; first version kept, new one set aside",
		"sop", inst.SOPInstanceUID, "stored_sha256", existing.sum, "new_sha256", sp.sum)
	res.Outcome = Conflict
	return res, nil
}

// keepConflict links src to conflicts/{sop}/{sha}.dcm (fsynced) and records it.
func (db *DB) keepConflict(ctx context.Context, src, sop, sum string, size int64) error {
	rel := conflictRel(sop, sum)
	if err := db.publish(src, rel); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: keep conflicting version of %s: %w", sop, err)
	}
	_, err := db.wdb.ExecContext(ctx, db.dialect.q(`INSERT INTO instance_conflicts
		(sop_uid, sha256, size, blob_path, received) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (sop_uid, sha256) DO NOTHING`),
		sop, sum, size, filepath.ToSlash(rel), db.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("store: record conflicting version of %s: %w", sop, err)
	}
	return nil
}

var errQuarantined = errors.New("blob quarantined")

// adopt indexes a blob found at rel without an index row and returns the
// index row for its SOP afterwards. A file that does not parse, or whose
// UIDs do not lead to rel, is quarantined (errQuarantined).
func (db *DB) adopt(ctx context.Context, rel string) (*stored, error) {
	path := db.abs(rel)
	size, sum, err := hashFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: read blob %s: %w", rel, err)
	}
	inst, err := parseInstance(nil, path, size)
	if err == nil {
		err = checkInstanceUIDs(inst)
	}
	if err == nil && blobRel(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID) != rel {
		err = fmt.Errorf("its UIDs lead to %s", blobRel(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID))
	}
	if err != nil {
		if qerr := db.quarantine(rel, err.Error()); qerr != nil {
			return nil, qerr
		}
		return nil, errQuarantined
	}
	if _, err := db.index(ctx, inst, size, sum, rel); err != nil {
		return nil, err
	}
	existing, err := db.lookup(ctx, inst.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return nil, fmt.Errorf("store: %s: index row vanished after insert", inst.SOPInstanceUID)
	}
	if existing.blobPath != filepath.ToSlash(rel) {
		// The SOP is indexed under another study/series: this file is a
		// different version of it (same bytes would share the path).
		if err := db.keepConflict(ctx, path, inst.SOPInstanceUID, sum, size); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err == nil {
			syncDir(filepath.Dir(path))
		}
	}
	return existing, nil
}

// indexReq is one instance to index, and its answer.
type indexReq struct {
	inst     *dicomio.Instance
	size     int64
	sum, rel string

	inserted bool
	err      error
	done     chan struct{}
}

// index commits one instance: the instance row, then the counters of its
// series and study (creating them, and the patient, when new). It returns
// false, changing nothing, when the SOP Instance UID is already indexed.
//
// The requests of concurrent callers are committed together by one
// goroutine (group commit: one transaction and one WAL flush for up to
// maxBatch instances, where a transaction each would flush once per
// instance). If a batch fails (on PostgreSQL, say, a deadlock with another
// process's batch), each request is retried in a transaction of its own, so
// one bad request never fails the others.
//
// The directory of rel is fsynced before the commit: the blob's name is
// durable before the index points at it.
func (db *DB) index(ctx context.Context, inst *dicomio.Instance, size int64, sum, rel string) (bool, error) {
	req := &indexReq{inst: inst, size: size, sum: sum, rel: rel, done: make(chan struct{})}
	select {
	case db.batch <- req:
	case <-db.closing:
		return false, errors.New("store: closed")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	<-req.done // bounded by one commit; the request is not abandoned mid-way
	return req.inserted, req.err
}

// maxBatch bounds the instances of one group commit.
const maxBatch = 64

// committer runs the group commits of index until Close.
func (db *DB) committer() {
	defer db.wg.Done()
	for {
		var reqs []*indexReq
		select {
		case r := <-db.batch:
			reqs = append(reqs, r)
		case <-db.closing:
			return
		}
	more:
		for len(reqs) < maxBatch {
			select {
			case r := <-db.batch:
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := db.syncDirs(reqs)
		if err == nil {
			err = db.indexTx(ctx, reqs)
		}
		if err != nil && len(reqs) > 1 && !errors.Is(err, errDirSync) {
			// Isolate the failure: one transaction each.
			for _, r := range reqs {
				r.err = db.indexTx(ctx, []*indexReq{r})
			}
		} else if err != nil {
			reqs[0].err = err
		}
		cancel()
		for _, r := range reqs {
			close(r.done)
		}
	}
}

var errDirSync = errors.New("directory fsync failed")

// syncDirs fsyncs the directories of reqs' blobs, each once, concurrently.
func (db *DB) syncDirs(reqs []*indexReq) error {
	dirs := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		dirs[filepath.Dir(db.abs(r.rel))] = true
	}
	errs := make(chan error, len(dirs))
	for dir := range dirs {
		go func() { errs <- syncDir(dir) }()
	}
	var first error
	for range dirs {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("store: %w: %w", errDirSync, err)
		}
	}
	return first
}

// indexTx indexes reqs in one transaction and sets their inserted flags.
// A deadlock or serialization failure (PostgreSQL, several processes) is
// retried a few times before it is reported.
func (db *DB) indexTx(ctx context.Context, reqs []*indexReq) (err error) {
	for attempt := 0; ; attempt++ {
		err = db.indexTxOnce(ctx, reqs)
		if err == nil || attempt == 4 || !retryable(err) {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// indexTxOnce takes its row locks in one global order, the same in every
// process: instances by SOP Instance UID, then series by UID, then studies
// (and their patients) by UID. Two group commits that share rows therefore
// wait for each other instead of deadlocking.
func (db *DB) indexTxOnce(ctx context.Context, reqs []*indexReq) (err error) {
	order := slices.Clone(reqs)
	slices.SortStableFunc(order, func(a, b *indexReq) int {
		return strings.Compare(a.inst.SOPInstanceUID, b.inst.SOPInstanceUID)
	})
	for _, r := range reqs {
		r.inserted = false
	}
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	now := db.now().UnixMicro()
	err = db.indexAll(ctx, tx, order, now)
	wrote := false
	for _, r := range reqs {
		wrote = wrote || r.inserted
	}
	switch {
	case err == nil && !wrote:
		if err = tx.Rollback(); err != nil { // nothing to commit
			return fmt.Errorf("store: rollback: %w", err)
		}
		return nil
	case err == nil:
		if err = tx.Commit(); err != nil {
			err = fmt.Errorf("store: commit: %w", err)
		}
	default:
		tx.Rollback()
	}
	if err != nil {
		for _, r := range reqs {
			r.inserted = false
		}
	}
	return err
}

// retryable reports a transaction that failed only because of another one.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// indexAll inserts the instances of order (sorted by SOP Instance UID),
// then counts the inserted ones into their series and studies, creating
// those rows when they are new. The usual case is one statement per
// instance plus one per series and one per study.
func (db *DB) indexAll(ctx context.Context, tx *sql.Tx, order []*indexReq, now int64) error {
	d := db.dialect
	exec := func(query string, args ...any) (int64, error) {
		r, err := tx.ExecContext(ctx, d.q(query), args...)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}

	type seriesAdd struct {
		first *dicomio.Instance
		n     int
	}
	type studyAdd struct {
		first     *dicomio.Instance
		n, series int
	}
	series := map[string]*seriesAdd{}
	studies := map[string]*studyAdd{}
	for _, r := range order {
		inst := r.inst
		n, err := exec(`INSERT INTO instances (sop_uid, series_uid, study_uid, sop_class_uid,
			transfer_syntax_uid, instance_number, num_rows, num_cols, frames, bits_allocated,
			image_position, image_orientation, pixel_spacing, slice_thickness, has_rescale,
			rescale_slope, rescale_intercept, size, sha256, blob_path, received)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sop_uid) DO NOTHING`,
			inst.SOPInstanceUID, inst.SeriesInstanceUID, inst.StudyInstanceUID, inst.SOPClassUID,
			inst.TransferSyntaxUID, inst.InstanceNumber, inst.Rows, inst.Columns, inst.NumberOfFrames, inst.BitsAllocated,
			floatsText(inst.ImagePositionPatient), floatsText(inst.ImageOrientationPatient), floatsText(inst.PixelSpacing),
			inst.SliceThickness, inst.HasRescale, inst.RescaleSlope, inst.RescaleIntercept,
			r.size, r.sum, filepath.ToSlash(r.rel), now)
		if err != nil {
			return fmt.Errorf("store: index %s: %w", inst.SOPInstanceUID, err)
		}
		if n == 0 {
			continue // already indexed (by an earlier batch, or earlier in this one)
		}
		r.inserted = true
		s := series[inst.SeriesInstanceUID]
		if s == nil {
			s = &seriesAdd{first: inst}
			series[inst.SeriesInstanceUID] = s
		}
		s.n++
		st := studies[inst.StudyInstanceUID]
		if st == nil {
			st = &studyAdd{first: inst}
			studies[inst.StudyInstanceUID] = st
		}
		st.n++
	}

	const bumpSeries = `UPDATE series SET num_instances = num_instances + ? WHERE uid = ?`
	for _, uid := range slices.Sorted(maps.Keys(series)) {
		s := series[uid]
		inst := s.first
		n, err := exec(bumpSeries, s.n, uid)
		if err == nil && n == 0 {
			n, err = exec(`INSERT INTO series (uid, study_uid, modality, series_number,
				series_description, body_part, series_date, series_time, num_instances)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING`,
				uid, inst.StudyInstanceUID, inst.Modality, inst.SeriesNumber,
				inst.SeriesDescription, inst.BodyPartExamined, inst.SeriesDate, inst.SeriesTime, s.n)
			if err == nil && n == 1 {
				studies[inst.StudyInstanceUID].series++
			} else if err == nil { // created meanwhile by another process
				_, err = exec(bumpSeries, s.n, uid)
			}
		}
		if err != nil {
			return fmt.Errorf("store: index series %s: %w", uid, err)
		}
	}

	const bumpStudy = `UPDATE studies SET num_instances = num_instances + ?,
		num_series = num_series + ?,
		last_received = CASE WHEN last_received < ? THEN ? ELSE last_received END,
		stable_state = 0, stable_at = NULL
		WHERE uid = ?`
	for _, uid := range slices.Sorted(maps.Keys(studies)) {
		st := studies[uid]
		inst := st.first
		n, err := exec(bumpStudy, st.n, st.series, now, now, uid)
		if err == nil && n == 0 {
			var patient int64
			patient, err = db.patient(ctx, tx, inst)
			if err == nil {
				n, err = exec(`INSERT INTO studies (uid, patient_pk, study_date, study_time,
					accession_number, study_id, study_description, referring_physician, referring_key,
					priority, num_series, num_instances, first_received, last_received, stable_state)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (uid) DO NOTHING`,
					uid, patient, inst.StudyDate, inst.StudyTime,
					inst.AccessionNumber, inst.StudyID, inst.StudyDescription, inst.ReferringPhysicianName,
					foldKey(inst.ReferringPhysicianName), inst.RequestedProcedurePriority,
					st.series, st.n, now, now)
			}
			if err == nil && n == 0 {
				_, err = exec(bumpStudy, st.n, st.series, now, now, uid)
			}
		}
		if err != nil {
			return fmt.Errorf("store: index study %s: %w", uid, err)
		}
	}
	return nil
}

// patient returns the key of inst's patient, creating the row if needed.
func (db *DB) patient(ctx context.Context, tx *sql.Tx, inst *dicomio.Instance) (int64, error) {
	sel := db.dialect.q(`SELECT pk FROM patients WHERE patient_id = ? AND patient_name = ? AND birth_date = ?`)
	var pk int64
	err := tx.QueryRowContext(ctx, sel, inst.PatientID, inst.PatientName, inst.PatientBirthDate).Scan(&pk)
	if !errors.Is(err, sql.ErrNoRows) {
		return pk, err
	}
	err = tx.QueryRowContext(ctx, db.dialect.q(`INSERT INTO patients
		(patient_id, patient_name, name_key, birth_date, sex) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (patient_id, patient_name, birth_date) DO NOTHING RETURNING pk`),
		inst.PatientID, inst.PatientName, foldKey(inst.PatientName), inst.PatientBirthDate, inst.PatientSex).Scan(&pk)
	if errors.Is(err, sql.ErrNoRows) { // inserted meanwhile by another process
		err = tx.QueryRowContext(ctx, sel, inst.PatientID, inst.PatientName, inst.PatientBirthDate).Scan(&pk)
	}
	return pk, err
}

// parseInstance runs dicomio.ReadInstance on the spooled bytes (from
// memory when they were kept, else from the file). A panic below is turned
// into a refusal: bad input never takes the server down.
func parseInstance(data []byte, path string, size int64) (inst *dicomio.Instance, err error) {
	defer func() {
		if p := recover(); p != nil {
			inst, err = nil, &dicomio.RejectError{
				Code:   dicomio.ReasonProcessingFailure,
				Reason: "the DICOM parser failed on this instance",
				Err:    fmt.Errorf("panic: %v", p),
			}
		}
	}()
	if data != nil {
		return dicomio.ReadInstanceBytes(data)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	return dicomio.ReadInstance(bufio.NewReaderSize(f, 256<<10), size)
}

// checkInstanceUIDs refuses an instance whose identifying UIDs could not
// safely name a file.
func checkInstanceUIDs(inst *dicomio.Instance) error {
	for _, u := range []struct{ what, uid string }{
		{"Study Instance UID", inst.StudyInstanceUID},
		{"Series Instance UID", inst.SeriesInstanceUID},
		{"SOP Instance UID", inst.SOPInstanceUID},
	} {
		if err := checkUID(u.what, u.uid); err != nil {
			return &dicomio.RejectError{
				SOPClassUID:    inst.SOPClassUID,
				SOPInstanceUID: inst.SOPInstanceUID,
				Code:           dicomio.ReasonCannotUnderstand,
				Reason:         err.Error(),
			}
		}
	}
	return nil
}

// foldKey is the case-folded form of a person name used for matching, the
// same on every database.
func foldKey(s string) string { return strings.ToUpper(s) }

// floatsText encodes a float list as DICOM DS does ("a\b\c"), exactly.
func floatsText(v []float64) string {
	var b strings.Builder
	for i, f := range v {
		if i > 0 {
			b.WriteByte('\\')
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	}
	return b.String()
}

func parseFloats(s string) []float64 {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, `\`)
	v := make([]float64, 0, len(parts))
	for _, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil
		}
		v = append(v, f)
	}
	return v
}
