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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
	# Only packages with a fuzz target in a test file are worth a test build.
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(go test "${tags[@]}" -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		count=$((count + 1))
		echo "fuzz: $pkg $target for $fuzztime" >&2
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		rc=0
		go test "${tags[@]}" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1 | tee "$log" || rc=$?
		if [ "$rc" != 0 ]; then
			after=$(ls "$corpus" 2>/dev/null | sort || true)
			# Go's fuzz coordinator (go1.26) can fail a run with a bare
			# "context deadline exceeded" when -fuzztime ends while a worker
			# is busy (golang/go#75804, fixed in go1.27). That writes no
			# failing input; a real failure always does.
			if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log"; then
				echo "fuzz: $pkg $target stopped by the Go fuzz coordinator's deadline race (golang/go#75804), no failing input: not a failure" >&2
			else
				echo "fuzz: FAIL $pkg $target" >&2
				status=1
			fi
		fi
	done
done
echo "fuzz: ran $count targets" >&2
exit $status
