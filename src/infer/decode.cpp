// Incremental decoding with KV caches (see recur/decode.h): the cached layer (attention over each sequence's
// own cache), the chunk layout, and the dense forward over every layer application. The MoR stages are in
// mor_decode.cpp.
#include "recur/decode.h"

#include <algorithm>
#include <cstring>

#include "recur/error.h"

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

// Appends rows r0..r0+n of a.qkv's keys/values (adjacent in each row) to a cache site.
static void append_kv(const LayerActivations& a, const TokenLayout& layout, int r0, int n, int q_stride, int att_dim,
                      int kv_dim, int max_seq_len, std::vector<float>& kv, std::vector<int32_t>& pos) {
  if (kv.capacity() == 0) kv.reserve((size_t)max_seq_len * 2 * kv_dim), pos.reserve(max_seq_len);
  for (int i = r0; i < r0 + n; i++) {
    const float* k = a.qkv.data() + (size_t)i * q_stride + att_dim;
    kv.insert(kv.end(), k, k + 2 * kv_dim);
    pos.push_back(layout.pos[i]);
  }
}

void Decoder::cached_layer_forward(int u, const TokenLayout& layout, const std::vector<CacheSlot>& slots,
                                   const float* x_in, float* x_out) {
  const ModelConfig& c = model_.config();
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim();
  bool queries_only = std::all_of(slots.begin(), slots.end(), [](const CacheSlot& s) { return s.shared_site >= 0; });
  int q_stride = queries_only ? att_dim : c.qkv_dim();
  LayerActivations& a = acts_;
  layer_attention_inputs(model_, u, layout, x_in, a, queries_only);
  attention_calls_.clear();
  attention_ranges_.resize(slots.size());
  for (size_t s = 0; s < slots.size(); s++) {
    int r0 = layout.seq_start[s], n = layout.seq_start[s + 1] - r0;
    if (n == 0) continue;
    bool shared = slots[s].shared_site >= 0;
    size_t site = shared ? (size_t)slots[s].shared_site : slots[s].site;
    std::vector<float>& kv = slots[s].cache->kv[site];  // chunk_layout sized the caches
    std::vector<int32_t>& pos = slots[s].cache->pos[site];
    if (!shared) append_kv(a, layout, r0, n, q_stride, att_dim, kv_dim, c.max_seq_len, kv, pos);
    int32_t* ranges = attention_ranges_[s].data();
    ranges[0] = 0, ranges[1] = n, ranges[2] = 0, ranges[3] = (int32_t)pos.size();
    AttentionShape shape;
    shape.n_seq = 1;
    shape.q_start = ranges, shape.k_start = ranges + 2;
    shape.q_pos = layout.pos.data() + r0, shape.k_pos = pos.data();
    shape.n_heads = c.n_heads, shape.n_kv_heads = c.n_kv_heads, shape.head_dim = c.head_dim();
    shape.q_stride = q_stride, shape.kv_stride = 2 * kv_dim, shape.out_stride = att_dim;
    attention_calls_.push_back({a.att.data() + (size_t)r0 * att_dim, a.lse.data() + (size_t)r0 * c.n_heads,
                                a.qkv.data() + (size_t)r0 * q_stride, kv.data(), kv.data() + kv_dim, shape});
  }
  attention_forward_calls(attention_calls_.data(), (int)attention_calls_.size());
  layer_output(model_, u, layout.n_rows, x_in, x_out, a);
}

const TokenLayout& Decoder::chunk_layout(const std::vector<DecodeChunk>& chunks) {
  const ModelConfig& c = model_.config();
  check(!chunks.empty(), "decode: no sequences given");
  size_t n_sites = model_.schedule().size();
  for (const DecodeChunk& chunk : chunks) {
    const KVCache& cache = *chunk.cache;
    check(chunk.n > 0, "decode: a sequence has no new tokens");
    check(cache.length + chunk.n <= c.max_seq_len, "decode: a sequence would reach position ",
          cache.length + chunk.n - 1, " but the model's max_seq_len is ", c.max_seq_len,
          "; clear its cache and prefill its last tokens again");
    check(cache.kv.empty() || cache.kv.size() == n_sites,
          "decode: the cache was filled at another loop count; clear it and prefill again");
    for (int i = 0; i < chunk.n; i++)
      check(chunk.tokens[i] >= 0 && chunk.tokens[i] < c.vocab_size, "decode: token id ", chunk.tokens[i],
            " is outside the vocabulary [0, ", c.vocab_size, ")");
  }
  TokenLayout& layout = layout_;
  std::vector<int32_t>& tokens = tokens_;
  layout.seq_start.assign(1, 0);
  layout.pos.clear();
  tokens.clear();
  for (const DecodeChunk& chunk : chunks) {
    KVCache& cache = *chunk.cache;
    cache.kv.resize(n_sites);
    cache.pos.resize(n_sites);
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

void Decoder::head(int N, std::vector<float>& logits) {
  const ModelConfig& c = model_.config();
  if (xn_.size() < (size_t)N * c.d_model) xn_.resize((size_t)N * c.d_model);
  if (rstd_.size() < (size_t)N) rstd_.resize(N);
  logits.resize((size_t)N * c.vocab_size);
  final_norm_head(model_, x_.data(), N, xn_.data(), rstd_.data(), logits.data());
}

void Decoder::forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits, int64_t* block_passes,
                      int64_t* block_rows) {
  const ModelConfig& c = model_.config();
  if (c.mor()) {
    mor_enter(chunks, mor_tokens_);
    std::vector<RecursionToken*>&active = active_, &exited = exited_, &in_order = in_order_;
    active.clear(), exited.clear(), in_order.clear();
    for (RecursionToken& t : mor_tokens_) active.push_back(&t), in_order.push_back(&t);
    while (!active.empty()) {
      int rows = mor_advance(active, exited);
      if (block_passes) ++*block_passes;
      if (block_rows) *block_rows += rows;
    }
    mor_leave(in_order, logits);
    return;
  }
  const TokenLayout& layout = chunk_layout(chunks);
  int N = layout.n_rows, d = c.d_model;
  x_.resize((size_t)N * d);
  y_.resize((size_t)N * d);
  embedding_forward(x_.data(), tokens_.data(), model_.weights(model_.offsets().embed), N, d);
  std::vector<CacheSlot>& slots = slots_;
  slots.resize(chunks.size());
  const std::vector<int>& schedule = model_.schedule();
  for (size_t i = 0; i < schedule.size(); i++) {
    if (c.input_injection != InputInjection::none && i == (size_t)c.prelude) loop_input_ = x_;
    const float* in = x_.data();
    if (model_.injection_slot(i) >= 0) {
      injected_.resize((size_t)N * d);
      inject_forward(model_, x_.data(), loop_input_.data(), N, injected_.data(), concat_);
      in = injected_.data();
    }
    for (size_t s = 0; s < chunks.size(); s++) slots[s] = {chunks[s].cache, i};
    cached_layer_forward(schedule[i], layout, slots, in, y_.data());
    std::swap(x_, y_);
  }
  head(N, logits);
}

}  // namespace recur
