#!/usr/bin/env bash
# Ingest benchmark: radtriage (SQLite, PostgreSQL) vs Debian Orthanc +
# DICOMweb plugin on this machine. Writes a Markdown report.
#
#   .ci/bench-ingest.sh [out.md] [extra ingestbench flags...]
#
# Needs ../shared/dicom/ct-head-5mm, the Orthanc and orthanc-dicomweb
# packages, and PostgreSQL at RADTRIAGE_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) for the
# PostgreSQL rows; pass -servers sqlite,orthanc to leave PostgreSQL out.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-ingest.md}"
shift || true
go build -o bin/radtriage ./cmd/radtriage
go run ./cmd/ingestbench -bin bin/radtriage -k 20 -c 1,4 -runs 3 -big-mb 1024 -o "$out" "$@"
