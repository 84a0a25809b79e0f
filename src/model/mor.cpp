// Mixture-of-Recursions (SPEC §3): per recursion step, a router picks the tokens that go on; the shared block
// runs on those tokens only (gathered into compact sub-sequences that keep their original positions), and
// the result is scattered back. Skipped tokens cost no block FLOPs and no activation memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "recur/error.h"
#include "recur/model.h"

namespace recur {

using namespace kernels;

static float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Rows (ascending, grouped by sequence of length T) -> the compacted layout: per-sequence ranges, original positions.
static TokenLayout compact_layout(const std::vector<int32_t>& rows, int B, int T) {
  TokenLayout layout;
  layout.n_rows = (int)rows.size();
  layout.seq_start.assign(B + 1, 0);
  layout.pos.resize(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    layout.seq_start[rows[i] / T + 1]++;
    layout.pos[i] = rows[i] % T;
  }
  for (int b = 0; b < B; b++) layout.seq_start[b + 1] += layout.seq_start[b];
  return layout;
}

// With recursive KV sharing, the steps after the first attend to the first step's keys/values of the same
// layer (step 0 runs on every token), and send their gradients back to it through mor_shared_dqkv_.
void Model::run_block_forward(MorStep& step, const float* stream) {
  const ModelConfig& c = config_;
  int n = (int)step.selected.size(), d = c.d_model, layers = c.mor_block_size();
  step.residual.resize(layers + 1);
  step.acts.resize(layers);
  for (auto& r : step.residual) r.resize((size_t)n * d);
  gather_rows(step.residual[0].data(), stream, step.selected.data(), n, d);
  bool share = c.mor_kv_sharing && &step != &mor_steps_[0];
  for (int j = 0; j < layers; j++) {
    SharedKV kv{share ? mor_steps_[0].acts[j].qkv.data() : nullptr, &mor_steps_[0].layout, nullptr};
    layer_forward(c.mor_block_begin() + j, step.layout, step.residual[j].data(), step.residual[j + 1].data(),
                  step.acts[j], share ? &kv : nullptr);
  }
}

// dx (n,d): gradient of the block output on entry, of the block input on return.
void Model::run_block_backward(MorStep& step, float* dx) {
  const ModelConfig& c = config_;
  bool first = &step == &mor_steps_[0], share = c.mor_kv_sharing && !first;
  for (int j = c.mor_block_size(); j-- > 0;) {
    float* shared_dqkv = c.mor_kv_sharing ? mor_shared_dqkv_[j].data() : nullptr;
    SharedKV kv{mor_steps_[0].acts[j].qkv.data(), &mor_steps_[0].layout, shared_dqkv};
    layer_backward(c.mor_block_begin() + j, step.layout, step.residual[j].data(), step.acts[j], dx,
                   share ? &kv : nullptr, first ? shared_dqkv : nullptr);
  }
}

// Expert-choice router of step r on the candidates: z = w·h, or z = w2·silu(W1·h); with mor_aux_router also the
// auxiliary router's z_aux = w_aux·h.
void Model::router_forward(int r, MorStep& step) {
  int d = config_.d_model, n = (int)step.candidates.size();
  const float* P = params.data();
  step.z.resize(n);
  if (config_.mor_aux_router) {
    step.z_aux.resize(n);
    linear_forward(step.z_aux.data(), step.h_candidates.data(), P + aux_router_offsets_[r], n, d, 1);
  }
  if (config_.mor_router == MorRouter::linear) {
    linear_forward(step.z.data(), step.h_candidates.data(), P + router_offsets_[r].first, n, d, 1);
    return;
  }
  step.router_hidden.resize((size_t)n * 2 * d);
  linear_forward(step.router_hidden.data(), step.h_candidates.data(), P + router_offsets_[r].first, n, d, 2 * d);
  std::vector<float> act((size_t)n * 2 * d);
  for (size_t i = 0; i < act.size(); i++) act[i] = step.router_hidden[i] * sigmoid(step.router_hidden[i]);
  linear_forward(step.z.data(), act.data(), P + router_offsets_[r].second, n, 2 * d, 1);
}

// dz (n) -> router weight gradients, and dh_candidates (n,d) += dz · dz/dh.
void Model::router_backward(int r, MorStep& step, const float* dz, float* dh_candidates) {
  int d = config_.d_model, n = (int)step.candidates.size();
  const float* P = params.data();
  float* G = grads.data();
  if (config_.mor_router == MorRouter::linear) {
    linear_backward(dh_candidates, G + router_offsets_[r].first, dz, step.h_candidates.data(),
                    P + router_offsets_[r].first, n, d, 1);
    return;
  }
  std::vector<float> act((size_t)n * 2 * d), dact((size_t)n * 2 * d, 0.0f);
  for (size_t i = 0; i < act.size(); i++) act[i] = step.router_hidden[i] * sigmoid(step.router_hidden[i]);
  linear_backward(dact.data(), G + router_offsets_[r].second, dz, act.data(), P + router_offsets_[r].second, n, 2 * d, 1);
  for (size_t i = 0; i < act.size(); i++) {  // silu'(a) = s (1 + a (1 - s))
    float a = step.router_hidden[i], s = sigmoid(a);
    dact[i] *= s * (1 + a * (1 - s));
  }
  linear_backward(dh_candidates, G + router_offsets_[r].first, dact.data(), step.h_candidates.data(),
                  P + router_offsets_[r].first, n, d, 2 * d);
}

float Model::expert_gate(float z) const {
  return config_.mor_gate == MorGate::sigmoid ? config_.mor_alpha * sigmoid(z) : config_.mor_alpha * std::tanh(z);
}

int Model::token_choice_route(const float* h, float* p, double& lse) const {
  int Nr = config_.n_recursions, d = config_.d_model;
  const float* W = params.data() + router_offset_;
  for (int i = 0; i < Nr; i++) {
    float z = 0;
    for (int k = 0; k < d; k++) z += W[(size_t)i * d + k] * h[k];
    p[i] = z;
  }
  int best = 0;
  for (int i = 1; i < Nr; i++)
    if (p[i] + mor_bias[i] > p[best] + mor_bias[best]) best = i;
  float mx = *std::max_element(p, p + Nr), sum = 0;
  for (int i = 0; i < Nr; i++) sum += (p[i] = std::exp(p[i] - mx));
  lse = mx + std::log(sum);
  for (int i = 0; i < Nr; i++) p[i] /= sum;
  return best;
}

void Model::set_mor_causal_routing(bool on) { mor_causal_routing_ = on; }

double Model::mor_forward(float* stream, int N) {
  const ModelConfig& c = config_;
  int d = c.d_model, Nr = c.n_recursions, B = B_, T = T_;
  mor_steps_.assign(Nr, MorStep{});
  mor_stats_ = MorStats{};
  mor_stats_.active_fraction.assign(Nr, 0.0);
  mor_stats_.depth_load.assign(Nr, 0.0);
  if (c.mor_routing == MorRouting::expert) {
    double aux = 0, zl = 0, agree = 0, agree_total = 0;
    std::vector<char> chosen_by_router(N, 0);
    for (int r = 0; r < Nr; r++) {
      MorStep& step = mor_steps_[r];
      if (r == 0) {
        step.candidates.resize(N);
        std::iota(step.candidates.begin(), step.candidates.end(), 0);
      } else {
        step.candidates = mor_steps_[r - 1].selected;
      }
      int n_cand = (int)step.candidates.size();
      step.h_candidates.resize((size_t)n_cand * d);
      gather_rows(step.h_candidates.data(), stream, step.candidates.data(), n_cand, d);
      router_forward(r, step);
      // the logit trained to predict selection: the router's own, or the auxiliary router's
      const std::vector<float>& z_bce = c.mor_aux_router ? step.z_aux : step.z;
      // Per sequence: top-k_r among its candidates (ties: lower position first), kept in original order.
      double c_r = 1.0 - (1.0 - c.capacity(r)) * 0.5 * (1.0 - std::cos(M_PI * mor_capacity_progress_));
      int capacity = std::max(1, (int)std::floor(c_r * T));
      std::vector<char> chosen(n_cand, 0);
      if (mor_causal_routing_ && c_r < 1.0) {  // inference rule: continue iff the BCE-trained logit >= 0
        for (int i = 0; i < n_cand; i++) chosen[i] = z_bce[i] >= 0;
      } else {
        for (int i0 = 0; i0 < n_cand;) {
          int b = step.candidates[i0] / T, i1 = i0;
          while (i1 < n_cand && step.candidates[i1] / T == b) i1++;
          std::vector<int> order(i1 - i0);
          std::iota(order.begin(), order.end(), i0);
          std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return step.z[x] > step.z[y]; });
          for (int k = 0; k < std::min(capacity, i1 - i0); k++) chosen[order[k]] = 1;
          i0 = i1;
        }
      }
      if (c_r < 1.0) {
        for (int i = 0; i < n_cand; i++) {
          agree += (z_bce[i] >= 0) == (chosen[i] != 0);
          agree_total++;
        }
        for (int i = 0; i < n_cand; i++)
          if (chosen[i]) chosen_by_router[step.candidates[i]] = 1;
      }
      for (int i = 0; i < n_cand; i++) {
        float z = step.z[i], zb = z_bce[i];
        // aux BCE (target: selected) and z-loss, averaged over this step's candidates
        float y = chosen[i] ? 1.0f : 0.0f;
        aux += (std::max(zb, 0.0f) - zb * y + std::log1p(std::exp(-std::fabs(zb)))) / n_cand;
        zl += (double)z * z / n_cand;
        if (!chosen[i]) continue;
        step.selected.push_back(step.candidates[i]);
        step.gate.push_back(expert_gate(z));
      }
      step.layout = compact_layout(step.selected, B, T);
      run_block_forward(step, stream);
      int n = (int)step.selected.size();
      scatter_add_rows(stream, step.residual.back().data(), step.gate.data(), step.selected.data(), n, d);
      mor_stats_.active_fraction[r] = (double)n / N;
    }
    for (int r = 0; r < Nr; r++)
      mor_stats_.depth_load[r] = mor_stats_.active_fraction[r] - (r + 1 < Nr ? mor_stats_.active_fraction[r + 1] : 0.0);
    mor_stats_.aux_loss = aux;
    mor_stats_.z_loss = zl;
    mor_stats_.causal_agreement = agree_total > 0 ? agree / agree_total : 1.0;
    mor_stats_.dead_token_ratio = 1.0 - (double)std::count(chosen_by_router.begin(), chosen_by_router.end(), 1) / N;
    return c.mor_aux_loss * aux + c.mor_z_loss * zl;
  }
  // Token choice: one router on the stack input picks each token's depth.
  mor_h1_.assign(stream, stream + (size_t)N * d);
  mor_probs_.resize((size_t)N * Nr);
  mor_depth_.resize(N);
  mor_lse_.resize(N);
  if (mor_bias.size() != (size_t)Nr) mor_bias.assign(Nr, 0.0f);
  double zl = 0;
  std::vector<double> mean_p(Nr, 0.0), frac(Nr, 0.0);
  for (int t = 0; t < N; t++) {
    float* p = mor_probs_.data() + (size_t)t * Nr;
    double lse;
    int best = mor_depth_[t] = token_choice_route(stream + (size_t)t * d, p, lse);
    mor_lse_[t] = (float)lse;
    zl += lse * lse / N;
    for (int i = 0; i < Nr; i++) mean_p[i] += p[i] / N;
    frac[best] += 1.0 / N;
  }
  double balance = 0;
  for (int i = 0; i < Nr; i++) balance += mean_p[i] * Nr * frac[i];
  for (int r = 0; r < Nr; r++) {
    MorStep& step = mor_steps_[r];
    for (int t = 0; t < N; t++)
      if (mor_depth_[t] >= r) step.selected.push_back(t);
    step.layout = compact_layout(step.selected, B, T);
    run_block_forward(step, stream);
    int n = (int)step.selected.size();
    const float* y = step.residual.back().data();
    for (int i = 0; i < n; i++) {  // last step: h = h¹ + p·Block(h); earlier steps: h = Block(h)
      int t = step.selected[i];
      float* h = stream + (size_t)t * d;
      if (mor_depth_[t] == r) {
        float p = mor_probs_[(size_t)t * Nr + r];
        const float* h1 = mor_h1_.data() + (size_t)t * d;
        for (int k = 0; k < d; k++) h[k] = h1[k] + p * y[(size_t)i * d + k];
      } else {
        std::memcpy(h, y + (size_t)i * d, sizeof(float) * d);
      }
    }
    mor_stats_.active_fraction[r] = (double)n / N;
    mor_stats_.depth_load[r] = frac[r];
  }
  mor_stats_.balance_loss = balance;
  mor_stats_.z_loss = zl;
  mor_stats_.dead_token_ratio = frac[0];
  return mor_balance_scale_ * c.mor_balance_loss * balance + c.mor_z_loss * zl;
}

