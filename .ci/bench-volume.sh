#!/usr/bin/env bash
# Volume benchmark: `radtriage volume` against Debian's dcm2niix on the
# same folder, in one run, on this machine. Prints a Markdown table and
# writes it to the report file.
#
#   .ci/bench-volume.sh [out.md] [runs]     (defaults: bench-volume.md, 10)
#
# Each tool turns ../shared/dicom/ct-head-5mm (28 slices of 512x512, read
# from disk, page cache warmed first) into one NIfTI-1 file, uncompressed
# (.nii; dcm2niix -z n) and gzip-compressed (.nii.gz; dcm2niix -z y, which
# uses pigz when it is installed). The time is the median wall time of
# RUNS runs of the whole process; ratio is radtriage's time over
# dcm2niix's (below 1: radtriage is faster). GOTAGS (e.g. "-tags
# openjpeg,charls", from the Makefile) is passed to go build.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-volume.md}"
runs="${2:-${RUNS:-10}}"
series="${BENCH_VOLUME_DIR:-../shared/dicom/ct-head-5mm}"

[ -d "$series" ] || { echo "bench-volume: $series not found" >&2; exit 1; }
command -v dcm2niix >/dev/null || { echo "bench-volume: dcm2niix not installed (apt-get install dcm2niix)" >&2; exit 1; }

read -r -a tags <<<"${GOTAGS:-}"
go build "${tags[@]}" -o bin/radtriage ./cmd/radtriage

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Warm the page cache: read every file once.
cat "$series"/* >/dev/null

# median_ms CMD...: runs CMD $runs times (after one untimed warm-up run),
# removing the outputs in $tmp/out before each, and prints the median wall
# time in milliseconds.
median_ms() {
	local times=() t0 t1 i
	for ((i = 0; i <= runs; i++)); do
		rm -rf "$tmp/out" && mkdir -p "$tmp/out"
		t0=$(date +%s%N)
		"$@" >"$tmp/log" 2>&1 || { echo "bench-volume: failed: $*" >&2; cat "$tmp/log" >&2; exit 1; }
		t1=$(date +%s%N)
		((i == 0)) || times+=($(((t1 - t0) / 1000)))
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

size_mb() { du -b "$1" | awk '{printf "%.1f", $1/1e6}'; }

dcm_version=$(dcm2niix -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -n1 || true)
{
	echo "## Volume assembly: radtriage vs dcm2niix"
	echo
	echo "$(basename "$series"): $(ls "$series" | wc -l) files, $(nproc) CPUs, median of $runs runs (wall time of the whole process, page cache warm)."
	echo "dcm2niix ${dcm_version:-(version unknown)}; -z y compresses with $(command -v pigz >/dev/null && echo pigz || echo its internal zlib)."
	echo
	echo "| tool | output | median ms | size MB | ratio radtriage/dcm2niix |"
	echo "|---|---|---:|---:|---:|"
} >"$tmp/table"

for kind in nii nii.gz; do
	z=n
	[ "$kind" = nii.gz ] && z=y
	d=$(median_ms dcm2niix -z "$z" -b n -f x -o "$tmp/out" "$series")
	dsize=$(size_mb "$tmp/out/x.$kind")
	r=$(median_ms bin/radtriage volume "$series" -o "$tmp/out/x.$kind")
	rsize=$(size_mb "$tmp/out/x.$kind")
	ratio=$(awk -v a="$r" -v b="$d" 'BEGIN {printf "%.2f", a/b}')
	echo "| dcm2niix -z $z | .$kind | $d | $dsize | |" >>"$tmp/table"
	echo "| radtriage volume | .$kind | $r | $rsize | $ratio |" >>"$tmp/table"
done

cat "$tmp/table"
cp "$tmp/table" "$out"
echo "bench-volume: wrote $out" >&2
