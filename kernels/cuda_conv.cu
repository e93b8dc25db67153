// Convolution (implicit GEMM) and GEMM kernels of the CUDA backend.
//
// Both compute a C tile of BM x BN (rows: output channels or GEMM rows;
// columns: output voxels or GEMM columns) per block of 256 threads, walking
// K in steps of BK through shared-memory tiles As[BK][BM] and Bs[BK][BN];
// each thread holds a 4 x 4 register tile: rows ty*4..ty*4+3, columns tx,
// tx+TX, tx+2TX, tx+3TX (TX = BN/4 threads across, tx = tid%TX, ty =
// tid/TX), so that a warp's stores are consecutive columns. GEMM uses 64 x
// 64 tiles; convolutions pick the tile by Cout (64 x 64, 32 x 128 or
// 16 x 256) so that few output channels waste no rows.
#include "cuda_common.cuh"

#define BM 64
#define BN 64
#define BK 16

// The inner product of one K step, shared by both kernels.
#define TILE_FMA()                                                             \
  _Pragma("unroll") for (int kk = 0; kk < BK; kk++) {                         \
    float4 a4 = *(const float4 *)&As[kk][ty * 4];                              \
    float av[4] = {a4.x, a4.y, a4.z, a4.w};                                    \
    float bv[4];                                                               \
    _Pragma("unroll") for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j]; \
    _Pragma("unroll") for (int i = 0; i < 4; i++)                              \
        _Pragma("unroll") for (int j = 0; j < 4; j++) acc[i][j] =             \
            fmaf(av[i], bv[j], acc[i][j]);                                     \
  }

// conv_body: for batch b = blockIdx.z (+ gridDim.z ...), output channel m
// < Cout and column n < gD*gH*gW (a grid point g = (gd, gh, gw)),
//   out[b][m][o(g)] = act(bias[m] + sum_k wt[k][m] * in[b][ci_k][g*s - p + t_k])
// on TBM x TBN tiles, with o(g) = oOff + oSt*g per axis into the oD x oH x
// oW output, wt the weights packed [K][Cout] and ktab[k] = (ci, tD, tH, tW)
// (input channel and tap offsets); inputs outside the volume are 0. A
// convolution is one launch (g the output grid, oOff 0, oSt 1, t the
// dilated tap offsets); a transposed convolution one launch per sub-pixel
// phase (see cuda_convops.go).
template <int TBM, int TBN>
__device__ __forceinline__ void
conv_body(float *__restrict__ out, const float *__restrict__ in,
          const float *__restrict__ wt, const int4 *__restrict__ ktab,
          const float *__restrict__ bias, long long nb, long long Cin,
          long long Cout, long long K, long long iD, long long iH, long long iW,
          long long gD, long long gH, long long gW, long long oD, long long oH,
          long long oW, long long oOffD, long long oOffH, long long oOffW,
          long long oStD, long long oStH, long long oStW, long long sD,
          long long sH, long long sW, long long pD, long long pH, long long pW,
          long long hasBias, long long act, double alpha) {
  constexpr int TX = TBN / 4;           // threads across columns
  constexpr int BROWS = 256 / TBN;      // Bs rows one pass of threads loads
  constexpr int BPASS = BK / BROWS;     // passes per Bs tile
  constexpr int APASS = BK * TBM / 256; // As elements per thread (>= 1)
  static_assert(TX * (TBM / 4) == 256, "256 threads per tile");
  static_assert(BK % BROWS == 0 && (BK * TBM) % 256 == 0, "tile loads");
  __shared__ __align__(16) float As[BK][TBM];
  __shared__ __align__(16) float Bs[BK][TBN];
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const long long ncol = gD * gH * gW, inVol = iD * iH * iW,
                  outVol = oD * oH * oW;
  const long long n0 = (long long)blockIdx.x * TBN;
  const int m0 = blockIdx.y * TBM;
  const int ID = (int)iD, IH = (int)iH, IW = (int)iW;

  // The column this thread gathers into Bs (rows lk, lk+BROWS, ...): its
  // input base g*s - p.
  const int ln = tid % TBN, lk = tid / TBN;
  const long long n = n0 + ln;
  const bool nvalid = n < ncol;
  int bz = 0, by = 0, bx = 0;
  if (nvalid) {
    int gw = (int)(n % gW);
    long long t = n / gW;
    int gh = (int)(t % gH), gd = (int)(t / gH);
    bz = gd * (int)sD - (int)pD;
    by = gh * (int)sH - (int)pH;
    bx = gw * (int)sW - (int)pW;
  }

  for (long long b = blockIdx.z; b < nb; b += gridDim.z) {
    const float *inb = in + b * Cin * inVol;
    float acc[4][4] = {};

    // Register prefetch: the next K step's weights and gathered inputs
    // load while the current step computes from shared memory.
    float ra[APASS], rb[BPASS];
    auto load = [&](long long k0) {
#pragma unroll
      for (int i = 0; i < APASS; i++) {
        int e = tid + 256 * i, kk = e / TBM, mm = e % TBM;
        long long k = k0 + kk;
        int m = m0 + mm;
        ra[i] = (k < K && m < Cout) ? wt[k * Cout + m] : 0.f;
      }
#pragma unroll
      for (int i = 0; i < BPASS; i++) {
        long long k = k0 + lk + BROWS * i;
        float v = 0.f;
        if (nvalid && k < K) {
          int4 tk = ktab[k];
          int z = bz + tk.y, y = by + tk.z, x = bx + tk.w;
          if (z >= 0 && z < ID && y >= 0 && y < IH && x >= 0 && x < IW)
            v = inb[(long long)tk.x * inVol + ((long long)z * IH + y) * IW + x];
        }
        rb[i] = v;
      }
    };
    if (K > 0)
      load(0);
    for (long long k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
      for (int i = 0; i < APASS; i++) {
        int e = tid + 256 * i;
        As[e / TBM][e % TBM] = ra[i];
      }
#pragma unroll
      for (int i = 0; i < BPASS; i++)
        Bs[lk + BROWS * i][ln] = rb[i];
      __syncthreads();
      if (k0 + BK < K)
        load(k0 + BK);
#pragma unroll
      for (int kk = 0; kk < BK; kk++) {
        float4 a4 = *(const float4 *)&As[kk][ty * 4];
        float av[4] = {a4.x, a4.y, a4.z, a4.w};
        float bv[4];
#pragma unroll
        for (int j = 0; j < 4; j++)
          bv[j] = Bs[kk][tx + TX * j];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++)
            acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }

    // Output offsets of this thread's columns.
    long long oo[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      long long nn = n0 + tx + TX * j;
      oo[j] = -1;
      if (nn < ncol) {
        long long gw = nn % gW, t = nn / gW;
        long long gh = t % gH, gd = t / gH;
        oo[j] = ((oOffD + oStD * gd) * oH + (oOffH + oStH * gh)) * oW +
                (oOffW + oStW * gw);
      }
    }
    float *outb = out + b * Cout * outVol;
    int ak = (int)act;
    float al = (float)alpha;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int m = m0 + ty * 4 + i;
      if (m >= Cout)
        continue;
      float bm = hasBias ? bias[m] : 0.f;
#pragma unroll
      for (int j = 0; j < 4; j++)
        if (oo[j] >= 0)
          outb[(long long)m * outVol + oo[j]] = act_apply(acc[i][j] + bm, ak, al);
    }
  }
}

