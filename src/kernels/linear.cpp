// Linear layer without bias, y = x·Wᵀ: the GEMM seam. Few rows go to the small-N kernel (linear_small.cpp),
// many to BLAS sgemm; plain loops are the reference. bf16 weights (inference) widen to f32 panels for sgemm.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

void bf16_from_f32(uint16_t* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, in + i, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
      out[i] = (uint16_t)((bits >> 16) | 0x40);  // NaN: keep it a quiet NaN
    else
      out[i] = (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  }
}

static float weight_at(WeightView w, size_t i) { return w.bf16 ? bf16_to_f32(w.bf16[i]) : w.f32[i]; }

// inp (N,C), weight (OC,C) -> out (N,OC)
void linear_forward_ref(float* out, const float* inp, WeightView weight, int N, int C, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double acc = 0;
      for (int c = 0; c < C; c++) acc += (double)inp[(size_t)n * C + c] * weight_at(weight, (size_t)o * C + c);
      out[(size_t)n * OC + o] = (float)acc;
    }
}

void linear_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                         int C, int OC) {
  if (dinp)
    for (int n = 0; n < N; n++)
      for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int o = 0; o < OC; o++) acc += (double)dout[(size_t)n * OC + o] * weight[(size_t)o * C + c];
        dinp[(size_t)n * C + c] += (float)acc;
      }
  if (dweight)
    for (int o = 0; o < OC; o++)
      for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) acc += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
        dweight[(size_t)o * C + c] += (float)acc;
      }
}

// Many rows on bf16 weights: panels of kPanel weight rows widened to f32 per thread, one sgemm each (BLAS runs
// single-threaded inside the region). The widening costs C·OC against N·C·OC multiply-adds.
static void linear_forward_bf16_sgemm(float* out, const float* inp, const uint16_t* weight, int N, int C, int OC) {
  constexpr int kPanel = 64;
  int n_panels = (OC + kPanel - 1) / kPanel;
#pragma omp parallel
  {
    thread_local std::vector<float> panel;
    if (panel.size() < (size_t)kPanel * C) panel.resize((size_t)kPanel * C);
#pragma omp for schedule(static)
    for (int p = 0; p < n_panels; p++) {
      int o0 = p * kPanel, rows = std::min(kPanel, OC - o0);
      const uint16_t* w = weight + (size_t)o0 * C;
      for (size_t i = 0; i < (size_t)rows * C; i++) panel[i] = bf16_to_f32(w[i]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, C, 1.0f, inp, C, panel.data(), C, 0.0f, out + o0,
                  OC);
    }
  }
}

void linear_forward(float* out, const float* inp, WeightView weight, int N, int C, int OC) {
  if (N == 0) return;
  if (N <= kSmallN)
    linear_forward_small_n(out, inp, weight, N, C, OC);
  else if (weight.bf16)
    linear_forward_bf16_sgemm(out, inp, weight.bf16, N, C, OC);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight.f32, C, 0.0f, out, OC);
}

// dinp (N,C) += dout (N,OC) · weight (OC,C) ; dweight (OC,C) += doutᵀ · inp
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                     int C, int OC) {
  if (N == 0) return;
  if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

}  // namespace recur::kernels
