package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FindStudies returns the studies matching the study-level keys of q,
// newest study date first (then by UID), with computed counts and
// ModalitiesInStudy.
func (db *DB) FindStudies(ctx context.Context, q Query) ([]Study, error) {
	w := &where{d: db.dialect}
	if err := w.study(q); err != nil {
		return nil, err
	}
	query := `SELECT ` + db.studyCols() + `
		FROM studies s JOIN patients p ON p.pk = s.patient_pk` + w.sql() + `
		ORDER BY s.study_date DESC, s.study_time DESC, s.uid` + db.page(q)
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(query), w.args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find studies: %w", err))
	}
	defer rows.Close()
	var out []Study
	for rows.Next() {
		var s Study
		var sc studyScan
		if err := rows.Scan(sc.dest(&s)...); err != nil {
			return nil, fmt.Errorf("store: find studies: %w", err)
		}
		sc.finish(&s)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find studies: %w", err))
	}
	return out, nil
}

// FindSeries returns the series matching the study- and series-level keys
// of q, each with its study's attributes, ordered by study then series
// number.
func (db *DB) FindSeries(ctx context.Context, q Query) ([]Series, error) {
	w := &where{d: db.dialect}
	if err := w.study(q); err != nil {
		return nil, err
	}
	if err := w.series(q); err != nil {
		return nil, err
	}
	query := `SELECT ` + db.studyCols() + `, ` + seriesCols + `
		FROM series se JOIN studies s ON s.uid = se.study_uid
		JOIN patients p ON p.pk = s.patient_pk` + w.sql() + `
		ORDER BY s.study_date DESC, s.study_time DESC, s.uid, se.series_number, se.uid` + db.page(q)
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(query), w.args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find series: %w", err))
	}
	defer rows.Close()
	var out []Series
	for rows.Next() {
		var se Series
		var sc studyScan
		dest := append(sc.dest(&se.Study), seriesDest(&se)...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: find series: %w", err)
		}
		sc.finish(&se.Study)
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find series: %w", err))
	}
	return out, nil
}

// FindInstances returns the instances matching all keys of q, each with
// its series' and study's attributes, ordered by study, series number and
// instance number.
func (db *DB) FindInstances(ctx context.Context, q Query) ([]InstanceRecord, error) {
	w := &where{d: db.dialect}
	if err := w.study(q); err != nil {
		return nil, err
	}
	if err := w.series(q); err != nil {
		return nil, err
	}
	if err := w.instance(q); err != nil {
		return nil, err
	}
	query := `SELECT ` + db.studyCols() + `, ` + seriesCols + `, ` + instanceCols + `
		FROM instances i JOIN series se ON se.uid = i.series_uid
		JOIN studies s ON s.uid = se.study_uid
		JOIN patients p ON p.pk = s.patient_pk` + w.sql() + `
		ORDER BY s.study_date DESC, s.study_time DESC, s.uid, se.series_number, se.uid,
		i.instance_number, i.sop_uid` + db.page(q)
	rows, err := db.rdb.QueryContext(ctx, db.dialect.q(query), w.args...)
	if err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find instances: %w", err))
	}
	defer rows.Close()
	var out []InstanceRecord
	for rows.Next() {
		var r InstanceRecord
		var sc studyScan
		var is instanceScan
		dest := append(sc.dest(&r.Series.Study), seriesDest(&r.Series)...)
		dest = append(dest, is.dest(&r)...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: find instances: %w", err)
		}
		sc.finish(&r.Series.Study)
		is.finish(&r)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapDBErr(ctx, fmt.Errorf("store: find instances: %w", err))
	}
	return out, nil
}

// Open returns the stored bytes of one instance (exactly as received):
// the first version stored under rec.SOPInstanceUID.
func (db *DB) Open(ctx context.Context, rec InstanceRecord) (io.ReadSeekCloser, error) {
	sop := rec.SOPInstanceUID
	if checkUID("SOP Instance UID", sop) != nil {
		return nil, fmt.Errorf("store: instance %q: %w", sop, ErrNotFound)
	}
	// A record from FindInstances knows its blob: a whole-study retrieve
	// then costs no query per instance.
	rel := rec.blobPath
	if rel == "" {
		err := db.rdb.QueryRowContext(ctx, db.dialect.q(`SELECT blob_path FROM instances WHERE sop_uid = ?`), sop).Scan(&rel)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: instance %s: %w", sop, ErrNotFound)
		}
		if err != nil {
			return nil, wrapDBErr(ctx, fmt.Errorf("store: open %s: %w", sop, err))
		}
	}
	rel = filepath.FromSlash(rel)
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("store: instance %s: blob path %q outside the data directory", sop, rel)
	}
	f, err := os.Open(db.abs(rel))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			db.log.Error("indexed instance has no blob", "sop", sop, "path", rel)
		}
		return nil, fmt.Errorf("store: open %s: %w", sop, err)
	}
	return f, nil
}

