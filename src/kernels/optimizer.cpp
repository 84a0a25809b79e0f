// Optimizer passes over flat buffers: sum of squares (for the global grad norm), scaling (clipping),
// and AdamW with decoupled weight decay, written to match torch.optim.AdamW step for step.
#include <cmath>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

double sum_squares_ref(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

// Fixed blocks independent of the thread count, partial sums added in block order: deterministic.
double sum_squares(const float* x, size_t n) {
  constexpr size_t kBlock = 1 << 14;
  size_t n_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(n_blocks);
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < n_blocks; b++) {
    size_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = i0; i < i1; i++) s += x[i] * x[i];
    partial[b] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void scale_inplace(float* x, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

void adamw_update_ref(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                      float eps, float weight_decay, int64_t step) {
  double bc1 = 1.0 - std::pow((double)beta1, (double)step);
  double bc2 = 1.0 - std::pow((double)beta2, (double)step);
  for (size_t i = 0; i < n; i++) {
    p[i] *= 1.0f - lr * weight_decay;
    m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    float denom = std::sqrt(v[i]) / (float)std::sqrt(bc2) + eps;
    p[i] -= (float)(lr / bc1) * m[i] / denom;
  }
}

void adamw_update(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t step) {
  float bc1 = (float)(1.0 - std::pow((double)beta1, (double)step));
  float bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, (double)step));
  float step_size = lr / bc1, decay = 1.0f - lr * weight_decay;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    p[i] *= decay;
    m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
  }
}

}  // namespace recur::kernels
