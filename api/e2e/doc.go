// Package e2e holds end-to-end tests that build the real radtriage binary,
// run it on loopback ports with throw-away data directories (SQLite, and
// PostgreSQL in a fresh schema), and talk to it over HTTP the way a PACS
// would: STOW-RS, QIDO-RS and WADO-RS, including through Orthanc's DICOMweb
// plugin acting as the client.
//
// The pipeline tests (pipeline_test.go, issue 7) run the whole product
// across processes: a study pushed with "radtriage push" becomes stable,
// is triaged by a worker and re-orders the worklist live.
//
//   - TestPipelineEndToEnd: a normal phantom study, then one with a bleed;
//     within 90 s the worklist lists the bleed first with its ICH finding,
//     and an SSE client connected before the push saw its "reprioritised"
//     event. On the embedded defaults, and on real Redis (a fresh key
//     prefix) and PostgreSQL (a fresh schema).
//   - TestPipelineWorkerKill: serve --workers 0 and two "radtriage worker"
//     processes (--job-lease 3s); the worker that started the job is
//     SIGKILLed mid-job, the other finishes it (job done at attempt 2).
//   - TestPipelineRedisRestart: a private redis-server is stopped and
//     started again empty while a job is queued; the worklist is rebuilt
//     from the store, the job goes back on the stream and a worker runs it.
//   - TestPipelinePostgresUnavailable: PostgreSQL behind a TCP proxy cut
//     for 4 s while instances are STOWed one per request; STOW answers 503
//     with Retry-After, and after the restore and a re-send QIDO-RS lists
//     every instance ever acknowledged.
//   - TestPipelineScaleOut: one serve and two worker processes share 20
//     studies, each triaged exactly once (done at attempt 1, started and
//     done once in the workers' logs), both workers taking a share.
//
// The browser tests (browser_test.go, issue 8) drive Debian's Chromium
// headless with chromedp against a real serve: the worklist page loads
// offline-safe, a pushed bleed appears on top without a reload, claims
// show across two users' windows, completing removes the row, a dropped
// event stream resumes and catches up, the key image carries the lesion
// outline, axe-core finds no serious or critical violation, and the whole
// flow works from the keyboard.
//
// The non-test files are a small harness (build, start, stop, fixtures with
// fresh UIDs, a DICOMweb client, and for the pipeline: worker processes,
// an SSE client, phantoms and pushes through the binary, a private
// redis-server, a TCP proxy, JSON API clients) shared with cmd/ingestbench.
// They depend only on the standard library, pgx, go-redis and chromedp, never on the
// server's packages: the tests see the server as an outside tool would.
//
// Run:
//
//	go test ./api/e2e               # everything (a few minutes on 2 cores)
//	go test ./api/e2e -run Orthanc  # the Orthanc interop tests only
//	go test ./api/e2e -run Pipeline # the pipeline tests only (about 1.5 minutes)
//	go test -short ./api/e2e        # skips them all
//
// Environment:
//
//	RADTRIAGE_TEST_DATABASE_URL  PostgreSQL for the PG variants
//	                             (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
//	RADTRIAGE_TEST_REDIS_URL     real Redis for the pipeline tests (keys under a fresh
//	                             prefix per test, deleted afterwards); unset skips them
//	RADTRIAGE_TEST_REDIS_SERVER  redis-server binary for TestPipelineRedisRestart
//	                             (default: redis-server on PATH)
//	RADTRIAGE_TEST_ORTHANC       Orthanc binary (default: Orthanc on PATH, then /usr/sbin/Orthanc)
//	RADTRIAGE_TEST_DICOMWEB_PLUGIN  libOrthancDicomWeb.so path
//	RADTRIAGE_E2E_BIN            use this radtriage binary instead of building ./cmd/radtriage
//	CI=true                      a missing service, fixture or tool fails instead of skipping
package e2e
