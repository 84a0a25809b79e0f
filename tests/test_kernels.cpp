// Per-kernel tests (llama.cpp test-backend-ops style): every fast kernel against its plain reference on random
// shapes, odd sizes included; every backward against central finite differences of its forward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "recur/kernels.h"
#include "recur/rng.h"

using namespace recur;
using namespace recur::kernels;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

// Normalized max error: max |a-b| / max(|b|, tiny); NaN/inf count as failures.
double nmax_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0, scale = 1e-20;
  for (size_t i = 0; i < a.size(); i++) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
    scale = std::max(scale, (double)std::fabs(b[i]));
  }
  return worst / scale;
}

// Finite-difference check of d(Σ w·f(x))/dx against `analytic` at a sample of coordinates of x.
void check_gradient(std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& objective,
                    const char* what, double tolerance = 2e-2) {
  Rng rng(99);
  double worst = 0, scale = 1e-6;
  for (int s = 0; s < 24; s++) {
    size_t i = rng.uniform(x.size());
    float saved = x[i], h = 1e-2f * std::max(1.0f, std::fabs(saved));
    x[i] = saved + h;
    double up = objective();
    x[i] = saved - h;
    double down = objective();
    x[i] = saved;
    double numeric = (up - down) / (2.0 * h);
    worst = std::max(worst, std::fabs(numeric - analytic[i]));
    scale = std::max(scale, std::fabs(numeric));
  }
  EXPECT_LE(worst / scale, tolerance) << what << ": finite differences disagree with the backward";
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
  return s;
}

struct Shape2 {
  int N, C;
};
const Shape2 kShapes[] = {{1, 1}, {3, 7}, {17, 33}, {64, 256}, {5, 1001}};

TEST(Kernels, Embedding) {
  for (auto [N, C] : kShapes) {
    int V = 13;
    Rng rng(N * 31 + C);
    std::vector<int32_t> tokens(N);
    for (auto& t : tokens) t = (int32_t)rng.uniform(V);
    auto wte = randn((size_t)V * C, 1), dout = randn((size_t)N * C, 2);
    std::vector<float> a((size_t)N * C), b((size_t)N * C), da((size_t)V * C, 0.5f), db((size_t)V * C, 0.5f);
    embedding_forward(a.data(), tokens.data(), wte.data(), N, C);
    embedding_forward_ref(b.data(), tokens.data(), wte.data(), N, C);
    EXPECT_EQ(nmax_error(a, b), 0.0);
    embedding_backward(da.data(), dout.data(), tokens.data(), N, C, V);
    embedding_backward_ref(db.data(), dout.data(), tokens.data(), N, C, V);
    EXPECT_LE(nmax_error(da, db), 1e-6);
  }
}

