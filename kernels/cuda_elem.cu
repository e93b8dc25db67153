// Element-wise, layout, sampling, normalisation, pooling and reduction
// kernels of the CUDA backend (kernels/cuda_ops.go launches them). NCDHW
// float32; 64-bit element offsets throughout.
#include "cuda_common.cuh"

// ---- fill, rescale, activate ----

extern "C" __global__ void fill_f32(float *__restrict__ d, long long n,
                                    double v) {
  float fv = (float)v;
  GRID_STRIDE(i, n) { d[i] = fv; }
}

// rescale_*: v = src*slope + intercept, then when win: (v-lo)*invW,
// clamped to [0, 1] when clip (a NaN stays NaN): the CPU backend's float32
// arithmetic, rounded per operation (no fused multiply-add).
__device__ __forceinline__ float rescale_one(float s, float slope, float icept,
                                             bool win, float lo, float invW,
                                             bool clip) {
  float v = __fadd_rn(__fmul_rn(s, slope), icept);
  if (win) {
    v = __fmul_rn(__fsub_rn(v, lo), invW);
    if (clip) {
      if (v < 0.f)
        v = 0.f;
      else if (v > 1.f)
        v = 1.f;
    }
  }
  return v;
}

extern "C" __global__ void rescale_i16(float *__restrict__ d,
                                       const short *__restrict__ s, long long n,
                                       double slope, double icept, double lo,
                                       double invW, long long win,
                                       long long clip) {
  float sl = (float)slope, ic = (float)icept, l = (float)lo, w = (float)invW;
  GRID_STRIDE(i, n) {
    d[i] = rescale_one((float)s[i], sl, ic, win != 0, l, w, clip != 0);
  }
}

// rescale_f32 works in place (d == s).
extern "C" __global__ void rescale_f32(float *d, const float *s, long long n,
                                       double slope, double icept, double lo,
                                       double invW, long long win,
                                       long long clip) {
  float sl = (float)slope, ic = (float)icept, l = (float)lo, w = (float)invW;
  GRID_STRIDE(i, n) {
    d[i] = rescale_one(s[i], sl, ic, win != 0, l, w, clip != 0);
  }
}

// activate works in place.
extern "C" __global__ void activate(float *d, const float *s, long long n,
                                    long long kind, double alpha) {
  int k = (int)kind;
  float a = (float)alpha;
  GRID_STRIDE(i, n) { d[i] = act_apply(s[i], k, a); }
}

// ---- binary ----

__device__ __forceinline__ float binop(int op, float a, float b) {
  switch (op) {
  case 1:
    return a + b;
  case 2:
    return a - b;
  case 3:
    return a * b;
  }
  return a / b;
}

// binary_same: a and b of the output's shape. Works in place.
extern "C" __global__ void binary_same(float *d, const float *a,
                                       const float *b, long long n,
                                       long long op) {
  int o = (int)op;
  GRID_STRIDE(i, n) { d[i] = binop(o, a[i], b[i]); }
}

// binary_bcast: 6-dimensional broadcast; od* the output's dimensions, as*
// and bs* the operands' element strides (0 along broadcast axes).
extern "C" __global__ void
binary_bcast(float *d, const float *a, const float *b, long long n,
             long long op, long long od0, long long od1, long long od2,
             long long od3, long long od4, long long od5, long long as0,
             long long as1, long long as2, long long as3, long long as4,
             long long as5, long long bs0, long long bs1, long long bs2,
             long long bs3, long long bs4, long long bs5) {
  int o = (int)op;
  GRID_STRIDE(i, n) {
    long long r = i, ao = 0, bo = 0, c;
    c = r % od5; r /= od5; ao += c * as5; bo += c * bs5;
    c = r % od4; r /= od4; ao += c * as4; bo += c * bs4;
    c = r % od3; r /= od3; ao += c * as3; bo += c * bs3;
    c = r % od2; r /= od2; ao += c * as2; bo += c * bs2;
    c = r % od1; r /= od1; ao += c * as1; bo += c * bs1;
    c = r;                 ao += c * as0; bo += c * bs0;
    (void)od0;
    d[i] = binop(o, a[ao], b[bo]);
  }
}

// ---- layout: flip, crop/pad, concat ----

// Row kernels: blockDim (32, 8); a thread takes rows blockIdx.x*8+ty (+
// gridDim.x*8 ...) and, within a row, elements tx, tx+32, ...

