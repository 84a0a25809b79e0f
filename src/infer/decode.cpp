// Incremental decoding with KV caches: the new tokens of several sequences run through the model together
// (one matrix product per weight for all of them), each attending to the keys/values its own sequence cached
// at every layer application. A chunk of many tokens is a prefill; one token is a decode step. MoR models
// route causally: a token's recursion steps are decided from its own state, and each step's cache holds only
// the tokens that ran it (recursion-wise caching) unless the steps share the first one's (KV sharing). The MoR
// stages (enter, advance, leave) are public so that a server can batch tokens at different steps together.
#include <algorithm>
#include <cstring>

#include "recur/error.h"
#include "recur/model.h"

namespace recur {

using namespace kernels;

void KVCache::clear() {
  kv.clear();
  pos.clear();
  length = 0;
}

size_t KVCache::bytes() const {
  size_t total = 0;
  for (const auto& k : kv) total += k.size() * sizeof(float);
  for (const auto& p : pos) total += p.size() * sizeof(int32_t);
  return total;
}

void Model::cached_layer_forward(int u, const TokenLayout& layout, const std::vector<CacheSlot>& slots,
                                 const float* x_in, float* x_out, LayerActivations& a) {
  const ModelConfig& c = config_;
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim();
  bool queries_only = std::all_of(slots.begin(), slots.end(), [](const CacheSlot& s) { return s.shared_site >= 0; });
  int q_stride = queries_only ? att_dim : c.qkv_dim();
  attention_inputs(u, layout, x_in, a, queries_only);
  for (size_t s = 0; s < slots.size(); s++) {
    int r0 = layout.seq_start[s], n = layout.seq_start[s + 1] - r0;
    if (n == 0) continue;
    bool shared = slots[s].shared_site >= 0;
    size_t site = shared ? (size_t)slots[s].shared_site : slots[s].site;
    std::vector<float>& kv = slots[s].cache->kv[site];  // decode_layout sized the caches
    std::vector<int32_t>& pos = slots[s].cache->pos[site];
    if (!shared) {
      if (kv.capacity() == 0) kv.reserve((size_t)c.max_seq_len * 2 * kv_dim);
      for (int i = r0; i < r0 + n; i++) {  // k and v are adjacent in the qkv row
        const float* k = a.qkv.data() + (size_t)i * q_stride + att_dim;
        kv.insert(kv.end(), k, k + 2 * kv_dim);
        pos.push_back(layout.pos[i]);
      }
    }
    int32_t q_start[2] = {0, n}, k_start[2] = {0, (int32_t)pos.size()};
    AttentionShape shape;
    shape.n_seq = 1;
    shape.q_start = q_start, shape.k_start = k_start;
    shape.q_pos = layout.pos.data() + r0, shape.k_pos = pos.data();
    shape.n_heads = c.n_heads, shape.n_kv_heads = c.n_kv_heads, shape.head_dim = c.head_dim();
    shape.q_stride = q_stride, shape.kv_stride = 2 * kv_dim, shape.out_stride = att_dim;
    attention_forward(a.att.data() + (size_t)r0 * att_dim, a.lse.data() + (size_t)r0 * c.n_heads,
                      a.qkv.data() + (size_t)r0 * q_stride, kv.data(), kv.data() + kv_dim, shape);
  }
  layer_output(u, layout.n_rows, x_in, x_out, a);
}

TokenLayout Model::decode_layout(const std::vector<DecodeChunk>& chunks, std::vector<int32_t>& tokens) {
  const ModelConfig& c = config_;
  check(!chunks.empty(), "decode: no sequences given");
  size_t n_apps = schedule_.size();
  for (const DecodeChunk& chunk : chunks) {
    const KVCache& cache = *chunk.cache;
    check(chunk.n > 0, "decode: a sequence has no new tokens");
    check(cache.length + chunk.n <= c.max_seq_len,
          "decode: a sequence would reach position " + std::to_string(cache.length + chunk.n - 1) +
              " but the model's max_seq_len is " + std::to_string(c.max_seq_len) +
              "; clear its cache and prefill its last tokens again");
    check(cache.kv.empty() || cache.kv.size() == n_apps,
          "decode: the cache was filled at another loop count; clear it and prefill again");
    for (int i = 0; i < chunk.n; i++)
      check(chunk.tokens[i] >= 0 && chunk.tokens[i] < c.vocab_size,
            "decode: token id " + std::to_string(chunk.tokens[i]) + " is outside the vocabulary [0, " +
                std::to_string(c.vocab_size) + ")");
  }
  TokenLayout layout;
  layout.seq_start = {0};
  tokens.clear();
  for (const DecodeChunk& chunk : chunks) {
    KVCache& cache = *chunk.cache;
    cache.kv.resize(n_apps);
    cache.pos.resize(n_apps);
    for (int i = 0; i < chunk.n; i++) {
      tokens.push_back(chunk.tokens[i]);
      layout.pos.push_back(cache.length + i);
    }
    cache.length += chunk.n;
    layout.seq_start.push_back((int32_t)tokens.size());
  }
  layout.n_rows = (int)tokens.size();
  return layout;
}

void Model::final_logits(const float* x, int N, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  int d = c.d_model, V = c.vocab_size;
  const float* P = params.data();
  std::vector<float> xn((size_t)N * d), rstd(N);
  rmsnorm_forward(xn.data(), rstd.data(), x, P + norm_offset_, N, d, c.norm_eps);
  logits.resize((size_t)N * V);
  linear_forward(logits.data(), xn.data(), P + lm_head_offset_, N, d, V);
}

void Model::decode_forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits,
                           int64_t* block_passes, int64_t* block_rows) {
  const ModelConfig& c = config_;
  if (c.mor()) {
    std::vector<RecursionToken> tokens = mor_enter(chunks);
    std::vector<RecursionToken*> active, exited, in_order;
    for (RecursionToken& t : tokens) active.push_back(&t), in_order.push_back(&t);
    while (!active.empty()) {
      int rows = mor_advance(active, exited);
      if (block_passes) ++*block_passes;
      if (block_rows) *block_rows += rows;
    }
    mor_leave(in_order, logits);
    return;
  }
  std::vector<int32_t> tokens;
  TokenLayout layout = decode_layout(chunks, tokens);
  int N = layout.n_rows, d = c.d_model;
  std::vector<float> x((size_t)N * d), y((size_t)N * d), loop_input;
  embedding_forward(x.data(), tokens.data(), params.data() + embed_offset_, N, d);
  LayerActivations a;
  std::vector<CacheSlot> slots(chunks.size());
  for (size_t i = 0; i < schedule_.size(); i++) {
    if (c.input_injection != InputInjection::none && i == (size_t)c.prelude) loop_input = x;
    const float* in = x.data();
    int slot = injection_slot(i);
    if (slot >= 0) {
      inject_forward(slot, x.data(), loop_input.data(), N);
      in = injected_[slot].data();
    }
    for (size_t s = 0; s < chunks.size(); s++) slots[s] = {chunks[s].cache, i};
    cached_layer_forward(schedule_[i], layout, slots, in, y.data(), a);
    std::swap(x, y);
  }
  final_logits(x.data(), N, logits);
}

