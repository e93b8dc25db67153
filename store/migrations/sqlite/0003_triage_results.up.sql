-- radtriage triage results, SQLite dialect: the latest triage result of
-- each study (a new run replaces the row). Timestamps are Unix
-- microseconds (UTC). The label mask is a file in the data directory
-- (masks/{study}/{sha256}-{nonce}.nii.gz), written and fsynced before the
-- row that names it commits; a file is named by one row at most, and is
-- removed after the commit that stops naming it.
--
-- No foreign key to studies: a result may be recorded for a study whose
-- instances are indexed elsewhere (another archive, a command-line run).

CREATE TABLE IF NOT EXISTS triage_results (
    study_uid   TEXT PRIMARY KEY,
    series_uid  TEXT NOT NULL,
    tier        TEXT NOT NULL,    -- the result's tier (findings only)
    result      TEXT NOT NULL,    -- the Result as JSON, byte for byte as saved
    mask_path   TEXT,             -- relative to the data directory; NULL: no mask
    mask_size   INTEGER,
    mask_sha256 TEXT,             -- hex SHA-256 of the mask file
    finished_at INTEGER NOT NULL, -- when the triage finished
    updated_at  INTEGER NOT NULL, -- when this row was written
    CHECK ((mask_path IS NULL) = (mask_sha256 IS NULL) AND (mask_path IS NULL) = (mask_size IS NULL))
);
CREATE INDEX IF NOT EXISTS triage_results_tier ON triage_results (tier, finished_at);