// flip: rows are (nc, d, h) of the destination.
extern "C" __global__ void flip(float *__restrict__ dst,
                                const float *__restrict__ src, long long nc,
                                long long D, long long H, long long W,
                                long long fd, long long fh, long long fw) {
  long long rows = nc * D * H;
  for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < rows;
       r += (long long)gridDim.x * blockDim.y) {
    long long h = r % H, t = r / H;
    long long dd = t % D, v = t / D;
    long long sd = fd ? D - 1 - dd : dd;
    long long sh = fh ? H - 1 - h : h;
    const float *s = src + ((v * D + sd) * H + sh) * W;
    float *o = dst + r * W;
    for (long long w = threadIdx.x; w < W; w += 32)
      o[w] = s[fw ? W - 1 - w : w];
  }
}

// croppad: dst voxel p takes src voxel p+offset, or fill outside src.
extern "C" __global__ void
croppad(float *__restrict__ dst, const float *__restrict__ src, long long nc,
        long long sD, long long sH, long long sW, long long dD, long long dH,
        long long dW, long long oD, long long oH, long long oW, double fill) {
  float f = (float)fill;
  long long rows = nc * dD * dH;
  for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < rows;
       r += (long long)gridDim.x * blockDim.y) {
    long long h = r % dH, t = r / dH;
    long long dd = t % dD, v = t / dD;
    long long zd = dd + oD, zh = h + oH;
    float *o = dst + r * dW;
    if (zd < 0 || zd >= sD || zh < 0 || zh >= sH) {
      for (long long w = threadIdx.x; w < dW; w += 32)
        o[w] = f;
      continue;
    }
    const float *s = src + ((v * sD + zd) * sH + zh) * sW;
    for (long long w = threadIdx.x; w < dW; w += 32) {
      long long zw = w + oW;
      o[w] = (zw < 0 || zw >= sW) ? f : s[zw];
    }
  }
}

// concat_part copies src (outer x inner) into columns [off, off+inner) of
// dst (outer x total). grid.y walks outer rows, grid.x x threads inner.
extern "C" __global__ void concat_part(float *__restrict__ dst,
                                       const float *__restrict__ src,
                                       long long outer, long long inner,
                                       long long total, long long off) {
  for (long long o = blockIdx.y; o < outer; o += gridDim.y) {
    const float *s = src + o * inner;
    float *d = dst + o * total + off;
    GRID_STRIDE(j, inner) { d[j] = s[j]; }
  }
}

// ---- separable sampling (Resample, Resize) ----

// Products and sums rounded one by one (no fused multiply-add), in the
// CPU backend's order, so that both backends agree to the bit.
#define MUL(a, b) __fmul_rn((a), (b))
#define ADD(a, b) __fadd_rn((a), (b))

// blend is the CPU's linear blend a*(1-w) + b*w.
__device__ __forceinline__ float blend(float a, float b, float w) {
  return ADD(MUL(a, __fsub_rn(1.f, w)), MUL(b, w));
}