// The conv kernels, one per tile shape (rows x columns); the host picks
// by Cout.
#define CONV_KERNEL(NAME, TBM, TBN)                                            \
  extern "C" __global__ void __launch_bounds__(256) NAME(                      \
      float *__restrict__ out, const float *__restrict__ in,                   \
      const float *__restrict__ wt, const int4 *__restrict__ ktab,             \
      const float *__restrict__ bias, long long nb, long long Cin,             \
      long long Cout, long long K, long long iD, long long iH, long long iW,   \
      long long gD, long long gH, long long gW, long long oD, long long oH,    \
      long long oW, long long oOffD, long long oOffH, long long oOffW,         \
      long long oStD, long long oStH, long long oStW, long long sD,            \
      long long sH, long long sW, long long pD, long long pH, long long pW,    \
      long long hasBias, long long act, double alpha) {                        \
    conv_body<TBM, TBN>(out, in, wt, ktab, bias, nb, Cin, Cout, K, iD, iH, iW, \
                        gD, gH, gW, oD, oH, oW, oOffD, oOffH, oOffW, oStD,     \
                        oStH, oStW, sD, sH, sW, pD, pH, pW, hasBias, act,      \
                        alpha);                                                \
  }

CONV_KERNEL(conv3d_igemm_m64, 64, 64)
CONV_KERNEL(conv3d_igemm_m32, 32, 128)
CONV_KERNEL(conv3d_igemm_m16, 16, 256)

// load_tile stores the BK x W tile of an operand at (k0, w0) into s,
// zeros outside K x Wn. kMajor: the operand is K x Wn in memory
// (x[k*Wn+w]), else Wn x K (x[w*K+k]); consecutive threads walk the
// contiguous axis. 256 threads, BK*W = 1024.
template <int W>
__device__ __forceinline__ void
load_tile(float (*s)[W], const float *__restrict__ x, bool kMajor, long long k0,
          long long w0, long long K, long long Wn, int tid) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int e = tid + 256 * i;
    int kk, ww;
    if (kMajor) {
      kk = e / W;
      ww = e % W;
    } else {
      ww = e / BK;
      kk = e % BK;
    }
    long long k = k0 + kk, w = w0 + ww;
    float v = 0.f;
    if (k < K && w < Wn)
      v = kMajor ? x[k * Wn + w] : x[w * K + k];
    s[kk][ww] = v;
  }
}

// gemm_tiled: d[m x n] = alpha * op(a) op(b) + beta * c, with op(a)[i][k] =
// transA ? a[k*M+i] : a[i*K+k] and op(b)[k][j] = transB ? b[j*K+k] :
// b[k*N+j]. cMode: 0 none, 1 c[j] (row vector), 2 c[i] (column vector), 3
// c[i*N+j].
extern "C" __global__ void __launch_bounds__(256)
    gemm_tiled(float *__restrict__ d, const float *__restrict__ a,
               const float *__restrict__ b, const float *__restrict__ c,
               long long M, long long N, long long K, long long transA,
               long long transB, double alpha, double beta, long long cMode) {
  __shared__ __align__(16) float As[BK][BM];
  __shared__ __align__(16) float Bs[BK][BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long n0 = (long long)blockIdx.x * BN;
  const long long m0 = (long long)blockIdx.y * BM;
  float acc[4][4] = {};

  for (long long k0 = 0; k0 < K; k0 += BK) {
    load_tile<BM>(As, a, transA, k0, m0, K, M, tid);
    load_tile<BN>(Bs, b, !transB, k0, n0, K, N, tid);
    __syncthreads();
    TILE_FMA();
    __syncthreads();
  }

  float al = (float)alpha, be = (float)beta;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    long long m = m0 + ty * 4 + i;
    if (m >= M)
      continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      long long nj = n0 + tx + 16 * j;
      if (nj >= N)
        continue;
      float v = al * acc[i][j];
      if (cMode == 1)
        v += be * c[nj];
      else if (cMode == 2)
        v += be * c[m];
      else if (cMode == 3)
        v += be * c[m * N + nj];
      d[m * N + nj] = v;
    }
  }
}