TEST(Kernels, RMSNorm) {
  for (auto [N, C] : kShapes) {
    auto x = randn((size_t)N * C, 3), w = randn(C, 4), dout = randn((size_t)N * C, 5);
    std::vector<float> a(x.size()), b(x.size()), ra(N), rb(N);
    rmsnorm_forward(a.data(), ra.data(), x.data(), w.data(), N, C, 1e-5f);
    rmsnorm_forward_ref(b.data(), rb.data(), x.data(), w.data(), N, C, 1e-5f);
    EXPECT_LE(nmax_error(a, b), 1e-5) << N << "x" << C;
    std::vector<float> dxa(x.size(), 0.1f), dxb(x.size(), 0.1f), dwa(C, 0.2f), dwb(C, 0.2f);
    rmsnorm_backward(dxa.data(), dwa.data(), dout.data(), x.data(), w.data(), ra.data(), N, C);
    rmsnorm_backward_ref(dxb.data(), dwb.data(), dout.data(), x.data(), w.data(), rb.data(), N, C);
    EXPECT_LE(nmax_error(dxa, dxb), 1e-4);
    EXPECT_LE(nmax_error(dwa, dwb), 1e-4);
  }
  int N = 4, C = 9;
  auto x = randn(N * C, 6), w = randn(C, 7), weights = randn(N * C, 8);
  std::vector<float> out(N * C), rstd(N), dx(N * C, 0), dw(C, 0);
  auto objective = [&] {
    rmsnorm_forward_ref(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    return dot(out, weights);
  };
  objective();
  rmsnorm_backward_ref(dx.data(), dw.data(), weights.data(), x.data(), w.data(), rstd.data(), N, C);
  check_gradient(x, dx, objective, "rmsnorm dx");
  check_gradient(w, dw, objective, "rmsnorm dweight");
}

static std::vector<float> rounded(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  bf16_round(r.data(), x.data(), x.size());
  return r;
}

// Runs f with each GEMM backend in turn and restores the default.
template <class F>
static void for_each_gemm_backend(F f) {
  GemmBackend saved = gemm_backend();
  for (GemmBackend b : {GemmBackend::onednn, GemmBackend::openblas}) {
    set_gemm_backend(b);
    f(b);
  }
  set_gemm_backend(saved);
}

// Fast against reference for f32 and bf16 weights on a few shapes, also sgemm-sized ones (N > kSmallN); a bf16
// product equals the f32 product of the operands rounded to bf16.
static void check_linear_shapes() {
  struct {
    int N, C, OC;
  } shapes[] = {{1, 1, 1}, {3, 5, 7}, {33, 17, 65}, {128, 64, 96}, {77, 130, 260}};
  for (auto s : shapes) {
    auto x = randn((size_t)s.N * s.C, 9), w = randn((size_t)s.OC * s.C, 10), dout = randn((size_t)s.N * s.OC, 11);
    std::vector<uint16_t> w16(w.size());
    bf16_from_f32(w16.data(), w.data(), w.size());
    for (WeightView view : {WeightView(w.data()), WeightView::of_bf16(w16.data())}) {
      std::vector<float> a((size_t)s.N * s.OC), b(a.size());
      linear_forward(a.data(), x.data(), view, s.N, s.C, s.OC);
      linear_forward_ref(b.data(), x.data(), view, s.N, s.C, s.OC);
      EXPECT_LE(nmax_error(a, b), 1e-5);
      std::vector<float> dxa(x.size(), 1.0f), dxb(x.size(), 1.0f), dwa(w.size(), -1.0f), dwb(w.size(), -1.0f);
      linear_backward(dxa.data(), dwa.data(), dout.data(), x.data(), view, s.N, s.C, s.OC);
      linear_backward_ref(dxb.data(), dwb.data(), dout.data(), x.data(), view, s.N, s.C, s.OC);
      EXPECT_LE(nmax_error(dxa, dxb), 1e-5);
      EXPECT_LE(nmax_error(dwa, dwb), 1e-5);
      if (!view.bf16) continue;
      std::vector<float> xr = rounded(x), wr = rounded(w), dr = rounded(dout), dxr(x.size(), 1.0f),
                         dwr(w.size(), -1.0f);
      linear_forward_ref(b.data(), xr.data(), wr.data(), s.N, s.C, s.OC);
      EXPECT_LE(nmax_error(a, b), 1e-5);
      linear_backward_ref(dxr.data(), dwr.data(), dr.data(), xr.data(), wr.data(), s.N, s.C, s.OC);
      EXPECT_LE(nmax_error(dxa, dxr), 1e-5);
      EXPECT_LE(nmax_error(dwa, dwr), 1e-5);
    }
  }
}

// Finite differences of the reference product.
static void check_linear_gradient() {
  int N = 3, C = 4, OC = 5;
  auto x = randn(N * C, 12), w = randn(OC * C, 13), weights = randn(N * OC, 14);
  std::vector<float> out(N * OC), dx(N * C, 0), dw(OC * C, 0);
  auto objective = [&] {
    linear_forward_ref(out.data(), x.data(), w.data(), N, C, OC);
    return dot(out, weights);
  };
  linear_backward_ref(dx.data(), dw.data(), weights.data(), x.data(), w.data(), N, C, OC);
  check_gradient(x, dx, objective, "linear dx", 1e-3);
  check_gradient(w, dw, objective, "linear dweight", 1e-3);
}

// f32 and bf16 weights on each GEMM backend (oneDNN's bf16 products native where the CPU has AVX512-BF16), fast
// against reference; a bf16 product is the f32 product of the operands rounded to bf16.
TEST(Kernels, Linear) {
  for_each_gemm_backend([](GemmBackend backend) {
    SCOPED_TRACE(gemm_backend_name(backend));
    check_linear_shapes();
  });
  check_linear_gradient();
}

// bf16 products are native exactly with oneDNN on a CPU with AVX512-BF16.
TEST(Kernels, Bf16ProductsNative) {
  GemmBackend saved = gemm_backend();
  EXPECT_EQ(saved, GemmBackend::onednn);
  EXPECT_EQ(bf16_products_native(), cpu_has_avx512_bf16());
  set_gemm_backend(GemmBackend::openblas);
  EXPECT_FALSE(bf16_products_native());
  set_gemm_backend(saved);
}

// The small-N kernel (each code path this CPU has: native bf16, AVX2/FMA, plain loops) and the seam on f32 and bf16
// weights against the reference, on shapes with C and OC tails (C = 300: a 64-column step, then a masked 44) and N on
// both sides of kSmallN. Tolerance: float accumulation over C <= 300 terms.
TEST(Kernels, LinearSmallN) {
  struct {
    int N, C, OC;
  } shapes[] = {{1, 1, 1},    {1, 8, 4},         {1, 300, 37},          {2, 17, 9},
                {3, 64, 130}, {kSmallN, 40, 12}, {kSmallN + 3, 33, 70}, {5, 96, 9}};
  for (auto s : shapes) {
    auto x = randn((size_t)s.N * s.C, 21), w = randn((size_t)s.OC * s.C, 22);
    std::vector<uint16_t> w16(w.size());
    bf16_from_f32(w16.data(), w.data(), w.size());
    for (WeightView view : {WeightView(w.data()), WeightView::of_bf16(w16.data())}) {
      std::vector<float> ref((size_t)s.N * s.OC), got(ref.size(), NAN);
      linear_forward_ref(ref.data(), x.data(), view, s.N, s.C, s.OC);
      for (SmallNPath path : {SmallNPath::fastest, SmallNPath::avx2, SmallNPath::portable}) {
        linear_forward_small_n(got.data(), x.data(), view, s.N, s.C, s.OC, path);
        EXPECT_LE(nmax_error(got, ref), 1e-5) << s.N << "x" << s.C << "x" << s.OC << " path " << (int)path;
      }
      std::fill(got.begin(), got.end(), NAN);
      linear_forward(got.data(), x.data(), view, s.N, s.C, s.OC);
      EXPECT_LE(nmax_error(got, ref), 1e-5) << s.N << "x" << s.C << "x" << s.OC << " bf16 " << (view.bf16 != nullptr);
    }
  }
}

// bf16 rounding: to nearest, ties to even, NaN kept, and within half a unit in the last place (at most 2^-8 relative).
TEST(Kernels, Bf16Rounding) {
  std::vector<float> in = {1.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 512, -2.5f, NAN, INFINITY};
  std::vector<uint16_t> out(in.size());
  bf16_from_f32(out.data(), in.data(), in.size());
  EXPECT_EQ(bf16_to_f32(out[0]), 1.0f);
  EXPECT_EQ(bf16_to_f32(out[1]), 1.0f);               // a tie (half of 2^-7) rounds to the even 1.0
  EXPECT_EQ(bf16_to_f32(out[2]), 1.0f + 4.0f / 256);  // a tie above an odd mantissa rounds up to even
  EXPECT_EQ(bf16_to_f32(out[3]), 1.0f);
  EXPECT_EQ(bf16_to_f32(out[4]), -2.5f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(out[5])));
  EXPECT_EQ(bf16_to_f32(out[6]), INFINITY);
  auto x = randn(1000, 23);
  std::vector<uint16_t> x16(x.size());
  bf16_from_f32(x16.data(), x.data(), x.size());
  for (size_t i = 0; i < x.size(); i++) EXPECT_LE(std::fabs(bf16_to_f32(x16[i]) - x[i]), std::fabs(x[i]) / 256);
}

