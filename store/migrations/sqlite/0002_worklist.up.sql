-- radtriage worklist state and findings, SQLite dialect. The SQL index is
-- the source of truth for a study's reading state, its overrides and its
-- AI findings; Redis holds only the order, the claims and the events, and
-- is rebuilt from these tables. Timestamps are Unix microseconds (UTC).

-- One row per study whose reading state differs from the default (open,
-- no override): a study without a row is open.
CREATE TABLE IF NOT EXISTS worklist_state (
    study_uid       TEXT PRIMARY KEY REFERENCES studies (uid) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    override_tier   TEXT NOT NULL DEFAULT '', -- '' when there is no override
    override_due    INTEGER,                  -- NULL: the tier's deadline applies
    override_reason TEXT NOT NULL DEFAULT '',
    override_by     TEXT NOT NULL DEFAULT '',
    override_at     INTEGER,
    completed_at    INTEGER,
    completed_by    TEXT NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL,
    updated_by      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS worklist_state_status ON worklist_state (status);

-- AI findings of a study: one row per finding of the latest triage run
-- (a new run replaces the study's rows).
CREATE TABLE IF NOT EXISTS findings (
    pk          INTEGER PRIMARY KEY,
    study_uid   TEXT NOT NULL REFERENCES studies (uid) ON DELETE CASCADE,
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    probability REAL NOT NULL,
    tier        TEXT NOT NULL,
    volume_ml   REAL,             -- NULL when the finding has no size
    model       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_study ON findings (study_uid, pk);
