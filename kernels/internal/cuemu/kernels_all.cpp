#include "emu.h"
#include <type_traits>
#include <utility>
#include <string>
#include <map>
#include "cuda_elem.cu"
#include "cuda_conv.cu"
#include "cuda_denoise.cu"

template <class... A, size_t... I>
void emu_invoke_i(void (*f)(A...), void **p, std::index_sequence<I...>) {
  static_assert(((sizeof(A) == 8) && ...), "every kernel parameter must be 8 bytes");
  f(*reinterpret_cast<std::remove_cv_t<A> *>(p[I])...);
}
template <class... A> void emu_invoke(void (*f)(A...), void **p) {
  emu_invoke_i(f, p, std::index_sequence_for<A...>{});
}
typedef void (*emu_wrapper)(void **);
std::map<std::string, emu_wrapper> &emu_kernels() {
  static std::map<std::string, emu_wrapper> m = {
#include "table.inc"
  };
  return m;
}
