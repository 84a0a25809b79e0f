// The decoder's parameter table, initialization, and forward/backward as straight-line code: embed, each
// layer application in schedule order (shared weights reused), final norm, tied or untied head, loss.
#include "recur/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

using namespace kernels;

static void zero(std::vector<float>& v, size_t n) { std::memset(v.data(), 0, n * sizeof(float)); }
static void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

void LayerActivations::resize(size_t N, const ModelConfig& c) {
  size_t d = c.d_model, F = c.d_ff, H = c.n_heads, hd = c.head_dim();
  ensure(xn1, N * d);
  ensure(rstd1, N);
  ensure(qkv, N * c.qkv_dim());
  ensure(att, N * H * hd);
  ensure(lse, N * H);
  ensure(mid, N * d);
  ensure(xn2, N * d);
  ensure(rstd2, N);
  ensure(gate_up, N * 2 * F);
  ensure(hidden, N * F);
}

TokenLayout TokenLayout::dense(int B, int T) {
  TokenLayout layout;
  layout.n_rows = B * T;
  for (int b = 0; b <= B; b++) layout.seq_start.push_back(b * T);
  layout.pos.resize((size_t)B * T);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) layout.pos[(size_t)b * T + t] = t;
  return layout;
}

Model::Model(const ModelConfig& config)
    : config_(config), rope_(config.head_dim(), config.max_seq_len, config.rope_theta) {
  config_.validate();
  const ModelConfig& c = config_;
  int64_t d = c.d_model, hd = c.head_dim(), F = c.d_ff;
  size_t offset = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
    ParamInfo p;
    p.name = name;
    p.shape = shape;
    p.offset = offset;
    p.numel = 1;
    for (int64_t s : shape) p.numel *= (size_t)s;
    p.decay = decay;
    offset += p.numel;
    table_.push_back(p);
    return p.offset;
  };
  embed_offset_ = add("model.embed_tokens.weight", {c.vocab_size, d}, true);
  for (int i = 0; i < c.n_unique_layers(); i++) {
    std::string pre = "model.layers." + std::to_string(i) + ".";
    LayerOffsets l;
    l.attn_norm = add(pre + "input_layernorm.weight", {d}, false);
    l.wqkv = add(pre + "self_attn.q_proj.weight", {c.n_heads * hd, d}, true);
    add(pre + "self_attn.k_proj.weight", {c.n_kv_heads * hd, d}, true);
    add(pre + "self_attn.v_proj.weight", {c.n_kv_heads * hd, d}, true);
    l.wo = add(pre + "self_attn.o_proj.weight", {d, c.n_heads * hd}, true);
    l.ffn_norm = add(pre + "post_attention_layernorm.weight", {d}, false);
    l.w_gate_up = add(pre + "mlp.gate_proj.weight", {F, d}, true);
    add(pre + "mlp.up_proj.weight", {F, d}, true);
    l.w_down = add(pre + "mlp.down_proj.weight", {d, F}, true);
    layers_.push_back(l);
  }
  if (c.input_injection == InputInjection::concat) adapter_offset_ = add("model.loop_adapter.weight", {d, 2 * d}, true);
  if (c.mor_routing == MorRouting::expert)
    for (int r = 0; r < c.n_recursions; r++) {
      std::string pre = "model.mor_router." + std::to_string(r);
      if (c.mor_router == MorRouter::linear) {
        router_offsets_.push_back({add(pre + ".weight", {1, d}, true), 0});
      } else {
        size_t fc1 = add(pre + ".fc1.weight", {2 * d, d}, true);
        router_offsets_.push_back({fc1, add(pre + ".fc2.weight", {1, 2 * d}, true)});
      }
    }
  if (c.mor_aux_router)
    for (int r = 0; r < c.n_recursions; r++)
      aux_router_offsets_.push_back(add("model.mor_aux_router." + std::to_string(r) + ".weight", {1, d}, true));
  if (c.mor_routing == MorRouting::token) router_offset_ = add("model.mor_router.weight", {c.n_recursions, d}, true);
  norm_offset_ = add("model.norm.weight", {d}, false);
  lm_head_offset_ = c.tied_embeddings ? embed_offset_ : add("lm_head.weight", {c.vocab_size, d}, true);
  params.assign(offset, 0.0f);
  grads.assign(offset, 0.0f);
  schedule_ = c.layer_schedule();
  init_weights(0);
}

