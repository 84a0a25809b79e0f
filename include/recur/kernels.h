// recur/kernels.h: the compute kernels. Each op has a forward and a backward side by side, shapes in a
// comment, a plain reference version (suffix _ref: obvious loops, for tests) and a fast one (vectorized,
// OpenMP, BLAS for matrix products). Backward functions ADD into gradient buffers (+=): a weight used at
// several depths receives every contribution.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace recur::kernels {

// ---- embedding: tokens (N) , wte (V,C) -> out (N,C)
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C, int V);
void embedding_forward_ref(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward_ref(float* dwte, const float* dout, const int32_t* tokens, int N, int C, int V);

// ---- RMSNorm: inp (N,C), weight (C) -> out (N,C), rstd (N) kept for backward
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C);

// ---- linear (no bias), the one GEMM seam: every matrix product of the model goes through linear_forward /
// linear_backward, so another backend (native bf16, a GPU) plugs in here.
// A weight matrix as the kernels read it: f32, or bf16 (the upper 16 bits of an f32, rounded to nearest even).
// A product with a bf16 matrix is a bf16 product: its other operand (the activations; in backward also the output
// gradient) is rounded to bf16 as well and the products accumulate in f32, so the result is exactly that of bf16
// inputs with f32 accumulation (a product of two bf16 values is exact in f32). This is Precision::bf16
// (recur/model.h, docs/precision.md), for training and decoding alike. Every f32 pointer converts to a view.
struct WeightView {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  WeightView(const float* weights) : f32(weights) {}
  static WeightView of_bf16(const uint16_t* weights) {
    WeightView v(nullptr);
    v.bf16 = weights;
    return v;
  }
};
inline float bf16_to_f32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}
// x rounded to the nearest bf16, ties to even (NaN stays a quiet NaN), as its upper 16 bits.
inline uint16_t bf16_bits(float x) {
  uint32_t bits;
  __builtin_memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
  return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
inline float bf16_round(float x) { return bf16_to_f32(bf16_bits(x)); }
// out (n) = in rounded to bf16: as bf16 bits, or as f32 values (the f32 form may alias in).
void bf16_from_f32(uint16_t* out, const float* in, size_t n);
void bf16_round(float* out, const float* in, size_t n);

// inp (N,C), weight (OC,C) -> out (N,OC) = inp · weightᵀ (out is overwritten). Up to kSmallN rows run the
// small-N kernel (weights streamed once for all rows), more the backend below (GemmBackend).
constexpr int kSmallN = 8;
void linear_forward(float* out, const float* inp, WeightView weight, int N, int C, int OC);
// dinp (N,C) += dout · weight ; dweight (OC,C) += doutᵀ · inp. Either may be null to skip it. With a bf16 weight,
// dout and inp are rounded to bf16 and the weight widened (a bf16 product, as forward); dweight stays f32.
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp, WeightView weight, int N, int C,
                     int OC);
void linear_forward_ref(float* out, const float* inp, WeightView weight, int N, int C, int OC);
void linear_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, WeightView weight, int N,
                         int C, int OC);
// The small-N kernel alone, any N (tests, benchmarks), by its fastest code path on this CPU (bf16 weights: native
// AVX512-BF16 products where the CPU has them, else AVX2/FMA; f32 weights: AVX2/FMA), or by a slower one (a
// path the CPU lacks falls back to the next: native bf16, then AVX2/FMA, then plain loops).
enum class SmallNPath { fastest, avx2, portable };
void linear_forward_small_n(float* out, const float* inp, WeightView weight, int N, int C, int OC,
                            SmallNPath path = SmallNPath::fastest);
bool cpu_has_avx2_fma();
// Whether the CPU has AVX512-BF16 (vdpbf16ps).
bool cpu_has_avx512_bf16();
// The library behind the seam for products of more than kSmallN rows: oneDNN's matmul (the default; it measured
// 1.7-1.9x OpenBLAS on an AVX-512 CPU, where Debian's OpenBLAS 0.3.21 runs its AVX2 kernels) or OpenBLAS sgemm.
// A bf16 product runs natively (oneDNN bf16) with onednn on a CPU with AVX512-BF16, and is emulated otherwise (the
// weight widened to f32 for the backend's f32 product). Every way multiplies the same operands exactly and sums in
// f32; only the summation order differs.
enum class GemmBackend { onednn, openblas };
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend backend);
const char* gemm_backend_name(GemmBackend backend);
bool bf16_products_native();