// sample3 fills nc volumes of oD x oH x oW from volumes of iD x iH x iW
// through per-axis tables (host-computed, float32): for axis a with output
// length L_a at table offset T_a: i0 = tab[T_a+x], i1 = tab[T_a+L_a+x],
// w = tab[T_a+2L_a+x]; an i0 of -1 on any axis means outside: the voxel
// takes fill. mode 0: nearest (i0); 1: Resample's trilinear (bilinear
// weights over D and H, then a blend along W); 2: Resize's separable
// blends, along D, then H, then W.
extern "C" __global__ void
sample3(float *__restrict__ dst, const float *__restrict__ src,
        const float *__restrict__ tab, long long nc, long long iD, long long iH,
        long long iW, long long oD, long long oH, long long oW,
        long long mode, double fill) {
  float f = (float)fill;
  const float *tD = tab, *tH = tab + 3 * oD, *tW = tab + 3 * oD + 3 * oH;
  long long rows = nc * oD * oH;
  for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < rows;
       r += (long long)gridDim.x * blockDim.y) {
    long long h = r % oH, t = r / oH;
    long long dd = t % oD, v = t / oD;
    float *o = dst + r * oW;
    int d0 = (int)tD[dd], h0 = (int)tH[h];
    if (d0 < 0 || h0 < 0) {
      for (long long w = threadIdx.x; w < oW; w += 32)
        o[w] = f;
      continue;
    }
    const float *s = src + v * iD * iH * iW;
    if (mode == 0) {
      const float *row = s + ((long long)d0 * iH + h0) * iW;
      for (long long w = threadIdx.x; w < oW; w += 32) {
        int w0 = (int)tW[w];
        o[w] = w0 < 0 ? f : row[w0];
      }
      continue;
    }
    int d1 = (int)tD[oD + dd], h1 = (int)tH[oH + h];
    float wd = tD[2 * oD + dd], wh = tH[2 * oH + h];
    const float *s00 = s + ((long long)d0 * iH + h0) * iW;
    const float *s01 = s + ((long long)d0 * iH + h1) * iW;
    const float *s10 = s + ((long long)d1 * iH + h0) * iW;
    const float *s11 = s + ((long long)d1 * iH + h1) * iW;
    if (mode == 1) {
      float c00 = MUL(__fsub_rn(1.f, wd), __fsub_rn(1.f, wh));
      float c01 = MUL(__fsub_rn(1.f, wd), wh);
      float c10 = MUL(wd, __fsub_rn(1.f, wh));
      float c11 = MUL(wd, wh);
      bool plain = wd == 0.f && wh == 0.f;
      for (long long w = threadIdx.x; w < oW; w += 32) {
        int w0 = (int)tW[w];
        if (w0 < 0) {
          o[w] = f;
          continue;
        }
        int w1 = (int)tW[oW + w];
        float ww = tW[2 * oW + w];
        if (plain) {
          o[w] = blend(s00[w0], s00[w1], ww);
          continue;
        }
        float v0 = ADD(ADD(ADD(MUL(s00[w0], c00), MUL(s01[w0], c01)),
                           MUL(s10[w0], c10)),
                       MUL(s11[w0], c11));
        float v1 = ADD(ADD(ADD(MUL(s00[w1], c00), MUL(s01[w1], c01)),
                           MUL(s10[w1], c10)),
                       MUL(s11[w1], c11));
        o[w] = blend(v0, v1, ww);
      }
      continue;
    }
    // mode 2: blend along D unless one slice is the answer, then H, then W.
    bool oneD = wd == 0.f || d0 == d1, oneH = wh == 0.f || h0 == h1;
    for (long long w = threadIdx.x; w < oW; w += 32) {
      int wi[2] = {(int)tW[w], (int)tW[oW + w]};
      float ww = tW[2 * oW + w];
      float rv[2];
      for (int q = 0; q < 2; q++) {
        int x = wi[q];
        float p0 = oneD ? s00[x] : blend(s00[x], s10[x], wd);
        float p1 = oneD ? s01[x] : blend(s01[x], s11[x], wd);
        rv[q] = oneH ? p0 : blend(p0, p1, wh);
      }
      o[w] = blend(rv[0], rv[1], ww);
    }
  }
}

// ---- softmax, argmax over channels ----

// softmax over c channels of n x c x spatial; works in place (a thread
// owns one voxel's c values).
extern "C" __global__ void softmax_c(float *d, const float *s, long long n,
                                     long long c, long long spatial) {
  long long total = n * spatial;
  GRID_STRIDE(i, total) {
    long long b = i / spatial, p = i - b * spatial;
    long long base = b * c * spatial + p;
    float m = -INFINITY;
    for (long long k = 0; k < c; k++)
      m = fmaxf(m, s[base + k * spatial]);
    float sum = 0.f;
    for (long long k = 0; k < c; k++)
      sum += expf(s[base + k * spatial] - m);
    float inv = 1.f / sum;
    for (long long k = 0; k < c; k++)
      d[base + k * spatial] = expf(s[base + k * spatial] - m) * inv;
  }
}

// argmax_c writes the first channel holding the largest value.
extern "C" __global__ void argmax_c(unsigned char *__restrict__ d,
                                    const float *__restrict__ s, long long n,
                                    long long c, long long spatial) {
  long long total = n * spatial;
  GRID_STRIDE(i, total) {
    long long b = i / spatial, p = i - b * spatial;
    const float *x = s + b * c * spatial + p;
    float best = x[0];
    int arg = 0;
    for (long long k = 1; k < c; k++) {
      float v = x[k * spatial];
      if (v > best) {
        best = v;
        arg = (int)k;
      }
    }
    d[i] = (unsigned char)arg;
  }
}

// ---- normalisation ----