const ParamInfo& Model::param(const std::string& name) const {
  for (const ParamInfo& p : table_)
    if (p.name == name) return p;
  throw Error("model has no tensor named \"" + name + "\"");
}

void Model::init_weights(uint64_t seed) {
  Rng rng(mix_seed(seed, 0x1417));
  for (const ParamInfo& p : table_) {
    float* w = params.data() + p.offset;
    if (p.shape.size() == 1)
      for (size_t i = 0; i < p.numel; i++) w[i] = 1.0f;
    else
      for (size_t i = 0; i < p.numel; i++) w[i] = 0.02f * rng.normal();
  }
  // The concat adapter starts as "keep h, ignore e": W = [I | 0], so injection begins as a plain loop.
  if (config_.input_injection == InputInjection::concat) {
    int d = config_.d_model;
    float* w = params.data() + adapter_offset_;
    std::fill(w, w + (size_t)d * 2 * d, 0.0f);
    for (int i = 0; i < d; i++) w[(size_t)i * 2 * d + i] = 1.0f;
  }
}

void Model::set_loop_count(int L) {
  check(config_.loop_block > 0, "set_loop_count: the model has no looped block (loop_block is 0)");
  check(L >= 1, "set_loop_count: the loop count must be >= 1");
  config_.n_layers += (L - config_.loop_count) * config_.loop_block;
  config_.loop_count = L;
  schedule_ = config_.layer_schedule();
}

int Model::injection_slot(size_t app) const {
  const ModelConfig& c = config_;
  if (c.input_injection == InputInjection::none || app < (size_t)c.prelude) return -1;
  size_t offset = app - c.prelude;
  if (offset % c.loop_block != 0) return -1;
  size_t iteration = offset / c.loop_block;
  if (iteration == 0 || iteration >= (size_t)c.loop_count) return -1;
  return (int)iteration - 1;
}

// h, e (N,d) -> injected_[slot] (N,d): h + e, or [h; e]·Wᵀ with the shared adapter W (d, 2d)
void Model::inject_forward(int slot, const float* h, const float* e, int N) {
  int d = config_.d_model;
  if ((int)injected_.size() <= slot) injected_.resize(slot + 1);
  ensure(injected_[slot], (size_t)N * d);
  if (config_.input_injection == InputInjection::add) {
    residual_forward(injected_[slot].data(), h, e, (size_t)N * d);
    return;
  }
  if ((int)concat_.size() <= slot) concat_.resize(slot + 1);
  ensure(concat_[slot], (size_t)N * 2 * d);
  float* cat = concat_[slot].data();
  for (int n = 0; n < N; n++) {
    std::memcpy(cat + (size_t)n * 2 * d, h + (size_t)n * d, d * sizeof(float));
    std::memcpy(cat + (size_t)n * 2 * d + d, e + (size_t)n * d, d * sizeof(float));
  }
  linear_forward(injected_[slot].data(), cat, params.data() + adapter_offset_, N, 2 * d, d);
}

// dx: gradient w.r.t. the injected input on entry, w.r.t. h on return; de accumulates the gradient of e.
void Model::inject_backward(int slot, float* dx, float* de, int N) {
  int d = config_.d_model;
  if (config_.input_injection == InputInjection::add) {
    for (size_t i = 0; i < (size_t)N * d; i++) de[i] += dx[i];
    return;
  }
  ensure(dconcat_, (size_t)N * 2 * d);
  zero(dconcat_, (size_t)N * 2 * d);
  linear_backward(dconcat_.data(), grads.data() + adapter_offset_, dx, concat_[slot].data(),
                  params.data() + adapter_offset_, N, 2 * d, d);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < d; i++) {
      dx[(size_t)n * d + i] = dconcat_[(size_t)n * 2 * d + i];
      de[(size_t)n * d + i] += dconcat_[(size_t)n * 2 * d + d + i];
    }
}