// page renders Limit and Offset (plain integers, inlined).
func (db *DB) page(q Query) string {
	s := ""
	if q.Limit > 0 {
		s += " LIMIT " + strconv.Itoa(q.Limit)
	}
	if q.Offset > 0 {
		if q.Limit <= 0 && db.dialect == sqliteDialect {
			s += " LIMIT -1"
		}
		s += " OFFSET " + strconv.Itoa(q.Offset)
	}
	return s
}

func (db *DB) studyCols() string {
	mods := `(SELECT group_concat(DISTINCT modality) FROM series m WHERE m.study_uid = s.uid AND m.modality <> '')`
	if db.dialect == postgresDialect {
		mods = `(SELECT string_agg(DISTINCT modality, ',') FROM series m WHERE m.study_uid = s.uid AND m.modality <> '')`
	}
	return `s.uid, p.patient_id, p.patient_name, p.birth_date, p.sex, s.study_date, s.study_time,
		s.accession_number, s.study_id, s.study_description, s.referring_physician, s.priority,
		s.num_series, s.num_instances, s.first_received, s.last_received, s.stable_state, ` + mods
}

// studyScan holds the study columns that need converting after Scan.
type studyScan struct {
	first, last int64
	state       int
	mods        sql.NullString
}

func (sc *studyScan) dest(s *Study) []any {
	return []any{&s.StudyInstanceUID, &s.PatientID, &s.PatientName, &s.PatientBirthDate, &s.PatientSex,
		&s.StudyDate, &s.StudyTime, &s.AccessionNumber, &s.StudyID, &s.StudyDescription,
		&s.ReferringPhysicianName, &s.RequestedProcedurePriority, &s.NumSeries, &s.NumInstances,
		&sc.first, &sc.last, &sc.state, &sc.mods}
}

func (sc *studyScan) finish(s *Study) {
	s.FirstReceived = time.UnixMicro(sc.first).UTC()
	s.LastReceived = time.UnixMicro(sc.last).UTC()
	s.Stable = sc.state == stateStable
	if sc.mods.String != "" {
		s.ModalitiesInStudy = strings.Split(sc.mods.String, ",")
		sort.Strings(s.ModalitiesInStudy)
	}
}

const seriesCols = `se.uid, se.modality, se.series_number, se.series_description, se.body_part, se.num_instances`

func seriesDest(se *Series) []any {
	return []any{&se.SeriesInstanceUID, &se.Modality, &se.SeriesNumber, &se.SeriesDescription,
		&se.BodyPartExamined, &se.NumInstances}
}

const instanceCols = `i.sop_class_uid, i.sop_uid, i.transfer_syntax_uid, i.instance_number,
	i.num_rows, i.num_cols, i.frames, i.bits_allocated, i.size, i.sha256, i.received,
	i.image_position, i.image_orientation, i.pixel_spacing, i.slice_thickness,
	i.has_rescale, i.rescale_slope, i.rescale_intercept, i.blob_path`

type instanceScan struct {
	received                    int64
	position, orientation, spac string
}

func (is *instanceScan) dest(r *InstanceRecord) []any {
	return []any{&r.SOPClassUID, &r.SOPInstanceUID, &r.TransferSyntaxUID, &r.InstanceNumber,
		&r.Rows, &r.Columns, &r.NumberOfFrames, &r.BitsAllocated, &r.Size, &r.SHA256, &is.received,
		&is.position, &is.orientation, &is.spac, &r.SliceThickness,
		&r.HasRescale, &r.RescaleSlope, &r.RescaleIntercept, &r.blobPath}
}

func (is *instanceScan) finish(r *InstanceRecord) {
	r.Received = time.UnixMicro(is.received).UTC()
	r.ImagePositionPatient = parseFloats(is.position)
	r.ImageOrientationPatient = parseFloats(is.orientation)
	r.PixelSpacing = parseFloats(is.spac)
}

