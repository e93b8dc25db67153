// Denoising kernels of the CUDA backend: separable Gaussian (shared-memory
// tiles), bilateral and non-local means (direct, one thread per voxel).
// Volumes are single-channel D x H x W float32.
#include "cuda_common.cuh"

// Largest radius the shared-memory Gaussian kernels take; beyond it
// gauss_axis_global runs.
#define GR_MAX 64
#define GW_TILE 256 // outputs per block along W
#define GS_TILE 64  // outputs per block along a strided axis (8 per thread)

// gauss_w filters along W (contiguous rows) with weights w[0..2r]: block of
// GW_TILE threads takes GW_TILE outputs of row blockIdx.y (+ gridDim.y
// ...), from a shared tile of GW_TILE + 2r inputs, borders mirrored as
// scipy's "reflect".
extern "C" __global__ void __launch_bounds__(GW_TILE)
    gauss_w(float *__restrict__ dst, const float *__restrict__ src,
            const float *__restrict__ wts, long long rows, long long W,
            long long radius) {
  __shared__ float tile[GW_TILE + 2 * GR_MAX];
  __shared__ float w[2 * GR_MAX + 1];
  const int r = (int)radius, n = (int)W;
  for (int i = threadIdx.x; i <= 2 * r; i += blockDim.x)
    w[i] = wts[i];
  const int x0 = blockIdx.x * GW_TILE;
  for (long long row = blockIdx.y; row < rows; row += gridDim.y) {
    const float *s = src + row * W;
    __syncthreads(); // the previous row's tile is no longer read
    for (int j = threadIdx.x; j < GW_TILE + 2 * r; j += blockDim.x)
      tile[j] = s[mirror_scipy(x0 - r + j, n)];
    __syncthreads();
    int x = x0 + threadIdx.x;
    if (x < n) {
      float acc = 0.f;
      for (int k = 0; k <= 2 * r; k++)
        acc = fmaf(w[k], tile[threadIdx.x + k], acc);
      dst[row * W + x] = acc;
    }
  }
}

// gauss_s filters along a strided axis: the volume read as outer x L x
// inner (H: D x H x W; D: 1 x D x H*W). Block (32, 8): columns i0+tx of
// inner, outputs l0 .. l0+GS_TILE-1 along L from a shared tile of
// GS_TILE + 2r rows.
extern "C" __global__ void __launch_bounds__(256)
    gauss_s(float *__restrict__ dst, const float *__restrict__ src,
            const float *__restrict__ wts, long long outer, long long L,
            long long inner, long long radius) {
  __shared__ float tile[GS_TILE + 2 * GR_MAX][32];
  __shared__ float w[2 * GR_MAX + 1];
  const int r = (int)radius, n = (int)L;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 32 + tx;
  for (int i = tid; i <= 2 * r; i += 256)
    w[i] = wts[i];
  const long long col = (long long)blockIdx.x * 32 + tx;
  const int l0 = blockIdx.y * GS_TILE;
  for (long long o = blockIdx.z; o < outer; o += gridDim.z) {
    const float *s = src + o * L * inner;
    float *d = dst + o * L * inner;
    __syncthreads();
    for (int j = ty; j < GS_TILE + 2 * r; j += 8)
      tile[j][tx] =
          col < inner ? s[(long long)mirror_scipy(l0 - r + j, n) * inner + col]
                      : 0.f;
    __syncthreads();
    if (col < inner) {
      for (int q = ty; q < GS_TILE; q += 8) {
        int l = l0 + q;
        if (l >= n)
          break;
        float acc = 0.f;
        for (int k = 0; k <= 2 * r; k++)
          acc = fmaf(w[k], tile[q + k][tx], acc);
        d[(long long)l * inner + col] = acc;
      }
    }
  }
}

// gauss_axis_global is the fallback for radii above GR_MAX: one thread per
// output, straight from global memory.
extern "C" __global__ void gauss_axis_global(float *__restrict__ dst,
                                             const float *__restrict__ src,
                                             const float *__restrict__ wts,
                                             long long outer, long long L,
                                             long long inner,
                                             long long radius) {
  const int r = (int)radius, n = (int)L;
  long long total = outer * L * inner;
  GRID_STRIDE(i, total) {
    long long c = i % inner, t = i / inner;
    int l = (int)(t % L);
    long long o = t / L;
    const float *s = src + o * L * inner + c;
    float acc = 0.f;
    for (int k = 0; k <= 2 * r; k++)
      acc = fmaf(wts[k], s[(long long)mirror_scipy(l - r + k, n) * inner], acc);
    dst[i] = acc;
  }
}