float Model::loop_regularizer(bool accumulate_grad) {
  const ModelConfig& c = config_;
  if (c.loop_reg_k == 0) return 0.0f;
  static const char* groups[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                 "mlp.down_proj",    "input_layernorm",  "post_attention_layernorm"};
  int L = c.n_layers, k = c.loop_reg_k, n_groups = 9;
  double total = 0, pair_weight = 1.0 / (L - k);
  for (const char* group : groups) {
    double cos_sum = 0;
    for (int i = 0; i + 1 < L / k; i++)
      for (int j = 0; j < k; j++) {
        const ParamInfo& pa = param("model.layers." + std::to_string(i * k + j) + "." + group + ".weight");
        const ParamInfo& pb = param("model.layers." + std::to_string((i + 1) * k + j) + "." + group + ".weight");
        const float* a = params.data() + pa.offset;
        const float* b = params.data() + pb.offset;
        double ab = 0, aa = 0, bb = 0;
        for (size_t n = 0; n < pa.numel; n++) ab += (double)a[n] * b[n], aa += (double)a[n] * a[n], bb += (double)b[n] * b[n];
        double na = std::sqrt(aa), nb = std::sqrt(bb), cosine = ab / (na * nb);
        cos_sum += cosine;
        if (!accumulate_grad) continue;
        // dR/da = -λ/(G (L-k)) (b/(|a||b|) - cos a/|a|²), symmetric for b
        double scale = -c.loop_reg_lambda / n_groups * pair_weight;
        float* ga = grads.data() + pa.offset;
        float* gb = grads.data() + pb.offset;
        for (size_t n = 0; n < pa.numel; n++) {
          ga[n] += (float)(scale * (b[n] / (na * nb) - cosine * a[n] / aa));
          gb[n] += (float)(scale * (a[n] / (na * nb) - cosine * b[n] / bb));
        }
      }
    total += 1.0 - pair_weight * cos_sum;
  }
  return (float)(c.loop_reg_lambda * total / n_groups);
}

void Model::zero_grad() { std::memset(grads.data(), 0, grads.size() * sizeof(float)); }

AttentionShape Model::attention_shape(const TokenLayout& q_layout, const TokenLayout& k_layout, int q_stride) const {
  AttentionShape a;
  a.n_seq = q_layout.n_seq();
  a.q_start = q_layout.seq_start.data();
  a.k_start = k_layout.seq_start.data();
  a.q_pos = q_layout.pos.data();
  a.k_pos = k_layout.pos.data();
  a.n_heads = config_.n_heads;
  a.n_kv_heads = config_.n_kv_heads;
  a.head_dim = config_.head_dim();
  a.q_stride = q_stride;
  a.kv_stride = config_.qkv_dim();
  a.out_stride = config_.n_heads * config_.head_dim();
  return a;
}

// x_in (N,d) -> a.qkv (N, [q | k | v]) after RMSNorm, the fused projection and RoPE; with queries_only
// just (N, q): only the query rows of the fused weight are used.
void Model::attention_inputs(int u, const TokenLayout& layout, const float* x_in, LayerActivations& a,
                             bool queries_only) {
  const ModelConfig& c = config_;
  const LayerOffsets& w = layer(u);
  const float* P = params.data();
  int N = layout.n_rows, d = c.d_model, att_dim = c.n_heads * c.head_dim();
  int q_stride = queries_only ? att_dim : c.qkv_dim();
  a.resize(N, c);
  rmsnorm_forward(a.xn1.data(), a.rstd1.data(), x_in, P + w.attn_norm, N, d, c.norm_eps);
  linear_forward(a.qkv.data(), a.xn1.data(), P + w.wqkv, N, d, q_stride);
  rope_forward(a.qkv.data(), layout.pos.data(), N, q_stride, c.n_heads, rope_);
  if (!queries_only) rope_forward(a.qkv.data() + att_dim, layout.pos.data(), N, q_stride, c.n_kv_heads, rope_);
}

