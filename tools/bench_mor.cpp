// tools/bench_mor.cpp: `recur bench mor`: a MoR training step against the same recursive model with every
// token at every depth: the measured time ratio versus the ratio its FLOPs predict, and the activation memory.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/config.h"
#include "recur/model.h"

namespace recur::cli {

namespace {

struct BenchMorOptions {
  int d_model = 512, n_heads = 8, d_ff = 1376, n_layers = 6, n_recursions = 3;
  std::string sharing = "cycle";
  int batch_size = 8, seq_len = 256, steps = 6, warmup = 2;
  std::string routing = "expert", precision = "f32", gemm = "onednn";
  bool json = false;
};

void add_flags(CLI::App* app, BenchMorOptions& o) {
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
  add_precision_flag(app, o.precision);
  add_gemm_flag(app, o.gemm);
  app->add_flag("--json", o.json, "JSON lines instead of a table");
}

int run_bench_mor(const BenchMorOptions& o) {
  use_gemm(o.gemm);
  note_precision(precision_from_name(o.precision));
  std::string base = "{\"vocab_size\": 256, \"d_model\": " + std::to_string(o.d_model) +
                     ", \"n_heads\": " + std::to_string(o.n_heads) + ", \"d_ff\": " + std::to_string(o.d_ff) +
                     ", \"n_layers\": " + std::to_string(o.n_layers) +
                     ", \"max_seq_len\": " + std::to_string(o.seq_len) + ", \"sharing\": \"" + o.sharing +
                     "\", \"n_recursions\": " + std::to_string(o.n_recursions) + ", \"mor_routing\": \"" + o.routing +
                     "\"";
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
    std::printf(
        "| variant | active fraction per step | step ms | tokens/s | GFLOP/s | activation MB |\n"
        "|---|---|---|---|---|---|\n");
  for (Variant& v : variants) {
    Model model(v.config);
    model.init_weights(1);
    model.set_precision(precision_from_name(o.precision));
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
      nlohmann::json row = {
          {"variant", v.name},           {"precision", o.precision},          {"step_s", seconds.back()},
          {"train_flops", flops.back()}, {"activation_bytes", memory.back()}, {"active_fraction", st.active_fraction}};
      std::printf("%s\n", row.dump().c_str());
    } else {
      std::printf("| %s | %s | %.1f | %.0f | %.1f | %.1f |\n", v.name.c_str(), active.c_str(), 1000 * seconds.back(),
                  o.batch_size * o.seq_len / seconds.back(), flops.back() / seconds.back() / 1e9, memory.back() / 1e6);
    }
  }
  if (variants.size() == 2) {
    double predicted = flops[1] / flops[0], measured = seconds[1] / seconds[0];
    std::printf(
        "%sFLOP-predicted time ratio %.3f, measured %.3f, measured/predicted %.3f, activation memory ratio %.3f\n",
        o.json ? "" : "\n", predicted, measured, measured / predicted, (double)memory[1] / memory[0]);
  }
  return 0;
}

}  // namespace

Command add_bench_mor_command(CLI::App& bench) {
  return make_command<BenchMorOptions>(
      bench, "mor", "MoR step time against the same model at full depth for every token", add_flags, run_bench_mor);
}

}  // namespace recur::cli