TEST(Kernels, RoPE) {
  int N = 7, H = 3, hd = 8, stride = 29;
  std::vector<int32_t> pos = {0, 1, 5, 6, 9, 30, 31};
  RopeTable table(hd, 32, 10000.0f);
  auto x = randn((size_t)N * stride, 15);
  auto a = x, b = x;
  rope_forward(a.data(), pos.data(), N, stride, H, table);
  rope_forward_ref(b.data(), pos.data(), N, stride, H, hd, 10000.0f);
  EXPECT_LE(nmax_error(a, b), 1e-5);
  rope_backward(a.data(), pos.data(), N, stride, H, table);  // the inverse rotation restores x
  EXPECT_LE(nmax_error(a, x), 1e-5);
  rope_backward_ref(b.data(), pos.data(), N, stride, H, hd, 10000.0f);
  EXPECT_LE(nmax_error(b, x), 1e-5);
  // backward(dout) is the gradient of Σ dout·rope(x): check with finite differences
  auto weights = randn(x.size(), 16);
  std::vector<float> out(x.size());
  auto objective = [&] {
    out = x;
    rope_forward_ref(out.data(), pos.data(), N, stride, H, hd, 10000.0f);
    return dot(out, weights);
  };
  auto dx = weights;
  rope_backward_ref(dx.data(), pos.data(), N, stride, H, hd, 10000.0f);
  check_gradient(x, dx, objective, "rope dx", 1e-3);
}

