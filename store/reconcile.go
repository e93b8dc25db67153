package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ReconcileReport says what Reconcile found and did.
type ReconcileReport struct {
	TempRemoved  int // stale temp files removed from DataDir/tmp
	Adopted      int // blobs without an index row, now indexed
	Conflicts    int // orphan blobs that turned out to be other versions of indexed SOPs (set aside)
	Quarantined  int // orphan blobs that could not be indexed, moved to DataDir/quarantine
	MissingBlobs int // index rows whose blob is missing (logged as errors; should never happen)
	MasksPruned  int // triage masks no result names (a crash between the mask write and the commit)
}

// tmpGrace: temp files younger than this may belong to an ingest in
// progress in another process sharing the data directory.
const tmpGrace = time.Hour

// Reconcile repairs what a crash can leave: it removes stale temp files,
// indexes every blob that has no index row (a crash between link and
// commit), and reports, loudly, index rows whose blob is missing. Open
// runs it; it is safe to run while other processes ingest.
func (db *DB) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	tmp := db.abs("tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return rep, fmt.Errorf("store: reconcile: %w", err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < tmpGrace {
			continue
		}
		if os.RemoveAll(filepath.Join(tmp, e.Name())) == nil {
			rep.TempRemoved++
		}
	}

	visited := make(map[string]bool) // "study/series" directories seen
	studies, err := os.ReadDir(db.abs("blobs"))
	if err != nil {
		return rep, fmt.Errorf("store: reconcile: %w", err)
	}
	for _, st := range studies {
		if !st.IsDir() {
			continue
		}
		series, err := os.ReadDir(db.abs(studyBlobs(st.Name())))
		if err != nil {
			return rep, fmt.Errorf("store: reconcile: %w", err)
		}
		for _, se := range series {
			if !se.IsDir() {
				continue
			}
			visited[st.Name()+"/"+se.Name()] = true
			if err := db.reconcileSeries(ctx, st.Name(), se.Name(), &rep); err != nil {
				return rep, wrapDBErr(ctx, err)
			}
		}
	}

	// Series with instances but no directory at all.
	rows, err := db.rdb.QueryContext(ctx, `SELECT study_uid, uid FROM series WHERE num_instances > 0`)
	if err != nil {
		return rep, wrapDBErr(ctx, fmt.Errorf("store: reconcile: %w", err))
	}
	var lost [][2]string
	for rows.Next() {
		var study, series string
		if err := rows.Scan(&study, &series); err != nil {
			rows.Close()
			return rep, fmt.Errorf("store: reconcile: %w", err)
		}
		if !visited[study+"/"+series] {
			lost = append(lost, [2]string{study, series})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, wrapDBErr(ctx, fmt.Errorf("store: reconcile: %w", err))
	}
	for _, l := range lost {
		idx, err := db.seriesIndex(ctx, l[1])
		if err != nil {
			return rep, wrapDBErr(ctx, err)
		}
		for sop, rel := range idx {
			if _, err := os.Stat(db.abs(filepath.FromSlash(rel))); err != nil {
				rep.MissingBlobs++
				db.log.Error("INDEXED INSTANCE HAS NO BLOB: its bytes are lost", "sop", sop, "path", rel)
			}
		}
	}
	n, err := db.PruneTriageMasks(ctx)
	if err != nil {
		return rep, err
	}
	rep.MasksPruned = n
	return rep, nil
}

// seriesIndex maps the SOP Instance UIDs indexed in a series to their blob paths.
func (db *DB) seriesIndex(ctx context.Context, series string) (map[string]string, error) {
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(`SELECT sop_uid, blob_path FROM instances WHERE series_uid = ?`), series)
	if err != nil {
		return nil, fmt.Errorf("store: reconcile %s: %w", series, err)
	}
	defer rows.Close()
	idx := make(map[string]string)
	for rows.Next() {
		var sop, rel string
		if err := rows.Scan(&sop, &rel); err != nil {
			return nil, fmt.Errorf("store: reconcile %s: %w", series, err)
		}
		idx[sop] = rel
	}
	return idx, rows.Err()
}

func (db *DB) reconcileSeries(ctx context.Context, study, series string, rep *ReconcileReport) error {
	dir := filepath.Join(studyBlobs(study), series)
	files, err := os.ReadDir(db.abs(dir))
	if err != nil {
		return fmt.Errorf("store: reconcile: %w", err)
	}
	idx, err := db.seriesIndex(ctx, series)
	if err != nil {
		return err
	}
	for _, f := range files {
		name := f.Name()
		sop, ok := strings.CutSuffix(name, ".dcm")
		if !f.Type().IsRegular() || !ok {
			db.log.Warn("unexpected entry in blob store", "path", filepath.Join(dir, name))
			continue
		}
		rel := filepath.Join(dir, name)
		if idx[sop] == filepath.ToSlash(rel) {
			delete(idx, sop)
			continue
		}
		if err := db.adoptOrphan(ctx, rel, sop, rep); err != nil {
			return err
		}
	}
	for sop, rel := range idx {
		if path.Dir(rel) != filepath.ToSlash(dir) {
			continue // indexed elsewhere; checked with its own directory
		}
		if _, err := os.Stat(db.abs(filepath.FromSlash(rel))); err != nil {
			rep.MissingBlobs++
			db.log.Error("INDEXED INSTANCE HAS NO BLOB: its bytes are lost", "sop", sop, "path", rel)
		}
	}
	return nil
}

// adoptOrphan indexes one blob found without its index row.
func (db *DB) adoptOrphan(ctx context.Context, rel, sop string, rep *ReconcileReport) error {
	unlock := db.locks.lock(sop)
	defer unlock()
	if _, err := os.Stat(db.abs(rel)); err != nil {
		return nil // gone meanwhile (another process set it aside)
	}
	existing, err := db.lookup(ctx, sop)
	if err != nil {
		return err
	}
	if existing != nil && existing.blobPath == filepath.ToSlash(rel) {
		return nil // indexed meanwhile
	}
	db.log.Warn("blob without index row (crash between link and commit?); indexing it", "path", rel)
	existing, err = db.adopt(ctx, rel)
	switch {
	case errors.Is(err, errQuarantined):
		rep.Quarantined++
		return nil
	case err != nil:
		return err
	case existing.blobPath == filepath.ToSlash(rel):
		rep.Adopted++
	default:
		rep.Conflicts++
	}
	return nil
}
