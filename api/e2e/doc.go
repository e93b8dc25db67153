// Package e2e holds end-to-end tests that build the real radtriage binary,
// run it on loopback ports with throw-away data directories (SQLite, and
// PostgreSQL in a fresh schema), and talk to it over HTTP the way a PACS
// would: STOW-RS, QIDO-RS and WADO-RS, including through Orthanc's DICOMweb
// plugin acting as the client.
//
// The non-test files are a small harness (build, start, stop, fixtures with
// fresh UIDs, a DICOMweb client) shared with cmd/ingestbench. They depend
// only on the standard library and pgx, never on the server's packages: the
// tests see the server as an outside tool would.
//
// Run:
//
//	go test ./api/e2e               # everything (about a minute on 2 cores)
//	go test ./api/e2e -run Orthanc  # the Orthanc interop tests only
//	go test -short ./api/e2e        # skips them all
//
// Environment:
//
//	RADTRIAGE_TEST_DATABASE_URL  PostgreSQL for the PG variants
//	                             (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
//	RADTRIAGE_TEST_ORTHANC       Orthanc binary (default: Orthanc on PATH, then /usr/sbin/Orthanc)
//	RADTRIAGE_TEST_DICOMWEB_PLUGIN  libOrthancDicomWeb.so path
//	RADTRIAGE_E2E_BIN            use this radtriage binary instead of building ./cmd/radtriage
//	CI=true                      a missing service, fixture or tool fails instead of skipping
package e2e
