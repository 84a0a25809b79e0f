// `recur bench train` and `recur bench mor`. bench train: training throughput of full optimizer steps (forward, backward, clip, AdamW) on the
// issue's configs, reported as tokens/s (mean ± std over steps), achieved GFLOP/s and the fraction of this
// machine's sgemm peak, which the bench measures itself first. bench mor: a MoR training step against the same
// recursive model with every token at every depth: measured time ratio versus the ratio its FLOPs predict.
#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "recur/config.h"
#include "recur/kernels.h"
#include "recur/rng.h"
#include "recur/runtime.h"
#include "recur/train.h"
#include "tools.h"

using namespace recur;

void add_bench_train_flags(CLI::App* app, BenchTrainOptions& o) {
  app->add_option("--configs", o.configs, "configs to run: S, M, or model config JSON files")->capture_default_str();
  app->add_option("--steps", o.steps, "timed steps per config")->capture_default_str();
  app->add_option("--warmup", o.warmup, "untimed steps before timing")->capture_default_str();
  app->add_option("--batch_size", o.batch_size, "batch size (0: S 16, M 8, files 8)")->capture_default_str();
  app->add_option("--seq_len", o.seq_len, "sequence length")->capture_default_str();
  app->add_option("--peak_size", o.peak_size, "n for the n×n×n sgemm peak probe")->capture_default_str();
  app->add_flag("--json", o.json, "one JSON line per config instead of a table");
}

// Seconds of each timed full training step (forward, backward, clip, AdamW) on random bytes, after warm-up.
static std::vector<double> time_train_steps(Model& model, TrainPass& pass, int batch_size, int seq_len, int warmup, int steps) {
  TrainConfig tc;
  tc.batch_size = batch_size;
  tc.seq_len = seq_len;
  tc.lr = 3e-4f;
  tc.warmup_steps = 0;
  tc.steps = warmup + steps;
  AdamW opt;
  opt.init(model.n_params());
  std::vector<uint8_t> text(1 << 20);
  Rng rng(7);
  for (auto& b : text) b = (uint8_t)rng.uniform(256);
  std::vector<double> seconds;
  for (int s = 0; s < warmup + steps; s++) {
    StepMetrics m = train_step(model, pass, opt, tc, text_batches(text, tc));
    if (s >= warmup) seconds.push_back(m.elapsed_s);
  }
  return seconds;
}

static ModelConfig bench_config(const std::string& name, int& batch_size) {
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
  double peak = kernels::measure_sgemm_gflops(o.peak_size, 5);
  if (!o.json) {
    std::printf("sgemm peak (%d^3, %d threads): %.1f GFLOP/s\n\n", o.peak_size, num_threads(), peak);
    std::printf("| config | params | batch×seq | tokens/s | step ms | GFLOP/s | %% of sgemm peak |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
  }
  for (const std::string& name : o.configs) {
    int batch_size = o.batch_size;
    ModelConfig mc = bench_config(name, batch_size);
    mc.max_seq_len = std::max(mc.max_seq_len, o.seq_len);
    Model model(mc);
    model.init_weights(1);
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
      nlohmann::json row = {{"impl", "recur"},          {"config", name},           {"threads", num_threads()},
                            {"batch", batch_size},       {"seq", o.seq_len},         {"params", model.n_params()},
                            {"tokens_per_s", mean},      {"tokens_per_s_std", std::sqrt(var)},
                            {"step_ms", step_ms},        {"gflops", gflops},         {"sgemm_peak_gflops", peak},
                            {"fraction_of_peak", gflops / peak}};
      std::printf("%s\n", row.dump().c_str());
    } else {
      std::printf("| %s | %zu | %d×%d | %.0f ± %.0f | %.1f | %.1f | %.1f%% |\n", name.c_str(), model.n_params(),
                  batch_size, o.seq_len, mean, std::sqrt(var), step_ms, gflops, 100.0 * gflops / peak);
    }
    std::fflush(stdout);
  }
  return 0;
}