// ---- RoPE (rotate-half), in place on n_heads heads of head_dim per row; row r starts at x + r*stride.
// Table of cos/sin for positions [0, max_pos): cos_sin[(p*half + i)*2 + {0,1}], half = head_dim/2.
struct RopeTable {
  int head_dim = 0, max_pos = 0;
  std::vector<float> cos_sin;
  RopeTable() = default;
  RopeTable(int head_dim, int max_pos, float theta);
};
void rope_forward(float* x, const int32_t* pos, int N, int stride, int n_heads, const RopeTable& table);
// Backward of a rotation is the inverse rotation, applied in place to the gradient.
void rope_backward(float* dx, const int32_t* pos, int N, int stride, int n_heads, const RopeTable& table);
void rope_forward_ref(float* x, const int32_t* pos, int N, int stride, int n_heads, int head_dim, float theta);
void rope_backward_ref(float* dx, const int32_t* pos, int N, int stride, int n_heads, int head_dim, float theta);

// ---- causal grouped-query attention over ragged sequences.
// Sequence s owns query rows [q_start[s], q_start[s+1]) and key rows [k_start[s], k_start[s+1]); each row
// carries its original position, rows sorted by position. Query i attends to keys with k_pos <= q_pos[i]
// (the causal mask over a compacted order is the mask over original positions). Rows are strided:
// q row i head h at q + i*q_stride + h*head_dim; k/v row j kv-head g at k + j*kv_stride + g*head_dim.
struct AttentionShape {
  int n_seq = 0;
  const int32_t* q_start = nullptr;  // (n_seq+1)
  const int32_t* k_start = nullptr;  // (n_seq+1)
  const int32_t* q_pos = nullptr;    // (Nq)
  const int32_t* k_pos = nullptr;    // (Nk)
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int q_stride = 0, kv_stride = 0, out_stride = 0;
};
// q,k,v -> out (Nq, n_heads*head_dim, row stride out_stride), lse (Nq, n_heads) = log-sum-exp of the scaled
// scores, kept so that backward recomputes probabilities without storing them. No Nq×Nk matrix is kept.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& shape);
// Several attention_forward calls (each with its own q/k/v, e.g. one per sequence's KV cache) as one parallel region,
// their (sequence, query tile, head) tasks shared among the threads.
struct AttentionCall {
  float* out;
  float* lse;
  const float *q, *k, *v;
  AttentionShape shape;
};
void attention_forward_calls(const AttentionCall* calls, int n_calls);
// dq/dk/dv += (same strides as q/k/v).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& shape);
void attention_forward_ref(float* out, float* lse, const float* q, const float* k, const float* v,
                           const AttentionShape& shape);
void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                            const float* q, const float* k, const float* v, const AttentionShape& shape);

// ---- SwiGLU: gate_up (N, 2F) = [gate | up] per row -> out (N,F) = silu(gate) * up
void swiglu_forward(float* out, const float* gate_up, int N, int F);
void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int F);
void swiglu_forward_ref(float* out, const float* gate_up, int N, int F);
void swiglu_backward_ref(float* dgate_up, const float* dout, const float* gate_up, int N, int F);

// ---- residual: out (n) = a + b ; backward: da += dout, db += dout
void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_backward(float* da, float* db, const float* dout, size_t n);
void residual_forward_ref(float* out, const float* a, const float* b, size_t n);
void residual_backward_ref(float* da, float* db, const float* dout, size_t n);

// ---- fused softmax cross-entropy: logits (N,V), targets (N; < 0 = ignored) -> losses (N),
// and when dlogits is non-null, dlogits (N,V) = (softmax - onehot) * dloss (dlogits may alias logits).
// Returns the sum of the losses over non-ignored rows.
double cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int32_t* targets, int N,
                                      int V, float dloss);
double cross_entropy_forward_backward_ref(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                                          int N, int V, float dloss);

// ---- optimizer pieces over flat buffers
// Sum of squares, accumulated in double in a fixed order (deterministic for a given thread count).
double sum_squares(const float* x, size_t n);
double sum_squares_ref(const float* x, size_t n);
void scale_inplace(float* x, size_t n, float s);
// AdamW exactly as torch.optim.AdamW: p *= 1 - lr*wd; m,v moments; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
void adamw_update(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t step);
void adamw_update_ref(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                      float eps, float weight_decay, int64_t step);

// Matrix-multiply peak probe: the best GFLOP/s of an n×n×n product through linear_forward in f32 or bf16 (operand
// rounding included), on the current GemmBackend.
double measure_gemm_gflops(int n, int repeats, bool bf16);

}  // namespace recur::kernels

namespace recur::kernels {

// ---- gather / scatter of token rows (MoR runs the shared block on the active tokens only)
// out (n,C) = in[rows[i]] ; the backward of a gather is scatter_add_rows.
void gather_rows(float* out, const float* in, const int32_t* rows, int n, int C);
// out[rows[i]] += scale[i] * in (n,C) (scale may be null for 1); rows must be distinct.
void scatter_add_rows(float* out, const float* in, const float* scale, const int32_t* rows, int n, int C);
void gather_rows_ref(float* out, const float* in, const int32_t* rows, int n, int C);
void scatter_add_rows_ref(float* out, const float* in, const float* scale, const int32_t* rows, int n, int C);

}  // namespace recur::kernels
