// The training forward/backward of the layer stack (see recur/train_pass.h): embed, each layer application in
// schedule order with shared weights reused and input injection into the loop, final norm, head and loss;
// backward the same in reverse. The Mixture-of-Recursions stack is in mor_pass.cpp.
#include "recur/train_pass.h"

#include <algorithm>
#include <cstring>

#include "recur/error.h"

namespace recur {

using namespace kernels;

static void zero(std::vector<float>& v, size_t n) { std::memset(v.data(), 0, n * sizeof(float)); }
static void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

TrainPass::TrainPass(const Model& model) : grads(model.n_params(), 0.0f), model_(model) {}

void TrainPass::zero_grad() { std::memset(grads.data(), 0, grads.size() * sizeof(float)); }

void TrainPass::set_mor_warmup(double capacity_progress, double balance_scale) {
  mor_.capacity_progress = std::clamp(capacity_progress, 0.0, 1.0);
  mor_.balance_scale = balance_scale;
}

void TrainPass::check_inputs(const int32_t* tokens, int B, int T) const {
  const ModelConfig& c = model_.config();
  check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
  check(T <= c.max_seq_len, "forward: sequence length ", T, " exceeds the model's max_seq_len ", c.max_seq_len,
        "; use a shorter --seq_len or a larger max_seq_len");
  int V = c.vocab_size;
  for (int i = 0; i < B * T; i++)
    check(tokens[i] >= 0 && tokens[i] < V, "forward: token id ", tokens[i], " is outside the vocabulary [0, ", V, ")");
}

float TrainPass::forward(const int32_t* tokens, const int32_t* targets, int B, int T) {
  const ModelConfig& c = model_.config();
  check_inputs(tokens, B, T);
  int N = B * T, d = c.d_model, V = c.vocab_size;
  B_ = B;
  T_ = T;
  tokens_.assign(tokens, tokens + N);
  if (layout_.n_rows != N || layout_.n_seq() != B) layout_ = TokenLayout::dense(B, T);
  const MorStack& stack = model_.mor_stack();
  size_t n_apps = model_.schedule().size();
  // MoR keeps its recursion steps' activations per step; the rest are the outer layers'
  residual_.resize(c.mor() ? stack.prelude.size() + stack.coda.size() + 1 : n_apps + 1);
  acts_.resize(n_apps);
  for (auto& r : residual_) ensure(r, (size_t)N * d);
  ensure(final_norm_, (size_t)N * d);
  ensure(final_rstd_, N);
  ensure(logits_, (size_t)N * V);

  embedding_forward(residual_[0].data(), tokens, model_.weights(model_.offsets().embed), N, d);
  double router_loss = 0;
  if (c.mor())
    router_loss = mor_stack_forward(N);
  else
    layer_stack_forward(N);
  final_norm_head(model_, stack_output(), N, final_norm_.data(), final_rstd_.data(), logits_.data());
  return loss(targets, router_loss);
}

// Cross-entropy over the counted targets (its gradient kept for backward), plus regularizer and router losses.
float TrainPass::loss(const int32_t* targets, double router_loss) {
  const ModelConfig& c = model_.config();
  int N = B_ * T_, V = c.vocab_size;
  regularizer_ = 0;
  if (!targets) {
    n_targets_ = 0;
    targets_.clear();
    return 0.0f;
  }
  regularizer_ = loop_regularizer(model_, nullptr) + (float)router_loss;
  targets_.assign(targets, targets + N);
  n_targets_ = 0;
  for (int i = 0; i < N; i++) {
    check(targets[i] < V, "forward: target id ", targets[i], " is outside the vocabulary");
    n_targets_ += targets[i] >= 0;
  }
  ensure(dlogits_, (size_t)N * V);
  ensure(losses_, N);
  float dloss = n_targets_ > 0 ? 1.0f / n_targets_ : 0.0f;
  double total = cross_entropy_forward_backward(losses_.data(), dlogits_.data(), logits_.data(), targets, N, V, dloss);
  cross_entropy_ = n_targets_ > 0 ? (float)(total / n_targets_) : 0.0f;
  return cross_entropy_ + regularizer_;
}

void TrainPass::backward() {
  const ModelConfig& c = model_.config();
  const WeightOffsets& o = model_.offsets();
  check(!targets_.empty(), "backward: needs a forward with targets first");
  int N = B_ * T_, d = c.d_model, V = c.vocab_size;
  float* G = grads.data();
  ensure(dx_, (size_t)N * d);
  ensure(dxn_, (size_t)N * d);
  zero(dx_, (size_t)N * d);
  zero(dxn_, (size_t)N * d);
  linear_backward(dxn_.data(), G + o.lm_head, dlogits_.data(), final_norm_.data(), model_.matrix(o.lm_head), N, d, V);
  rmsnorm_backward(dx_.data(), G + o.final_norm, dxn_.data(), stack_output(), model_.weights(o.final_norm),
                   final_rstd_.data(), N, d);
  if (c.mor()) {
    mor_stack_backward(N);
  } else {
    layer_stack_backward(N);
    loop_regularizer(model_, G);
  }
  embedding_backward(G + o.embed, dx_.data(), tokens_.data(), N, d, V);
}

void TrainPass::layer_stack_forward(int N) {
  const std::vector<int>& schedule = model_.schedule();
  for (size_t i = 0; i < schedule.size(); i++) {
    const float* x = residual_[i].data();
    int slot = model_.injection_slot(i);
    if (slot >= 0) {
      if ((int)injected_.size() <= slot) injected_.resize(slot + 1), concat_.resize(slot + 1);
      ensure(injected_[slot], (size_t)N * model_.config().d_model);
      inject_forward(model_, x, residual_[model_.config().prelude].data(), N, injected_[slot].data(), concat_[slot]);
      x = injected_[slot].data();
    }
    layer_forward(model_, schedule[i], layout_, x, residual_[i + 1].data(), acts_[i]);
  }
}

void TrainPass::layer_stack_backward(int N) {
  const ModelConfig& c = model_.config();
  const std::vector<int>& schedule = model_.schedule();
  size_t n = (size_t)N * c.d_model;
  bool injecting = c.input_injection != InputInjection::none;
  if (injecting) {
    ensure(dinput_, n);
    zero(dinput_, n);  // gradient of e, the looped block's first input
  }
  for (size_t i = schedule.size(); i-- > 0;) {
    int slot = model_.injection_slot(i);
    const float* x_in = slot >= 0 ? injected_[slot].data() : residual_[i].data();
    layer_backward(model_, grads.data(), scratch_, schedule[i], layout_, x_in, acts_[i], dx_.data());
    if (slot >= 0) inject_backward(model_, grads.data(), concat_[slot].data(), dx_.data(), dinput_.data(), N, dconcat_);
    if (injecting && i == (size_t)c.prelude) residual_forward(dx_.data(), dx_.data(), dinput_.data(), n);
  }
}

const float* TrainPass::stack_output() const {
  if (!model_.config().mor()) return residual_[model_.schedule().size()].data();
  return model_.mor_stack().coda.empty() ? mor_.stream.data() : residual_.back().data();
}

static double causal_pairs(const TokenLayout& layout) {  // keys = queries: n(n+1)/2 per sequence
  double pairs = 0;
  for (int s = 0; s < layout.n_seq(); s++) {
    double n = layout.seq_start[s + 1] - layout.seq_start[s];
    pairs += n * (n + 1) / 2;
  }
  return pairs;
}
// Queries of `queries` against the keys of `keys` (same sequences) at positions <= the query's.
static double shared_pairs(const TokenLayout& queries, const TokenLayout& keys) {
  double pairs = 0;
  for (int s = 0; s < queries.n_seq(); s++) {
    const int32_t* k_begin = keys.pos.data() + keys.seq_start[s];
    const int32_t* k_end = keys.pos.data() + keys.seq_start[s + 1];
    for (int i = queries.seq_start[s]; i < queries.seq_start[s + 1]; i++)
      pairs += (double)(std::upper_bound(k_begin, k_end, queries.pos[i]) - k_begin);
  }
  return pairs;
}

double TrainPass::last_forward_flops() const {
  const ModelConfig& c = model_.config();
  const MorStack& stack = model_.mor_stack();
  double N = (double)B_ * T_;
  double flops = 2.0 * N * c.d_model * c.vocab_size;  // head
  double full_layer = layer_flops(c, N, causal_pairs(layout_), false);
  if (!c.mor()) return flops + c.n_layers * full_layer;
  flops += (double)(stack.prelude.size() + stack.coda.size()) * full_layer;
  for (size_t r = 0; r < mor_.steps.size(); r++) {
    const MorStep& step = mor_.steps[r];
    bool shared = c.mor_kv_sharing && r > 0;
    double pairs = shared ? shared_pairs(step.layout, mor_.steps[0].layout) : causal_pairs(step.layout);
    flops += stack.block_size * layer_flops(c, (double)step.selected.size(), pairs, shared);
    flops += 2.0 * (double)std::max(step.candidates.size(), step.selected.size()) * c.d_model;  // router
  }
  return flops;
}

size_t TrainPass::activation_bytes() const {
  size_t floats = 0;
  for (const auto& r : residual_) floats += r.size();
  for (const auto& a : acts_) floats += a.floats();
  for (const MorStep& step : mor_.steps) {
    floats += step.h_candidates.size() + step.scores.z.size() + step.gate.size();
    for (const auto& r : step.residual) floats += r.size();
    for (const auto& a : step.acts) floats += a.floats();
  }
  floats += mor_.stream.size() + mor_.h1.size() + final_norm_.size() + logits_.size() + dlogits_.size();
  return floats * sizeof(float);
}

}  // namespace recur
