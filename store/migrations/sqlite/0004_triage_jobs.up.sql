-- radtriage triage jobs, SQLite dialect: the job of each study, the
-- source of truth of the pipeline (the Redis stream only carries
-- {study, version}).
-- One row per study: version is the study's instance count when it was
-- enqueued, and a new version replaces the row (the study is triaged
-- again). Times are Unix microseconds (UTC), 0 when unset.
--
-- state: queued (to run), running (owner holds it until lease_until),
-- retry (runs again at next_at), done (its result is in triage_results),
-- dead (failed too often; last_error says why).

CREATE TABLE IF NOT EXISTS triage_jobs (
    study_uid   TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retry', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT NOT NULL DEFAULT '', -- the worker holding a running job
    lease_until INTEGER NOT NULL DEFAULT 0, -- a running job's claim lapses then
    next_at     INTEGER NOT NULL DEFAULT 0, -- when a retry is due
    enqueued_at INTEGER NOT NULL DEFAULT 0, -- last added to the stream
    created_at  INTEGER NOT NULL DEFAULT 0, -- when this version was enqueued
    updated_at  INTEGER NOT NULL DEFAULT 0, -- last change of state
    finished_at INTEGER NOT NULL DEFAULT 0, -- when it became done or dead
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS triage_jobs_state ON triage_jobs (state);