// Ragged attention: sequences of different lengths, a compacted query subset with gaps in positions, and
// keys that are a superset of the queries (the layouts MoR and KV sharing use).
struct AttentionCase {
  int H, Hkv, hd;
  std::vector<std::vector<int32_t>> q_pos, k_pos;
};

void run_attention_case(const AttentionCase& c) {
  std::vector<int32_t> q_start{0}, k_start{0}, q_pos, k_pos;
  for (size_t s = 0; s < c.q_pos.size(); s++) {
    q_pos.insert(q_pos.end(), c.q_pos[s].begin(), c.q_pos[s].end());
    k_pos.insert(k_pos.end(), c.k_pos[s].begin(), c.k_pos[s].end());
    q_start.push_back((int32_t)q_pos.size());
    k_start.push_back((int32_t)k_pos.size());
  }
  int Nq = (int)q_pos.size(), Nk = (int)k_pos.size();
  AttentionShape a;
  a.n_seq = (int)c.q_pos.size();
  a.q_start = q_start.data();
  a.k_start = k_start.data();
  a.q_pos = q_pos.data();
  a.k_pos = k_pos.data();
  a.n_heads = c.H, a.n_kv_heads = c.Hkv, a.head_dim = c.hd;
  a.q_stride = c.H * c.hd + 3;  // strided rows, as in the fused qkv buffer
  a.kv_stride = c.Hkv * c.hd + 5;
  a.out_stride = c.H * c.hd;
  auto q = randn((size_t)Nq * a.q_stride, 17), k = randn((size_t)Nk * a.kv_stride, 18),
       v = randn((size_t)Nk * a.kv_stride, 19), dout = randn((size_t)Nq * a.out_stride, 20);
  std::vector<float> oa((size_t)Nq * a.out_stride), ob(oa.size()), la((size_t)Nq * c.H), lb(la.size());
  attention_forward(oa.data(), la.data(), q.data(), k.data(), v.data(), a);
  attention_forward_ref(ob.data(), lb.data(), q.data(), k.data(), v.data(), a);
  EXPECT_LE(nmax_error(oa, ob), 1e-5);
  EXPECT_LE(nmax_error(la, lb), 1e-5);
  std::vector<float> dqa(q.size(), 0), dqb(q.size(), 0), dka(k.size(), 0), dkb(k.size(), 0), dva(v.size(), 0),
      dvb(v.size(), 0);
  attention_backward(dqa.data(), dka.data(), dva.data(), dout.data(), oa.data(), la.data(), q.data(), k.data(),
                     v.data(), a);
  attention_backward_ref(dqb.data(), dkb.data(), dvb.data(), dout.data(), ob.data(), lb.data(), q.data(), k.data(),
                         v.data(), a);
  EXPECT_LE(nmax_error(dqa, dqb), 1e-4);
  EXPECT_LE(nmax_error(dka, dkb), 1e-4);
  EXPECT_LE(nmax_error(dva, dvb), 1e-4);
  auto objective = [&] {
    attention_forward_ref(ob.data(), lb.data(), q.data(), k.data(), v.data(), a);
    return dot(ob, dout);
  };
  check_gradient(q, dqb, objective, "attention dq");
  check_gradient(k, dkb, objective, "attention dk");
  check_gradient(v, dvb, objective, "attention dv");
}

