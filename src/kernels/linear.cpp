// Linear layer without bias, y = x·Wᵀ: the GEMM seam. Few rows go to the small-N kernel (linear_small.cpp),
// many to oneDNN or OpenBLAS; plain loops are the reference. A bf16 weight makes a bf16 product (recur/kernels.h): the
// other operands are rounded to bf16 first; then either oneDNN multiplies the bf16 operands natively (dnnl_gemm.cpp,
// AVX512-BF16) or the weight widens to f32 for the f32 product (emulated); both accumulate in f32. The f32 products
// run on oneDNN or OpenBLAS (GemmBackend).
#include <cblas.h>

#include <atomic>
#include <vector>

#include "bf16_operand.h"
#include "dnnl_gemm.h"
#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

void bf16_from_f32(uint16_t* out, const float* in, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (size_t i = 0; i < n; i++) out[i] = bf16_bits(in[i]);
}

void bf16_round(float* out, const float* in, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (size_t i = 0; i < n; i++) out[i] = bf16_round(in[i]);
}

const float* bf16_operand(const float* inp, size_t n, bool bf16, int slot) {
  if (!bf16) return inp;
  thread_local std::vector<float> scratch[3];
  if (scratch[slot].size() < n) scratch[slot].resize(n);
  bf16_round(scratch[slot].data(), inp, n);
  return scratch[slot].data();
}

const uint16_t* bf16_bits_operand(const float* inp, size_t n, int slot) {
  thread_local std::vector<uint16_t> scratch[3];
  if (scratch[slot].size() < n) scratch[slot].resize(n);
  bf16_from_f32(scratch[slot].data(), inp, n);
  return scratch[slot].data();
}

static std::atomic<GemmBackend> backend_setting{GemmBackend::onednn};

GemmBackend gemm_backend() { return backend_setting.load(std::memory_order_relaxed); }
void set_gemm_backend(GemmBackend backend) { backend_setting.store(backend, std::memory_order_relaxed); }
const char* gemm_backend_name(GemmBackend backend) { return backend == GemmBackend::onednn ? "onednn" : "openblas"; }

bool bf16_products_native() {
  return gemm_backend() == GemmBackend::onednn && cpu_has_avx512_bf16() && dnnl_has_native_bf16();
}

static float weight_at(WeightView w, size_t i) { return w.bf16 ? bf16_to_f32(w.bf16[i]) : w.f32[i]; }
static double operand_at(const float* x, size_t i, bool bf16) { return bf16 ? bf16_round(x[i]) : x[i]; }

// inp (N,C), weight (OC,C) -> out (N,OC)
void linear_forward_ref(float* out, const float* inp, WeightView weight, int N, int C, int OC) {
  bool bf16 = weight.bf16 != nullptr;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double acc = 0;
      for (int c = 0; c < C; c++)
        acc += operand_at(inp, (size_t)n * C + c, bf16) * weight_at(weight, (size_t)o * C + c);
      out[(size_t)n * OC + o] = (float)acc;
    }
}

void linear_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, WeightView weight, int N,
                         int C, int OC) {
  bool bf16 = weight.bf16 != nullptr;
  if (dinp)
    for (int n = 0; n < N; n++)
      for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int o = 0; o < OC; o++)
          acc += operand_at(dout, (size_t)n * OC + o, bf16) * weight_at(weight, (size_t)o * C + c);
        dinp[(size_t)n * C + c] += (float)acc;
      }
  if (dweight)
    for (int o = 0; o < OC; o++)
      for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++)
          acc += operand_at(dout, (size_t)n * OC + o, bf16) * operand_at(inp, (size_t)n * C + c, bf16);
        dweight[(size_t)o * C + c] += (float)acc;
      }
}

// The whole bf16 weight (OC,C) widened to f32 in this thread's scratch, for one multi-threaded sgemm. The
// widening costs C·OC against N·C·OC multiply-adds.
static const float* widened(const uint16_t* weight, size_t n) {
  thread_local std::vector<float> wide;
  if (wide.size() < n) wide.resize(n);
  float* out = wide.data();  // the caller's scratch: each OpenMP thread has its own thread_local
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(weight[i]);
  return out;
}

// C (M,N) (+)= op(A) · op(B) in f32 through the chosen backend (op and layouts as dnnl_gemm.h).
static void gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, const float* A, const float* B, float* C,
                     bool accumulate) {
  if (gemm_backend() == GemmBackend::onednn) return dnnl_gemm_f32(trans_a, trans_b, M, N, K, A, B, C, accumulate);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
              trans_a ? M : K, B, trans_b ? K : N, accumulate ? 1.0f : 0.0f, C, N);
}

void linear_forward(float* out, const float* inp, WeightView weight, int N, int C, int OC) {
  if (N == 0) return;
  if (N <= kSmallN)
    linear_forward_small_n(out, inp, weight, N, C, OC);
  else if (weight.bf16 && bf16_products_native())
    dnnl_gemm_bf16(false, true, N, OC, C, bf16_bits_operand(inp, (size_t)N * C, 0), weight.bf16, out, false);
  else if (weight.bf16)
    gemm_f32(false, true, N, OC, C, bf16_operand(inp, (size_t)N * C, true, 0), widened(weight.bf16, (size_t)OC * C),
             out, false);
  else
    gemm_f32(false, true, N, OC, C, inp, weight.f32, out, false);
}

// The native bf16 backward: the same products as linear_backward's, on bf16 operands through oneDNN.
static void linear_backward_native(float* dinp, float* dweight, const float* dout, const float* inp,
                                   const uint16_t* weight, int N, int C, int OC) {
  const uint16_t* dout16 = bf16_bits_operand(dout, (size_t)N * OC, 1);
  if (dinp) dnnl_gemm_bf16(false, false, N, C, OC, dout16, weight, dinp, true);
  if (dweight) dnnl_gemm_bf16(true, false, OC, C, N, dout16, bf16_bits_operand(inp, (size_t)N * C, 2), dweight, true);
}

// dinp (N,C) += dout (N,OC) · weight (OC,C) ; dweight (OC,C) += doutᵀ · inp
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, WeightView weight, int N, int C,
                     int OC) {
  if (N == 0) return;
  bool bf16 = weight.bf16 != nullptr;
  if (bf16 && bf16_products_native()) return linear_backward_native(dinp, dweight, dout, inp, weight.bf16, N, C, OC);
  dout = bf16_operand(dout, (size_t)N * OC, bf16, 1);
  if (dinp) {
    const float* w = bf16 ? widened(weight.bf16, (size_t)OC * C) : weight.f32;
    gemm_f32(false, false, N, C, OC, dout, w, dinp, true);
  }
  if (dweight) {
    inp = bf16_operand(inp, (size_t)N * C, bf16, 2);
    gemm_f32(true, false, OC, C, N, dout, inp, dweight, true);
  }
}

}  // namespace recur::kernels
