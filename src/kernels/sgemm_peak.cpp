// Measures this machine's matrix-multiply peaks (GFLOP/s of a large square sgemm through our BLAS, and of the
// same product in bf16 through the GEMM seam), the yardsticks against which benchmarks report the fraction of
// peak they reach.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

// The best GFLOP/s of `repeats` timed n×n×n products after one untimed one.
template <class Product>
static double best_gflops(int n, int repeats, Product product) {
  product();
  double best = 0;
  for (int r = 0; r < repeats; r++) {
    auto t0 = std::chrono::steady_clock::now();
    product();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * (double)n * n / s / 1e9);
  }
  return best;
}

double measure_sgemm_gflops(int n, int repeats) {
  std::vector<float> a((size_t)n * n, 0.5f), b((size_t)n * n, 0.25f), c((size_t)n * n, 0.0f);
  return best_gflops(n, repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  });
}

double measure_bf16_gemm_gflops(int n, int repeats) {
  std::vector<float> a((size_t)n * n, 0.5f), c((size_t)n * n, 0.0f);
  std::vector<uint16_t> b((size_t)n * n, bf16_bits(0.25f));
  return best_gflops(n, repeats, [&] { linear_forward(c.data(), a.data(), WeightView::of_bf16(b.data()), n, n, n); });
}

}  // namespace recur::kernels