TEST(Kernels, AttentionDenseCausal) {
  AttentionCase c{4, 2, 8, {}, {}};
  for (int len : {1, 7, 70}) {
    std::vector<int32_t> p(len);
    for (int i = 0; i < len; i++) p[i] = i;
    c.q_pos.push_back(p);
    c.k_pos.push_back(p);
  }
  run_attention_case(c);
}

TEST(Kernels, AttentionCompactedSubset) {
  // Queries are a subset of the keys (KV sharing), and a second sequence where queries == keys (compacted).
  AttentionCase c{3, 3, 4, {{0, 2, 3, 9, 12, 40, 41, 77}, {1, 4, 5}}, {{}, {1, 4, 5}}};
  for (int i = 0; i < 80; i++) c.k_pos[0].push_back(i);
  run_attention_case(c);
}

// Several calls, each with its own q/k/v buffers (one sequence cache each, as decoding several sequences makes
// them), in one region: each equals the reference run on that call alone. Long caches make the work large enough
// to open the parallel region; one call has a prefill chunk, the others single tokens.
TEST(Kernels, AttentionForwardCallsEachEqualTheReference) {
  const int H = 4, Hkv = 2, hd = 16, stride = H * hd, kv_stride = 2 * Hkv * hd;
  std::vector<int> queries = {1, 1, 70, 1}, keys = {300, 17, 370, 1};
  std::vector<std::vector<float>> q, kv, got, lse, want, want_lse;
  std::vector<std::vector<int32_t>> q_pos, k_pos, ranges;
  std::vector<AttentionCall> calls;
  for (size_t c = 0; c < queries.size(); c++) {
    q.push_back(randn((size_t)queries[c] * stride, 40 + c));
    kv.push_back(randn((size_t)keys[c] * kv_stride, 50 + c));
    got.emplace_back((size_t)queries[c] * stride, NAN), lse.emplace_back((size_t)queries[c] * H, NAN);
    q_pos.emplace_back(queries[c]), k_pos.emplace_back(keys[c]);
    for (int i = 0; i < queries[c]; i++) q_pos[c][i] = keys[c] - queries[c] + i;  // the newest keys' positions
    for (int j = 0; j < keys[c]; j++) k_pos[c][j] = j;
    ranges.push_back({0, queries[c], 0, keys[c]});
  }
  for (size_t c = 0; c < queries.size(); c++) {
    AttentionShape a;
    a.n_seq = 1, a.q_start = ranges[c].data(), a.k_start = ranges[c].data() + 2;
    a.q_pos = q_pos[c].data(), a.k_pos = k_pos[c].data();
    a.n_heads = H, a.n_kv_heads = Hkv, a.head_dim = hd, a.q_stride = stride, a.kv_stride = kv_stride;
    a.out_stride = stride;
    calls.push_back({got[c].data(), lse[c].data(), q[c].data(), kv[c].data(), kv[c].data() + Hkv * hd, a});
    want.emplace_back(got[c].size()), want_lse.emplace_back(lse[c].size());
    attention_forward_ref(want[c].data(), want_lse[c].data(), q[c].data(), kv[c].data(), kv[c].data() + Hkv * hd, a);
  }
  attention_forward_calls(calls.data(), (int)calls.size());
  for (size_t c = 0; c < calls.size(); c++) {
    EXPECT_LE(nmax_error(got[c], want[c]), 1e-5) << "call " << c;
    EXPECT_LE(nmax_error(lse[c], want_lse[c]), 1e-5) << "call " << c;
  }
}

