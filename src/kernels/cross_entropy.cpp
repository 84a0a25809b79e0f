// Fused softmax + cross-entropy: one pass per row gives the loss and the logit gradient (softmax - onehot),
// so the probabilities are never stored. Rows with a negative target are ignored (masked loss).
#include <cmath>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

// logits (N,V), targets (N) -> losses (N); dlogits (N,V) = (softmax - onehot) * dloss
double cross_entropy_forward_backward_ref(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                                          int N, int V, float dloss) {
  double total = 0;
  for (int n = 0; n < N; n++) {
    const float* x = logits + (size_t)n * V;
    int t = targets[n];
    double mx = x[0];
    for (int v = 1; v < V; v++) mx = std::max(mx, (double)x[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += std::exp(x[v] - mx);
    double lse = mx + std::log(sum);
    losses[n] = t < 0 ? 0.0f : (float)(lse - x[t]);
    if (t >= 0) total += lse - x[t];
    if (dlogits)
      for (int v = 0; v < V; v++) {
        double p = std::exp(x[v] - lse);
        dlogits[(size_t)n * V + v] = t < 0 ? 0.0f : (float)((p - (v == t ? 1.0 : 0.0)) * dloss);
      }
  }
  return total;
}

double cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int32_t* targets, int N,
                                      int V, float dloss) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = logits + (size_t)n * V;
    int t = targets[n];
    float mx = x[0];
    for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) sum += std::exp(x[v] - mx);
    float lse = mx + std::log(sum);
    losses[n] = t < 0 ? 0.0f : lse - x[t];
    if (!dlogits) continue;
    float* d = dlogits + (size_t)n * V;
    if (t < 0) {
      for (int v = 0; v < V; v++) d[v] = 0.0f;
      continue;
    }
    float xt = x[t];  // read before d (which may alias x) is written
#pragma omp simd
    for (int v = 0; v < V; v++) d[v] = std::exp(x[v] - lse) * dloss;
    d[t] = (std::exp(xt - lse) - 1.0f) * dloss;
  }
  double total = 0;  // summed in row order: deterministic
  for (int n = 0; n < N; n++)
    if (targets[n] >= 0) total += losses[n];
  return total;
}

}  // namespace recur::kernels
