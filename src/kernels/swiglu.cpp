// SwiGLU activation: out = silu(gate) * up, with gate and up side by side in one row
// (the gate and up projections run as one matrix product).
#include <cmath>

#include "fast_math.h"
#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

static inline float sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

// gate_up (N, 2F) -> out (N, F)
void swiglu_forward_ref(float* out, const float* gate_up, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int f = 0; f < F; f++) {
      double g = gate_up[(size_t)n * 2 * F + f], u = gate_up[(size_t)n * 2 * F + F + f];
      out[(size_t)n * F + f] = (float)(g / (1.0 + std::exp(-g)) * u);
    }
}

// d gate += dout * up * silu'(gate), silu'(g) = s (1 + g (1 - s)) ; d up += dout * silu(gate)
void swiglu_backward_ref(float* dgate_up, const float* dout, const float* gate_up, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int f = 0; f < F; f++) {
      double g = gate_up[(size_t)n * 2 * F + f], u = gate_up[(size_t)n * 2 * F + F + f];
      double s = 1.0 / (1.0 + std::exp(-g)), d = dout[(size_t)n * F + f];
      dgate_up[(size_t)n * 2 * F + f] += (float)(d * u * s * (1.0 + g * (1.0 - s)));
      dgate_up[(size_t)n * 2 * F + F + f] += (float)(d * g * s);
    }
}

void swiglu_forward(float* out, const float* gate_up, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * F >= kParallelElements)
  for (int n = 0; n < N; n++) {
    const float* g = gate_up + (size_t)n * 2 * F;
    const float* u = g + F;
    float* o = out + (size_t)n * F;
#pragma omp simd
    for (int f = 0; f < F; f++) o[f] = g[f] * sigmoidf(g[f]) * u[f];
  }
}

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int F) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* g = gate_up + (size_t)n * 2 * F;
    const float* u = g + F;
    const float* d = dout + (size_t)n * F;
    float* dg = dgate_up + (size_t)n * 2 * F;
    float* du = dg + F;
#pragma omp simd
    for (int f = 0; f < F; f++) {
      float s = sigmoidf(g[f]);
      dg[f] += d[f] * u[f] * s * (1.0f + g[f] * (1.0f - s));
      du[f] += d[f] * g[f] * s;
    }
  }
}

}  // namespace recur::kernels
