// Command ingestbench measures DICOMweb ingest and retrieval on this
// machine, for radtriage on SQLite, radtriage on PostgreSQL and Debian's
// Orthanc with its DICOMweb plugin, under one request shape:
//
//   - ingest: K copies of ../shared/dicom/ct-head-5mm (28 slices, 14.7 MB)
//     with fresh study/series/SOP UIDs; one STOW-RS request per study
//     (multipart/related, 28 application/dicom parts), at each
//     concurrency (-c), each (server, concurrency) on a fresh server with a
//     fresh data directory (and a fresh PostgreSQL schema);
//   - QIDO-RS latency: median of -qido-n GET /studies?limit=100 after ingest;
//   - WADO-RS latency: median of -wado-n whole-study retrievals
//     (multipart/related; type="application/dicom"), read to the end;
//   - peak RSS: VmHWM of the server process, read after ingest and at the end;
//   - one big request: peak RSS of the server while it takes one STOW-RS
//     request of about -big-mb MB (fresh-UID slices generated while
//     streaming through an io.Pipe; the client holds one slice at a time).
//
// Usage:
//
//	go run ./cmd/ingestbench -k 20 -o bench.md
//
// It prints a Markdown report and writes it to -o.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}