size_t Model::mor_first_site() const { return config_.sharing == Sharing::middle_cycle ? 1 : 0; }

std::vector<RecursionToken> Model::mor_enter(const std::vector<DecodeChunk>& chunks) {
  const ModelConfig& c = config_;
  check(c.mor(), "decode: mor_enter needs a MoR model");
  std::vector<int32_t> ids;
  TokenLayout layout = decode_layout(chunks, ids);
  int N = layout.n_rows, d = c.d_model, Nr = c.n_recursions;
  std::vector<float> x((size_t)N * d);
  embedding_forward(x.data(), ids.data(), params.data() + embed_offset_, N, d);
  if (c.sharing == Sharing::middle_cycle) {
    std::vector<float> y((size_t)N * d);
    std::vector<CacheSlot> slots;
    for (const DecodeChunk& chunk : chunks) slots.push_back({chunk.cache, 0});
    LayerActivations a;
    cached_layer_forward(0, layout, slots, x.data(), y.data(), a);
    std::swap(x, y);
  }
  if (c.mor_routing == MorRouting::token && mor_bias.size() != (size_t)Nr) mor_bias.assign(Nr, 0.0f);
  std::vector<RecursionToken> tokens(N);
  for (size_t s = 0; s < chunks.size(); s++)
    for (int i = layout.seq_start[s]; i < layout.seq_start[s + 1]; i++) {
      RecursionToken& t = tokens[i];
      t.cache = chunks[s].cache, t.seq = (int)s, t.pos = layout.pos[i];
      t.h.assign(x.begin() + (size_t)i * d, x.begin() + (size_t)(i + 1) * d);
      t.depth = Nr - 1;
      if (c.mor_routing == MorRouting::token) {
        t.h1 = t.h;
        t.probs.resize(Nr);
        double lse;
        t.depth = token_choice_route(t.h.data(), t.probs.data(), lse);
      }
    }
  return tokens;
}

// Consecutive tokens of the same (seq, key) form one layout sequence; returns the layout and each group's first token.
static TokenLayout group_tokens(const std::vector<RecursionToken*>& tokens, bool by_step, std::vector<size_t>& first) {
  TokenLayout layout;
  layout.seq_start = {0};
  first.clear();
  for (size_t i = 0; i < tokens.size(); i++) {
    bool same = i > 0 && tokens[i]->seq == tokens[i - 1]->seq && (!by_step || tokens[i]->step == tokens[i - 1]->step);
    if (!same) {
      if (i > 0) layout.seq_start.push_back((int32_t)i);
      first.push_back(i);
    }
    layout.pos.push_back(tokens[i]->pos);
  }
  if (!tokens.empty()) layout.seq_start.push_back((int32_t)tokens.size());
  layout.n_rows = (int)tokens.size();
  return layout;
}

