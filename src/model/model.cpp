// The model's parameter table (Llama/HF tensor names, one flat buffer), initialization, the layer schedule,
// and the expected FLOPs per token.
#include "recur/model.h"

#include <algorithm>
#include <cmath>

#include "core/memory_limit.h"
#include "recur/error.h"
#include "recur/layer.h"
#include "recur/rng.h"

namespace recur {

namespace {

// Appends tensors to the table, each at the next offset of the flat buffer.
struct TableBuilder {
  std::vector<ParamInfo>& table;
  size_t offset = 0;
  size_t add(const std::string& name, std::vector<int64_t> shape, bool decay) {
    ParamInfo p;
    p.name = name;
    p.shape = shape;
    p.offset = offset;
    p.numel = 1;
    for (int64_t s : shape) p.numel *= (size_t)s;
    p.decay = decay;
    offset += p.numel;
    table.push_back(p);
    return p.offset;
  }
};

LayerOffsets add_layer(TableBuilder& t, const ModelConfig& c, int i) {
  int64_t d = c.d_model, hd = c.head_dim(), F = c.d_ff;
  std::string pre = "model.layers." + std::to_string(i) + ".";
  LayerOffsets l;
  l.attn_norm = t.add(pre + "input_layernorm.weight", {d}, false);
  l.wqkv = t.add(pre + "self_attn.q_proj.weight", {c.n_heads * hd, d}, true);
  t.add(pre + "self_attn.k_proj.weight", {c.n_kv_heads * hd, d}, true);
  t.add(pre + "self_attn.v_proj.weight", {c.n_kv_heads * hd, d}, true);
  l.wo = t.add(pre + "self_attn.o_proj.weight", {d, c.n_heads * hd}, true);
  l.ffn_norm = t.add(pre + "post_attention_layernorm.weight", {d}, false);
  l.w_gate_up = t.add(pre + "mlp.gate_proj.weight", {F, d}, true);
  t.add(pre + "mlp.up_proj.weight", {F, d}, true);
  l.w_down = t.add(pre + "mlp.down_proj.weight", {d, F}, true);
  return l;
}

void add_routers(TableBuilder& t, const ModelConfig& c, WeightOffsets& o) {
  int64_t d = c.d_model;
  if (c.mor_routing == MorRouting::expert)
    for (int r = 0; r < c.n_recursions; r++) {
      std::string pre = "model.mor_router." + std::to_string(r);
      if (c.mor_router == MorRouter::linear) {
        o.expert_router.push_back(t.add(pre + ".weight", {1, d}, true));
        o.expert_router_fc2.push_back(0);
      } else {
        o.expert_router.push_back(t.add(pre + ".fc1.weight", {2 * d, d}, true));
        o.expert_router_fc2.push_back(t.add(pre + ".fc2.weight", {1, 2 * d}, true));
      }
    }
  if (c.mor_aux_router)
    for (int r = 0; r < c.n_recursions; r++)
      o.aux_router.push_back(t.add("model.mor_aux_router." + std::to_string(r) + ".weight", {1, d}, true));
  if (c.mor_routing == MorRouting::token) o.token_router = t.add("model.mor_router.weight", {c.n_recursions, d}, true);
}

MorStack make_mor_stack(const ModelConfig& c) {
  MorStack s;
  if (!c.mor()) return s;
  s.block_begin = c.mor_block_begin();
  s.block_size = c.mor_block_size();
  s.n_recursions = c.n_recursions;
  if (c.sharing == Sharing::middle_cycle) s.prelude = {0}, s.coda = {c.n_unique_layers() - 1};
  return s;
}

}  // namespace

// The config, valid and with a RoPE table that fits in memory: rope_ is built from it before the constructor's body.
static const ModelConfig& checked(const ModelConfig& c) {
  c.validate();
  check_fits_memory(8.0 * c.max_seq_len * c.head_dim(), "model: the RoPE tables (max_seq_len x head_dim)",
                    "lower max_seq_len");
  return c;
}

Model::Model(const ModelConfig& config, ModelInit init)
    : config_(checked(config)), rope_(config.head_dim(), config.max_seq_len, config.rope_theta) {
  const ModelConfig& c = config_;
  TableBuilder t{table_};
  offsets_.embed = t.add("model.embed_tokens.weight", {c.vocab_size, c.d_model}, true);
  for (int i = 0; i < c.n_unique_layers(); i++) offsets_.layers.push_back(add_layer(t, c, i));
  if (c.input_injection == InputInjection::concat)
    offsets_.adapter = t.add("model.loop_adapter.weight", {c.d_model, 2 * c.d_model}, true);
  add_routers(t, c, offsets_);
  offsets_.final_norm = t.add("model.norm.weight", {c.d_model}, false);
  offsets_.lm_head = c.tied_embeddings ? offsets_.embed : t.add("lm_head.weight", {c.vocab_size, c.d_model}, true);
  check_fits_memory(4.0 * (double)t.offset, "model: the " + std::to_string(t.offset) + " parameters",
                    "use a smaller d_model, d_ff, vocab_size or fewer unique layers");
  params.assign(t.offset, 0.0f);
  if (c.mor()) mor_bias.assign(c.n_recursions, 0.0f);
  schedule_ = c.layer_schedule();
  mor_stack_ = make_mor_stack(c);
  if (init == ModelInit::random) init_weights(0);
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
    float* w = params.data() + offsets_.adapter;
    std::fill(w, w + (size_t)d * 2 * d, 0.0f);
    for (int i = 0; i < d; i++) w[(size_t)i * 2 * d + i] = 1.0f;
  }
}