// bilateral: out = sum(w_s * w_r * v) / sum(w_s * w_r) over the full
// window of radii (rD, rH, rW), neighbours outside the volume read from
// its mirror image (scipy "reflect", as the Gaussian); w_s from the
// host-computed table sw[(a+rD)][(b+rH)][(c+rW)] (0 entries skipped), w_r =
// exp(-(v - centre)^2 * inv).
extern "C" __global__ void bilateral(float *__restrict__ dst,
                                     const float *__restrict__ src,
                                     const float *__restrict__ sw, long long D,
                                     long long H, long long W, long long rD,
                                     long long rH, long long rW, double inv) {
  const int d_ = (int)D, h_ = (int)H, w_ = (int)W;
  const int RD = (int)rD, RH = (int)rH, RW = (int)rW;
  const int tw = 2 * RW + 1, th = 2 * RH + 1;
  const float ic = (float)inv;
  long long total = D * H * W;
  GRID_STRIDE(i, total) {
    int x = (int)(i % W);
    long long t = i / W;
    int y = (int)(t % H), z = (int)(t / H);
    float centre = src[i];
    float num = 0.f, den = 0.f;
    for (int a = -RD; a <= RD; a++) {
      int zz = inside_or_scipy(z + a, d_);
      for (int b = -RH; b <= RH; b++) {
        int yy = inside_or_scipy(y + b, h_);
        const float *row = src + ((long long)zz * H + yy) * W;
        const float *ws = sw + ((long long)(a + RD) * th + (b + RH)) * tw + RW;
        for (int c = -RW; c <= RW; c++) {
          float s = ws[c];
          if (s == 0.f)
            continue;
          float v = row[inside_or_scipy(x + c, w_)], dv = v - centre;
          float wt = s * expf(-(dv * dv * ic));
          num = fmaf(wt, v, num);
          den += wt;
        }
      }
    }
    dst[i] = num / den;
  }
}

// nlm: non-local means, one thread per voxel. For every offset of the
// search window (clipped to the volume) the sum d2 of the squared
// differences of the two patches (offsets [1-p, p]^3 as scikit-image's
// fast mode, just 0 when p is 0; patch voxels outside the volume
// mirrored as numpy's "reflect" when mirror == 0, scipy's when 1), over
// (2p+1)^3, gives the weight exp(-max(d2 - twoVar, 0) * invH2) (twoVar is
// 2 sigma^2 times the patch's voxels over (2p+1)^3); out = sum(w * v) /
// sum(w).
extern "C" __global__ void nlm(float *__restrict__ dst,
                               const float *__restrict__ src, long long D,
                               long long H, long long W, long long pr,
                               long long sr, double twoVar, double invH2,
                               long long mirror) {
  const int d_ = (int)D, h_ = (int)H, w_ = (int)W;
  const int P = (int)pr, S = (int)sr;
  const float tv = (float)twoVar, ih = (float)invH2;
  const float inv = 1.f / (float)((2 * P + 1) * (2 * P + 1) * (2 * P + 1));
  const int lo = P > 0 ? 1 - P : 0; // first patch offset
  long long total = D * H * W;
  GRID_STRIDE(i, total) {
    int x = (int)(i % W);
    long long t = i / W;
    int y = (int)(t % H), z = (int)(t / H);
    float num = 0.f, den = 0.f;
    for (int a = max(-S, -z); a <= min(S, d_ - 1 - z); a++)
      for (int b = max(-S, -y); b <= min(S, h_ - 1 - y); b++)
        for (int c = max(-S, -x); c <= min(S, w_ - 1 - x); c++) {
          float d2 = 0.f;
          for (int pa = lo; pa <= P; pa++) {
            int z1 = z + pa, z2 = z + a + pa;
            z1 = mirror ? inside_or_scipy(z1, d_) : inside_or_numpy(z1, d_);
            z2 = mirror ? inside_or_scipy(z2, d_) : inside_or_numpy(z2, d_);
            for (int pb = lo; pb <= P; pb++) {
              int y1 = y + pb, y2 = y + b + pb;
              y1 = mirror ? inside_or_scipy(y1, h_) : inside_or_numpy(y1, h_);
              y2 = mirror ? inside_or_scipy(y2, h_) : inside_or_numpy(y2, h_);
              const float *r1 = src + ((long long)z1 * H + y1) * W;
              const float *r2 = src + ((long long)z2 * H + y2) * W;
              for (int pc = lo; pc <= P; pc++) {
                int x1 = x + pc, x2 = x + c + pc;
                x1 = mirror ? inside_or_scipy(x1, w_) : inside_or_numpy(x1, w_);
                x2 = mirror ? inside_or_scipy(x2, w_) : inside_or_numpy(x2, w_);
                float dv = r1[x1] - r2[x2];
                d2 = fmaf(dv, dv, d2);
              }
            }
          }
          d2 *= inv;
          float wt = expf(-fmaxf(d2 - tv, 0.f) * ih);
          num = fmaf(wt, src[((long long)(z + a) * H + (y + b)) * W + (x + c)],
                     num);
          den += wt;
        }
    dst[i] = num / den;
  }
}

