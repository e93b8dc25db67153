#!/bin/sh
# Builds a CPU stand-in for the CUDA driver library, libcuda.so.1, that
# runs radtriage's own CUDA kernels (kernels/*.cu compiled as C++ against
# emu.h: blocks one after another, the threads of a block as ucontext
# coroutines switched at __syncthreads and warp shuffles). With it, the
# cuda-tagged kernels test binary runs the whole conformance suite on a
# machine without a GPU, which checks the kernels' indexing, tiling and
# edge handling and the Go launch code (make test-cuda-emu).
#
# It is no substitute for a GPU run: it cannot show races, memory-model
# bugs, driver JIT or launch-limit problems, or speed.
#
#   build.sh KERNELS_DIR OUT_DIR     (ASAN=1: with AddressSanitizer)
#
# CGO_CFLAGS (-I for cuda.h) and CGO_LDFLAGS (-L of the stub libcuda.so)
# as .ci/cuda-headers.sh prints them; the Makefile passes them.
#   LD_LIBRARY_PATH=OUT_DIR ./kernels-cuda.test -test.run CUDA
set -eu
K=$(cd "$1" && pwd)
OUT=$2
SRC=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cd "$OUT"
san=
[ "${ASAN:-0}" = 1 ] && san=-fsanitize=address
# The kernel table: every .entry of the committed PTX, so a kernel the Go
# code can load is a kernel the emulator has.
cat "$K"/ptx/*.ptx | grep -o '\.entry [a-z0-9_]*' |
	awk '{print "{\"" $2 "\", [](void **p) { emu_invoke(" $2 ", p); }},"}' >table.inc
g++ -O1 -g -std=c++17 -fPIC -ffp-contract=off -Wno-unknown-pragmas $san -I"$SRC" -I"$K" -I. ${CGO_CFLAGS:-} -c "$SRC/kernels_all.cpp" -o kernels_all.o
g++ -O1 -g -std=c++17 -fPIC $san -I"$SRC" ${CGO_CFLAGS:-} -c "$SRC/fakecuda.cpp" -o fakecuda.o
# Every other driver entry point (cu's package links them all) answers
# CUDA_ERROR_NOT_SUPPORTED (801).
nm --defined-only fakecuda.o | awk '$2=="T"{print $3}' | grep '^cu' | sort >impl.txt
stubdir=${CGO_LDFLAGS:-}
stubdir=${stubdir#-L}
stub=${stubdir:-/usr/lib/x86_64-linux-gnu/stubs}/libcuda.so
nm -D --defined-only "$stub" | awk '{print $3}' | grep -v '^$' | sort >all.txt
comm -23 all.txt impl.txt | awk '{print "int " $1 "(void) { return 801; }"}' >stubs.c
gcc -fPIC -c stubs.c -o stubs.o
g++ -shared $san -Wl,-soname,libcuda.so.1 -o libcuda.so.1 fakecuda.o kernels_all.o stubs.o
