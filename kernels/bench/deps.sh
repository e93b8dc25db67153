#!/bin/sh
# Installs, when missing, what the kernels' references need: Debian's
# python3-torch (PyTorch CPU, also for ONNX export) and python3-skimage
# (scikit-image, SciPy), for /usr/bin/python3; and npm for onnxruntime-node.
# Used by the kernels benchmarks and `make goldens`; root or passwordless
# sudo needed to install.
set -eu
missing=
/usr/bin/python3 -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
/usr/bin/python3 -c 'import skimage, scipy' 2>/dev/null || missing="$missing python3-skimage"
command -v npm >/dev/null || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "kernels/bench/deps.sh: installing$missing with apt-get" >&2
sudo=
[ "$(id -u)" = 0 ] || sudo="sudo -n"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
