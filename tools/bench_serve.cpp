// tools/bench_serve.cpp: `recur bench serve`: generation throughput of trained models serving many requests at once:
// continuous batching, and for MoR models synchronous depth (every token finishes its recursion before the next enters)
// against continuous depth-wise batching (tokens at different recursion steps share block passes), with and without
// gathered exits. Each row's speed is also put beside the first model's, with the ratio its forward FLOPs per token
// predict (MoR at its capacities); a second table shows where a MoR model's time goes, stage by stage.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/data.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "recur/runtime.h"
#include "recur/serve.h"

namespace recur::cli {

namespace {

struct BenchServeOptions {
  std::vector<std::string> checkpoints;
  int requests = 32, prompt_len = 64, max_new_tokens = 64, max_batch = 16;
  std::string data = "builtin:kjv";
  bool json = false;
};

void add_flags(CLI::App* app, BenchServeOptions& o) {
  app->add_option("--checkpoints", o.checkpoints,
                  "trained models to serve: checkpoint folders or training --out folders")
      ->required();
  app->add_option("--requests", o.requests, "requests per run")->capture_default_str();
  app->add_option("--prompt_len", o.prompt_len, "prompt bytes per request (windows of the validation text)")
      ->capture_default_str();
  app->add_option("--max_new_tokens", o.max_new_tokens, "bytes generated per request")->capture_default_str();
  app->add_option("--max_batch", o.max_batch, "sequences decoding at once")->capture_default_str();
  app->add_option("--data", o.data, "corpus the prompts come from")->capture_default_str();
  app->add_flag("--json", o.json, "JSON lines instead of a table");
}

// --requests prompts, each a window of --prompt_len bytes of the validation text at a seeded position.
std::vector<ServeRequest> make_requests(const BenchServeOptions& o) {
  TextCorpus corpus = TextCorpus::load(o.data, 0.05);
  check(corpus.val.size() > (size_t)o.prompt_len + 1, "bench serve: the validation text is shorter than --prompt_len");
  std::vector<ServeRequest> requests(o.requests);
  Rng rng(7);
  for (ServeRequest& r : requests) {
    size_t start = rng.uniform(corpus.val.size() - o.prompt_len);
    r.prompt.assign(corpus.val.begin() + start, corpus.val.begin() + start + o.prompt_len);
    r.max_new_tokens = o.max_new_tokens;
  }
  return requests;
}

// One model served in one batching mode.
struct ServeRun {
  std::string checkpoint, mode;
  size_t params = 0;
  double flops = 0;
  ServeStats stats;
  double tokens_per_s() const { return stats.generated_tokens / stats.seconds; }
};

// A MoR model's modes: synchronous depth, depth-wise, depth-wise with gathered exits; other models' one.
std::vector<ServeRun> serve_modes(const std::string& path, const std::vector<ServeRequest>& requests,
                                  const BenchServeOptions& o) {
  Model model = checkpoint_load_model(path);
  struct Mode {
    bool depthwise, gather_exits;
    const char* name;
  };
  std::vector<Mode> modes = {{false, false, "continuous"}};
  if (model.config().mor())
    modes = {{false, false, "continuous, synchronous depth"},
             {true, false, "continuous depth-wise"},
             {true, true, "continuous depth-wise, gathered exits"}};
  std::vector<ServeRun> runs;
  for (const Mode& m : modes) {
    ServeOptions options;
    options.max_batch = o.max_batch;
    options.depthwise = m.depthwise, options.gather_exits = m.gather_exits;
    serve(model, {requests.begin(), requests.begin() + 1}, options);  // warm-up
    ServeRun run;
    run.checkpoint = path, run.mode = m.name, run.params = model.n_params();
    run.flops = model.forward_flops_per_token(o.prompt_len + o.max_new_tokens);
    serve(model, requests, options, &run.stats);
    runs.push_back(run);
  }
  return runs;
}

nlohmann::json run_json(const ServeRun& r) {
  const ServeStats& s = r.stats;
  nlohmann::json stages = nlohmann::json::object();
  for (int i = 0; i < MorStageTimes::n_stages; i++)
    stages[MorStageTimes::names[i]] = {{"calls", s.decode_stages.calls[i]},
                                       {"rows", s.decode_stages.rows[i]},
                                       {"seconds", s.decode_stages.seconds[i]}};
  return {{"checkpoint", r.checkpoint},
          {"params", r.params},
          {"batching", r.mode},
          {"tokens_per_s", r.tokens_per_s()},
          {"seconds", s.seconds},
          {"iterations", s.decode_iterations},
          {"block_passes", s.block_passes},
          {"block_rows", s.block_rows},
          {"peak_kv_bytes", s.peak_kv_bytes},
          {"forward_flops_per_token", r.flops},
          {"prefill_seconds", s.prefill_seconds},
          {"sample_seconds", s.sample_seconds},
          {"decode_stages", stages}};
}

void print_speed_row(const ServeRun& r, const ServeRun& first, const ServeRun* synchronous) {
  const ServeStats& s = r.stats;
  char block[64] = "- | -";
  if (s.block_passes > 0)
    std::snprintf(block, sizeof block, "%.2f | %.3f", (double)s.block_rows / s.block_passes,
                  (double)s.block_passes / s.generated_tokens);
  char vs_sync[32] = "";
  if (synchronous)
    std::snprintf(vs_sync, sizeof vs_sync, " (%.2f× synchronous)", r.tokens_per_s() / synchronous->tokens_per_s());
  std::printf("| %s | %.2fM | %s | %.0f%s | %.1f | %s | %.1f | %.2f | %.2f× (%.2f×) |\n", r.checkpoint.c_str(),
              r.params / 1e6, r.mode.c_str(), r.tokens_per_s(), vs_sync,
              1000 * s.seconds / std::max<int64_t>(1, s.decode_iterations), block, s.peak_kv_bytes / 1e6, r.flops / 1e6,
              r.tokens_per_s() / first.tokens_per_s(), first.flops / r.flops);
}

// Where a MoR run's time goes: per generated token, the milliseconds of each stage, with its calls and rows.
void print_time_row(const ServeRun& r) {
  const ServeStats& s = r.stats;
  double per_token = 1000.0 / s.generated_tokens, stages = 0;
  std::printf("| %s | %s | %.3f", r.checkpoint.c_str(), r.mode.c_str(), s.prefill_seconds * per_token);
  for (int i = 0; i < MorStageTimes::n_stages; i++) {
    const MorStageTimes& t = s.decode_stages;
    stages += t.seconds[i];
    std::printf(" | %.3f (%.3f calls × %.1f rows)", t.seconds[i] * per_token, (double)t.calls[i] / s.generated_tokens,
                t.calls[i] ? (double)t.rows[i] / t.calls[i] : 0.0);
  }
  double other = s.seconds - s.prefill_seconds - stages - s.sample_seconds;
  std::printf(" | %.3f | %.3f | %.3f |\n", s.sample_seconds * per_token, other * per_token, s.seconds * per_token);
}

int run_bench_serve(const BenchServeOptions& o) {
  check(o.requests >= 1 && o.prompt_len >= 1 && o.max_new_tokens >= 1,
        "bench serve: --requests, --prompt_len and --max_new_tokens must be >= 1");
  std::vector<ServeRequest> requests = make_requests(o);
  std::vector<ServeRun> runs;
  for (const std::string& path : o.checkpoints)
    for (ServeRun& r : serve_modes(path, requests, o)) runs.push_back(std::move(r));
  if (o.json) {
    for (const ServeRun& r : runs) std::printf("%s\n", run_json(r).dump().c_str());
    return 0;
  }
  std::printf(
      "%d requests × (%d prompt + %d generated bytes), up to %d at once, %d threads\n\n"
      "| model | unique params | batching | generated tokens/s | ms per iteration | block rows per pass "
      "| block passes per token | peak KV MB | forward MFLOPs/token | speed vs first (FLOP ideal) |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n",
      o.requests, o.prompt_len, o.max_new_tokens, o.max_batch, num_threads());
  const ServeRun* synchronous = nullptr;
  for (const ServeRun& r : runs) {
    bool depthwise = r.mode.find("depth-wise") != std::string::npos;
    print_speed_row(r, runs.front(), depthwise ? synchronous : nullptr);
    if (!depthwise) synchronous = &r;
  }
  std::printf(
      "\nWhere the time goes (MoR), ms per generated token; decode stages with calls per generated token × rows per "
      "call:\n\n| model | batching | prefill | %s | %s | %s | sampling | other | total |\n"
      "|---|---|---|---|---|---|---|---|---|\n",
      MorStageTimes::names[0], MorStageTimes::names[1], MorStageTimes::names[2]);
  for (const ServeRun& r : runs)
    if (r.stats.block_passes > 0) print_time_row(r);
  return 0;
}

}  // namespace

Command add_bench_serve_command(CLI::App& bench) {
  return make_command<BenchServeOptions>(
      bench, "serve", "generation throughput of trained models serving many requests", add_flags, run_bench_serve);
}

}  // namespace recur::cli
