// Shared device helpers of the CUDA kernels (cuda_*.cu). Every kernel
// parameter is 8 bytes wide (pointers, long long, double): gorgonia.org/cu's
// Launch copies 8 bytes per argument, so the Go side passes every value
// through a uint64 holder.
#pragma once

#define NTHREADS 256

// Grid-stride loop over [0, n) with 64-bit indices.
#define GRID_STRIDE(i, n)                                                      \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;         \
       i < (n); i += (long long)blockDim.x * gridDim.x)

// Activation kinds, as kernels.ActKind.
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_LEAKY 2
#define ACT_SIGMOID 3

// act_apply is kernels.Activation.Apply: ReLU max(x, 0) (NaN passes),
// LeakyReLU alpha*x below 0, Sigmoid 1/(1+e^-x) in double.
__device__ __forceinline__ float act_apply(float x, int kind, float alpha) {
  switch (kind) {
  case ACT_RELU:
    return x < 0.f ? 0.f : x;
  case ACT_LEAKY:
    return x < 0.f ? alpha * x : x;
  case ACT_SIGMOID:
    return (float)(1.0 / (1.0 + exp(-(double)x)));
  }
  return x;
}

// Warp and block reductions (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max_f(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ unsigned long long warp_sum_u(unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// block_sum_d returns the block's sum to every thread. All threads of the
// block must call it.
__device__ double block_sum_d(double v) {
  __shared__ double part[32];
  __shared__ double total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads(); // part and total may still be read by a previous call
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int nw = (blockDim.x + 31) >> 5;
    double s = lane < nw ? part[lane] : 0.0;
    s = warp_sum_d(s);
    if (lane == 0)
      total = s;
  }
  __syncthreads();
  return total;
}

__device__ float block_max_f(float v) {
  __shared__ float part[32];
  __shared__ float total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max_f(v);
  __syncthreads();
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int nw = (blockDim.x + 31) >> 5;
    float s = lane < nw ? part[lane] : -INFINITY;
    s = warp_max_f(s);
    if (lane == 0)
      total = s;
  }
  __syncthreads();
  return total;
}

__device__ unsigned long long block_sum_u(unsigned long long v) {
  __shared__ unsigned long long part[32];
  __shared__ unsigned long long total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_u(v);
  __syncthreads();
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int nw = (blockDim.x + 31) >> 5;
    unsigned long long s = lane < nw ? part[lane] : 0ull;
    s = warp_sum_u(s);
    if (lane == 0)
      total = s;
  }
  __syncthreads();
  return total;
}

// mirror_scipy maps any index into [0, n) as scipy.ndimage's "reflect"
// (d c b a | a b c d | d c b a), periodic with period 2n.
__device__ __forceinline__ int mirror_scipy(int i, int n) {
  int p = 2 * n;
  int m = i % p;
  if (m < 0)
    m += p;
  return m < n ? m : p - 1 - m;
}

// mirror_numpy maps any index into [0, n) as numpy.pad's "reflect"
// (d c b | a b c d | c b a), periodic with period 2(n-1).
__device__ __forceinline__ int mirror_numpy(int i, int n) {
  if (n == 1)
    return 0;
  int p = 2 * (n - 1);
  int m = i % p;
  if (m < 0)
    m += p;
  return m < n ? m : p - m;
}

// The mirrors with the common case (i inside) first.
__device__ __forceinline__ int inside_or_scipy(int i, int n) {
  return (unsigned)i < (unsigned)n ? i : mirror_scipy(i, n);
}
__device__ __forceinline__ int inside_or_numpy(int i, int n) {
  return (unsigned)i < (unsigned)n ? i : mirror_numpy(i, n);
}
