// Linear layer without bias, y = x·Wᵀ, through BLAS sgemm (the fast path) or plain loops (reference).
#include <cblas.h>

#include "recur/kernels.h"

namespace recur::kernels {

// inp (N,C), weight (OC,C) -> out (N,OC)
void linear_forward_ref(float* out, const float* inp, const float* weight, int N, int C, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double acc = 0;
      for (int c = 0; c < C; c++) acc += (double)inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
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

void linear_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) {
  if (N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
}

// dinp (N,C) += dout (N,OC) · weight (OC,C) ; dweight (OC,C) += doutᵀ · inp
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int N,
                     int C, int OC) {
  if (N == 0) return;
  if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

}  // namespace recur::kernels
