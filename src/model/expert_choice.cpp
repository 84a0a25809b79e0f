// Expert-choice routing of Mixture-of-Recursions (see recur/expert_choice.h): the routers, the gate, the
// training top-k, the causal inference rule and the router losses.
#include "recur/expert_choice.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace recur {

using namespace kernels;

static float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void expert_route(const Model& m, int r, const float* h, int n, ExpertScores& out) {
  const ModelConfig& c = m.config();
  const WeightOffsets& o = m.offsets();
  int d = c.d_model;
  out.z.resize(n);
  if (c.mor_aux_router) {
    out.z_aux.resize(n);
    linear_forward(out.z_aux.data(), h, m.weights(o.aux_router[r]), n, d, 1);
  }
  if (c.mor_router == MorRouter::linear) {
    linear_forward(out.z.data(), h, m.weights(o.expert_router[r]), n, d, 1);
    return;
  }
  out.hidden.resize((size_t)n * 2 * d);
  linear_forward(out.hidden.data(), h, m.weights(o.expert_router[r]), n, d, 2 * d);
  std::vector<float> act((size_t)n * 2 * d);
  for (size_t i = 0; i < act.size(); i++) act[i] = out.hidden[i] * sigmoid(out.hidden[i]);
  linear_forward(out.z.data(), act.data(), m.weights(o.expert_router_fc2[r]), n, 2 * d, 1);
}

void expert_route_backward(const Model& m, float* G, int r, const float* h, int n, const ExpertScores& s,
                           const float* dz, const float* dz_aux, float* dh) {
  const ModelConfig& c = m.config();
  const WeightOffsets& o = m.offsets();
  int d = c.d_model;
  if (c.mor_aux_router)  // detached input: no gradient into the stream
    linear_backward(nullptr, G + o.aux_router[r], dz_aux, h, m.weights(o.aux_router[r]), n, d, 1);
  size_t w = o.expert_router[r];
  if (c.mor_router == MorRouter::linear) {
    linear_backward(dh, G + w, dz, h, m.weights(w), n, d, 1);
    return;
  }
  size_t fc2 = o.expert_router_fc2[r];
  std::vector<float> act((size_t)n * 2 * d), dact((size_t)n * 2 * d, 0.0f);
  for (size_t i = 0; i < act.size(); i++) act[i] = s.hidden[i] * sigmoid(s.hidden[i]);
  linear_backward(dact.data(), G + fc2, dz, act.data(), m.weights(fc2), n, 2 * d, 1);
  for (size_t i = 0; i < act.size(); i++) {  // silu'(a) = s (1 + a (1 - s))
    float a = s.hidden[i], sa = sigmoid(a);
    dact[i] *= sa * (1 + a * (1 - sa));
  }
  linear_backward(dh, G + w, dact.data(), h, m.weights(w), n, d, 2 * d);
}

float expert_gate(const ModelConfig& c, float z) {
  return c.mor_gate == MorGate::sigmoid ? c.mor_alpha * sigmoid(z) : c.mor_alpha * std::tanh(z);
}

float expert_gate_grad(const ModelConfig& c, float z) {
  if (c.mor_gate == MorGate::sigmoid) {
    float s = sigmoid(z);
    return c.mor_alpha * s * (1 - s);
  }
  return c.mor_alpha * (1 - std::tanh(z) * std::tanh(z));
}

bool expert_continues(double capacity, float z_bce, float bias) { return capacity >= 1.0 || z_bce + bias >= 0; }

void expert_add_causal_sums(const std::vector<float>& z_bce, const std::vector<char>& chosen, float bias, int tokens,
                            double* sums) {
  for (size_t i = 0; i < chosen.size(); i++) {
    double z = z_bce[i];
    sums[0] += ((double)expert_continues(0.0, z_bce[i], bias) - (double)(chosen[i] != 0)) / tokens;
    sums[1] += 1.0 / tokens, sums[2] += z / tokens, sums[3] += z * z / tokens;
  }
}

void expert_update_bias(Model& m, const std::vector<double>& causal_sums, float rate) {
  if (m.config().mor_routing != MorRouting::expert) return;
  for (size_t r = 0; r < m.mor_bias.size() && (r + 1) * kCausalSums <= causal_sums.size(); r++) {
    const double* s = &causal_sums[r * kCausalSums];
    if (s[1] <= 0) continue;  // no candidate chose at this step
    double mean = s[2] / s[1], sigma = std::sqrt(std::max(s[3] / s[1] - mean * mean, 0.0));
    m.mor_bias[r] -= (float)(rate * sigma * s[0] / s[1]);
  }
}

void expert_select_top_k(const std::vector<int32_t>& candidates, const float* z, int T, int capacity,
                         std::vector<char>& chosen) {
  int n = (int)candidates.size();
  chosen.assign(n, 0);
  for (int i0 = 0; i0 < n;) {
    int b = candidates[i0] / T, i1 = i0;
    while (i1 < n && candidates[i1] / T == b) i1++;
    std::vector<int> order(i1 - i0);
    std::iota(order.begin(), order.end(), i0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return z[x] > z[y]; });
    for (int k = 0; k < std::min(capacity, i1 - i0); k++) chosen[order[k]] = 1;
    i0 = i1;
  }
}

double expert_capacity_fraction(const ModelConfig& c, int r, double progress) {
  return 1.0 - (1.0 - c.capacity(r)) * 0.5 * (1.0 - std::cos(M_PI * progress));
}

void expert_router_losses(const ModelConfig& c, const ExpertScores& s, const std::vector<char>& chosen,
                          ExpertLosses& losses) {
  const std::vector<float>& z_bce = s.bce_logits(c);
  int n = (int)s.z.size();
  for (int i = 0; i < n; i++) {
    float z = s.z[i], zb = z_bce[i], y = chosen[i] ? 1.0f : 0.0f;
    losses.bce += (std::max(zb, 0.0f) - zb * y + std::log1p(std::exp(-std::fabs(zb)))) / n;
    losses.z += (double)z * z / n;
  }
}

void expert_router_loss_grads(const ModelConfig& c, const ExpertScores& s, const std::vector<char>& chosen, float* dz,
                              float* dz_aux) {
  const std::vector<float>& z_bce = s.bce_logits(c);
  int n = (int)s.z.size();
  for (int i = 0; i < n; i++) {
    float z = s.z[i], zb = z_bce[i], y = chosen[i] ? 1.0f : 0.0f;
    float dbce = c.mor_aux_loss * (sigmoid(zb) - y) / n;
    dz[i] += c.mor_z_loss * 2.0f * z / n;
    if (c.mor_aux_router)
      dz_aux[i] += dbce;
    else
      dz[i] += dbce;
  }
}

double expert_dead_token_ratio(const std::vector<char>& router_choice) {
  int64_t had_choice = 0, dead = 0;
  for (char c : router_choice) had_choice += c != kNoChoice, dead += c == kNotChosen;
  return had_choice ? (double)dead / (double)had_choice : 0.0;
}

}  // namespace recur