// chan_affine: y = act((x - m)*a + b) with (m, a, b) = coef[3j..3j+2] for
// row j of nc rows of spatial values (j = the row when perRow, else row %
// c), rounded per operation as the CPU backend. grid.y walks rows, grid.x
// x threads walk a row. Works in place.
extern "C" __global__ void chan_affine(float *d, const float *s,
                                       const float *__restrict__ coef,
                                       long long nc, long long c,
                                       long long spatial, long long perRow,
                                       long long kind, double alpha) {
  int k = (int)kind;
  float a = (float)alpha;
  for (long long r = blockIdx.y; r < nc; r += gridDim.y) {
    long long j = perRow ? r : r % c;
    float m = coef[3 * j], mul = coef[3 * j + 1], add = coef[3 * j + 2];
    const float *x = s + r * spatial;
    float *y = d + r * spatial;
    GRID_STRIDE(i, spatial) {
      y[i] = act_apply(__fadd_rn(__fmul_rn(__fsub_rn(x[i], m), mul), add), k, a);
    }
  }
}

// bn_coef: coef[3j..3j+2] = mean, scale/sqrt(var+eps) (in double), bias.
extern "C" __global__ void bn_coef(float *__restrict__ coef,
                                   const float *__restrict__ scale,
                                   const float *__restrict__ bias,
                                   const float *__restrict__ mean,
                                   const float *__restrict__ var, long long c,
                                   double eps) {
  GRID_STRIDE(j, c) {
    coef[3 * j] = mean[j];
    coef[3 * j + 1] = (float)((double)scale[j] / sqrt((double)var[j] + (double)(float)eps));
    coef[3 * j + 2] = bias[j];
  }
}

// in_partial: block (x, row) reduces chunk x of row (chunk values from
// x*chunk) to its mean and sum of squared deviations (two passes over the
// chunk, the second from cache): part[(row*chunks+x)*2 + {0,1}].
extern "C" __global__ void in_partial(double *__restrict__ part,
                                      const float *__restrict__ s,
                                      long long nc, long long spatial,
                                      long long chunk, long long chunks) {
  for (long long r = blockIdx.y; r < nc; r += gridDim.y) {
    for (long long x = blockIdx.x; x < chunks; x += gridDim.x) {
      long long lo = x * chunk, hi = min(lo + chunk, spatial);
      const float *p = s + r * spatial;
      double acc = 0;
      for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x)
        acc += p[i];
      double mean = block_sum_d(acc) / (double)(hi - lo);
      double m2 = 0;
      for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        double dv = p[i] - mean;
        m2 += dv * dv;
      }
      m2 = block_sum_d(m2);
      if (threadIdx.x == 0) {
        part[(r * chunks + x) * 2] = mean;
        part[(r * chunks + x) * 2 + 1] = m2;
      }
    }
  }
}

// in_coef combines a row's chunks (Chan et al.) into mean and biased
// variance, then coef[3r..3r+2] = mean, scale/sqrt(var+eps), bias (scale
// and bias indexed by row % c).
extern "C" __global__ void in_coef(float *__restrict__ coef,
                                   const double *__restrict__ part,
                                   const float *__restrict__ scale,
                                   const float *__restrict__ bias,
                                   long long nc, long long c,
                                   long long spatial, long long chunk,
                                   long long chunks, double eps) {
  GRID_STRIDE(r, nc) {
    double n = 0, mean = 0, m2 = 0;
    for (long long x = 0; x < chunks; x++) {
      double nb = (double)(min((x + 1) * chunk, spatial) - x * chunk);
      double mb = part[(r * chunks + x) * 2], m2b = part[(r * chunks + x) * 2 + 1];
      double nn = n + nb, delta = mb - mean;
      mean += delta * nb / nn;
      m2 += m2b + delta * delta * n * nb / nn;
      n = nn;
    }
    double var = m2 / (double)spatial;
    long long j = r % c;
    coef[3 * r] = (float)mean;
    coef[3 * r + 1] = (float)((double)scale[j] / sqrt(var + (double)(float)eps));
    coef[3 * r + 2] = bias[j];
  }
}

// gap: one block per row (grid-stride over rows): the mean of spatial.
extern "C" __global__ void gap(float *__restrict__ d,
                               const float *__restrict__ s, long long nc,
                               long long spatial) {
  for (long long r = blockIdx.x; r < nc; r += gridDim.x) {
    const float *p = s + r * spatial;
    double acc = 0;
    for (long long i = threadIdx.x; i < spatial; i += blockDim.x)
      acc += p[i];
    acc = block_sum_d(acc);
    if (threadIdx.x == 0)
      d[r] = (float)(acc / (double)spatial);
  }
}

