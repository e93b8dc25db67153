// Command uibench measures the worklist page (issue 8) in Debian's
// headless chromium against a real `radtriage serve`, and makes the
// page's screenshots for the README.
//
// The benchmark (default) runs serve with --redis-url on a private
// redis-server (no persistence, on a free port) and --worklist-prefix
// uibench:, pushes one 32x512x512 phantom with a bleed
// (radtriage phantom --size 32x512x512 --lesion ich) and waits for its
// triage, then seeds the worklist up to -studies open studies directly in
// Redis with the worklist package (Upsert, and SetFindings for a third of
// them: STOW-RS would take far too long for thousands), under the same
// prefix. It measures:
//
//   - first render: from navigation start to just after the first frame
//     painted after the page's performance mark "worklist-first-screen"
//     (the top of the list, a screenful of rows in order, rendered while
//     the rest streams in: the table is windowed), over -renders loads of
//     the page (the first one with a cold HTTP cache, reported apart
//     too); target < 300 ms. Reported beside it, with no target: the same
//     to the mark "worklist-rendered" (the whole list in, one streamed
//     request: counts and scroll height complete);
//   - SSE re-order on screen: a routine study near the bottom gets a
//     critical finding (SetFindings, as a triage worker reports it); the
//     time from that request to the first animation frame after the page's
//     mark "sse-applied:<event id>", and to the mark itself, over
//     -reorders studies. Page and program clocks are aligned before each
//     sample (the round trip bounds the error, reported); target < 100 ms;
//   - key image: GET /api/v1/studies/{study}/key-image.png of the 512x512
//     phantom, axial, a different slice each request, outline on, from
//     request to last byte, over -keyimages requests once the volume is
//     cached (the first, uncached request reported apart), plus coronal
//     and sagittal for comparison; target < 100 ms.
//
// Targets are judged on p95. It prints a Markdown report and writes it to
// -o. The exit status is 1 when a measurement failed (a server or browser
// that did not start, a study never triaged); a missed target is reported,
// not an error.
//
// With -screenshots DIR it instead pushes five phantom studies (two with
// an ICH, one with an SDH, two normal) to serve on the embedded defaults,
// waits for their triage, and writes DIR/worklist.png (the list) and
// DIR/study-panel.png (the study panel open on the top bleed), 1440x900.
//
// Usage:
//
//	go run ./cmd/uibench -o bench-ui.md
//	go run ./cmd/uibench -screenshots docs
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
		fmt.Fprintln(os.Stderr, "uibench:", err)
		os.Exit(1)
	}
}
