// Measures this machine's matrix-multiply peak in f32 or bf16: the GFLOP/s of a large square product through the
// GEMM seam (linear_forward, on the current GemmBackend), the yardstick against which benchmarks report the fraction
// of peak they reach.
#include <algorithm>
#include <chrono>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

double measure_gemm_gflops(int n, int repeats, bool bf16) {
  std::vector<float> a((size_t)n * n, 0.5f), w((size_t)n * n, 0.25f), c((size_t)n * n, 0.0f);
  std::vector<uint16_t> w16((size_t)n * n, bf16_bits(0.25f));
  WeightView weight = bf16 ? WeightView::of_bf16(w16.data()) : WeightView(w.data());
  auto product = [&] { linear_forward(c.data(), a.data(), weight, n, n, n); };
  product();  // untimed: builds the backend's kernel for this shape
  double best = 0;
  for (int r = 0; r < repeats; r++) {
    auto t0 = std::chrono::steady_clock::now();
    product();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * (double)n * n / s / 1e9);
  }
  return best;
}

}  // namespace recur::kernels
