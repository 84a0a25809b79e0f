// Incremental decoding with KV caches: the new tokens of several sequences run through the model together
// (one matrix product per weight for all of them), each attending to the keys/values its own sequence cached
// at every layer application. A chunk of many tokens is a prefill; one token is a decode step. MoR models
// route causally: a token's recursion steps are decided from its own state, and each step's cache holds only
// the tokens that ran it (recursion-wise caching) unless the steps share the first one's (KV sharing).
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

void Model::cached_layer_forward(int u, size_t site, const TokenLayout& layout, const std::vector<DecodeChunk>& chunks,
                                 const float* x_in, float* x_out, LayerActivations& a, int shared_site) {
  const ModelConfig& c = config_;
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim();
  bool shared = shared_site >= 0;
  int q_stride = shared ? att_dim : c.qkv_dim();
  attention_inputs(u, layout, x_in, a, shared);
  for (size_t s = 0; s < chunks.size(); s++) {
    int r0 = layout.seq_start[s], n = layout.seq_start[s + 1] - r0;
    if (n == 0) continue;
    std::vector<float>& kv = chunks[s].cache->kv[shared ? shared_site : site];
    std::vector<int32_t>& pos = chunks[s].cache->pos[shared ? shared_site : site];
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

// The rows `rows` (ascending) of `layout` as their own layout: per chunk, its selected rows and positions.
static TokenLayout select_rows(const TokenLayout& layout, const std::vector<int32_t>& rows) {
  TokenLayout sub;
  sub.n_rows = (int)rows.size();
  sub.seq_start.assign(layout.seq_start.size(), 0);
  size_t s = 0;
  for (int32_t row : rows) {
    while (row >= layout.seq_start[s + 1]) s++;
    sub.seq_start[s + 1]++;
    sub.pos.push_back(layout.pos[row]);
  }
  for (size_t i = 1; i < sub.seq_start.size(); i++) sub.seq_start[i] += sub.seq_start[i - 1];
  return sub;
}

// The recursion steps of SPEC §3 for decoding: expert choice by the causal rule (a token continues iff its
// BCE-trained logit >= 0, or always at a capacity-1 step), token choice by its router. Each step runs the
// block on its tokens only, with the caches of sites first_site + r·block + j.
void Model::mor_decode(float* stream, const TokenLayout& layout, const std::vector<DecodeChunk>& chunks,
                       size_t first_site) {
  const ModelConfig& c = config_;
  int d = c.d_model, Nr = c.n_recursions, block = c.mor_block_size(), N = layout.n_rows;
  bool expert = c.mor_routing == MorRouting::expert;
  std::vector<float> probs((size_t)N * Nr), h1;
  std::vector<int> depth(N, Nr - 1);
  if (!expert) {
    if (mor_bias.size() != (size_t)Nr) mor_bias.assign(Nr, 0.0f);
    h1.assign(stream, stream + (size_t)N * d);
    for (int t = 0; t < N; t++) {
      double lse;
      depth[t] = token_choice_route(stream + (size_t)t * d, probs.data() + (size_t)t * Nr, lse);
    }
  }
  std::vector<int32_t> active(N);
  for (int t = 0; t < N; t++) active[t] = t;
  LayerActivations a;
  for (int r = 0; r < Nr && !active.empty(); r++) {
    MorStep step;
    std::vector<float> gate;
    if (expert) {
      step.candidates = active;
      int n_cand = (int)active.size();
      step.h_candidates.resize((size_t)n_cand * d);
      gather_rows(step.h_candidates.data(), stream, active.data(), n_cand, d);
      router_forward(r, step);
      std::vector<float> z_bce = step.z;
      if (c.mor_aux_router)
        linear_forward(z_bce.data(), step.h_candidates.data(), params.data() + aux_router_offsets_[r], n_cand, d, 1);
      active.clear();
      for (int i = 0; i < n_cand; i++)
        if (c.capacity(r) >= 1.0f || z_bce[i] >= 0) {
          active.push_back(step.candidates[i]);
          gate.push_back(expert_gate(step.z[i]));
        }
    } else {
      active.clear();
      for (int t = 0; t < N; t++)
        if (depth[t] >= r) active.push_back(t);
    }
    int n = (int)active.size();
    if (n == 0) break;
    TokenLayout sub = select_rows(layout, active);
    std::vector<float> x((size_t)n * d), y((size_t)n * d);
    gather_rows(x.data(), stream, active.data(), n, d);
    for (int j = 0; j < block; j++) {
      bool share = c.mor_kv_sharing && r > 0;
      cached_layer_forward(c.mor_block_begin() + j, first_site + (size_t)r * block + j, sub, chunks, x.data(),
                           y.data(), a, share ? (int)(first_site + j) : -1);
      std::swap(x, y);
    }
    if (expert) {
      scatter_add_rows(stream, x.data(), gate.data(), active.data(), n, d);
      continue;
    }
    for (int i = 0; i < n; i++) {  // last step: h = h¹ + p·Block(h); earlier steps: h = Block(h)
      int t = active[i];
      float* h = stream + (size_t)t * d;
      if (depth[t] == r) {
        float p = probs[(size_t)t * Nr + r];
        for (int k = 0; k < d; k++) h[k] = h1[(size_t)t * d + k] + p * x[(size_t)i * d + k];
      } else {
        std::memcpy(h, x.data() + (size_t)i * d, sizeof(float) * d);
      }
    }
  }
}

void Model::decode_forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  check(!chunks.empty(), "decode: no sequences given");
  int d = c.d_model, V = c.vocab_size;
  size_t n_apps = schedule_.size();
  TokenLayout layout;
  layout.seq_start = {0};
  std::vector<int32_t> tokens;
  for (const DecodeChunk& chunk : chunks) {
    KVCache& cache = *chunk.cache;
    check(chunk.n > 0, "decode: a sequence has no new tokens");
    check(cache.length + chunk.n <= c.max_seq_len,
          "decode: a sequence would reach position " + std::to_string(cache.length + chunk.n - 1) +
              " but the model's max_seq_len is " + std::to_string(c.max_seq_len) +
              "; clear its cache and prefill its last tokens again");
    check(cache.kv.empty() || cache.kv.size() == n_apps,
          "decode: the cache was filled at another loop count; clear it and prefill again");
    cache.kv.resize(n_apps);
    cache.pos.resize(n_apps);
    for (int i = 0; i < chunk.n; i++) {
      check(chunk.tokens[i] >= 0 && chunk.tokens[i] < V, "decode: token id " + std::to_string(chunk.tokens[i]) +
                                                             " is outside the vocabulary [0, " + std::to_string(V) + ")");
      tokens.push_back(chunk.tokens[i]);
      layout.pos.push_back(cache.length + i);
    }
    layout.seq_start.push_back((int32_t)tokens.size());
  }
  int N = layout.n_rows = (int)tokens.size();
  const float* P = params.data();
  std::vector<float> x((size_t)N * d), y((size_t)N * d), loop_input;
  embedding_forward(x.data(), tokens.data(), P + embed_offset_, N, d);
  LayerActivations a;
  if (c.mor()) {  // [unique first layer] -> routed recursion steps -> [unique last layer]
    bool middle = c.sharing == Sharing::middle_cycle;
    if (middle) {
      cached_layer_forward(0, 0, layout, chunks, x.data(), y.data(), a);
      std::swap(x, y);
    }
    mor_decode(x.data(), layout, chunks, middle ? 1 : 0);
    if (middle) {
      cached_layer_forward(c.n_unique_layers() - 1, n_apps - 1, layout, chunks, x.data(), y.data(), a);
      std::swap(x, y);
    }
  } else {
    for (size_t i = 0; i < n_apps; i++) {
      if (c.input_injection != InputInjection::none && i == (size_t)c.prelude) loop_input = x;
      const float* in = x.data();
      int slot = injection_slot(i);
      if (slot >= 0) {
        inject_forward(slot, x.data(), loop_input.data(), N);
        in = injected_[slot].data();
      }
      cached_layer_forward(schedule_[i], i, layout, chunks, in, y.data(), a);
      std::swap(x, y);
    }
  }
  std::vector<float> rstd(N);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), P + norm_offset_, N, d, c.norm_eps);
  logits.resize((size_t)N * V);
  linear_forward(logits.data(), y.data(), P + lm_head_offset_, N, d, V);
  for (const DecodeChunk& chunk : chunks) chunk.cache->length += chunk.n;
}

}  // namespace recur