// where accumulates the conditions of a query.
type where struct {
	d     dialect
	conds []string
	args  []any
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return "\n\t\tWHERE " + strings.Join(w.conds, " AND ")
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// in matches col against any of vals (each may itself hold a
// backslash- or comma-separated list, as QIDO-RS sends them).
func (w *where) in(col string, vals []string) {
	var list []any
	for _, v := range vals {
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '\\' || r == ',' }) {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
	}
	if len(list) == 0 {
		return
	}
	w.add(col+" IN (?"+strings.Repeat(", ?", len(list)-1)+")", list...)
}

// match adds single-value or wildcard matching (PS3.4 C.2.2.2.1, C.2.2.2.4)
// of col against v. With fold, col holds upper-cased values and v is
// upper-cased too (case-insensitive person names). SQLite uses GLOB and
// PostgreSQL LIKE, so both are case-sensitive on the same bytes.
func (w *where) match(col, v string, fold bool) {
	if strings.Trim(v, "*") == "" {
		return // empty or "*": universal match
	}
	if fold {
		v = foldKey(v)
	}
	if !strings.ContainsAny(v, "*?") {
		w.add(col+" = ?", v)
		return
	}
	var b strings.Builder
	if w.d == postgresDialect {
		for _, r := range v {
			switch r {
			case '*':
				b.WriteByte('%')
			case '?':
				b.WriteByte('_')
			case '%', '_', '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			default:
				b.WriteRune(r)
			}
		}
		w.add(col+` LIKE ? ESCAPE '\'`, b.String())
		return
	}
	for _, r := range v {
		if r == '[' {
			b.WriteString("[[]")
		} else {
			b.WriteRune(r)
		}
	}
	w.add(col+" GLOB ?", b.String())
}

var (
	dateRe = regexp.MustCompile(`^\d{8}$`)
	timeRe = regexp.MustCompile(`^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$`)
)

// rangeMatch adds single-value or range matching (PS3.4 C.2.2.2.5) for a
// DA or TM key: "A", "A-B", "A-", "-B".
func (w *where) rangeMatch(col, name, v string, ok *regexp.Regexp) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	lo, hi, isRange := strings.Cut(v, "-")
	if (lo != "" && !ok.MatchString(lo)) || (hi != "" && !ok.MatchString(hi)) || (isRange && lo == "" && hi == "") {
		return fmt.Errorf("store: %s %q: %w", name, v, ErrInvalidQuery)
	}
	switch {
	case !isRange:
		if ok == timeRe {
			// A time matches the instant it names, at its precision.
			w.add(col+" >= ? AND "+col+" < ?", lo, lo+"~")
		} else {
			w.add(col+" = ?", lo)
		}
	default:
		if lo != "" {
			w.add(col+" >= ?", lo)
		}
		if hi != "" {
			if ok == timeRe {
				w.add(col+" < ?", hi+"~") // "~" sorts after digits and "."
			} else {
				w.add(col+" <= ?", hi)
			}
		}
	}
	return nil
}

func (w *where) number(col, name, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("store: %s %q: %w", name, v, ErrInvalidQuery)
	}
	w.add(col+" = ?", n)
	return nil
}

func (w *where) study(q Query) error {
	w.in("s.uid", q.StudyInstanceUIDs)
	w.match("p.patient_id", q.PatientID, false)
	w.match("p.name_key", q.PatientName, true)
	w.match("s.accession_number", q.AccessionNumber, false)
	w.match("s.study_id", q.StudyID, false)
	w.match("s.referring_key", q.ReferringPhysician, true)
	if err := w.rangeMatch("s.study_date", "StudyDate", q.StudyDate, dateRe); err != nil {
		return err
	}
	if err := w.rangeMatch("s.study_time", "StudyTime", q.StudyTime, timeRe); err != nil {
		return err
	}
	mods := &where{d: w.d}
	mods.in("m.modality", q.ModalitiesInStudy)
	if len(mods.conds) > 0 {
		w.add("EXISTS (SELECT 1 FROM series m WHERE m.study_uid = s.uid AND "+mods.conds[0]+")", mods.args...)
	}
	return nil
}

func (w *where) series(q Query) error {
	w.in("se.uid", q.SeriesInstanceUIDs)
	w.in("se.modality", q.Modality)
	return w.number("se.series_number", "SeriesNumber", q.SeriesNumber)
}

func (w *where) instance(q Query) error {
	w.in("i.sop_uid", q.SOPInstanceUIDs)
	w.in("i.sop_class_uid", q.SOPClassUIDs)
	return w.number("i.instance_number", "InstanceNumber", q.InstanceNumber)
}