// Expert choice, the causal rule: each token continues at its current step iff the step's BCE-trained logit
// is >= 0 (every token at a capacity-1 step); the others exit. Continuing tokens carry their gate.
void Model::expert_route(std::vector<RecursionToken*>& tokens, std::vector<RecursionToken*>& exited) {
  const ModelConfig& c = config_;
  int d = c.d_model;
  std::vector<RecursionToken*> continuing;
  for (int r = 0; r < c.n_recursions; r++) {
    std::vector<RecursionToken*> at_r;
    for (RecursionToken* t : tokens)
      if (t->step == r) at_r.push_back(t);
    if (at_r.empty()) continue;
    int n = (int)at_r.size();
    MorStep step;
    step.candidates.resize(n);
    step.h_candidates.resize((size_t)n * d);
    for (int i = 0; i < n; i++) std::memcpy(step.h_candidates.data() + (size_t)i * d, at_r[i]->h.data(), d * sizeof(float));
    router_forward(r, step);
    const std::vector<float>& z_bce = c.mor_aux_router ? step.z_aux : step.z;
    for (int i = 0; i < n; i++) {
      at_r[i]->routed = true;
      at_r[i]->gate = expert_gate(step.z[i]);
      (c.capacity(r) >= 1.0f || z_bce[i] >= 0 ? continuing : exited).push_back(at_r[i]);
    }
  }
  tokens = continuing;
}

int Model::mor_advance(std::vector<RecursionToken*>& active, std::vector<RecursionToken*>& exited) {
  const ModelConfig& c = config_;
  int d = c.d_model, Nr = c.n_recursions, block = c.mor_block_size();
  bool expert = c.mor_routing == MorRouting::expert;
  std::vector<RecursionToken*> run, unrouted;
  for (RecursionToken* t : active) (expert && !t->routed ? unrouted : run).push_back(t);
  if (!unrouted.empty()) {
    expert_route(unrouted, exited);
    run.insert(run.end(), unrouted.begin(), unrouted.end());
  }
  std::stable_sort(run.begin(), run.end(), [](const RecursionToken* a, const RecursionToken* b) {
    return a->seq != b->seq ? a->seq < b->seq : a->step != b->step ? a->step < b->step : a->pos < b->pos;
  });
  int n = (int)run.size();
  std::vector<size_t> first;
  TokenLayout layout = group_tokens(run, true, first);
  std::vector<float> x((size_t)n * d), y((size_t)n * d);
  for (int i = 0; i < n; i++) std::memcpy(x.data() + (size_t)i * d, run[i]->h.data(), d * sizeof(float));
  LayerActivations a;
  std::vector<CacheSlot> slots(first.size());
  size_t base = mor_first_site();
  for (int j = 0; j < block && n > 0; j++) {
    for (size_t g = 0; g < first.size(); g++) {
      const RecursionToken* t = run[first[g]];
      bool share = c.mor_kv_sharing && t->step > 0;
      slots[g] = {t->cache, base + (size_t)t->step * block + j, share ? (int)(base + j) : -1};
    }
    cached_layer_forward(c.mor_block_begin() + j, layout, slots, x.data(), y.data(), a);
    std::swap(x, y);
  }
  std::vector<RecursionToken*> still;
  for (int i = 0; i < n; i++) {
    RecursionToken* t = run[i];
    const float* out = x.data() + (size_t)i * d;
    bool last;
    if (c.mor_routing == MorRouting::expert) {  // h <- h + g·Block(h)
      for (int k = 0; k < d; k++) t->h[k] += t->gate * out[k];
      last = t->step + 1 == Nr;
    } else if (t->step == t->depth) {  // token choice, last step: h = h¹ + p·Block(h); earlier: h = Block(h)
      float p = t->probs[t->step];
      for (int k = 0; k < d; k++) t->h[k] = t->h1[k] + p * out[k];
      last = true;
    } else {
      std::memcpy(t->h.data(), out, d * sizeof(float));
      last = false;
    }
    t->step++;
    t->routed = false;
    (last ? exited : still).push_back(t);
  }
  // route the next step at once, so that a token that stops leaves now instead of after the next pass
  if (expert) expert_route(still, exited);
  active = still;
  return n;
}

void Model::mor_leave(const std::vector<RecursionToken*>& tokens, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  int n = (int)tokens.size(), d = c.d_model;
  std::vector<float> x((size_t)n * d);
  for (int i = 0; i < n; i++) std::memcpy(x.data() + (size_t)i * d, tokens[i]->h.data(), d * sizeof(float));
  if (c.sharing == Sharing::middle_cycle) {
    std::vector<size_t> first;
    TokenLayout layout = group_tokens(tokens, false, first);
    std::vector<CacheSlot> slots;
    for (size_t g : first) slots.push_back({tokens[g]->cache, schedule_.size() - 1});
    std::vector<float> y((size_t)n * d);
    LayerActivations a;
    cached_layer_forward(c.n_unique_layers() - 1, layout, slots, x.data(), y.data(), a);
    std::swap(x, y);
  }
  final_logits(x.data(), n, logits);
}

}  // namespace recur
