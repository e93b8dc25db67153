#!/usr/bin/env bash
# make demo: the whole product on one machine with nothing to install.
#
#   .ci/demo.sh                 (BIN=bin/radtriage by default; make demo builds it)
#   DEMO_EXIT=1 .ci/demo.sh     stop the server at the end instead of waiting
#
# Starts `radtriage serve` on its embedded defaults (SQLite index and blobs
# in a fresh temporary data dir, the in-process worklist store, one
# in-process CPU triage worker, --stable-age 2s) on 127.0.0.1:8080, or on
# a free port when 8080 is taken; writes five synthetic head CTs with
# `radtriage phantom` (2 normal, 2 with an intraparenchymal bleed, 1 with a
# subdural one: synthetic data, not patients), sends them with
# `radtriage push`, waits until every study has a triage result (GET
# /api/v1/jobs), then prints the worklist URL and the resulting order:
# tier, top finding with its probability and volume, study UID. The server
# keeps running until Ctrl-C, which stops it and removes the temporary
# folder (DEMO_KEEP=1 keeps it).
#
# Needs curl. jq, when installed, formats the order; without it the
# worklist's JSON is printed as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin/radtriage}
stable_age=${DEMO_STABLE_AGE:-2s}
timeout_s=${DEMO_TIMEOUT:-300}

log() { echo "demo: $*" >&2; }
die() {
	log "$*"
	exit 1
}

command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"
[ -x "$bin" ] || die "$bin not found: run make build (or make demo, which builds it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/radtriage-demo.XXXXXX")
server_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		log "stopping the server (pid $server_pid)"
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ "${DEMO_KEEP:-}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 127.0.0.1:8080 when nothing answers there, else any free port (the
# server logs the address it got).
addr=127.0.0.1:8080
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
	log "127.0.0.1:8080 is taken; using a free port"
	addr=127.0.0.1:0
fi

serverlog=$work/server.log
log "starting $bin serve (data dir $work/data, embedded SQLite + worklist store, 1 CPU worker, stable age $stable_age); log in $serverlog"
# --database-url= and --redis-url= are explicit: RADTRIAGE_DATABASE_URL or
# RADTRIAGE_REDIS_URL in the environment must not move the demo off the
# embedded defaults.
"$bin" serve --addr "$addr" --data-dir "$work/data" --database-url= --redis-url= \
	--stable-age "$stable_age" --workers 1 >"$serverlog" 2>&1 &
server_pid=$!

# The address from the "radtriage serving" line, then /readyz.
base=
for _ in $(seq 1 600); do
	kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$serverlog" >&2; server_pid=; die "the server exited"; }
	a=$(grep -m1 'msg="radtriage serving"' "$serverlog" | grep -o 'addr=[^ ]*' | cut -d= -f2 || true)
	if [ -n "$a" ] && curl -fsS -o /dev/null "http://$a/readyz" 2>/dev/null; then
		base=http://$a
		break
	fi
	sleep 0.1
done
[ -n "$base" ] || { tail -n 30 "$serverlog" >&2; die "the server did not get ready in 60 s"; }
log "server ready at $base"

# Five synthetic studies; seeds fixed so every run shows the same ones.
# Each study's series goes to push/ and its truth (truth.json, the lesion
# mask) stays in phantoms/.
ph=$work/phantoms
"$bin" phantom -o "$ph/normal" --count 2 --seed 101 --lesion none
"$bin" phantom -o "$ph/ich" --count 2 --seed 201 --lesion ich
"$bin" phantom -o "$ph/sdh" --count 1 --seed 302 --lesion sdh
want=5
mkdir -p "$work/push"
for d in "$ph"/*/*/; do
	d=${d%/}
	mv "$d/dicom" "$work/push/$(basename "$(dirname "$d")")-$(basename "$d")"
done

"$bin" push "$work/push" --url "$base/dicomweb"

# Every study triaged: done (or dead, which the worklist shows as AI
# failed) in the jobs API.
log "waiting for triage of $want studies (stable after $stable_age, then one worker)"
deadline=$((SECONDS + timeout_s))
while :; do
	finished=$(curl -fsS "$base/api/v1/jobs?state=done,dead&limit=1000" | grep -o '"state":' | wc -l || true)
	[ "$finished" -ge "$want" ] && break
	kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$serverlog" >&2; server_pid=; die "the server exited"; }
	[ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$serverlog" >&2; die "only $finished of $want studies triaged after ${timeout_s}s"; }
	sleep 0.5
done
dead=$(curl -fsS "$base/api/v1/jobs?state=dead&limit=1000" | grep -o '"state":' | wc -l || true)
[ "$dead" = 0 ] || log "$dead studies failed triage (GET $base/api/v1/jobs?state=dead says why)"

echo
echo "Worklist (most urgent first): $base/api/v1/worklist"
echo "  live changes (Server-Sent Events): $base/api/v1/worklist/events"
echo "  one study's findings: $base/api/v1/studies/{study}/findings"
echo "  triage jobs: $base/api/v1/jobs    metrics: $base/metrics"
echo "  (the worklist page for browsers comes with a later issue: $base/)"
echo
if command -v jq >/dev/null; then
	# What each phantom really holds, by study UID, from its truth.json.
	truth=$work/truth.tsv
	for t in "$ph"/*/*/truth.json; do
		jq -r '[.study_instance_uid,
			(if (.lesions | length) == 0 then "none"
			 else (.lesions | map("\(.kind | ascii_upcase) \(.volume_ml * 10 | round / 10) mL") | join(", ")) end)] | @tsv' "$t"
	done >"$truth"
	printf '%-3s %-9s %-22s %-16s %s\n' '#' tier 'AI top finding' 'phantom truth' 'study UID'
	curl -fsS "$base/api/v1/worklist?limit=100" | jq -r '
		.items | to_entries[] | .key as $i | .value |
		[ ($i + 1 | tostring),
		  .tier,
		  (if .finding then
		     "\(.finding.code) \(.finding.probability * 100 | round)%"
		     + (if (.finding.volume_ml // 0) > 0 then " \(.finding.volume_ml * 10 | round / 10) mL" else "" end)
		   elif (.ai // "done") != "done" then "AI \(.ai)"
		   else "none" end),
		  .study_uid ] | @tsv' |
		while IFS=$'\t' read -r n tier finding uid; do
			t=$(awk -F'\t' -v u="$uid" '$1 == u { print $2 }' "$truth")
			printf '%-3s %-9s %-22s %-16s %s\n' "$n" "$tier" "$finding" "${t:-?}" "$uid"
		done
	echo
	echo "Phantoms are synthetic and the models demonstration models trained on phantoms only: not for clinical use."
else
	log "jq not installed: the worklist as JSON"
	curl -fsS "$base/api/v1/worklist?limit=100"
	echo
fi
echo

if [ "${DEMO_EXIT:-}" = 1 ]; then
	log "DEMO_EXIT=1: stopping"
	exit 0
fi
log "the server runs at $base until Ctrl-C"
wait "$server_pid" || true
server_pid=
