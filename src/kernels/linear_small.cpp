// The small-N linear kernel: out (N,OC) = inp (N,C) · W (OC,C)ᵀ for a few input rows (decoding), where sgemm
// would pack the whole weight matrix on every call for a handful of rows. Each block of kRows weight rows is
// read from memory once and reused from L1 for every input row; f32 or bf16 weights (a bf16 is the upper half
// of an f32, widened by a shift in registers; the input rows are then rounded to bf16 too), f32 accumulation.
// AVX2/FMA when the CPU has them (checked at run time; the functions carry their own target attribute), plain
// loops otherwise.
#include <immintrin.h>

#include <algorithm>

#include "bf16_operand.h"
#include "recur/kernels.h"

namespace recur::kernels {

namespace {

constexpr int kRows = 4;       // weight rows per block (one block: kRows · C weights, in L1 for C <= 2048)
constexpr int kInputRows = 2;  // input rows per pass over a block: kRows · kInputRows accumulators in registers
// Fork/join only when the product streams at least this many weights times rows (about 0.25 MB of f32).
constexpr size_t kParallelWork = size_t(64) << 10;

inline float weight_at(const float* w, size_t i) { return w[i]; }
inline float weight_at(const uint16_t* w, size_t i) { return bf16_to_f32(w[i]); }

// Portable block: rows [0, r) of w against input rows [0, nc); out, inp and w point at the block's corner.
template <class W>
void block_portable(float* out, const float* inp, const W* w, int r, int nc, int C, int OC) {
  for (int o = 0; o < r; o++)
    for (int n = 0; n < nc; n++) {
      float acc = 0;
      for (int c = 0; c < C; c++) acc += inp[(size_t)n * C + c] * weight_at(w, (size_t)o * C + c);
      out[(size_t)n * OC + o] = acc;
    }
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* w) { return _mm256_loadu_ps(w); }
__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t* w) {
  __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
__attribute__((target("avx2,fma"))) inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One weight row at a time, 16 columns per iteration (two accumulators per input row), f32 or bf16 weights. Rows
// follow each other in memory, so the weights stream as one sequential read; several rows in lockstep would be
// several short streams of one row each, which the hardware prefetchers follow poorly (measured: half the
// bandwidth for bf16; f32 decoding of M ran at 410 tok/s in lockstep against 790 one row at a time).
template <int NC, class W>
__attribute__((target("avx2,fma"))) void row_avx2(float* out, const float* inp, const W* w, int C, int OC) {
  __m256 acc[NC][2];
  for (int n = 0; n < NC; n++) acc[n][0] = acc[n][1] = _mm256_setzero_ps();
  int c = 0;
  for (; c + 16 <= C; c += 16) {
    __m256 w0 = load8(w + c), w1 = load8(w + c + 8);
    for (int n = 0; n < NC; n++) {
      acc[n][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(inp + (size_t)n * C + c), acc[n][0]);
      acc[n][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(inp + (size_t)n * C + c + 8), acc[n][1]);
    }
  }
  for (int n = 0; n < NC; n++) {
    float s = sum8(_mm256_add_ps(acc[n][0], acc[n][1]));
    for (int t = c; t < C; t++) s += inp[(size_t)n * C + t] * weight_at(w, t);
    out[(size_t)n * OC] = s;
  }
}

// One block of r <= kRows weight rows against every input row, kInputRows at a time.
template <class W>
void block(float* out, const float* inp, const W* w, int r, int N, int C, int OC, bool avx2) {
  for (int n0 = 0; n0 < N; n0 += kInputRows) {
    int nc = std::min(kInputRows, N - n0);
    float* o = out + (size_t)n0 * OC;
    const float* x = inp + (size_t)n0 * C;
    if (!avx2)
      block_portable(o, x, w, r, nc, C, OC);
    else
      for (int i = 0; i < r; i++)
        if (nc == kInputRows)
          row_avx2<kInputRows>(o + i, x, w + (size_t)i * C, C, OC);
        else
          row_avx2<1>(o + i, x, w + (size_t)i * C, C, OC);
  }
}

template <class W>
void small_n(float* out, const float* inp, const W* w, int N, int C, int OC, bool avx2) {
  int n_blocks = (OC + kRows - 1) / kRows;
  auto run = [&](int b) {
    int o0 = b * kRows;
    block(out + o0, inp, w + (size_t)o0 * C, std::min(kRows, OC - o0), N, C, OC, avx2);
  };
  if ((size_t)N * C * OC < kParallelWork || n_blocks == 1) {  // no OpenMP region at all: it would cost more
    for (int b = 0; b < n_blocks; b++) run(b);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n_blocks; b++) run(b);
}

}  // namespace

bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

bool cpu_has_avx512_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
}

void linear_forward_small_n(float* out, const float* inp, WeightView weight, int N, int C, int OC, bool portable) {
  bool avx2 = !portable && cpu_has_avx2_fma();
  if (weight.bf16)
    small_n(out, bf16_operand(inp, (size_t)N * C, true, 0), weight.bf16, N, C, OC, avx2);
  else
    small_n(out, inp, weight.f32, N, C, OC, avx2);
}

}  // namespace recur::kernels
