#!/usr/bin/env bash
# Real services for the tests: PostgreSQL and Redis, plus the outside tools
# the interoperability tests drive (Orthanc with its DICOMweb plugin, dcmtk,
# pydicom).
#
#   .ci/services.sh          ensure everything; write .cache/services.env
#   .ci/services.sh stop     stop the private instances this script started
#
# .cache/services.env holds `export RADTRIAGE_TEST_DATABASE_URL=…` and
# `export RADTRIAGE_TEST_REDIS_URL=…` (the Makefile sources it before
# go test). Each service is found in this order:
#   1. RADTRIAGE_TEST_DATABASE_URL / RADTRIAGE_TEST_REDIS_URL already set and
#      answering;
#   2. a server on 127.0.0.1:5432 (database "test", created if missing) /
#      127.0.0.1:6379;
#   3. a private instance started here: PostgreSQL on 127.0.0.1:55432 with
#      its data in .cache/pg, Redis on 127.0.0.1:56379 with .cache/redis,
#      installed with apt-get first when the binaries are missing.
# RADTRIAGE_TEST_FORCE_PRIVATE=1 skips 1 and 2 (to test path 3 on a machine
# that has both). RADTRIAGE_PRIVATE_PG_PORT / RADTRIAGE_PRIVATE_REDIS_PORT
# move the private ports.
#
# Under CI=true any failure is fatal; elsewhere it is a warning and the
# variable is left out, so the tests that need the service skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.cache
envfile=$cache/services.env
pg_port=${RADTRIAGE_PRIVATE_PG_PORT:-55432}
redis_port=${RADTRIAGE_PRIVATE_REDIS_PORT:-56379}
force_private=${RADTRIAGE_TEST_FORCE_PRIVATE:-}
ci=${CI:-false}

log() { echo "services: $*" >&2; }
problem() {
	if [ "$ci" = true ]; then
		log "FATAL (CI=true): $*"
		exit 1
	fi
	log "WARNING: $* (tests that need it will skip)"
}

