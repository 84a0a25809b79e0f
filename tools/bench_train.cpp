// tools/bench_train.cpp: `recur bench train`: training throughput of full optimizer steps (forward, backward,
// clip, AdamW) on the S and M configs or config files, reported as tokens/s (mean ± std over steps), achieved
// GFLOP/s and the fraction of this machine's matrix-product peak in that precision (the same product through the
// GEMM seam, on the chosen backend), which the bench measures itself first.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/config.h"
#include "recur/kernels.h"
#include "recur/runtime.h"
#include "recur/train.h"

namespace recur::cli {

namespace {

struct BenchTrainOptions {
  std::vector<std::string> configs = {"S", "M"};  // S, M, or model config JSON files
  int steps = 10;                                 // timed steps per config
  int warmup = 2;                                 // untimed steps first
  int batch_size = 0;                             // 0: the config's own (S: 16, M: 8)
  int seq_len = 256;
  int peak_size = 2048;  // n of the n×n×n product that measures the peak
  std::string precision = "f32";
  std::string gemm = "onednn";
  bool json = false;
};

void add_flags(CLI::App* app, BenchTrainOptions& o) {
  app->add_option("--configs", o.configs, "configs to run: S, M, or model config JSON files")->capture_default_str();
  app->add_option("--steps", o.steps, "timed steps per config")->capture_default_str();
  app->add_option("--warmup", o.warmup, "untimed steps before timing")->capture_default_str();
  app->add_option("--batch_size", o.batch_size, "batch size (0: S 16, M 8, files 8)")->capture_default_str();
  app->add_option("--seq_len", o.seq_len, "sequence length")->capture_default_str();
  app->add_option("--peak_size", o.peak_size, "n for the n×n×n peak probe")->capture_default_str();
  add_precision_flag(app, o.precision);
  add_gemm_flag(app, o.gemm);
  app->add_flag("--json", o.json, "one JSON line per config instead of a table");
}

ModelConfig bench_config(const std::string& name, int& batch_size) {
  ModelConfig c;
  c.vocab_size = 256;
  c.max_seq_len = 256;
  if (name == "S") {
    c.d_model = 256, c.n_heads = c.n_kv_heads = 4, c.d_ff = 688, c.n_layers = 4;
    if (batch_size == 0) batch_size = 16;
  } else if (name == "M") {
    c.d_model = 512, c.n_heads = c.n_kv_heads = 8, c.d_ff = 1376, c.n_layers = 4;
    if (batch_size == 0) batch_size = 8;
  } else {
    c = model_config_from_file(name);
    if (batch_size == 0) batch_size = 8;
  }
  return c;
}

int run_bench_train(const BenchTrainOptions& o) {
  Precision precision = precision_from_name(o.precision);
  bool bf16 = precision == Precision::bf16;
  use_gemm(o.gemm);
  note_precision(precision);
  double peak = kernels::measure_gemm_gflops(o.peak_size, 5, bf16);
  const char* peak_name = bf16 ? "bf16 product" : "f32 product";
  if (!o.json) {
    std::printf("%s peak (%d^3, %d threads, %s): %.1f GFLOP/s\n\n", peak_name, o.peak_size, num_threads(),
                kernels::gemm_backend_name(kernels::gemm_backend()), peak);
    std::printf("| config | precision | params | batch×seq | tokens/s | step ms | GFLOP/s | %% of %s peak |\n",
                peak_name);
    std::printf("|---|---|---|---|---|---|---|---|\n");
  }
  for (const std::string& name : o.configs) {
    int batch_size = o.batch_size;
    ModelConfig mc = bench_config(name, batch_size);
    mc.max_seq_len = std::max(mc.max_seq_len, o.seq_len);
    Model model(mc);
    model.init_weights(1);
    model.set_precision(precision);  // train_step refreshes the bf16 copy after each update
    TrainPass pass(model);
    std::vector<double> tps;
    for (double seconds : time_train_steps(model, pass, batch_size, o.seq_len, o.warmup, o.steps))
      tps.push_back(batch_size * o.seq_len / seconds);
    double mean = 0, var = 0;
    for (double x : tps) mean += x / tps.size();
    for (double x : tps) var += (x - mean) * (x - mean) / std::max<size_t>(1, tps.size() - 1);
    double gflops = model.train_flops_per_token(o.seq_len) * mean / 1e9;
    double step_ms = 1000.0 * batch_size * o.seq_len / mean;
    if (o.json) {
      nlohmann::json row = {{"impl", "recur"},          {"config", name},
                            {"precision", o.precision}, {"gemm", o.gemm},
                            {"threads", num_threads()}, {"batch", batch_size},
                            {"seq", o.seq_len},         {"params", model.n_params()},
                            {"tokens_per_s", mean},     {"tokens_per_s_std", std::sqrt(var)},
                            {"step_ms", step_ms},       {"gflops", gflops},
                            {"peak_gflops", peak},      {"fraction_of_peak", gflops / peak}};
      std::printf("%s\n", row.dump().c_str());
    } else {
      std::printf("| %s | %s | %zu | %d×%d | %.0f ± %.0f | %.1f | %.1f | %.1f%% |\n", name.c_str(), o.precision.c_str(),
                  model.n_params(), batch_size, o.seq_len, mean, std::sqrt(var), step_ms, gflops,
                  100.0 * gflops / peak);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

Command add_bench_train_command(CLI::App& bench) {
  return make_command<BenchTrainOptions>(
      bench, "train", "training throughput (tokens/s, GFLOP/s, % of matrix-product peak)", add_flags, run_bench_train);
}

}  // namespace recur::cli