// a.att (N, heads·head_dim) -> x_out (N,d): mid = x_in + att·Woᵀ ; x_out = mid + MLP(RMSNorm(mid))
void Model::layer_output(int u, int N, const float* x_in, float* x_out, LayerActivations& a) {
  const ModelConfig& c = config_;
  const LayerOffsets& w = layer(u);
  const float* P = params.data();
  int d = c.d_model, F = c.d_ff, att_dim = c.n_heads * c.head_dim();
  linear_forward(a.mid.data(), a.att.data(), P + w.wo, N, att_dim, d);
  residual_forward(a.mid.data(), x_in, a.mid.data(), (size_t)N * d);
  rmsnorm_forward(a.xn2.data(), a.rstd2.data(), a.mid.data(), P + w.ffn_norm, N, d, c.norm_eps);
  linear_forward(a.gate_up.data(), a.xn2.data(), P + w.w_gate_up, N, d, 2 * F);
  swiglu_forward(a.hidden.data(), a.gate_up.data(), N, F);
  linear_forward(x_out, a.hidden.data(), P + w.w_down, N, F, d);
  residual_forward(x_out, a.mid.data(), x_out, (size_t)N * d);
}

// x_in (N,d) -> x_out (N,d):  mid = x + Attn(RMSNorm(x)) ; x_out = mid + MLP(RMSNorm(mid))
void Model::layer_forward(int u, const TokenLayout& layout, const float* x_in, float* x_out,
                          LayerActivations& a, const SharedKV* shared) {
  const ModelConfig& c = config_;
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim();
  attention_inputs(u, layout, x_in, a, shared != nullptr);
  const float* q = a.qkv.data();
  if (shared) {
    const float* k = shared->qkv + att_dim;
    attention_forward(a.att.data(), a.lse.data(), q, k, k + kv_dim, attention_shape(layout, *shared->layout, att_dim));
  } else {
    const float* k = q + att_dim;
    attention_forward(a.att.data(), a.lse.data(), q, k, k + kv_dim, attention_shape(layout, layout, c.qkv_dim()));
  }
  layer_output(u, layout.n_rows, x_in, x_out, a);
}

