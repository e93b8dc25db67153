// Package api serves radtriage over HTTP with Gin: DICOMweb (STOW-RS,
// QIDO-RS, WADO-RS) under /dicomweb, the radiologist worklist under
// /api/v1/worklist, triage findings and jobs under /api/v1, health
// (/healthz, /readyz), Prometheus metrics (/metrics), and, in later
// issues, the web UI.
//
// Handlers hold no business logic: they decode the request, call the
// store, and encode the answer. Errors map to HTTP status in one place
// (errors.go).
//
// DICOMweb routes (media types and status codes: stow.go, qido.go,
// wado.go):
//
//	POST /dicomweb/studies[/{study}]                         STOW-RS
//	GET  /dicomweb/studies, /series, /instances              QIDO-RS
//	GET  /dicomweb/studies/{study}/series, .../instances     QIDO-RS
//	GET  /dicomweb/studies/{study}/series/{series}/instances QIDO-RS
//	GET  /dicomweb/studies/{study}[/series/{series}[/instances/{sop}]][/metadata]  WADO-RS
//	GET  .../instances/{sop}/frames/{list}                   WADO-RS frames (uncompressed; compressed data decoded)
//	GET  .../instances/{sop}/bulkdata/7FE00010               WADO-RS bulk data (Pixel Data)
//
// Worklist routes (worklist.go, worklist_sse.go; JSON, snake_case):
//
//	GET    /api/v1/worklist                       ordered items, filters, limit/cursor
//	GET    /api/v1/worklist/events                Server-Sent Events, resumable (Last-Event-ID)
//	GET    /api/v1/worklist/{study}               one item
//	POST   /api/v1/worklist/{study}/claim|release|complete
//	PUT    /api/v1/worklist/{study}/priority      manual override (tier or due, reason)
//	DELETE /api/v1/worklist/{study}/priority      clear the override
//
// Findings and triage jobs (findings.go, jobs.go; JSON, camelCase):
//
//	GET /api/v1/studies/{study}/findings              latest triage result, AI status, job
//	GET /api/v1/studies/{study}/findings/mask.nii.gz  label mask, application/gzip (NIfTI-1)
//	GET /api/v1/jobs[?state=dead&limit=100]           job counts, stream statistics, jobs
//
// Metrics (metrics.go): GET /metrics, the Prometheus text format, when
// Config.Metrics is set (404 otherwise).
//
// STOW-RS puts every study it stores on the worklist at once (AI pending)
// when Config.Worklist is set; a failure there is logged, never answered.
//
// Every UID in a path is checked with dicomio.ValidateUID before it reaches
// the store (400 otherwise); routing uses the escaped path, so "..%2F.."
// arrives as one (invalid) UID, and a path with dot or empty segments
// under /dicomweb is 400. RetrieveURLs are absolute, built from the
// request's Host and its scheme (TLS or X-Forwarded-Proto).
package api
