// Matrix products through oneDNN's matmul primitive: the native bf16 backend of the GEMM seam (linear.cpp) on CPUs
// with AVX512-BF16, and the same primitive in f32 for the benchmark that compares it with OpenBLAS. One primitive per
// shape, built once per thread and kept (a bounded cache: MoR and prefill meet many row counts).
#include "dnnl_gemm.h"

#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

namespace recur::kernels {

namespace {

using dnnl::memory;
using Key = std::tuple<int, int, int, bool, bool, bool, bool>;  // M, N, K, trans_a, trans_b, accumulate, bf16

constexpr size_t kCachedShapes = 256;  // past this many shapes the cache starts again

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A (rows, cols) matrix, row-major or (transposed) stored column-major.
memory::desc matrix_desc(int rows, int cols, bool transposed, memory::data_type type) {
  memory::dims strides = transposed ? memory::dims{1, rows} : memory::dims{cols, 1};
  return memory::desc({rows, cols}, type, strides);
}

dnnl::matmul build(const Key& key) {
  auto [M, N, K, trans_a, trans_b, accumulate, bf16] = key;
  auto in_type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  dnnl::matmul::desc desc(matrix_desc(M, K, trans_a, in_type), matrix_desc(K, N, trans_b, in_type),
                          matrix_desc(M, N, false, memory::data_type::f32));
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  return dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, cpu_engine()));
}

void run(const Key& key, const void* A, const void* B, float* C) {
  thread_local std::map<Key, dnnl::matmul> cache;
  thread_local dnnl::stream stream(cpu_engine());
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= kCachedShapes) cache.clear();
    it = cache.emplace(key, build(key)).first;
  }
  auto [M, N, K, trans_a, trans_b, accumulate, bf16] = key;
  auto in_type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  memory a(matrix_desc(M, K, trans_a, in_type), cpu_engine(), const_cast<void*>(A));
  memory b(matrix_desc(K, N, trans_b, in_type), cpu_engine(), const_cast<void*>(B));
  memory c(matrix_desc(M, N, false, memory::data_type::f32), cpu_engine(), C);
  it->second.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  stream.wait();
}

}  // namespace

void dnnl_gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, const uint16_t* A, const uint16_t* B, float* C,
                    bool accumulate) {
  run({M, N, K, trans_a, trans_b, accumulate, true}, A, B, C);
}

void dnnl_gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, const float* A, const float* B, float* C,
                   bool accumulate) {
  run({M, N, K, trans_a, trans_b, accumulate, false}, A, B, C);
}

bool dnnl_has_native_bf16() {
  auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());  // a bit mask: each ISA includes the ones below
  auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  static const bool yes = (isa & bf16) == bf16;
  return yes;
}

}  // namespace recur::kernels
