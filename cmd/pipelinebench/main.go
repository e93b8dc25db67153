// Command pipelinebench measures radtriage's triage pipeline end to end on
// this machine (issue 7), with the pure triage compute of the same studies
// as the outside reference, in one run:
//
//   - time to triage: for each of -runs synthetic head CTs with a bleed
//     (radtriage phantom --lesion ich), one STOW-RS request with all its
//     slices, then the time from that request's response to the worklist's
//     Server-Sent Event "reprioritised" for the study (an SSE client
//     connected to GET /api/v1/worklist/events before the push), one study
//     at a time, on `radtriage serve --workers 1` per -setups: "embedded"
//     (SQLite and the in-process worklist store, nothing installed) and
//     "services" (PostgreSQL and Redis). The stable age (--stable-age) is
//     part of that time and shown apart, with the rest split by the triage
//     job's times from GET /api/v1/jobs: stable wait (response to job
//     created), job created to done (queue, claim, reading the study,
//     triage, commit), done to event (worklist update and SSE), and the
//     worker's own triage time (timings_ms.total of the stored result);
//   - throughput: -studies phantoms (random lesions) pushed back to back
//     to one `radtriage serve --workers 0` with N separate `radtriage
//     worker` processes (one CPU triage worker each) for each N of
//     -workers, sharing PostgreSQL (a fresh schema per run) and Redis (a
//     key prefix of its own per run, deleted afterwards; never FLUSHDB):
//     studies per hour from the first job created to the last job done,
//     each study checked to be triaged exactly once;
//   - reference: `radtriage triage --json DIR` on the same studies, in a
//     process of its own after the servers have stopped: its wall time
//     per study (start, model load, reading, triage: the pure compute
//     floor of one study) and its own timings_ms.total, so the pipeline's
//     overhead is the time after the stable age minus that wall time; for
//     throughput, one CLI process over all -studies at once.
//
// The target: time to triage at most the stable age plus 10 s on
// CPU, checked on the p95 of each setup.
//
// Usage:
//
//	go run ./cmd/pipelinebench -runs 8 -studies 12 -o bench-pipeline.md
//
// It prints a Markdown report and writes it to -o. The exit status is 1
// when a measurement failed (a study never triaged, a server that did not
// start); a missed target is reported, not an error.
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
		fmt.Fprintln(os.Stderr, "pipelinebench:", err)
		os.Exit(1)
	}
}
