#!/usr/bin/env bash
# Denoise benchmark: the CPU backend's Gaussian, bilateral and non-local
# means filters on the ct-head-5mm volume (dcm2niix's NIfTI in
# ../shared/dicom/ct-head-5mm.ref) with 20 HU of added noise, against
# SciPy / scikit-image (Debian python3-skimage) with the same parameters,
# on time and on PSNR/SSIM, 2 threads, in one run. Writes a Markdown table.
#
#   .ci/bench-kernels-denoise.sh [out.md]
#
# Environment: REPS (runs per filter, the fastest kept, default 5), PYTHON (default
# /usr/bin/python3, which needs python3-skimage), SLOW=0 to skip
# denoise_nl_means(fast_mode=False) (about a minute or more).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-kernels-denoise.md}"
reps="${REPS:-5}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kernels/bench/deps.sh
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2

echo "radtriage filters..." >&2
go build -o "$work/denoisebench" ./kernels/bench/denoisebench
GOMAXPROCS=2 "$work/denoisebench" -out "$work" -reps "$reps"
echo "radtriage filters on one thread..." >&2
GOMAXPROCS=1 "$work/denoisebench" -out "$work/t1" -reps "$reps"
echo "scikit-image..." >&2
slow=()
if [ "${SLOW:-1}" = 0 ]; then slow=(--no-slow); fi
"$python" kernels/bench/bench_denoise.py "$work" "$out" --reps "$reps" --one-thread "$work/t1" "${slow[@]}"