// dx (N,d): d x_out on entry, d x_in on return. The residual paths pass dx through unchanged; each branch
// adds its contribution. Weight gradients are added into grads (shared layers accumulate).
void Model::layer_backward(int u, const TokenLayout& layout, const float* x_in, const LayerActivations& a,
                           float* dx, const SharedKV* shared, const float* extra_dqkv) {
  const ModelConfig& c = config_;
  const LayerOffsets& w = layer(u);
  const float* P = params.data();
  float* G = grads.data();
  int N = layout.n_rows, d = c.d_model, F = c.d_ff, qkv_dim = c.qkv_dim(), att_dim = c.n_heads * c.head_dim();
  ensure(dhidden_, (size_t)N * F);
  ensure(dgate_up_, (size_t)N * 2 * F);
  ensure(dxn_, (size_t)N * d);
  ensure(datt_, (size_t)N * att_dim);
  ensure(dqkv_, (size_t)N * qkv_dim);
  // MLP branch
  zero(dhidden_, (size_t)N * F);
  linear_backward(dhidden_.data(), G + w.w_down, dx, a.hidden.data(), P + w.w_down, N, F, d);
  zero(dgate_up_, (size_t)N * 2 * F);
  swiglu_backward(dgate_up_.data(), dhidden_.data(), a.gate_up.data(), N, F);
  zero(dxn_, (size_t)N * d);
  linear_backward(dxn_.data(), G + w.w_gate_up, dgate_up_.data(), a.xn2.data(), P + w.w_gate_up, N, d, 2 * F);
  rmsnorm_backward(dx, G + w.ffn_norm, dxn_.data(), a.mid.data(), P + w.ffn_norm, a.rstd2.data(), N, d);
  // attention branch
  zero(datt_, (size_t)N * att_dim);
  linear_backward(datt_.data(), G + w.wo, dx, a.att.data(), P + w.wo, N, att_dim, d);
  int q_stride = shared ? att_dim : qkv_dim, kv_dim = c.n_kv_heads * c.head_dim();
  zero(dqkv_, (size_t)N * q_stride);
  if (extra_dqkv) residual_forward(dqkv_.data(), dqkv_.data(), extra_dqkv, (size_t)N * qkv_dim);
  const float* q = a.qkv.data();
  float* dq = dqkv_.data();
  if (shared) {
    const float* k = shared->qkv + att_dim;
    float* dk = shared->dqkv + att_dim;
    attention_backward(dq, dk, dk + kv_dim, datt_.data(), a.att.data(), a.lse.data(), q, k, k + kv_dim,
                       attention_shape(layout, *shared->layout, q_stride));
  } else {
    const float* k = q + att_dim;
    float* dk = dq + att_dim;
    attention_backward(dq, dk, dk + kv_dim, datt_.data(), a.att.data(), a.lse.data(), q, k, k + kv_dim,
                       attention_shape(layout, layout, q_stride));
    rope_backward(dk, layout.pos.data(), N, qkv_dim, c.n_kv_heads, rope_);
  }
  rope_backward(dq, layout.pos.data(), N, q_stride, c.n_heads, rope_);
  zero(dxn_, (size_t)N * d);
  linear_backward(dxn_.data(), G + w.wqkv, dqkv_.data(), a.xn1.data(), P + w.wqkv, N, d, q_stride);
  rmsnorm_backward(dx, G + w.attn_norm, dxn_.data(), x_in, P + w.attn_norm, a.rstd1.data(), N, d);
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T) {
  const ModelConfig& c = config_;
  check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
  check(T <= c.max_seq_len, "forward: sequence length " + std::to_string(T) + " exceeds the model's max_seq_len " +
                                std::to_string(c.max_seq_len) + "; use a shorter --seq_len or a larger max_seq_len");
  int N = B * T, d = c.d_model, V = c.vocab_size;
  for (int i = 0; i < N; i++)
    check(tokens[i] >= 0 && tokens[i] < V, "forward: token id " + std::to_string(tokens[i]) +
                                               " is outside the vocabulary [0, " + std::to_string(V) + ")");
  B_ = B;
  T_ = T;
  tokens_.assign(tokens, tokens + N);
  if (layout_.n_rows != N || layout_.n_seq() != B) layout_ = TokenLayout::dense(B, T);
  size_t n_apps = schedule_.size();
  residual_.resize(c.mor() ? 3 : n_apps + 1);  // MoR keeps its recursion steps' activations per step
  acts_.resize(n_apps);
  for (auto& r : residual_) ensure(r, (size_t)N * d);
  ensure(final_norm_, (size_t)N * d);
  ensure(final_rstd_, N);
  ensure(logits_, (size_t)N * V);

  const float* P = params.data();
  embedding_forward(residual_[0].data(), tokens, P + embed_offset_, N, d);
  double router_loss = 0;
  if (c.mor()) router_loss = mor_stack_forward(N);
  else layer_stack_forward(N);
  rmsnorm_forward(final_norm_.data(), final_rstd_.data(), stack_output(), P + norm_offset_, N, d, c.norm_eps);
  linear_forward(logits_.data(), final_norm_.data(), P + lm_head_offset_, N, d, V);
  regularizer_ = 0;
  if (!targets) {
    n_targets_ = 0;
    targets_.clear();
    return 0.0f;
  }
  regularizer_ = loop_regularizer(false) + (float)router_loss;
  targets_.assign(targets, targets + N);
  n_targets_ = 0;
  for (int i = 0; i < N; i++) {
    check(targets[i] < V, "forward: target id " + std::to_string(targets[i]) + " is outside the vocabulary");
    n_targets_ += targets[i] >= 0;
  }
  ensure(dlogits_, (size_t)N * V);
  ensure(losses_, N);
  float dloss = n_targets_ > 0 ? 1.0f / n_targets_ : 0.0f;
  double total = cross_entropy_forward_backward(losses_.data(), dlogits_.data(), logits_.data(), targets, N, V, dloss);
  cross_entropy_ = n_targets_ > 0 ? (float)(total / n_targets_) : 0.0f;
  return cross_entropy_ + regularizer_;
}