void Model::mor_backward(float* dstream, int N) {
  const ModelConfig& c = config_;
  int d = c.d_model, Nr = c.n_recursions;
  if (c.mor_kv_sharing) {  // gradients that later steps send to the first step's keys/values
    mor_shared_dqkv_.resize(c.mor_block_size());
    for (auto& g : mor_shared_dqkv_) g.assign(mor_steps_[0].selected.size() * (size_t)c.qkv_dim(), 0.0f);
  }
  const float* W = params.data() + router_offset_;
  float* dW = grads.data() + router_offset_;
  std::vector<float> dx;
  if (c.mor_routing == MorRouting::expert) {
    for (int r = Nr; r-- > 0;) {
      MorStep& step = mor_steps_[r];
      int n = (int)step.selected.size(), n_cand = (int)step.candidates.size();
      const float* y = step.residual.back().data();
      // h_end = h_start + g·y on selected rows: dy = g·dh, dg = <dh, y>
      dx.assign((size_t)n * d, 0.0f);
      std::vector<float> dgate(n, 0.0f);
      for (int i = 0; i < n; i++) {
        const float* dh = dstream + (size_t)step.selected[i] * d;
        float dg = 0;
        for (int k = 0; k < d; k++) dx[(size_t)i * d + k] = step.gate[i] * dh[k], dg += dh[k] * y[(size_t)i * d + k];
        dgate[i] = dg;
      }
      run_block_backward(step, dx.data());
      scatter_add_rows(dstream, dx.data(), nullptr, step.selected.data(), n, d);
      // router logits: gate, aux BCE and z-loss gradients
      std::vector<float> dz(n_cand), dh_cand((size_t)n_cand * d, 0.0f);
      std::vector<float> dz_aux(c.mor_aux_router ? n_cand : 0);
      for (int i = 0, s = 0; i < n_cand; i++) {
        float z = step.z[i], sz = sigmoid(z);
        bool chosen = s < n && step.selected[s] == step.candidates[i];
        float dbce = c.mor_aux_loss * ((c.mor_aux_router ? sigmoid(step.z_aux[i]) : sz) - (chosen ? 1.0f : 0.0f)) / n_cand;
        float dz_i = c.mor_z_loss * 2.0f * z / n_cand;
        if (c.mor_aux_router) dz_aux[i] = dbce;
        else dz_i += dbce;
        if (chosen) {
          float gate_grad = c.mor_gate == MorGate::sigmoid ? c.mor_alpha * sz * (1 - sz)
                                                            : c.mor_alpha * (1 - std::tanh(z) * std::tanh(z));
          dz_i += dgate[s] * gate_grad;
          s++;
        }
        dz[i] = dz_i;
      }
      router_backward(r, step, dz.data(), dh_cand.data());
      if (c.mor_aux_router)  // detached input: the auxiliary router learns, the stream gets nothing
        linear_backward(nullptr, grads.data() + aux_router_offsets_[r], dz_aux.data(), step.h_candidates.data(),
                        params.data() + aux_router_offsets_[r], n_cand, d, 1);
      scatter_add_rows(dstream, dh_cand.data(), nullptr, step.candidates.data(), n_cand, d);
    }
    return;
  }
  // Token choice
  std::vector<float> dh1((size_t)N * d, 0.0f), dprob((size_t)N * Nr, 0.0f);
  for (int r = Nr; r-- > 0;) {
    MorStep& step = mor_steps_[r];
    int n = (int)step.selected.size();
    const float* y = step.residual.back().data();
    dx.assign((size_t)n * d, 0.0f);
    for (int i = 0; i < n; i++) {
      int t = step.selected[i];
      const float* dh = dstream + (size_t)t * d;
      if (mor_depth_[t] == r) {
        float p = mor_probs_[(size_t)t * Nr + r], dp = 0;
        for (int k = 0; k < d; k++) {
          dx[(size_t)i * d + k] = p * dh[k];
          dp += dh[k] * y[(size_t)i * d + k];
          dh1[(size_t)t * d + k] += dh[k];
        }
        dprob[(size_t)t * Nr + r] += dp;
      } else {
        std::memcpy(dx.data() + (size_t)i * d, dh, sizeof(float) * d);
      }
    }
    run_block_backward(step, dx.data());
    for (int i = 0; i < n; i++)  // the step replaced these rows: their gradient is the block input's
      std::memcpy(dstream + (size_t)step.selected[i] * d, dx.data() + (size_t)i * d, sizeof(float) * d);
  }
  // balancing loss Σ P_i f_i (f fixed) and z-loss mean lse², through the softmax into the router
  std::vector<double> frac(Nr, 0.0);
  for (int t = 0; t < N; t++) frac[mor_depth_[t]] += 1.0 / N;
  for (int t = 0; t < N; t++) {
    float* dp = dprob.data() + (size_t)t * Nr;
    const float* p = mor_probs_.data() + (size_t)t * Nr;
    for (int i = 0; i < Nr; i++) dp[i] += (float)(mor_balance_scale_ * c.mor_balance_loss * Nr * frac[i] / N);
    float dot = 0;
    for (int i = 0; i < Nr; i++) dot += p[i] * dp[i];
    const float* h = mor_h1_.data() + (size_t)t * d;
    float lse = mor_lse_[t];
    float* dh = dstream + (size_t)t * d;
    for (int i = 0; i < Nr; i++) {
      float dlogit = p[i] * (dp[i] - dot) + c.mor_z_loss * 2.0f * lse * p[i] / N;
      for (int k = 0; k < d; k++) dW[(size_t)i * d + k] += dlogit * h[k], dh[k] += dlogit * W[(size_t)i * d + k];
    }
  }
  for (size_t i = 0; i < dh1.size(); i++) dstream[i] += dh1[i];
}

MorStats Model::mor_stats() const { return mor_stats_; }

void Model::set_mor_warmup(double capacity_progress, double balance_scale) {
  mor_capacity_progress_ = std::clamp(capacity_progress, 0.0, 1.0);
  mor_balance_scale_ = balance_scale;
}

void Model::update_mor_bias(float rate) {
  int Nr = config_.n_recursions;
  if (config_.mor_routing != MorRouting::token || mor_stats_.depth_load.empty()) return;
  double mean = 1.0 / Nr;
  for (int i = 0; i < Nr; i++) {
    double load = mor_stats_.depth_load[i];
    mor_bias[i] += rate * (float)((mean > load) - (mean < load));
  }
}

}  // namespace recur
