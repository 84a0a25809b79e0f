// The Mixture-of-Recursions stack of a training forward/backward (see recur/train_pass.h): the unique outer
// layers of recur/model.h's MorStack, and between them the recursion steps, where a router picks the tokens
// that go on (recur/expert_choice.h, recur/token_choice.h), the shared block runs on those tokens only
// (gathered into compact sub-sequences that keep their original positions) and the result is scattered back.
// Skipped tokens cost no block FLOPs and no activation memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "recur/token_choice.h"
#include "recur/train_pass.h"

namespace recur {

using namespace kernels;

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

// residual_: [embeddings, after each prelude layer, after each coda layer]; acts_: prelude then coda layers.
double TrainPass::mor_stack_forward(int N) {
  const MorStack& stack = model_.mor_stack();
  size_t P = stack.prelude.size();
  for (size_t i = 0; i < P; i++)
    layer_forward(model_, stack.prelude[i], layout_, residual_[i].data(), residual_[i + 1].data(), acts_[i]);
  const std::vector<float>& input = residual_[P];
  mor_.stream.assign(input.begin(), input.begin() + (size_t)N * model_.config().d_model);
  double router_loss = model_.config().mor_routing == MorRouting::expert ? expert_forward(mor_.stream.data(), N)
                                                                         : token_forward(mor_.stream.data(), N);
  for (size_t i = 0; i < stack.coda.size(); i++) {
    const float* x = i == 0 ? mor_.stream.data() : residual_[P + i].data();
    layer_forward(model_, stack.coda[i], layout_, x, residual_[P + i + 1].data(), acts_[P + i]);
  }
  return router_loss;
}

void TrainPass::mor_stack_backward(int N) {
  const MorStack& stack = model_.mor_stack();
  size_t P = stack.prelude.size();
  float* G = grads.data();
  for (size_t i = stack.coda.size(); i-- > 0;) {
    const float* x = i == 0 ? mor_.stream.data() : residual_[P + i].data();
    layer_backward(model_, G, scratch_, stack.coda[i], layout_, x, acts_[P + i], dx_.data());
  }
  const ModelConfig& c = model_.config();
  if (c.mor_kv_sharing) {  // gradients that later steps send to the first step's keys/values
    mor_.shared_dqkv.resize(stack.block_size);
    for (auto& g : mor_.shared_dqkv) g.assign(mor_.steps[0].selected.size() * (size_t)c.qkv_dim(), 0.0f);
  }
  if (c.mor_routing == MorRouting::expert)
    expert_backward(dx_.data());
  else
    token_backward(dx_.data(), N);
  for (size_t i = P; i-- > 0;)
    layer_backward(model_, G, scratch_, stack.prelude[i], layout_, residual_[i].data(), acts_[i], dx_.data());
}

// The shared block on step r's selected rows. With recursive KV sharing, the steps after the first attend to
// the first step's keys/values of the same layer (step 0 runs on every token).
void TrainPass::run_block_forward(int r, const float* stream) {
  const MorStack& stack = model_.mor_stack();
  MorStep& step = mor_.steps[r];
  const MorStep& first = mor_.steps[0];
  int n = (int)step.selected.size(), d = model_.config().d_model;
  step.residual.resize(stack.block_size + 1);
  step.acts.resize(stack.block_size);
  for (auto& x : step.residual) x.resize((size_t)n * d);
  gather_rows(step.residual[0].data(), stream, step.selected.data(), n, d);
  bool share = model_.config().mor_kv_sharing && r > 0;
  for (int j = 0; j < stack.block_size; j++) {
    SharedKV kv{share ? first.acts[j].qkv.data() : nullptr, &first.layout, nullptr};
    layer_forward(model_, stack.block_begin + j, step.layout, step.residual[j].data(), step.residual[j + 1].data(),
                  step.acts[j], share ? &kv : nullptr);
  }
}

// dx (n,d): gradient of the block output on entry, of the block input on return. With KV sharing the later
// steps send their keys'/values' gradients to step 0 through mor_.shared_dqkv, which step 0 then adds.
void TrainPass::run_block_backward(int r, float* dx) {
  const MorStack& stack = model_.mor_stack();
  MorStep& step = mor_.steps[r];
  bool kv_sharing = model_.config().mor_kv_sharing, share = kv_sharing && r > 0;
  for (int j = stack.block_size; j-- > 0;) {
    float* shared_dqkv = kv_sharing ? mor_.shared_dqkv[j].data() : nullptr;
    SharedKV kv{mor_.steps[0].acts[j].qkv.data(), &mor_.steps[0].layout, shared_dqkv};
    layer_backward(model_, grads.data(), scratch_, stack.block_begin + j, step.layout, step.residual[j].data(),
                   step.acts[j], dx, share ? &kv : nullptr, r == 0 ? shared_dqkv : nullptr);
  }
}

double TrainPass::expert_forward(float* stream, int N) {
  const ModelConfig& c = model_.config();
  int Nr = c.n_recursions;
  mor_.steps.assign(Nr, MorStep{});
  MorStats& stats = mor_.stats;
  stats = MorStats{};
  stats.active_fraction.assign(Nr, 0.0);
  stats.depth_load.assign(Nr, 0.0);
  stats.causal_sums.assign((size_t)Nr * kCausalSums, 0.0);
  std::vector<char> router_choice(N, kNoChoice);
  double agreement[2] = {0, 0};  // agreeing candidates, candidates of steps that choose
  ExpertLosses router_losses;
  for (int r = 0; r < Nr; r++) expert_step_forward(r, stream, N, router_choice, agreement, router_losses);
  stats.aux_loss = router_losses.bce * mor_.shard.mean_scale;
  stats.z_loss = router_losses.z * mor_.shard.mean_scale;
  for (int r = 0; r < Nr; r++)
    stats.depth_load[r] = stats.active_fraction[r] - (r + 1 < Nr ? stats.active_fraction[r + 1] : 0.0);
  stats.causal_agreement = agreement[1] > 0 ? agreement[0] / agreement[1] : 1.0;
  stats.dead_token_ratio = expert_dead_token_ratio(router_choice);
  return c.mor_aux_loss * stats.aux_loss + c.mor_z_loss * stats.z_loss;
}

// Step r: route the candidates (the rows step r-1 selected), select (top-k per sequence, or the causal rule),
// run the block on the selected rows, h ← h + g·Block(h).
void TrainPass::expert_step_forward(int r, float* stream, int N, std::vector<char>& router_choice, double agreement[2],
                                    ExpertLosses& router_losses) {
  const ModelConfig& c = model_.config();
  int d = c.d_model;
  MorStep& step = mor_.steps[r];
  if (r == 0) {
    step.candidates.resize(N);
    std::iota(step.candidates.begin(), step.candidates.end(), 0);
  } else {
    step.candidates = mor_.steps[r - 1].selected;
  }
  int n_cand = (int)step.candidates.size();
  step.h_candidates.resize((size_t)n_cand * d);
  gather_rows(step.h_candidates.data(), stream, step.candidates.data(), n_cand, d);
  expert_route(model_, r, step.h_candidates.data(), n_cand, step.scores);
  const std::vector<float>& z_bce = step.scores.bce_logits(c);
  double c_r = expert_capacity_fraction(c, r, mor_.capacity_progress);
  float bias = model_.mor_bias[r];
  if (mor_.causal) {
    step.chosen.resize(n_cand);
    for (int i = 0; i < n_cand; i++) step.chosen[i] = expert_continues(c_r, z_bce[i], bias);
  } else {
    int capacity = std::max(1, (int)std::floor(c_r * T_));
    expert_select_top_k(step.candidates, step.scores.z.data(), T_, capacity, step.chosen);
  }
  if (c_r < 1.0)
    for (int i = 0; i < n_cand; i++) {
      agreement[0] += expert_continues(c_r, z_bce[i], bias) == (step.chosen[i] != 0);
      agreement[1]++;
      char& choice = router_choice[step.candidates[i]];
      choice = std::max(choice, (char)(step.chosen[i] ? kChosen : kNotChosen));
    }
  if (c_r < 1.0 && !mor_.causal)
    expert_add_causal_sums(z_bce, step.chosen, bias, N, &mor_.stats.causal_sums[(size_t)r * kCausalSums]);
  expert_router_losses(c, step.scores, step.chosen, router_losses);
  for (int i = 0; i < n_cand; i++)
    if (step.chosen[i])
      step.selected.push_back(step.candidates[i]), step.gate.push_back(expert_gate(c, step.scores.z[i]));
  step.layout = compact_layout(step.selected, B_, T_);
  run_block_forward(r, stream);
  int n = (int)step.selected.size();
  const float* y = step.residual.back().data();
  for (int i = 0; i < n; i++) expert_mix(step.gate[i], y + (size_t)i * d, stream + (size_t)step.selected[i] * d, d);
  mor_.stats.active_fraction[r] = (double)n / N;
}

void TrainPass::expert_backward(float* dstream) {
  const ModelConfig& c = model_.config();
  int d = c.d_model;
  for (int r = c.n_recursions; r-- > 0;) {
    MorStep& step = mor_.steps[r];
    int n = (int)step.selected.size(), n_cand = (int)step.candidates.size();
    const float* y = step.residual.back().data();
    // h_end = h_start + g·y on selected rows: dy = g·dh, dg = <dh, y>
    std::vector<float> dx((size_t)n * d), dgate(n, 0.0f);
    for (int i = 0; i < n; i++) {
      const float* dh = dstream + (size_t)step.selected[i] * d;
      float dg = 0;
      for (int k = 0; k < d; k++) dx[(size_t)i * d + k] = step.gate[i] * dh[k], dg += dh[k] * y[(size_t)i * d + k];
      dgate[i] = dg;
    }
    run_block_backward(r, dx.data());
    scatter_add_rows(dstream, dx.data(), nullptr, step.selected.data(), n, d);
    // router logits: aux BCE and z-loss gradients, then the gate's on the selected candidates
    std::vector<float> dz(n_cand, 0.0f), dz_aux(n_cand, 0.0f), dh_cand((size_t)n_cand * d, 0.0f);
    expert_router_loss_grads(c, step.scores, step.chosen, dz.data(), dz_aux.data());
    for (int i = 0; i < n_cand; i++) dz[i] *= (float)mor_.shard.mean_scale, dz_aux[i] *= (float)mor_.shard.mean_scale;
    for (int i = 0, s = 0; i < n_cand; i++)
      if (step.chosen[i]) dz[i] += dgate[s++] * expert_gate_grad(c, step.scores.z[i]);
    expert_route_backward(model_, grads.data(), r, step.h_candidates.data(), n_cand, step.scores, dz.data(),
                          dz_aux.data(), dh_cand.data());
    scatter_add_rows(dstream, dh_cand.data(), nullptr, step.candidates.data(), n_cand, d);
  }
}

// Token choice: one router on the stack input picks each token's depth; step r runs every token of depth >= r.
double TrainPass::token_forward(float* stream, int N) {
  const ModelConfig& c = model_.config();
  int d = c.d_model, Nr = c.n_recursions;
  mor_.steps.assign(Nr, MorStep{});
  mor_.h1.assign(stream, stream + (size_t)N * d);
  mor_.probs.resize((size_t)N * Nr);
  mor_.depth.resize(N);
  mor_.lse.resize(N);
  for (int t = 0; t < N; t++) {
    double lse;
    mor_.depth[t] = token_route(model_, stream + (size_t)t * d, mor_.probs.data() + (size_t)t * Nr, lse);
    mor_.lse[t] = (float)lse;
  }
  std::vector<double> counts = token_route_counts(mor_.depth.data(), N, Nr);
  if (mor_.shard.route_counts) counts = mor_.shard.route_counts(counts);
  TokenLosses losses = token_router_losses(c, mor_.probs.data(), mor_.lse.data(), N, counts, mor_.shard.mean_scale);
  mor_.fraction = losses.fraction;
  MorStats& stats = mor_.stats;
  stats = MorStats{};
  stats.active_fraction.assign(Nr, 0.0);
  stats.depth_load = losses.fraction;
  for (int r = 0; r < Nr; r++) {
    MorStep& step = mor_.steps[r];
    for (int t = 0; t < N; t++)
      if (mor_.depth[t] >= r) step.selected.push_back(t);
    step.layout = compact_layout(step.selected, B_, T_);
    run_block_forward(r, stream);
    int n = (int)step.selected.size();
    const float* y = step.residual.back().data();
    for (int i = 0; i < n; i++) {
      int t = step.selected[i];
      token_mix(r, mor_.depth[t], mor_.probs.data() + (size_t)t * Nr, mor_.h1.data() + (size_t)t * d, y + (size_t)i * d,
                stream + (size_t)t * d, d);
    }
    stats.active_fraction[r] = (double)n / N;
  }
  stats.balance_loss = losses.balance;
  stats.z_loss = losses.z;
  stats.dead_token_ratio = losses.fraction[0];
  return mor_.balance_scale * c.mor_balance_loss * losses.balance + c.mor_z_loss * losses.z;
}

void TrainPass::token_backward(float* dstream, int N) {
  const ModelConfig& c = model_.config();
  int d = c.d_model, Nr = c.n_recursions;
  std::vector<float> dh1((size_t)N * d, 0.0f), dprob((size_t)N * Nr, 0.0f), dx;
  for (int r = Nr; r-- > 0;) {
    MorStep& step = mor_.steps[r];
    int n = (int)step.selected.size();
    const float* y = step.residual.back().data();
    dx.assign((size_t)n * d, 0.0f);
    for (int i = 0; i < n; i++) {
      int t = step.selected[i];
      token_mix_backward(r, mor_.depth[t], mor_.probs.data() + (size_t)t * Nr, y + (size_t)i * d,
                         dstream + (size_t)t * d, dx.data() + (size_t)i * d, dh1.data() + (size_t)t * d,
                         dprob.data() + (size_t)t * Nr, d);
    }
    run_block_backward(r, dx.data());
    for (int i = 0; i < n; i++)  // the step replaced these rows: their gradient is the block input's
      std::memcpy(dstream + (size_t)step.selected[i] * d, dx.data() + (size_t)i * d, sizeof(float) * d);
  }
  token_route_backward(model_, grads.data(), mor_.h1.data(), mor_.probs.data(), mor_.lse.data(), mor_.fraction,
                       mor_.balance_scale, mor_.shard.mean_scale, dprob.data(), dstream, N);
  for (size_t i = 0; i < dh1.size(); i++) dstream[i] += dh1[i];
}

}  // namespace recur
