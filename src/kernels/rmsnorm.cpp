// RMSNorm: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp²) + eps), kept for backward.
#include <omp.h>

#include <cmath>
#include <vector>

#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

// inp (N,C), weight (C) -> out (N,C), rstd (N)
void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
    float r = 1.0f / std::sqrt((float)(ss / C) + eps);
    rstd[n] = r;
    for (int c = 0; c < C; c++) out[(size_t)n * C + c] = x[c] * r * weight[c];
  }
}

// dinp += rstd * (w*dout - x̂ * mean(x̂ · w*dout)), x̂ = x*rstd ; dweight += Σ_n dout * x̂
void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    const float* g = dout + (size_t)n * C;
    float r = rstd[n];
    double dot = 0;
    for (int c = 0; c < C; c++) dot += (double)g[c] * weight[c] * x[c] * r;
    float mean_dot = (float)(dot / C);
    for (int c = 0; c < C; c++) {
      float xhat = x[c] * r;
      dinp[(size_t)n * C + c] += r * (g[c] * weight[c] - xhat * mean_dot);
      dweight[c] += g[c] * xhat;
    }
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= kParallelElements)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / C + eps);
    rstd[n] = r;
    float* o = out + (size_t)n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
  }
}

// dweight is reduced through one partial row per thread, summed in thread order: deterministic.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  int n_threads = omp_get_max_threads();
  std::vector<float> partial((size_t)n_threads * C, 0.0f);
#pragma omp parallel num_threads(n_threads)
  {
    float* dw = partial.data() + (size_t)omp_get_thread_num() * C;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* x = inp + (size_t)n * C;
      const float* g = dout + (size_t)n * C;
      float* dx = dinp + (size_t)n * C;
      float r = rstd[n];
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < C; c++) dot += g[c] * weight[c] * x[c];
      float mean_dot = dot * r / C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        float xhat = x[c] * r;
        dx[c] += r * (g[c] * weight[c] - xhat * mean_dot);
        dw[c] += g[c] * xhat;
      }
    }
  }
  for (int t = 0; t < n_threads; t++)
    for (int c = 0; c < C; c++) dweight[c] += partial[(size_t)t * C + c];
}

}  // namespace recur::kernels
