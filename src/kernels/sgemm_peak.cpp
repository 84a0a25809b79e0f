// Measures this machine's matrix-multiply peak (GFLOP/s of a large square sgemm through our BLAS), the
// yardstick against which benchmarks report the fraction of peak they reach.
#include <cblas.h>

#include <chrono>
#include <vector>

#include "recur/kernels.h"

namespace recur::kernels {

double measure_sgemm_gflops(int n, int repeats) {
  std::vector<float> a((size_t)n * n, 0.5f), b((size_t)n * n, 0.25f), c((size_t)n * n, 0.0f);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  double best = 0;
  for (int r = 0; r < repeats; r++) {
    auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double gflops = 2.0 * n * (double)n * n / s / 1e9;
    if (gflops > best) best = gflops;
  }
  return best;
}

}  // namespace recur::kernels
