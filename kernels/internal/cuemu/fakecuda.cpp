// A CPU "libcuda.so.1": the driver API subset gorgonia.org/cu and the
// radtriage backend call, running the kernels of kernels_all.cpp.
#include <cuda.h>
#include <ucontext.h>
#include <map>
#include <string>
#include <vector>
#include "emu.h"

typedef void (*emu_wrapper)(void **);
std::map<std::string, emu_wrapper> &emu_kernels();

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
struct EmuThread {
  ucontext_t ctx;
  emu_dim3 tidx;
  int state, lin;
  char *stack;
};
EmuThread *emu_cur;
emu_dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
uint64_t emu_slots[1024];
int emu_nthreads;
static std::vector<EmuThread> thr(1024);
static ucontext_t sched;
static emu_wrapper cur_fn;
static void **cur_params;
static const size_t STACK = 256 * 1024;

const emu_dim3 &emu_tidx() { return emu_cur->tidx; }
int emu_linear_tid() { return emu_cur->lin; }
void emu_block_barrier() { emu_cur->state = WAIT_BLOCK; swapcontext(&emu_cur->ctx, &sched); }
void emu_warp_barrier() { emu_cur->state = WAIT_WARP; swapcontext(&emu_cur->ctx, &sched); }

static void thread_main() {
  cur_fn(cur_params);
  emu_cur->state = DONE;
  swapcontext(&emu_cur->ctx, &sched);
}

static void run_block(int n) {
  for (int i = 0; i < n; i++) {
    EmuThread &t = thr[i];
    if (!t.stack) t.stack = (char *)malloc(STACK);
    t.tidx = {(unsigned)(i % emu_block_dim.x), (unsigned)((i / emu_block_dim.x) % emu_block_dim.y),
              (unsigned)(i / (emu_block_dim.x * emu_block_dim.y))};
    t.lin = i;
    t.state = RUN;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack;
    t.ctx.uc_stack.ss_size = STACK;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, thread_main, 0);
  }
  for (;;) {
    bool any = false;
    for (int i = 0; i < n; i++) {
      if (thr[i].state != RUN) continue;
      any = true;
      emu_cur = &thr[i];
      swapcontext(&sched, &thr[i].ctx);
    }
    if (any) continue;
    int done = 0, wb = 0;
    for (int i = 0; i < n; i++) {
      done += thr[i].state == DONE;
      wb += thr[i].state == WAIT_BLOCK;
    }
    if (done == n) return;
    if (wb + done == n) {
      if (done > 0) { fprintf(stderr, "emu: __syncthreads after some threads exited\n"); }
      for (int i = 0; i < n; i++) if (thr[i].state == WAIT_BLOCK) thr[i].state = RUN;
      continue;
    }
    bool released = false;
    for (int w = 0; w * 32 < n; w++) {
      bool all = true, some = false;
      for (int i = w * 32; i < std::min(n, w * 32 + 32); i++) {
        if (thr[i].state == WAIT_WARP) some = true;
        else if (thr[i].state != DONE) all = false;
      }
      if (all && some) {
        for (int i = w * 32; i < std::min(n, w * 32 + 32); i++) if (thr[i].state == WAIT_WARP) thr[i].state = RUN;
        released = true;
      }
    }
    if (!released) { fprintf(stderr, "emu: barrier deadlock\n"); abort(); }
  }
}

extern "C" {
CUresult cuInit(unsigned int) { return getenv("EMU_NODEVICE") ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice *d, int o) { if (o != 0) return CUDA_ERROR_INVALID_DEVICE; *d = 0; return CUDA_SUCCESS; }
CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute a, CUdevice) {
  switch (a) {
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = 8; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = 2; break;
  default: *pi = 0;
  }
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice) { snprintf(name, len, "CPU emulation"); return CUDA_SUCCESS; }
CUresult cuDeviceTotalMem(size_t *b, CUdevice) { *b = (size_t)8 << 30; return CUDA_SUCCESS; }
static int ctxref;
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice) { ctxref++; *c = (CUcontext)0x1234; return CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRelease(CUdevice) { ctxref--; return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxSynchronize(void) { return CUDA_SUCCESS; }
CUresult cuModuleLoadData(CUmodule *m, const void *) { *m = (CUmodule)0x5678; return CUDA_SUCCESS; }
CUresult cuModuleUnload(CUmodule) { return CUDA_SUCCESS; }
CUresult cuModuleGetFunction(CUfunction *f, CUmodule, const char *name) {
  auto it = emu_kernels().find(name);
  if (it == emu_kernels().end()) { fprintf(stderr, "emu: no kernel %s\n", name); return CUDA_ERROR_NOT_FOUND; }
  *f = (CUfunction)(void *)it->second;
  return CUDA_SUCCESS;
}
static long live;
CUresult cuMemAlloc(CUdeviceptr *p, size_t n) { void *m = malloc(n); if (!m) return CUDA_ERROR_OUT_OF_MEMORY; memset(m, 0xff, n); live++; *p = (CUdeviceptr)m; return CUDA_SUCCESS; }
CUresult cuMemFree(CUdeviceptr p) { free((void *)p); live--; return CUDA_SUCCESS; }
CUresult cuMemcpyHtoD(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)d, s, n); return CUDA_SUCCESS; }
CUresult cuMemcpyDtoH(void *d, CUdeviceptr s, size_t n) { memcpy(d, (void *)s, n); return CUDA_SUCCESS; }
CUresult cuMemcpyDtoD(CUdeviceptr d, CUdeviceptr s, size_t n) { memmove((void *)d, (void *)s, n); return CUDA_SUCCESS; }
CUresult cuMemcpyDtoDAsync(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream) { memmove((void *)d, (void *)s, n); return CUDA_SUCCESS; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = r == CUDA_ERROR_NO_DEVICE ? "no CUDA-capable device is detected" : "emulated error"; return CUDA_SUCCESS; }
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, CUstream, void **params, void **extra) {
  if (extra) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long nt = (unsigned long long)bx * by * bz;
  if (nt == 0 || nt > 1024 || bz > 64 || gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || gx > 0x7fffffffu) {
    fprintf(stderr, "emu: bad launch %u,%u,%u x %u,%u,%u\n", gx, gy, gz, bx, by, bz);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (shmem) return CUDA_ERROR_INVALID_VALUE;
  cur_fn = (emu_wrapper)(void *)f;
  cur_params = params;
  emu_block_dim = {bx, by, bz};
  emu_grid_dim = {gx, gy, gz};
  emu_nthreads = (int)nt;
  for (unsigned z = 0; z < gz; z++)
    for (unsigned y = 0; y < gy; y++)
      for (unsigned x = 0; x < gx; x++) {
        emu_block_idx = {x, y, z};
        if (getenv("EMU_SKIPLAST") && x == gx - 1 && y == gy - 1 && z == gz - 1) continue;
        run_block((int)nt);
      }
  return CUDA_SUCCESS;
}
}
