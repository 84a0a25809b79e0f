// Matrix products through oneDNN's matmul primitive, the default backend of the GEMM seam (linear.cpp): f32, and
// bf16 natively on CPUs with AVX512-BF16. One primitive per shape, built once per thread and kept with its operand
// layouts (a bounded cache: MoR and prefill meet many row counts).
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

// A primitive and the layouts of its operands A, B and C.
struct Product {
  dnnl::matmul matmul;
  memory::desc a, b, c;
};

Product build(const Key& key) {
  auto [M, N, K, trans_a, trans_b, accumulate, bf16] = key;
  auto in_type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  Product p{{},
            matrix_desc(M, K, trans_a, in_type),
            matrix_desc(K, N, trans_b, in_type),
            matrix_desc(M, N, false, memory::data_type::f32)};
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  p.matmul = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p.a, p.b, p.c), attr, cpu_engine()));
  return p;
}

void run(const Key& key, const void* A, const void* B, float* C) {
  thread_local std::map<Key, Product> cache;
  thread_local dnnl::stream stream(cpu_engine());
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= kCachedShapes) cache.clear();
    it = cache.emplace(key, build(key)).first;
  }
  const Product& p = it->second;
  memory a(p.a, cpu_engine(), const_cast<void*>(A)), b(p.b, cpu_engine(), const_cast<void*>(B)),
      c(p.c, cpu_engine(), C);
  p.matmul.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
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
  static const bool yes = [] {  // asked once: the ISA is a bit mask, each ISA including the ones below it
    auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    return (isa & bf16) == bf16;
  }();
  return yes;
}

}  // namespace recur::kernels
