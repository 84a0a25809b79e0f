// Token embedding lookup and its backward (scatter-add into the embedding table).
#include <cstring>

#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

// tokens (N), wte (V,C) -> out (N,C)
void embedding_forward_ref(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) out[(size_t)n * C + c] = wte[(size_t)tokens[n] * C + c];
}

void embedding_backward_ref(float* dwte, const float* dout, const int32_t* tokens, int N, int C, int V) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= kParallelElements)
  for (int n = 0; n < N; n++) std::memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

// Threads own disjoint channel ranges, so there are no races and the sum order is fixed (deterministic).
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C, int V) {
  constexpr int kChunk = 16;
  int n_chunks = (C + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int chunk = 0; chunk < n_chunks; chunk++) {
    int c0 = chunk * kChunk, c1 = c0 + kChunk < C ? c0 + kChunk : C;
    for (int n = 0; n < N; n++) {
      float* row = dwte + (size_t)tokens[n] * C;
      const float* g = dout + (size_t)n * C;
      for (int c = c0; c < c1; c++) row[c] += g[c];
    }
  }
}

}  // namespace recur::kernels
