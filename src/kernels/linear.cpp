// Linear layer without bias, y = x·Wᵀ: the GEMM seam. Few rows go to the small-N kernel (linear_small.cpp),
// many to BLAS sgemm; plain loops are the reference. A bf16 weight makes a bf16 product (recur/kernels.h): the
// other operands are rounded to bf16 first and the weight widens to f32 for sgemm, accumulating in f32.
#include <cblas.h>

#include <vector>

#include "bf16_operand.h"
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

void linear_forward(float* out, const float* inp, WeightView weight, int N, int C, int OC) {
  if (N == 0) return;
  if (N <= kSmallN)
    linear_forward_small_n(out, inp, weight, N, C, OC);
  else if (weight.bf16)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, bf16_operand(inp, (size_t)N * C, true, 0), C,
                widened(weight.bf16, (size_t)OC * C), C, 0.0f, out, OC);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight.f32, C, 0.0f, out, OC);
}

// dinp (N,C) += dout (N,OC) · weight (OC,C) ; dweight (OC,C) += doutᵀ · inp
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, WeightView weight, int N, int C,
                     int OC) {
  if (N == 0) return;
  bool bf16 = weight.bf16 != nullptr;
  dout = bf16_operand(dout, (size_t)N * OC, bf16, 1);
  if (dinp) {
    const float* w = bf16 ? widened(weight.bf16, (size_t)OC * C) : weight.f32;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
  }
  if (dweight) {
    inp = bf16_operand(inp, (size_t)N * C, bf16, 2);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  }
}

}  // namespace recur::kernels
