// recur/layer.h: one decoder layer application over a set of token rows, the pieces both training
// (recur/train_pass.h) and decoding (recur/decode.h) are built from: the layer forward in two halves (so that
// decoding can attend to a KV cache in between), its backward, input injection, and the final norm and head.
// Every function reads the weights of a const Model; backward adds into a separate gradient buffer.
#pragma once
#include <cstdint>
#include <vector>

#include "recur/model.h"

namespace recur {

// A set of token rows that a layer runs on: n_seq sequences of rows, each row with its position.
struct TokenLayout {
  int n_rows = 0;
  std::vector<int32_t> seq_start;          // (n_seq+1)
  std::vector<int32_t> pos;                // (n_rows)
  static TokenLayout dense(int B, int T);  // B sequences of T tokens at positions 0..T-1
  int n_seq() const { return (int)seq_start.size() - 1; }
};

// Activations of one layer application over N rows (what backward needs).
struct LayerActivations {
  std::vector<float> xn1, rstd1, qkv, att, lse, mid, xn2, rstd2, gate_up, hidden;
  void resize(size_t N, const ModelConfig& c);
  size_t floats() const;
};

// Gradient scratch of layer_backward, reused across layers.
struct LayerGradScratch {
  std::vector<float> dhidden, dgate_up, dxn, datt, dqkv;
};

// Recursive KV sharing: a layer that computes only queries and attends to another application's keys/values;
// their gradients are added into dqkv.
struct SharedKV {
  const float* qkv;           // (Nk, qkv_dim) post-RoPE keys and values of the first recursion
  const TokenLayout* layout;  // their rows
  float* dqkv;                // gradient accumulator, same shape (backward only)
};

kernels::AttentionShape attention_shape(const ModelConfig& c, const TokenLayout& q_layout, const TokenLayout& k_layout,
                                        int q_stride);

// x_in (N,d) -> a.qkv (N, [q | k | v]) after RMSNorm, the fused projection and RoPE; with queries_only just
// (N, q): only the query rows of the fused weight are used.
void layer_attention_inputs(const Model& m, int u, const TokenLayout& layout, const float* x_in, LayerActivations& a,
                            bool queries_only);
// a.att (N, heads·head_dim) -> x_out (N,d): mid = x_in + att·Woᵀ ; x_out = mid + MLP(RMSNorm(mid))
void layer_output(const Model& m, int u, int N, const float* x_in, float* x_out, LayerActivations& a);
// x_in (N,d) -> x_out (N,d) for unique layer u: mid = x + Attn(RMSNorm(x)) ; x_out = mid + MLP(RMSNorm(mid))
void layer_forward(const Model& m, int u, const TokenLayout& layout, const float* x_in, float* x_out,
                   LayerActivations& a, const SharedKV* shared = nullptr);
// dx (N,d): d x_out on entry, d x_in on return. Weight gradients are added into grads (shared layers
// accumulate). `extra_dqkv` (N, qkv_dim) adds gradients that later applications sent to this one's K/V.
void layer_backward(const Model& m, float* grads, LayerGradScratch& s, int u, const TokenLayout& layout,
                    const float* x_in, const LayerActivations& a, float* dx, const SharedKV* shared = nullptr,
                    const float* extra_dqkv = nullptr);

// Input injection into the looped block: h, e (N,d) -> out (N,d): h + e, or [h; e]·Wᵀ with the shared
// adapter W (d, 2d); `concat` keeps [h; e] (N, 2d) for backward.
void inject_forward(const Model& m, const float* h, const float* e, int N, float* out, std::vector<float>& concat);
// dx: gradient w.r.t. the injected input on entry, w.r.t. h on return; de accumulates the gradient of e.
void inject_backward(const Model& m, float* grads, const float* concat, float* dx, float* de, int N,
                     std::vector<float>& dconcat);

// Final RMSNorm and head: x (N,d) -> xn (N,d), rstd (N), logits (N, vocab).
void final_norm_head(const Model& m, const float* x, int N, float* xn, float* rstd, float* logits);

// FLOPs of one layer application on `rows` query rows scoring `pairs` (query, key) pairs; with recursive KV
// sharing the layer projects only queries.
double layer_flops(const ModelConfig& c, double rows, double pairs, bool kv_shared);

}  // namespace recur