sudo_cmd() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install PKG...: installs the packages that are missing, without
# starting their system services (private instances are started below).
apt_install() {
	local missing=() p
	command -v dpkg-query >/dev/null || { problem "no dpkg: install $* by hand"; return 1; }
	for p in "$@"; do installed "$p" || missing+=("$p"); done
	((${#missing[@]})) || return 0
	log "installing ${missing[*]} with apt-get"
	local policy=/usr/sbin/policy-rc.d added_policy=
	if [ ! -e "$policy" ] && sudo_cmd sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy"; then
		added_policy=1
	fi
	local rc=0
	sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
	[ -z "$added_policy" ] || sudo_cmd rm -f "$policy"
	if [ "$rc" != 0 ]; then
		problem "apt-get install ${missing[*]} failed (status $rc; root or passwordless sudo needed)"
		return 1
	fi
}

pg_ok() { [ -n "$1" ] && command -v psql >/dev/null && PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }
redis_ok() {
	[ -n "$1" ] && command -v redis-cli >/dev/null && [ "$(timeout 5 redis-cli -u "$1" ping 2>/dev/null)" = PONG ]
}

# as_pg CMD...: runs a PostgreSQL server binary, which refuses to run as
# root, as the postgres user when we are root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

pg_private_dir() {
	local d=$cache/pg
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$d"
		chown postgres: "$d" 2>/dev/null || true
		# The postgres user must reach the folder; a clone under /root cannot.
		if ! runuser -u postgres -- test -w "$d" 2>/dev/null; then
			d=${TMPDIR:-/tmp}/radtriage-pg-$(echo "$root" | md5sum | cut -c1-8)
			mkdir -p "$d" && chown postgres: "$d" && chmod 700 "$d"
		fi
	else
		mkdir -p "$d"
	fi
	echo "$d"
}

start_private_pg() {
	local url="postgres://postgres@127.0.0.1:$pg_port/test?sslmode=disable"
	if pg_ok "$url"; then
		echo "$url"
		return
	fi
	local bin
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$bin" ]; then
		apt_install postgresql || return 1
		bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	fi
	local dir
	dir=$(pg_private_dir)
	if [ ! -s "$dir/PG_VERSION" ]; then
		log "initdb $dir"
		as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-instructions >"$cache/pg-initdb.log" 2>&1 ||
			{ problem "initdb failed: $(tail -n 5 "$cache/pg-initdb.log")"; return 1; }
	fi
	log "starting private PostgreSQL on 127.0.0.1:$pg_port ($dir)"
	as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
		-o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >&2 ||
		{ problem "PostgreSQL did not start: $(tail -n 5 "$dir/server.log" 2>/dev/null)"; return 1; }
	echo "$dir" >"$cache/pg.dir"
	psql "postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable" -Atqc \
		"select 1 from pg_database where datname = 'test'" | grep -q 1 ||
		psql "postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable" -qc 'create database test' >&2
	pg_ok "$url" || { problem "private PostgreSQL on $pg_port does not answer"; return 1; }
	echo "$url"
}

start_private_redis() {
	local url="redis://127.0.0.1:$redis_port/0"
	if redis_ok "$url"; then
		echo "$url"
		return
	fi
	command -v redis-server >/dev/null || apt_install redis-server || return 1
	mkdir -p "$cache/redis"
	log "starting private Redis on 127.0.0.1:$redis_port ($cache/redis)"
	redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --dir "$cache/redis" \
		--pidfile "$cache/redis/redis.pid" --logfile "$cache/redis/redis.log" --save '' --appendonly no >&2 ||
		{ problem "redis-server did not start"; return 1; }
	local i
	for i in $(seq 50); do
		redis_ok "$url" && { echo "$url"; return; }
		sleep 0.1
	done
	problem "private Redis on $redis_port does not answer: $(tail -n 5 "$cache/redis/redis.log" 2>/dev/null)"
	return 1
}

find_postgres() {
	local url=${RADTRIAGE_TEST_DATABASE_URL:-}
	if [ -z "$force_private" ]; then
		if [ -n "$url" ]; then
			pg_ok "$url" && { echo "$url"; return; }
			log "RADTRIAGE_TEST_DATABASE_URL=$url does not answer; looking further"
		fi
		url="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 -t 3; then
			pg_ok "$url" && { echo "$url"; return; }
			psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -qc 'create database test' >/dev/null 2>&1 || true
			pg_ok "$url" && { echo "$url"; return; }
			log "PostgreSQL on 5432 answers but $url does not; starting a private one"
		fi
	fi
	start_private_pg
}

find_redis() {
	local url=${RADTRIAGE_TEST_REDIS_URL:-}
	if [ -z "$force_private" ]; then
		if [ -n "$url" ]; then
			redis_ok "$url" && { echo "$url"; return; }
			log "RADTRIAGE_TEST_REDIS_URL=$url does not answer; looking further"
		fi
		url="redis://127.0.0.1:6379/0"
		redis_ok "$url" && { echo "$url"; return; }
	fi
	start_private_redis
}

stop_private() {
	local bin dir
	if [ -s "$cache/pg.dir" ]; then
		dir=$(cat "$cache/pg.dir")
		bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
		[ -f "$dir/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >&2 || true
		rm -f "$cache/pg.dir"
	fi
	if [ -s "$cache/redis/redis.pid" ]; then
		redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
		rm -f "$cache/redis/redis.pid"
	fi
	rm -f "$envfile"
}

case ${1:-start} in
start) ;;
stop)
	stop_private
	exit 0
	;;
*)
	echo "usage: $0 [start|stop]" >&2
	exit 2
	;;
esac

mkdir -p "$cache"
# The tools first: psql and redis-cli come with the servers' packages.
apt_install postgresql redis-server redis-tools orthanc orthanc-dicomweb dcmtk python3-pydicom || true
# Pixel codecs in C (cgo: JPEG 2000, JPEG-LS) and the volume reference
# converter for the tests and benchmarks.
apt_install gcc pkg-config libopenjp2-7-dev libcharls-dev dcm2niix libjpeg-turbo-progs libopenjp2-tools || true
if [ -z "$(.ci/codec-tags.sh)" ] || ! command -v dcm2niix >/dev/null; then
	problem "the OpenJPEG/CharLS headers (libopenjp2-7-dev, libcharls-dev) or dcm2niix are missing"
fi
# The kernels: g++ builds the CUDA emulator of make test-cuda-emu (cuda.h
# and the libcuda stub come from .ci/cuda-headers.sh); python3-torch and
# python3-skimage are the references of make bench and make goldens only,
# so they are installed by those (kernels/bench/deps.sh), not here.
apt_install g++ binutils || true

{
	echo "# written by .ci/services.sh on $(date -u +%FT%TZ); sourced by make test"
	if pg=$(find_postgres) && [ -n "$pg" ]; then
		echo "export RADTRIAGE_TEST_DATABASE_URL='$pg'"
		log "PostgreSQL: $pg"
	else
		problem "no PostgreSQL"
	fi
	if rd=$(find_redis) && [ -n "$rd" ]; then
		echo "export RADTRIAGE_TEST_REDIS_URL='$rd'"
		log "Redis: $rd"
	else
		problem "no Redis"
	fi
} >"$envfile.tmp"
mv "$envfile.tmp" "$envfile"
