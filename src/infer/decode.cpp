// Incremental decoding with KV caches: the new tokens of several sequences run through the model together
// (one matrix product per weight for all of them), each attending to the keys/values its own sequence cached
// at every layer application. A chunk of many tokens is a prefill; one token is a decode step.
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

void Model::cached_layer_forward(int u, size_t app, const TokenLayout& layout, const std::vector<DecodeChunk>& chunks,
                                 const float* x_in, float* x_out, LayerActivations& a) {
  const ModelConfig& c = config_;
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim(), qkv_dim = c.qkv_dim();
  attention_inputs(u, layout, x_in, a, false);
  for (size_t s = 0; s < chunks.size(); s++) {
    int r0 = layout.seq_start[s], n = layout.seq_start[s + 1] - r0;
    std::vector<float>& kv = chunks[s].cache->kv[app];
    std::vector<int32_t>& pos = chunks[s].cache->pos[app];
    if (kv.capacity() == 0) kv.reserve((size_t)c.max_seq_len * 2 * kv_dim);
    for (int i = r0; i < r0 + n; i++) {  // k and v are adjacent in the qkv row
      const float* k = a.qkv.data() + (size_t)i * qkv_dim + att_dim;
      kv.insert(kv.end(), k, k + 2 * kv_dim);
      pos.push_back(layout.pos[i]);
    }
    int32_t q_start[2] = {0, n}, k_start[2] = {0, (int32_t)pos.size()};
    AttentionShape shape;
    shape.n_seq = 1;
    shape.q_start = q_start, shape.k_start = k_start;
    shape.q_pos = layout.pos.data() + r0, shape.k_pos = pos.data();
    shape.n_heads = c.n_heads, shape.n_kv_heads = c.n_kv_heads, shape.head_dim = c.head_dim();
    shape.q_stride = qkv_dim, shape.kv_stride = 2 * kv_dim, shape.out_stride = att_dim;
    attention_forward(a.att.data() + (size_t)r0 * att_dim, a.lse.data() + (size_t)r0 * c.n_heads,
                      a.qkv.data() + (size_t)r0 * qkv_dim, kv.data(), kv.data() + kv_dim, shape);
  }
  layer_output(u, layout.n_rows, x_in, x_out, a);
}

void Model::decode_forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  check(!c.mor(), "decode: MoR models do not decode with a KV cache yet (causal routing is next); use forward()");
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
  std::vector<float> rstd(N);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), P + norm_offset_, N, d, c.norm_eps);
  logits.resize((size_t)N * V);
  linear_forward(logits.data(), y.data(), P + lm_head_offset_, N, d, V);
  for (const DecodeChunk& chunk : chunks) chunk.cache->length += chunk.n;
}

}  // namespace recur
