// Token-choice routing of Mixture-of-Recursions (see recur/token_choice.h): the router, the last step's mix,
// the balancing and z losses with their gradient, and the loss-free balancing bias.
#include "recur/token_choice.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace recur {

int token_route(const Model& m, const float* h, float* p, double& lse) {
  int Nr = m.config().n_recursions, d = m.config().d_model;
  const float* W = m.weights(m.offsets().token_router);
  const std::vector<float>& bias = m.mor_bias;
  for (int i = 0; i < Nr; i++) {
    float z = 0;
    for (int k = 0; k < d; k++) z += W[(size_t)i * d + k] * h[k];
    p[i] = z;
  }
  int best = 0;
  for (int i = 1; i < Nr; i++)
    if (p[i] + bias[i] > p[best] + bias[best]) best = i;
  float mx = *std::max_element(p, p + Nr), sum = 0;
  for (int i = 0; i < Nr; i++) sum += (p[i] = std::exp(p[i] - mx));
  lse = mx + std::log(sum);
  for (int i = 0; i < Nr; i++) p[i] /= sum;
  return best;
}

bool token_mix(int step, int depth, const float* p, const float* h1, const float* y, float* h, int d) {
  if (step != depth) {
    std::memcpy(h, y, sizeof(float) * d);
    return false;
  }
  float pi = p[step];
  for (int k = 0; k < d; k++) h[k] = h1[k] + pi * y[k];
  return true;
}

void token_mix_backward(int step, int depth, const float* p, const float* y, const float* dh, float* dy, float* dh1,
                        float* dp, int d) {
  if (step != depth) {
    std::memcpy(dy, dh, sizeof(float) * d);
    return;
  }
  float pi = p[step], dpi = 0;
  for (int k = 0; k < d; k++) {
    dy[k] = pi * dh[k];
    dpi += dh[k] * y[k];
    dh1[k] += dh[k];
  }
  dp[step] += dpi;
}

std::vector<double> token_route_counts(const int32_t* depth, int N, int n_recursions) {
  std::vector<double> counts(n_recursions + 1, 0.0);
  for (int t = 0; t < N; t++) counts[depth[t]]++;
  counts[n_recursions] = N;
  return counts;
}

TokenLosses token_router_losses(const ModelConfig& c, const float* probs, const float* lse, int N,
                                const std::vector<double>& counts, double mean_scale) {
  int Nr = c.n_recursions;
  TokenLosses losses;
  losses.fraction.assign(Nr, 0.0);
  for (int i = 0; i < Nr; i++) losses.fraction[i] = counts[i] / counts[Nr];
  std::vector<double> mean_p(Nr, 0.0);
  for (int t = 0; t < N; t++) {
    losses.z += (double)lse[t] * lse[t] / N * mean_scale;
    for (int i = 0; i < Nr; i++) mean_p[i] += probs[(size_t)t * Nr + i] / N * mean_scale;
  }
  for (int i = 0; i < Nr; i++) losses.balance += mean_p[i] * Nr * losses.fraction[i];
  return losses;
}

void token_route_backward(const Model& m, float* G, const float* h1, const float* probs, const float* lse,
                          const std::vector<double>& fraction, double balance_scale, double mean_scale, float* dprob,
                          float* dh, int N) {
  const ModelConfig& c = m.config();
  int d = c.d_model, Nr = c.n_recursions;
  const float* W = m.weights(m.offsets().token_router);
  float* dW = G + m.offsets().token_router;
  float z_scale = c.mor_z_loss * 2.0f * (float)mean_scale;
  for (int t = 0; t < N; t++) {
    float* dp = dprob + (size_t)t * Nr;
    const float* p = probs + (size_t)t * Nr;
    for (int i = 0; i < Nr; i++)
      dp[i] += (float)(balance_scale * c.mor_balance_loss * Nr * fraction[i] * mean_scale / N);
    float dot = 0;
    for (int i = 0; i < Nr; i++) dot += p[i] * dp[i];
    const float* h = h1 + (size_t)t * d;
    float* dht = dh + (size_t)t * d;
    for (int i = 0; i < Nr; i++) {
      float dlogit = p[i] * (dp[i] - dot) + z_scale * lse[t] * p[i] / N;
      for (int k = 0; k < d; k++) dW[(size_t)i * d + k] += dlogit * h[k], dht[k] += dlogit * W[(size_t)i * d + k];
    }
  }
}

void token_update_bias(Model& m, const std::vector<double>& depth_load, float rate) {
  int Nr = m.config().n_recursions;
  if (m.config().mor_routing != MorRouting::token || depth_load.empty()) return;
  double mean = 1.0 / Nr;
  for (int i = 0; i < Nr; i++) {
    double load = depth_load[i];
    m.mor_bias[i] += rate * (float)((mean > load) - (mean < load));
  }
}

}  // namespace recur