TEST(Kernels, SwiGLU) {
  for (auto [N, F] : kShapes) {
    auto gu = randn((size_t)N * 2 * F, 21), dout = randn((size_t)N * F, 22);
    std::vector<float> a((size_t)N * F), b(a.size());
    swiglu_forward(a.data(), gu.data(), N, F);
    swiglu_forward_ref(b.data(), gu.data(), N, F);
    EXPECT_LE(nmax_error(a, b), 1e-5);
    std::vector<float> da(gu.size(), 0.3f), db(gu.size(), 0.3f);
    swiglu_backward(da.data(), dout.data(), gu.data(), N, F);
    swiglu_backward_ref(db.data(), dout.data(), gu.data(), N, F);
    EXPECT_LE(nmax_error(da, db), 1e-5);
  }
  int N = 3, F = 5;
  auto gu = randn(N * 2 * F, 23), weights = randn(N * F, 24);
  std::vector<float> out(N * F), dgu(gu.size(), 0);
  auto objective = [&] {
    swiglu_forward_ref(out.data(), gu.data(), N, F);
    return dot(out, weights);
  };
  swiglu_backward_ref(dgu.data(), weights.data(), gu.data(), N, F);
  check_gradient(gu, dgu, objective, "swiglu");
}

TEST(Kernels, Residual) {
  for (size_t n : {1, 7, 1000, 4097}) {
    auto x = randn(n, 25), y = randn(n, 26), g = randn(n, 27);
    std::vector<float> a(n), b(n);
    residual_forward(a.data(), x.data(), y.data(), n);
    residual_forward_ref(b.data(), x.data(), y.data(), n);
    EXPECT_EQ(nmax_error(a, b), 0.0);
    std::vector<float> da(n, 1), db(n, 2), ra(n, 1), rb(n, 2);
    residual_backward(da.data(), db.data(), g.data(), n);
    residual_backward_ref(ra.data(), rb.data(), g.data(), n);
    EXPECT_EQ(nmax_error(da, ra), 0.0);
    EXPECT_EQ(nmax_error(db, rb), 0.0);
  }
}

