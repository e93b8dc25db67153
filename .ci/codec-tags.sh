#!/usr/bin/env bash
# Prints the Go build tags of the cgo pixel codecs whose C libraries are
# installed: openjpeg (JPEG 2000, Debian libopenjp2-7-dev) and charls
# (JPEG-LS, libcharls-dev), comma-separated; nothing when cgo cannot be
# used (no C compiler, no pkg-config, CGO_ENABLED=0). make build and make
# test pass them to go build/test with CGO_ENABLED=1; without them the
# binary is pure Go and answers "unsupported transfer syntax" for those
# two codecs.
set -u
[ "${CGO_ENABLED:-1}" = 0 ] && exit 0
command -v pkg-config >/dev/null 2>&1 || exit 0
command -v "${CC:-gcc}" >/dev/null 2>&1 || exit 0
tags=()
# OpenJPEG 2.5.0 brought strict mode (truncation is an error) and HTJ2K;
# CharLS is tested on 2.4.1 (Debian bookworm).
pkg-config --atleast-version=2.5.0 libopenjp2 && tags+=(openjpeg)
pkg-config --atleast-version=2.4.0 charls && tags+=(charls)
(IFS=,; echo "${tags[*]}")
