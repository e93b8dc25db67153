// Package store owns persistence: the blob store of original DICOM bytes
// on disk and the SQL index (patients, studies, series, instances, study
// stability) managed by golang-migrate, on SQLite (modernc.org/sqlite, the
// embedded default) or PostgreSQL (pgx). No SQL leaves this package.
//
// Durability rule: Archive.Store returns success only after the instance's
// bytes are fsynced, linked into place, the directory fsynced, and the
// index transaction committed. In that order: an index row never points at
// a blob that a crash could lose, and a blob without an index row (a crash
// between link and commit) is indexed by the next Store of that instance
// or by Reconcile, which Open runs.
//
// Identity: one SOP Instance UID is stored once. Identical bytes sent again
// are AlreadyStored; different bytes under a stored UID are a Conflict:
// the first version is kept and served, the new one set aside in
// DataDir/conflicts and recorded in instance_conflicts. Blobs are published
// with os.Link, which fails rather than replace an existing file, so
// concurrent writers, in one process or several, end with one copy; the
// index counts an instance only when its row was actually inserted.
//
// Concurrency: SQLite has one writer connection (transactions BEGIN
// IMMEDIATE, busy_timeout for other processes, synchronous=FULL in WAL
// mode) fed by a group committer, so concurrent Store calls share one
// commit; PostgreSQL runs one short transaction per instance. Several
// processes may share one data directory and database.
//
// Times in the index are Unix microseconds (UTC); person names match
// case-insensitively through upper-cased key columns, identically on both
// databases.
package store