TEST(Kernels, CrossEntropy) {
  for (auto [N, V] : kShapes) {
    if (V < 2) continue;
    auto logits = randn((size_t)N * V, 28, 3.0f);
    std::vector<int32_t> targets(N);
    Rng rng(5);
    for (auto& t : targets) t = rng.uniform(4) == 0 ? -1 : (int32_t)rng.uniform(V);
    std::vector<float> la(N), lb(N), da(logits.size()), db(logits.size());
    double sa = cross_entropy_forward_backward(la.data(), da.data(), logits.data(), targets.data(), N, V, 0.5f);
    double sb = cross_entropy_forward_backward_ref(lb.data(), db.data(), logits.data(), targets.data(), N, V, 0.5f);
    EXPECT_NEAR(sa, sb, 1e-4 * std::max(1.0, std::fabs(sb)));
    EXPECT_LE(nmax_error(la, lb), 1e-5);
    EXPECT_LE(nmax_error(da, db), 1e-5);
    // in-place: dlogits aliasing logits
    auto inplace = logits;
    cross_entropy_forward_backward(la.data(), inplace.data(), inplace.data(), targets.data(), N, V, 0.5f);
    EXPECT_LE(nmax_error(inplace, db), 1e-5);
  }
  int N = 3, V = 6;
  auto logits = randn(N * V, 29);
  std::vector<int32_t> targets = {2, -1, 5};
  std::vector<float> losses(N), dl(logits.size());
  auto objective = [&] {
    return cross_entropy_forward_backward_ref(losses.data(), nullptr, logits.data(), targets.data(), N, V, 1.0f);
  };
  cross_entropy_forward_backward_ref(losses.data(), dl.data(), logits.data(), targets.data(), N, V, 1.0f);
  check_gradient(logits, dl, objective, "cross entropy", 1e-3);
}

TEST(Kernels, OptimizerPasses) {
  for (size_t n : {1, 100, 70001}) {
    auto x = randn(n, 30);
    EXPECT_NEAR(sum_squares(x.data(), n), sum_squares_ref(x.data(), n), 1e-4 * sum_squares_ref(x.data(), n));
    auto p1 = randn(n, 31), g = randn(n, 32), m1 = randn(n, 33, 0.1f), v1 = randn(n, 34, 0.1f);
    for (auto& e : v1) e = std::fabs(e);
    auto p2 = p1, m2 = m1, v2 = v1;
    adamw_update(p1.data(), g.data(), m1.data(), v1.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
    adamw_update_ref(p2.data(), g.data(), m2.data(), v2.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
    EXPECT_LE(nmax_error(p1, p2), 1e-6);
    EXPECT_LE(nmax_error(m1, m2), 1e-6);
    EXPECT_LE(nmax_error(v1, v2), 1e-6);
  }
}

}  // namespace

namespace {

TEST(Kernels, GatherScatter) {
  int N = 37, C = 19;
  auto in = randn((size_t)N * C, 40);
  std::vector<int32_t> rows = {0, 3, 4, 10, 36, 20};
  int n = (int)rows.size();
  std::vector<float> a((size_t)n * C), b(a.size());
  gather_rows(a.data(), in.data(), rows.data(), n, C);
  gather_rows_ref(b.data(), in.data(), rows.data(), n, C);
  EXPECT_EQ(nmax_error(a, b), 0.0);
  auto scale = randn(n, 41);
  auto oa = randn((size_t)N * C, 42), ob = oa;
  scatter_add_rows(oa.data(), a.data(), scale.data(), rows.data(), n, C);
  scatter_add_rows_ref(ob.data(), a.data(), scale.data(), rows.data(), n, C);
  EXPECT_LE(nmax_error(oa, ob), 1e-6);
  // scatter-add is the adjoint of gather: <gather(x), y> = <x, scatter(y)>
  auto y = randn((size_t)n * C, 43);
  std::vector<float> sy((size_t)N * C, 0.0f);
  scatter_add_rows_ref(sy.data(), y.data(), nullptr, rows.data(), n, C);
  EXPECT_NEAR(dot(a, y), dot(in, sy), 1e-3);
}

}  // namespace

#include "kernels/fast_math.h"

namespace {

TEST(Kernels, FastExpMatchesStdExp) {
  double worst = 0;
  for (float x = -80.0f; x <= 80.0f; x += 0.00731f)
    worst = std::max(worst, std::fabs((double)fast_expf(x) / std::exp((double)x) - 1.0));
  EXPECT_LE(worst, 5e-7);
  EXPECT_EQ(fast_expf(-1000.0f) < 1e-37f, true);  // clamped, no NaN or denormal trouble
  EXPECT_TRUE(std::isfinite(fast_expf(1000.0f)));
}

}  // namespace
