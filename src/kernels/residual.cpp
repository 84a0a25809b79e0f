// Residual connection: out = a + b; the gradient passes unchanged to both branches.
#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

void residual_forward_ref(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void residual_backward_ref(float* da, float* db, const float* dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void residual_backward(float* da, float* db, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

}  // namespace recur::kernels