// ---- pooling ----

// pool3d: one thread per output voxel of nc volumes. kind 1 max (padded
// voxels never win; NaN propagates), 2 average (PyTorch's divisor: the
// window clipped to the padded input when countPad, else to the input).
extern "C" __global__ void
pool3d(float *__restrict__ dst, const float *__restrict__ src, long long nc,
       long long iD, long long iH, long long iW, long long oD, long long oH,
       long long oW, long long kD, long long kH, long long kW, long long sD,
       long long sH, long long sW, long long lD, long long lH, long long lW,
       long long pD, long long pH, long long pW, long long eD, long long eH,
       long long eW, long long kind, long long countPad) {
  long long total = nc * oD * oH * oW;
  GRID_STRIDE(i, total) {
    long long ow = i % oW, t = i / oW;
    long long oh = t % oH;
    t /= oH;
    long long od = t % oD, v = t / oD;
    const float *s = src + v * iD * iH * iW;
    long long z0 = od * sD - pD, y0 = oh * sH - pH, x0 = ow * sW - pW;
    if (kind == 1) {
      float m = -INFINITY;
      for (long long a = 0; a < kD; a++) {
        long long z = z0 + a * lD;
        if (z < 0 || z >= iD)
          continue;
        for (long long b = 0; b < kH; b++) {
          long long y = y0 + b * lH;
          if (y < 0 || y >= iH)
            continue;
          const float *row = s + (z * iH + y) * iW;
          for (long long c = 0; c < kW; c++) {
            long long x = x0 + c * lW;
            if (x < 0 || x >= iW)
              continue;
            float val = row[x];
            if (val > m || isnan(val))
              m = val;
          }
        }
      }
      dst[i] = m;
    } else {
      long long z1 = min(z0 + kD, iD + eD), y1 = min(y0 + kH, iH + eH),
                x1 = min(x0 + kW, iW + eW);
      long long padCount = (z1 - z0) * (y1 - y0) * (x1 - x0);
      long long za = max(z0, 0LL), ya = max(y0, 0LL), xa = max(x0, 0LL);
      long long zb = min(z1, iD), yb = min(y1, iH), xb = min(x1, iW);
      float acc = 0.f;
      for (long long z = za; z < zb; z++)
        for (long long y = ya; y < yb; y++) {
          const float *row = s + (z * iH + y) * iW;
          for (long long x = xa; x < xb; x++)
            acc += row[x];
        }
      long long cnt = countPad ? padCount : (zb - za) * (yb - ya) * (xb - xa);
      dst[i] = cnt > 0 ? acc / (float)cnt : 0.f;
    }
  }
}

// ---- reductions: one partial per block into part[blockIdx.x] ----

extern "C" __global__ void reduce_sum(double *__restrict__ part,
                                      const float *__restrict__ s,
                                      long long n) {
  double acc = 0;
  GRID_STRIDE(i, n) { acc += (double)s[i]; }
  acc = block_sum_d(acc);
  if (threadIdx.x == 0)
    part[blockIdx.x] = acc;
}

// reduce_max: NaN wins (as the CPU backend, which keeps the first NaN: any
// NaN makes the result NaN).
extern "C" __global__ void reduce_max(float *__restrict__ part,
                                      const float *__restrict__ s,
                                      long long n) {
  float m = -INFINITY;
  bool nan = false;
  GRID_STRIDE(i, n) {
    float v = s[i];
    if (isnan(v))
      nan = true;
    else
      m = fmaxf(m, v);
  }
  m = block_max_f(m);
  unsigned long long nans = block_sum_u(nan ? 1ull : 0ull);
  if (threadIdx.x == 0)
    part[blockIdx.x] = nans ? NAN : m;
}

extern "C" __global__ void reduce_count(unsigned long long *__restrict__ part,
                                        const float *__restrict__ s,
                                        long long n, double thr) {
  float t = (float)thr;
  unsigned long long c = 0;
  GRID_STRIDE(i, n) { c += s[i] > t ? 1ull : 0ull; }
  c = block_sum_u(c);
  if (threadIdx.x == 0)
    part[blockIdx.x] = c;
}
