#!/usr/bin/env bash
# Worklist benchmark: radtriage's Redis worklist (package worklist) on a
# real redis-server, beside Debian's redis-benchmark (ZADD, ZRANGE 0 49)
# on the same server, in one run. Prints a Markdown table and writes it to
# the report file.
#
#   .ci/bench-worklist.sh [out.md] [extra worklistbench flags...]
#
# The server is RADTRIAGE_TEST_REDIS_URL (the Makefile sources it from
# .cache/services.env, written by .ci/services.sh). Everything the
# benchmark writes, redis-benchmark's keys included, lies under a key
# prefix of its own in that URL's database (-db N picks another index); it
# deletes those keys by prefix when it ends, and never runs FLUSHDB or
# FLUSHALL. Defaults: 100,000 open studies, 8 goroutines, a 10 s mixed
# phase and two 3 s single-client upsert phases, under a minute in all;
# pass e.g. -duration 30s for steadier numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-worklist.md}"
shift || true

if [ -z "${RADTRIAGE_TEST_REDIS_URL:-}" ]; then
	echo "bench-worklist: RADTRIAGE_TEST_REDIS_URL is not set: run 'make services' and '. .cache/services.env', or set it to the redis:// URL of a real redis-server" >&2
	exit 1
fi
command -v redis-benchmark >/dev/null || { echo "bench-worklist: redis-benchmark not installed (apt-get install redis-tools)" >&2; exit 1; }

go run ./cmd/worklistbench -redis-url "$RADTRIAGE_TEST_REDIS_URL" -studies 100000 -workers 8 -duration 10s -out "$out" "$@"
