#!/usr/bin/env bash
# Pipeline benchmark (issue 7): time from the last STOW-RS response to the
# worklist's "reprioritised" event for a phantom study with a bleed (p50/
# p95 over repeated runs, the stable age apart), on the embedded defaults
# and on PostgreSQL + Redis; studies per hour with 1 and 2 CPU worker
# processes beside one `serve --workers 0`; and, as the outside reference
# in the same run, `radtriage triage` on the same studies (the pure
# compute floor), so the pipeline's overhead shows. Writes a Markdown
# report and checks the target: time to triage at most the stable age
# plus 10 s on CPU.
#
#   .ci/bench-pipeline.sh [out.md] [extra pipelinebench flags...]
#
# The services are RADTRIAGE_TEST_DATABASE_URL and RADTRIAGE_TEST_REDIS_URL
# (the Makefile sources them from .cache/services.env, written by
# .ci/services.sh). Each run gets a fresh PostgreSQL schema (dropped
# afterwards) and a Redis key prefix of its own (its keys deleted
# afterwards; never FLUSHDB or FLUSHALL). Defaults: 8 runs per setup,
# 12 studies per throughput run, --stable-age 2s; a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-pipeline.md}"
shift || true

if [ -z "${RADTRIAGE_TEST_DATABASE_URL:-}" ] || [ -z "${RADTRIAGE_TEST_REDIS_URL:-}" ]; then
	echo "bench-pipeline: RADTRIAGE_TEST_DATABASE_URL and RADTRIAGE_TEST_REDIS_URL must be set: run 'make services' and '. .cache/services.env'" >&2
	exit 1
fi

go build -o bin/radtriage ./cmd/radtriage
go run ./cmd/pipelinebench -bin bin/radtriage -runs 8 -studies 12 -workers 1,2 -stable-age 2s \
	-database-url "$RADTRIAGE_TEST_DATABASE_URL" -redis-url "$RADTRIAGE_TEST_REDIS_URL" -o "$out" "$@"
