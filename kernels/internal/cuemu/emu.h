// Host emulation of the CUDA C++ subset used by radtriage's kernels:
// blocks run one after another, the threads of a block as coroutines
// (ucontext) switched at __syncthreads and warp shuffles.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <algorithm>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct emu_dim3 { unsigned x, y, z; };
struct int4 { int x, y, z, w; };
struct float4 { float x, y, z, w; };

struct EmuThread;
extern EmuThread *emu_cur;
extern emu_dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
const emu_dim3 &emu_tidx();
int emu_linear_tid();
void emu_block_barrier();
void emu_warp_barrier();
extern uint64_t emu_slots[1024];
extern int emu_nthreads;

#define threadIdx (emu_tidx())
#define blockIdx (emu_block_idx)
#define blockDim (emu_block_dim)
#define gridDim (emu_grid_dim)

inline void __syncthreads() { emu_block_barrier(); }

template <class T> T __shfl_down_sync(unsigned, T v, int o) {
  static_assert(sizeof(T) <= 8, "shfl");
  int i = emu_linear_tid();
  std::memcpy(&emu_slots[i], &v, sizeof(T));
  emu_warp_barrier();
  T r = v;
  if ((i % 32) + o < 32 && i + o < emu_nthreads)
    std::memcpy(&r, &emu_slots[i + o], sizeof(T));
  emu_warp_barrier();
  return r;
}

inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __expf(float x) { return expf(x); }
using std::isnan;
template <class T> inline T min(T a, T b) { return a < b ? a : b; }
template <class T> inline T max(T a, T b) { return a > b ? a : b; }