// nlm_tiled is nlm for search + patch radius at most NLM_HALO: a block of
// 8 x 8 x 8 threads (one voxel each) first loads its tile and a halo of
// NLM_HALO voxels, mirrored as nlm does, into shared memory; every patch
// and neighbour read then comes from there. Same arithmetic, same order,
// same results as nlm.
#define NLM_T 8
#define NLM_HALO 4
#define NLM_L (NLM_T + 2 * NLM_HALO)
extern "C" __global__ void __launch_bounds__(512)
    nlm_tiled(float *__restrict__ dst, const float *__restrict__ src,
              long long D, long long H, long long W, long long pr,
              long long sr, double twoVar, double invH2, long long mirror) {
  __shared__ float sm[NLM_L][NLM_L][NLM_L];
  const int d_ = (int)D, h_ = (int)H, w_ = (int)W;
  const int P = (int)pr, S = (int)sr, R = NLM_HALO;
  const float tv = (float)twoVar, ih = (float)invH2;
  const float inv = 1.f / (float)((2 * P + 1) * (2 * P + 1) * (2 * P + 1));
  const int lo = P > 0 ? 1 - P : 0; // first patch offset
  const int z0 = blockIdx.z * NLM_T, y0 = blockIdx.y * NLM_T,
            x0 = blockIdx.x * NLM_T;
  const int tid = (threadIdx.z * NLM_T + threadIdx.y) * NLM_T + threadIdx.x;
  for (int i = tid; i < NLM_L * NLM_L * NLM_L; i += NLM_T * NLM_T * NLM_T) {
    int lx = i % NLM_L, t = i / NLM_L;
    int ly = t % NLM_L, lz = t / NLM_L;
    int gz = z0 - R + lz, gy = y0 - R + ly, gx = x0 - R + lx;
    gz = mirror ? inside_or_scipy(gz, d_) : inside_or_numpy(gz, d_);
    gy = mirror ? inside_or_scipy(gy, h_) : inside_or_numpy(gy, h_);
    gx = mirror ? inside_or_scipy(gx, w_) : inside_or_numpy(gx, w_);
    sm[lz][ly][lx] = src[((long long)gz * H + gy) * W + gx];
  }
  __syncthreads();
  const int z = z0 + threadIdx.z, y = y0 + threadIdx.y, x = x0 + threadIdx.x;
  if (z >= d_ || y >= h_ || x >= w_)
    return;
  const int cz = R + threadIdx.z, cy = R + threadIdx.y, cx = R + threadIdx.x;
  float num = 0.f, den = 0.f;
  for (int a = max(-S, -z); a <= min(S, d_ - 1 - z); a++)
    for (int b = max(-S, -y); b <= min(S, h_ - 1 - y); b++)
      for (int c = max(-S, -x); c <= min(S, w_ - 1 - x); c++) {
        float d2 = 0.f;
        for (int pa = lo; pa <= P; pa++)
          for (int pb = lo; pb <= P; pb++) {
            const float *r1 = &sm[cz + pa][cy + pb][cx];
            const float *r2 = &sm[cz + a + pa][cy + b + pb][cx + c];
            for (int pc = lo; pc <= P; pc++) {
              float dv = r1[pc] - r2[pc];
              d2 = fmaf(dv, dv, d2);
            }
          }
        d2 *= inv;
        float wt = expf(-fmaxf(d2 - tv, 0.f) * ih);
        num = fmaf(wt, sm[cz + a][cy + b][cx + c], num);
        den += wt;
      }
  dst[((long long)z * H + y) * W + x] = num / den;
}
