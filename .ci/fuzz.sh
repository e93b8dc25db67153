#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each:
#   .ci/fuzz.sh [FUZZTIME]      (default 10s; FUZZTIME in the environment works too)
# Targets are found with `go test -list`, so a new Fuzz function joins
# without editing this file. New crashers land in the package's
# testdata/fuzz/ folder and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-10s}}
# GOTAGS (e.g. "-tags openjpeg,charls", from the Makefile) adds the cgo codecs.
read -r -a tags <<<"${GOTAGS:-}"
status=0
count=0
for pkg in $(go list ./...); do
	# Only packages with a fuzz target in a test file are worth a test build.
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(go test "${tags[@]}" -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		count=$((count + 1))
		echo "fuzz: $pkg $target for $fuzztime" >&2
		if ! go test "${tags[@]}" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg"; then
			echo "fuzz: FAIL $pkg $target" >&2
			status=1
		fi
	done
done
echo "fuzz: ran $count targets" >&2
exit $status