void add_bench_mor_flags(CLI::App* app, BenchMorOptions& o) {
  app->add_option("--d_model", o.d_model, "model width")->capture_default_str();
  app->add_option("--n_heads", o.n_heads, "attention heads")->capture_default_str();
  app->add_option("--d_ff", o.d_ff, "SwiGLU hidden width")->capture_default_str();
  app->add_option("--n_layers", o.n_layers, "layer applications at full depth")->capture_default_str();
  app->add_option("--n_recursions", o.n_recursions, "recursion steps N_r")->capture_default_str();
  app->add_option("--sharing", o.sharing, "cycle | middle_cycle")->capture_default_str();
  app->add_option("--routing", o.routing, "expert | token")->capture_default_str();
  app->add_option("--batch_size", o.batch_size, "batch size")->capture_default_str();
  app->add_option("--seq_len", o.seq_len, "sequence length")->capture_default_str();
  app->add_option("--steps", o.steps, "timed steps")->capture_default_str();
  app->add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
  app->add_flag("--json", o.json, "JSON lines instead of a table");
}

int run_bench_mor(const BenchMorOptions& o) {
  std::string base = "{\"vocab_size\": 256, \"d_model\": " + std::to_string(o.d_model) + ", \"n_heads\": " +
                     std::to_string(o.n_heads) + ", \"d_ff\": " + std::to_string(o.d_ff) + ", \"n_layers\": " +
                     std::to_string(o.n_layers) + ", \"max_seq_len\": " + std::to_string(o.seq_len) +
                     ", \"sharing\": \"" + o.sharing + "\", \"n_recursions\": " + std::to_string(o.n_recursions) +
                     ", \"mor_routing\": \"" + o.routing + "\"";
  std::string full_capacity = ", \"mor_capacity\": [";
  for (int r = 0; r < o.n_recursions; r++) full_capacity += r ? ", 1" : "1";
  full_capacity += "]";
  struct Variant {
    std::string name;
    ModelConfig config;
  };
  std::vector<Variant> variants = {{"every token, every depth", model_config_from_json(base + full_capacity + "}")},
                                   {"MoR (" + o.routing + " choice)", model_config_from_json(base + "}")}};
  if (o.routing == "token") variants.erase(variants.begin());  // token choice has no capacity knob
  std::vector<double> seconds, flops;
  std::vector<size_t> memory;
  if (!o.json)
    std::printf("| variant | active fraction per step | step ms | tokens/s | GFLOP/s | activation MB |\n"
                "|---|---|---|---|---|---|\n");
  for (Variant& v : variants) {
    Model model(v.config);
    model.init_weights(1);
    TrainPass pass(model);
    std::vector<double> times = time_train_steps(model, pass, o.batch_size, o.seq_len, o.warmup, o.steps);
    std::sort(times.begin(), times.end());
    seconds.push_back(times[times.size() / 2]);  // median step
    flops.push_back(3.0 * pass.last_forward_flops());
    memory.push_back(pass.activation_bytes());
    MorStats st = pass.mor_stats();
    std::string active;
    for (double a : st.active_fraction) active += (active.empty() ? "" : "/") + std::to_string(a).substr(0, 4);
    if (o.json) {
      nlohmann::json row = {{"variant", v.name}, {"step_s", seconds.back()}, {"train_flops", flops.back()},
                            {"activation_bytes", memory.back()}, {"active_fraction", st.active_fraction}};
      std::printf("%s\n", row.dump().c_str());
    } else {
      std::printf("| %s | %s | %.1f | %.0f | %.1f | %.1f |\n", v.name.c_str(), active.c_str(), 1000 * seconds.back(),
                  o.batch_size * o.seq_len / seconds.back(), flops.back() / seconds.back() / 1e9, memory.back() / 1e6);
    }
  }
  if (variants.size() == 2) {
    double predicted = flops[1] / flops[0], measured = seconds[1] / seconds[0];
    std::printf("%sFLOP-predicted time ratio %.3f, measured %.3f, measured/predicted %.3f, activation memory ratio %.3f\n",
                o.json ? "" : "\n", predicted, measured, measured / predicted, (double)memory[1] / memory[0]);
  }
  return 0;
}
