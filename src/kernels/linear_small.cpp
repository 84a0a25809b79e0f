// The small-N linear kernel: out (N,OC) = inp (N,C) · W (OC,C)ᵀ for a few input rows (decoding), where sgemm
// would pack the whole weight matrix on every call for a handful of rows. Each block of kRows weight rows is
// read from memory once and reused from L1 for every input row; f32 or bf16 weights, f32 accumulation. A bf16
// weight rounds the input rows to bf16 too; on a CPU with AVX512-BF16 the pairs multiply natively (vdpbf16ps),
// otherwise a bf16 is widened to f32 (its upper half) by a shift in registers. AVX2/FMA when the CPU has them
// (checked at run time; the functions carry their own target attribute), plain loops otherwise.
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

// Asks for the cache line kPrefetchAhead bytes past p into L2: the row kernels stream their weights, and the
// hardware prefetchers alone kept bf16 decoding of L at 116 tok/s where this prefetch gives 163-171 (an Intel CPU
// with AVX512-BF16, 2 threads; f32 went from 81 to 88-92).
constexpr size_t kPrefetchAhead = 2048;
template <class W>
inline void prefetch_ahead(const W* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchAhead, _MM_HINT_T1);
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
    prefetch_ahead(w + c);
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

// The sum of v's 16 lanes: the other 256-bit half added, then the other 128-bit quarter, then four lanes. (The
// masked forms: GCC 12's plain shuffles and casts start from an undefined register and warn.)
__attribute__((target("avx512f"))) inline float sum16(__m512 v) {
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0xB1));
  __m128 q = _mm512_mask_extractf32x4_ps(_mm_setzero_ps(), 0xF, v, 0);
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// The mask of a 32-lane load's first n lanes (all for n >= 32, none for n <= 0).
inline __mmask32 first_lanes(int n) { return n >= 32 ? ~0u : n <= 0 ? 0u : (1u << n) - 1; }

// The native bf16 row (AVX512-BF16): vdpbf16ps multiplies 32 bf16 pairs and adds each lane's two products to an
// f32 accumulator, so 64 columns per iteration cost two instructions per input row. Masked loads read the tail.
template <int NC>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void row_native_bf16(float* out, const uint16_t* inp,
                                                                            const uint16_t* w, int C, int OC) {
  __m512 acc[NC][2];
  for (int n = 0; n < NC; n++) acc[n][0] = acc[n][1] = _mm512_setzero_ps();
  for (int c = 0; c < C; c += 64) {
    int left = C - c;  // columns from c to the end of the row
    __mmask32 m0 = first_lanes(left), m1 = first_lanes(left - 32);
    prefetch_ahead(w + c);
    prefetch_ahead(w + c + 32);
    __m512bh w0 = (__m512bh)_mm512_maskz_loadu_epi16(m0, w + c),
             w1 = (__m512bh)_mm512_maskz_loadu_epi16(m1, w + c + 32);
    for (int n = 0; n < NC; n++) {
      const uint16_t* x = inp + (size_t)n * C + c;
      acc[n][0] = _mm512_dpbf16_ps(acc[n][0], w0, (__m512bh)_mm512_maskz_loadu_epi16(m0, x));
      acc[n][1] = _mm512_dpbf16_ps(acc[n][1], w1, (__m512bh)_mm512_maskz_loadu_epi16(m1, x + 32));
    }
  }
  for (int n = 0; n < NC; n++) out[(size_t)n * OC] = sum16(_mm512_add_ps(acc[n][0], acc[n][1]));
}

// The code paths of the kernel: plain loops, AVX2/FMA (f32 or widened bf16 weights), native bf16 pairs.
enum class Kernel { portable, avx2, native_bf16 };

// One weight row against NC input rows by kernel K (native_bf16: the input rows as bf16 bits).
template <Kernel K, int NC, class X, class W>
void row(float* out, const X* inp, const W* w, int C, int OC) {
  if constexpr (K == Kernel::portable)
    block_portable(out, inp, w, 1, NC, C, OC);
  else if constexpr (K == Kernel::avx2)
    row_avx2<NC>(out, inp, w, C, OC);
  else
    row_native_bf16<NC>(out, inp, w, C, OC);
}

// One block of r <= kRows weight rows against every input row, kInputRows at a time.
template <Kernel K, class X, class W>
void block(float* out, const X* inp, const W* w, int r, int N, int C, int OC) {
  for (int n0 = 0; n0 < N; n0 += kInputRows) {
    float* o = out + (size_t)n0 * OC;
    const X* x = inp + (size_t)n0 * C;
    for (int i = 0; i < r; i++)
      if (N - n0 >= kInputRows)
        row<K, kInputRows>(o + i, x, w + (size_t)i * C, C, OC);
      else
        row<K, 1>(o + i, x, w + (size_t)i * C, C, OC);
  }
}

// The blocks of kRows weight rows, on the OpenMP team when the product is large enough.
template <Kernel K, class X, class W>
void small_n(float* out, const X* inp, const W* w, int N, int C, int OC) {
  int n_blocks = (OC + kRows - 1) / kRows;
  auto run = [&](int b) {
    int o0 = b * kRows;
    block<K>(out + o0, inp, w + (size_t)o0 * C, std::min(kRows, OC - o0), N, C, OC);
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

void linear_forward_small_n(float* out, const float* inp, WeightView weight, int N, int C, int OC, SmallNPath path) {
  if (weight.bf16 && path == SmallNPath::fastest && cpu_has_avx512_bf16())
    return small_n<Kernel::native_bf16>(out, bf16_bits_operand(inp, (size_t)N * C, 0), weight.bf16, N, C, OC);
  const float* x = bf16_operand(inp, (size_t)N * C, weight.bf16 != nullptr, 0);  // inp itself for f32 weights
  bool avx2 = path != SmallNPath::portable && cpu_has_avx2_fma();
  auto run = [&](const auto* w) {
    if (avx2)
      small_n<Kernel::avx2>(out, x, w, N, C, OC);
    else
      small_n<Kernel::portable>(out, x, w, N, C, OC);
  };
  if (weight.bf16)
    run(weight.bf16);
  else
    run(weight.f32);
}

}  // namespace recur::kernels
