// One decoder layer application (pre-norm attention and SwiGLU MLP, no biases), input injection and the
// final norm and head, over the weights of a const Model (see recur/layer.h). Training and decoding both call
// these, so the layer's math exists once.
#include "recur/layer.h"

#include <cstring>

namespace recur {

using namespace kernels;

static void ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
static void zero(std::vector<float>& v, size_t n) { std::memset(v.data(), 0, n * sizeof(float)); }

TokenLayout TokenLayout::dense(int B, int T) {
  TokenLayout layout;
  layout.n_rows = B * T;
  for (int b = 0; b <= B; b++) layout.seq_start.push_back(b * T);
  layout.pos.resize((size_t)B * T);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) layout.pos[(size_t)b * T + t] = t;
  return layout;
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

size_t LayerActivations::floats() const {
  return xn1.size() + rstd1.size() + qkv.size() + att.size() + lse.size() + mid.size() + xn2.size() + rstd2.size() +
         gate_up.size() + hidden.size();
}

AttentionShape attention_shape(const ModelConfig& c, const TokenLayout& q_layout, const TokenLayout& k_layout,
                               int q_stride) {
  AttentionShape a;
  a.n_seq = q_layout.n_seq();
  a.q_start = q_layout.seq_start.data();
  a.k_start = k_layout.seq_start.data();
  a.q_pos = q_layout.pos.data();
  a.k_pos = k_layout.pos.data();
  a.n_heads = c.n_heads;
  a.n_kv_heads = c.n_kv_heads;
  a.head_dim = c.head_dim();
  a.q_stride = q_stride;
  a.kv_stride = c.qkv_dim();
  a.out_stride = c.n_heads * c.head_dim();
  return a;
}

void layer_attention_inputs(const Model& m, int u, const TokenLayout& layout, const float* x_in, LayerActivations& a,
                            bool queries_only) {
  const ModelConfig& c = m.config();
  const LayerOffsets& w = m.layer(u);
  int N = layout.n_rows, d = c.d_model, att_dim = c.n_heads * c.head_dim();
  int q_stride = queries_only ? att_dim : c.qkv_dim();
  a.resize(N, c);
  rmsnorm_forward(a.xn1.data(), a.rstd1.data(), x_in, m.weights(w.attn_norm), N, d, c.norm_eps);
  linear_forward(a.qkv.data(), a.xn1.data(), m.matrix(w.wqkv), N, d, q_stride);
  rope_forward(a.qkv.data(), layout.pos.data(), N, q_stride, c.n_heads, m.rope());
  if (!queries_only) rope_forward(a.qkv.data() + att_dim, layout.pos.data(), N, q_stride, c.n_kv_heads, m.rope());
}

void layer_output(const Model& m, int u, int N, const float* x_in, float* x_out, LayerActivations& a) {
  const ModelConfig& c = m.config();
  const LayerOffsets& w = m.layer(u);
  int d = c.d_model, F = c.d_ff, att_dim = c.n_heads * c.head_dim();
  linear_forward(a.mid.data(), a.att.data(), m.matrix(w.wo), N, att_dim, d);
  residual_forward(a.mid.data(), x_in, a.mid.data(), (size_t)N * d);
  rmsnorm_forward(a.xn2.data(), a.rstd2.data(), a.mid.data(), m.weights(w.ffn_norm), N, d, c.norm_eps);
  linear_forward(a.gate_up.data(), a.xn2.data(), m.matrix(w.w_gate_up), N, d, 2 * F);
  swiglu_forward(a.hidden.data(), a.gate_up.data(), N, F);
  linear_forward(x_out, a.hidden.data(), m.matrix(w.w_down), N, F, d);
  residual_forward(x_out, a.mid.data(), x_out, (size_t)N * d);
}

void layer_forward(const Model& m, int u, const TokenLayout& layout, const float* x_in, float* x_out,
                   LayerActivations& a, const SharedKV* shared) {
  const ModelConfig& c = m.config();
  int att_dim = c.n_heads * c.head_dim(), kv_dim = c.n_kv_heads * c.head_dim();
  layer_attention_inputs(m, u, layout, x_in, a, shared != nullptr);
  const float* q = a.qkv.data();
  if (shared) {
    const float* k = shared->qkv + att_dim;
    attention_forward(a.att.data(), a.lse.data(), q, k, k + kv_dim,
                      attention_shape(c, layout, *shared->layout, att_dim));
  } else {
    const float* k = q + att_dim;
    attention_forward(a.att.data(), a.lse.data(), q, k, k + kv_dim, attention_shape(c, layout, layout, c.qkv_dim()));
  }
  layer_output(m, u, layout.n_rows, x_in, x_out, a);
}

// The MLP branch of layer_backward: dx (N,d) holds d x_out; adds the branch's gradient into dx.
static void mlp_backward(const Model& m, float* G, LayerGradScratch& s, const LayerOffsets& w, int N,
                         const LayerActivations& a, float* dx) {
  const ModelConfig& c = m.config();
  int d = c.d_model, F = c.d_ff;
  ensure(s.dhidden, (size_t)N * F);
  ensure(s.dgate_up, (size_t)N * 2 * F);
  ensure(s.dxn, (size_t)N * d);
  zero(s.dhidden, (size_t)N * F);
  linear_backward(s.dhidden.data(), G + w.w_down, dx, a.hidden.data(), m.matrix(w.w_down), N, F, d);
  zero(s.dgate_up, (size_t)N * 2 * F);
  swiglu_backward(s.dgate_up.data(), s.dhidden.data(), a.gate_up.data(), N, F);
  zero(s.dxn, (size_t)N * d);
  linear_backward(s.dxn.data(), G + w.w_gate_up, s.dgate_up.data(), a.xn2.data(), m.matrix(w.w_gate_up), N, d, 2 * F);
  rmsnorm_backward(dx, G + w.ffn_norm, s.dxn.data(), a.mid.data(), m.weights(w.ffn_norm), a.rstd2.data(), N, d);
}

// The residual paths pass dx through unchanged; each branch adds its contribution.
void layer_backward(const Model& m, float* G, LayerGradScratch& s, int u, const TokenLayout& layout, const float* x_in,
                    const LayerActivations& a, float* dx, const SharedKV* shared, const float* extra_dqkv) {
  const ModelConfig& c = m.config();
  const LayerOffsets& w = m.layer(u);
  int N = layout.n_rows, d = c.d_model, qkv_dim = c.qkv_dim(), att_dim = c.n_heads * c.head_dim();
  mlp_backward(m, G, s, w, N, a, dx);
  ensure(s.datt, (size_t)N * att_dim);
  ensure(s.dqkv, (size_t)N * qkv_dim);
  zero(s.datt, (size_t)N * att_dim);
  linear_backward(s.datt.data(), G + w.wo, dx, a.att.data(), m.matrix(w.wo), N, att_dim, d);
  int q_stride = shared ? att_dim : qkv_dim, kv_dim = c.n_kv_heads * c.head_dim();
  zero(s.dqkv, (size_t)N * q_stride);
  if (extra_dqkv) residual_forward(s.dqkv.data(), s.dqkv.data(), extra_dqkv, (size_t)N * qkv_dim);
  const float* q = a.qkv.data();
  float* dq = s.dqkv.data();
  if (shared) {
    const float* k = shared->qkv + att_dim;
    float* dk = shared->dqkv + att_dim;
    attention_backward(dq, dk, dk + kv_dim, s.datt.data(), a.att.data(), a.lse.data(), q, k, k + kv_dim,
                       attention_shape(c, layout, *shared->layout, q_stride));
  } else {
    const float* k = q + att_dim;
    float* dk = dq + att_dim;
    attention_backward(dq, dk, dk + kv_dim, s.datt.data(), a.att.data(), a.lse.data(), q, k, k + kv_dim,
                       attention_shape(c, layout, layout, q_stride));
    rope_backward(dk, layout.pos.data(), N, qkv_dim, c.n_kv_heads, m.rope());
  }
  rope_backward(dq, layout.pos.data(), N, q_stride, c.n_heads, m.rope());
  zero(s.dxn, (size_t)N * d);
  linear_backward(s.dxn.data(), G + w.wqkv, s.dqkv.data(), a.xn1.data(), m.matrix(w.wqkv), N, d, q_stride);
  rmsnorm_backward(dx, G + w.attn_norm, s.dxn.data(), x_in, m.weights(w.attn_norm), a.rstd1.data(), N, d);
}

void inject_forward(const Model& m, const float* h, const float* e, int N, float* out, std::vector<float>& concat) {
  int d = m.config().d_model;
  if (m.config().input_injection == InputInjection::add) {
    residual_forward(out, h, e, (size_t)N * d);
    return;
  }
  ensure(concat, (size_t)N * 2 * d);
  float* cat = concat.data();
  for (int n = 0; n < N; n++) {
    std::memcpy(cat + (size_t)n * 2 * d, h + (size_t)n * d, d * sizeof(float));
    std::memcpy(cat + (size_t)n * 2 * d + d, e + (size_t)n * d, d * sizeof(float));
  }
  linear_forward(out, cat, m.matrix(m.offsets().adapter), N, 2 * d, d);
}

void inject_backward(const Model& m, float* G, const float* concat, float* dx, float* de, int N,
                     std::vector<float>& dconcat) {
  int d = m.config().d_model;
  if (m.config().input_injection == InputInjection::add) {
    for (size_t i = 0; i < (size_t)N * d; i++) de[i] += dx[i];
    return;
  }
  ensure(dconcat, (size_t)N * 2 * d);
  zero(dconcat, (size_t)N * 2 * d);
  size_t adapter = m.offsets().adapter;
  linear_backward(dconcat.data(), G + adapter, dx, concat, m.matrix(adapter), N, 2 * d, d);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < d; i++) {
      dx[(size_t)n * d + i] = dconcat[(size_t)n * 2 * d + i];
      de[(size_t)n * d + i] += dconcat[(size_t)n * 2 * d + d + i];
    }
}

void final_norm_head(const Model& m, const float* x, int N, float* xn, float* rstd, float* logits) {
  const ModelConfig& c = m.config();
  rmsnorm_forward(xn, rstd, x, m.weights(m.offsets().final_norm), N, c.d_model, c.norm_eps);
  linear_forward(logits, xn, m.matrix(m.offsets().lm_head), N, c.d_model, c.vocab_size);
}

double layer_flops(const ModelConfig& c, double rows, double pairs, bool kv_shared) {
  double d = c.d_model, F = c.d_ff, att_dim = c.n_heads * c.head_dim();
  double projected = kv_shared ? att_dim : c.qkv_dim();
  return 2.0 * rows * (d * projected + att_dim * d + d * 2 * F + F * d) + 4.0 * att_dim * pairs;
}

}  // namespace recur
