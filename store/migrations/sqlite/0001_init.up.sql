-- radtriage index, SQLite dialect. Timestamps are Unix microseconds (UTC)
-- in INTEGER columns so that both dialects compare them identically.
-- Geometry lists are DICOM-style backslash-separated decimal strings
-- ('' when absent), exact round-trip of float64 ('g', -1).

CREATE TABLE IF NOT EXISTS patients (
    pk           INTEGER PRIMARY KEY,
    patient_id   TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    name_key     TEXT NOT NULL, -- upper-cased patient_name, for case-insensitive matching
    birth_date   TEXT NOT NULL,
    sex          TEXT NOT NULL,
    UNIQUE (patient_id, patient_name, birth_date)
);
CREATE INDEX IF NOT EXISTS patients_name_key ON patients (name_key);

CREATE TABLE IF NOT EXISTS studies (
    uid                 TEXT PRIMARY KEY,
    patient_pk          INTEGER NOT NULL REFERENCES patients (pk) DEFERRABLE INITIALLY DEFERRED,
    study_date          TEXT NOT NULL,
    study_time          TEXT NOT NULL,
    accession_number    TEXT NOT NULL,
    study_id            TEXT NOT NULL,
    study_description   TEXT NOT NULL,
    referring_physician TEXT NOT NULL,
    referring_key       TEXT NOT NULL, -- upper-cased referring_physician
    priority            TEXT NOT NULL,
    num_series          INTEGER NOT NULL DEFAULT 0,
    num_instances       INTEGER NOT NULL DEFAULT 0,
    first_received      INTEGER NOT NULL,
    last_received       INTEGER NOT NULL,
    stable_state        INTEGER NOT NULL DEFAULT 0, -- 0 receiving, 1 notifying, 2 stable
    stable_at           INTEGER
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies (patient_pk);
CREATE INDEX IF NOT EXISTS studies_date ON studies (study_date, uid);
CREATE INDEX IF NOT EXISTS studies_accession ON studies (accession_number);
CREATE INDEX IF NOT EXISTS studies_stability ON studies (stable_state, last_received);

CREATE TABLE IF NOT EXISTS series (
    uid                TEXT PRIMARY KEY,
    study_uid          TEXT NOT NULL REFERENCES studies (uid) DEFERRABLE INITIALLY DEFERRED,
    modality           TEXT NOT NULL,
    series_number      INTEGER NOT NULL,
    series_description TEXT NOT NULL,
    body_part          TEXT NOT NULL,
    series_date        TEXT NOT NULL,
    series_time        TEXT NOT NULL,
    num_instances      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS series_study ON series (study_uid, series_number);
CREATE INDEX IF NOT EXISTS series_modality ON series (modality, study_uid);

CREATE TABLE IF NOT EXISTS instances (
    sop_uid             TEXT PRIMARY KEY,
    series_uid          TEXT NOT NULL REFERENCES series (uid) DEFERRABLE INITIALLY DEFERRED,
    study_uid           TEXT NOT NULL REFERENCES studies (uid) DEFERRABLE INITIALLY DEFERRED,
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    instance_number     INTEGER NOT NULL,
    num_rows            INTEGER NOT NULL,
    num_cols            INTEGER NOT NULL,
    frames              INTEGER NOT NULL,
    bits_allocated      INTEGER NOT NULL,
    image_position      TEXT NOT NULL,
    image_orientation   TEXT NOT NULL,
    pixel_spacing       TEXT NOT NULL,
    slice_thickness     REAL NOT NULL,
    has_rescale         INTEGER NOT NULL,
    rescale_slope       REAL NOT NULL,
    rescale_intercept   REAL NOT NULL,
    size                INTEGER NOT NULL,
    sha256              TEXT NOT NULL,
    blob_path           TEXT NOT NULL, -- relative to the data directory
    received            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_series ON instances (series_uid, instance_number);
CREATE INDEX IF NOT EXISTS instances_study ON instances (study_uid);
CREATE INDEX IF NOT EXISTS instances_sop_class ON instances (sop_class_uid);

CREATE TABLE IF NOT EXISTS instance_conflicts (
    sop_uid   TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    blob_path TEXT NOT NULL,
    received  INTEGER NOT NULL,
    PRIMARY KEY (sop_uid, sha256)
);
