#!/bin/sh
# Installs, when missing, what the benchmarks' references need: Debian's
# python3-torch (PyTorch CPU, also for ONNX export) and python3-skimage
# (scikit-image, SciPy), for /usr/bin/python3; npm; and onnxruntime-node
# (version pinned in kernels/bench/package-lock.json, CPU binaries bundled,
# installed with --ignore-scripts into kernels/bench/node_modules). The
# benchmark scripts and `make goldens` call it; root or passwordless sudo
# needed for the Debian packages.
set -eu
missing=
/usr/bin/python3 -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
/usr/bin/python3 -c 'import skimage, scipy' 2>/dev/null || missing="$missing python3-skimage"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	echo "kernels/bench/deps.sh: installing$missing with apt-get" >&2
	sudo=
	[ "$(id -u)" = 0 ] || sudo="sudo -n"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi
cd "$(dirname "$0")"
[ -d node_modules/onnxruntime-node ] || npm ci --ignore-scripts --no-audit --no-fund >&2
