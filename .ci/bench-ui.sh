#!/usr/bin/env bash
# Worklist page benchmark (issue 8): the page in Debian's headless
# chromium against `radtriage serve` on a private redis-server with 5,000
# open studies: first render (performance mark worklist-rendered, from
# navigation start; target < 300 ms), an SSE re-order on screen (a
# critical finding on a study near the bottom, to the first frame after
# the page's mark sse-applied:<id>; target < 100 ms), and the key-image
# endpoint on a 32x512x512 phantom (target < 100 ms); p50 and p95, pass or
# fail on p95 (cmd/uibench). Writes a Markdown report.
#
#   .ci/bench-ui.sh [out.md] [extra uibench flags...]
#
# Needs chromium and redis-server: .ci/browser-deps.sh installs chromium
# (and axe-core for the tests) when missing; .ci/services.sh redis-server.
# The redis-server is started here on a free port with no persistence, so
# the shared Redis of the tests is never touched. About two minutes on 2
# cores (most of it the triage of the 512x512 phantom).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-ui.md}"
shift || true

.ci/browser-deps.sh
command -v redis-server >/dev/null || { echo "bench-ui: redis-server not installed (apt-get install redis-server, or make services)" >&2; exit 1; }
go build -o bin/radtriage ./cmd/radtriage
go run ./cmd/uibench -bin bin/radtriage -studies 5000 -o "$out" "$@"
