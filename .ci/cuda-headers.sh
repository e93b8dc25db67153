#!/bin/sh
# Finds what the cuda build (go build -tags cuda) needs at build time, the
# driver API header cuda.h and a libcuda.so to link against (the stub will
# do: the real one comes with the driver on the GPU machine), and prints
# them as environment assignments for cgo, one per line:
#
#   CGO_CFLAGS=-I/usr/include
#   CGO_LDFLAGS=-L/usr/lib/x86_64-linux-gnu/stubs
#
# (the Makefile runs `env $(shell .ci/cuda-headers.sh) go build -tags cuda`).
# Installed headers are used when present (Debian's nvidia-cuda-dev, or a
# CUDA toolkit under /usr/local/cuda); otherwise Debian's nvidia-cuda-dev
# .deb is downloaded with apt-get (adding the non-free component when apt
# lacks it) and only cuda.h and stubs/libcuda.so are extracted into
# $CUDA_HEADERS_DIR (default .cache/cuda). CUDA_HEADERS_FETCH=1 skips the
# installed files and always fetches (to test this path).
set -eu

dir=${CUDA_HEADERS_DIR:-.cache/cuda}
fetch=${CUDA_HEADERS_FETCH:-0}

say() { echo "cuda-headers: $*" >&2; }

emit() { # include dir, library dir
	echo "CGO_CFLAGS=-I$1"
	echo "CGO_LDFLAGS=-L$2"
	exit 0
}

if [ "$fetch" != 1 ]; then
	for inc in /usr/include /usr/local/cuda/include; do
		[ -f "$inc/cuda.h" ] || continue
		for lib in /usr/lib/x86_64-linux-gnu/stubs /usr/local/cuda/lib64/stubs /usr/local/cuda/targets/x86_64-linux/lib/stubs; do
			[ -f "$lib/libcuda.so" ] && emit "$inc" "$lib"
		done
	done
fi

# A previous fetch.
if [ -f "$dir/include/cuda.h" ] && [ -f "$dir/lib/libcuda.so" ]; then
	abs=$(cd "$dir" && pwd)
	emit "$abs/include" "$abs/lib"
fi

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

# "apt-cache show" succeeds for a package apt only knows by name (another
# package refers to it) with no version to install: ask for a candidate.
if ! apt-cache policy nvidia-cuda-dev 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	# Add Debian's contrib and non-free components beside the main
	# sources (same URI and key).
	src=/etc/apt/sources.list.d/debian.sources
	nonfree=/etc/apt/sources.list.d/debian-nonfree.sources
	if [ ! -f "$src" ]; then
		say "nvidia-cuda-dev not found by apt and no $src to copy the mirror from"
		exit 1
	fi
	uri=$(awk '/^URIs:/ {print $2; exit}' "$src")
	key=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
	say "adding $nonfree (bookworm contrib non-free from $uri)"
	printf 'Types: deb\nURIs: %s\nSuites: bookworm\nComponents: contrib non-free\nSigned-By: %s\n' "$uri" "$key" |
		$sudo tee "$nonfree" >/dev/null
	$sudo apt-get update -qq >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading nvidia-cuda-dev (large) into $tmp"
# As root, apt would drop to its _apt user, which cannot write to the
# private temporary directory.
sandbox=
[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
(cd "$tmp" && apt-get download -qq $sandbox nvidia-cuda-dev >&2)
deb=$(ls "$tmp"/nvidia-cuda-dev_*.deb)
say "extracting cuda.h and stubs/libcuda.so"
dpkg-deb --fsys-tarfile "$deb" |
	tar -x -C "$tmp" ./usr/include/cuda.h ./usr/lib/x86_64-linux-gnu/stubs/libcuda.so
mkdir -p "$dir/include" "$dir/lib"
cp "$tmp/usr/include/cuda.h" "$dir/include/cuda.h"
cp "$tmp/usr/lib/x86_64-linux-gnu/stubs/libcuda.so" "$dir/lib/libcuda.so"
# cuda.h includes only the C library's stdlib.h and stdint.h; check that a
# later Debian release has not added one of its own.
if grep -q '^#include *"' "$dir/include/cuda.h"; then
	say "warning: cuda.h includes local headers not extracted:"
	grep '^#include *"' "$dir/include/cuda.h" >&2
fi
abs=$(cd "$dir" && pwd)
emit "$abs/include" "$abs/lib"