Precision precision_from_name(const std::string& name) {
  check(name == "f32" || name == "bf16", "precision \"", name, "\" is unknown; use f32 or bf16");
  return name == "bf16" ? Precision::bf16 : Precision::f32;
}

const char* precision_name(Precision precision) { return precision == Precision::bf16 ? "bf16" : "f32"; }

void Model::set_precision(Precision precision) {
  if (precision == Precision::f32) {
    bf16_ = {};
    return;
  }
  if (bf16_.size() != params.size()) {
    check_fits_memory(2.0 * (double)params.size(), "model: the bf16 copy of the weights", "use --precision f32");
    bf16_.resize(params.size());
  }
  kernels::bf16_from_f32(bf16_.data(), params.data(), params.size());
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

double Model::forward_flops_per_token(int T) const {
  const ModelConfig& c = config_;
  double head = 2.0 * c.d_model * c.vocab_size, full_layer = layer_flops(c, 1, (T + 1) / 2.0, false);
  if (!c.mor()) return head + c.n_layers * full_layer;
  // MoR: the expected active fraction f_r per step. Expert choice keeps max(1, floor(c_r·T)) tokens per
  // sequence; token choice is counted at the balanced load its balancing aims for (the same (N_r - r)/N_r).
  // A fraction f of a sequence scores f·(f·T + 1)/2 causal pairs per token, or f·(T + 1)/2 with KV sharing
  // (queries against every key of the first recursion).
  const MorStack& s = mor_stack_;
  double flops = head + (double)(s.prelude.size() + s.coda.size()) * full_layer, previous = 1;
  for (int r = 0; r < c.n_recursions; r++) {
    double f = c.mor_routing == MorRouting::expert ? std::max(1.0, std::floor((double)c.capacity(r) * T)) / T
                                                   : (double)c.capacity(r);
    bool shared = c.mor_kv_sharing && r > 0;
    double pairs = shared ? f * (T + 1) / 2.0 : f * (f * T + 1) / 2.0;
    flops += s.block_size * layer_flops(c, f, pairs, shared);
    flops += 2.0 * (c.mor_routing == MorRouting::expert ? previous : f) * c.d_model;  // router
    previous = f;
  }
  return flops;
}

}  // namespace recur