void Model::backward() {
  const ModelConfig& c = config_;
  check(!targets_.empty(), "backward: needs a forward with targets first");
  int N = B_ * T_, d = c.d_model, V = c.vocab_size;
  const float* P = params.data();
  float* G = grads.data();
  ensure(dx_, (size_t)N * d);
  ensure(dxn_, (size_t)N * d);
  zero(dx_, (size_t)N * d);
  zero(dxn_, (size_t)N * d);
  linear_backward(dxn_.data(), G + lm_head_offset_, dlogits_.data(), final_norm_.data(), P + lm_head_offset_, N, d, V);
  rmsnorm_backward(dx_.data(), G + norm_offset_, dxn_.data(), stack_output(), P + norm_offset_, final_rstd_.data(),
                   N, d);
  if (c.mor()) {
    mor_stack_backward(N);
  } else {
    layer_stack_backward(N);
    loop_regularizer(true);
  }
  embedding_backward(G + embed_offset_, dx_.data(), tokens_.data(), N, d, V);
}

// Every layer application in schedule order (shared weights reused), with input injection into the loop.
void Model::layer_stack_forward(int N) {
  for (size_t i = 0; i < schedule_.size(); i++) {
    const float* x = residual_[i].data();
    int slot = injection_slot(i);
    if (slot >= 0) {
      inject_forward(slot, x, residual_[config_.prelude].data(), N);
      x = injected_[slot].data();
    }
    layer_forward(schedule_[i], layout_, x, residual_[i + 1].data(), acts_[i]);
  }
}

void Model::layer_stack_backward(int N) {
  const ModelConfig& c = config_;
  size_t n = (size_t)N * c.d_model;
  bool injecting = c.input_injection != InputInjection::none;
  if (injecting) {
    ensure(dinput_, n);
    zero(dinput_, n);  // gradient of e, the looped block's first input
  }
  for (size_t i = schedule_.size(); i-- > 0;) {
    int slot = injection_slot(i);
    layer_backward(schedule_[i], layout_, slot >= 0 ? injected_[slot].data() : residual_[i].data(), acts_[i],
                   dx_.data());
    if (slot >= 0) inject_backward(slot, dx_.data(), dinput_.data(), N);
    if (injecting && i == (size_t)c.prelude) residual_forward(dx_.data(), dx_.data(), dinput_.data(), n);
  }
}

// MoR: [unique first layer] -> routed recursion steps over the shared block -> [unique last layer]
double Model::mor_stack_forward(int N) {
  const ModelConfig& c = config_;
  bool middle = c.sharing == Sharing::middle_cycle;
  if (middle) layer_forward(0, layout_, residual_[0].data(), residual_[1].data(), acts_[0]);
  const std::vector<float>& input = residual_[middle ? 1 : 0];
  mor_stream_.assign(input.begin(), input.begin() + (size_t)N * c.d_model);
  double router_loss = mor_forward(mor_stream_.data(), N);
  if (middle)
    layer_forward(c.n_unique_layers() - 1, layout_, mor_stream_.data(), residual_[2].data(), acts_[1]);
  return router_loss;
}

void Model::mor_stack_backward(int N) {
  const ModelConfig& c = config_;
  bool middle = c.sharing == Sharing::middle_cycle;
  if (middle) layer_backward(c.n_unique_layers() - 1, layout_, mor_stream_.data(), acts_[1], dx_.data());
  mor_backward(dx_.data(), N);
  if (middle) layer_backward(0, layout_, residual_[0].data(), acts_[0], dx_.data());
}

const float* Model::stack_output() const {
  const ModelConfig& c = config_;
  if (!c.mor()) return residual_[schedule_.size()].data();
  return c.sharing == Sharing::middle_cycle ? residual_[2].data() : mor_stream_.data();
}

// FLOPs of one layer application on `rows` query rows scoring `pairs` (query, key) pairs. With recursive KV
// sharing the layer projects only queries (its keys/values come from the first recursion).
static double layer_flops(const ModelConfig& c, double rows, double pairs, bool kv_shared) {
  double d = c.d_model, F = c.d_ff, att_dim = c.n_heads * c.head_dim();
  double projected = kv_shared ? att_dim : c.qkv_dim();
  return 2.0 * rows * (d * projected + att_dim * d + d * 2 * F + F * d) + 4.0 * att_dim * pairs;
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

double Model::last_forward_flops() const {
  const ModelConfig& c = config_;
  double N = (double)B_ * T_;
  double flops = 2.0 * N * c.d_model * c.vocab_size;  // head
  double full_layer = layer_flops(c, N, causal_pairs(layout_), false);
  if (!c.mor()) return flops + c.n_layers * full_layer;
  int unique_outer = c.sharing == Sharing::middle_cycle ? 2 : 0;
  flops += unique_outer * full_layer;
  for (size_t r = 0; r < mor_steps_.size(); r++) {
    const MorStep& step = mor_steps_[r];
    bool shared = c.mor_kv_sharing && r > 0;
    double pairs = shared ? shared_pairs(step.layout, mor_steps_[0].layout) : causal_pairs(step.layout);
    flops += c.mor_block_size() * layer_flops(c, (double)step.selected.size(), pairs, shared);
    flops += 2.0 * (double)std::max(step.candidates.size(), step.selected.size()) * c.d_model;  // router
  }
  return flops;
}

size_t Model::activation_bytes() const {
  auto acts_bytes = [](const LayerActivations& a) {
    return a.xn1.size() + a.rstd1.size() + a.qkv.size() + a.att.size() + a.lse.size() + a.mid.size() + a.xn2.size() +
           a.rstd2.size() + a.gate_up.size() + a.hidden.size();
  };
  size_t floats = 0;
  for (const auto& r : residual_) floats += r.size();
  for (const auto& a : acts_) floats += acts_bytes(a);
  for (const MorStep& step : mor_steps_) {
    floats += step.h_candidates.size() + step.z.size() + step.gate.size();
    for (const auto& r : step.residual) floats += r.size();
    for (const auto& a : step.acts) floats += acts_bytes(a);
  }
  floats += mor_stream_.size() + mor_h1_.size() + final_norm_.size() + logits_.size() + dlogits_.size();
  return floats * sizeof(float);
}

double Model::forward_flops_per_token(int T) const {
  const ModelConfig& c = config_;
  double head = 2.0 * c.d_model * c.vocab_size, full_layer = layer_flops(c, 1, (T + 1) / 2.0, false);
  if (!c.mor()) return head + c.n_layers * full_layer;
  // MoR: the expected active fraction f_r per step. Expert choice keeps max(1, floor(c_r·T)) tokens per
  // sequence; token choice is counted at the balanced load its balancing aims for (the same (N_r - r)/N_r).
  // A fraction f of a sequence scores f·(f·T + 1)/2 causal pairs per token, or f·(T + 1)/2 with KV sharing
  // (queries against every key of the first recursion).
  double flops = head + (c.sharing == Sharing::middle_cycle ? 2 : 0) * full_layer, previous = 1;
  for (int r = 0; r < c.n_recursions; r++) {
    double f = c.mor_routing == MorRouting::expert ? std::max(1.0, std::floor((double)c.capacity(r) * T)) / T
                                                   : (double)c.capacity(r);
    bool shared = c.mor_kv_sharing && r > 0;
    double pairs = shared ? f * (T + 1) / 2.0 : f * (f * T + 1) / 2.0;
    flops += c.mor_block_size() * layer_flops(c, f, pairs, shared);
    flops += 2.0 * (c.mor_routing == MorRouting::expert ? previous : f) * c.d_model;  // router
    previous = f;
  }
  return flops;
}

}  // namespace recur
