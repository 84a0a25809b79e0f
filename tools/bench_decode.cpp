// tools/bench_decode.cpp: `recur bench decode`: prompt processing (pp) and token generation (tg) rates of the
// KV-cache decoder, reported like llama-bench (tests as pp<N> / tg<N>, repetitions, mean ± sd, markdown or JSON),
// at batch 1 and at several sequences at once, on a checkpoint or on a preset/config with random weights.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/decode.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "recur/runtime.h"
#include "recur/sample.h"

namespace recur::cli {

namespace {

struct BenchDecodeOptions {
  std::string checkpoint, model = "S",
                          precision = "f32";  // model: S, M, L or a model config JSON file (random weights)
  std::string gemm = "onednn";
  std::vector<int> prompt = {256}, generate = {128}, batch = {1};
  int repetitions = 3;
  bool warmup = true;
  bool json = false;
};

void add_flags(CLI::App* app, BenchDecodeOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "a trained model (checkpoint or training --out folder)");
  app->add_option("--model", o.model,
                  "without --checkpoint: S (d256, 4 layers), M (d512, 4 layers), L (d768, 12 heads, d_ff 2048, 12 "
                  "layers) or a model config JSON file, with random weights")
      ->capture_default_str();
  app->add_option("--pp", o.prompt, "prompt lengths to prefill (pp tests; 0: none)")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--tg", o.generate, "tokens to generate one at a time (tg tests; 0: none)")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--batch", o.batch, "sequences decoding together")->delimiter(',')->capture_default_str();
  add_precision_flag(app, o.precision);
  add_gemm_flag(app, o.gemm);
  app->add_option("--reps", o.repetitions, "repetitions of each test")->capture_default_str();
  app->add_flag("!--no_warmup", o.warmup,
                "time the first run of each test too (by default one untimed run comes first, as in llama-bench: "
                "it pays oneDNN's kernel generation and the first touch of buffers)");
  app->add_flag("--json", o.json, "one JSON line per test instead of a table");
}

ModelConfig preset(const std::string& name) {
  ModelConfig c;
  c.vocab_size = 256, c.max_seq_len = 1024;
  if (name == "S")
    c.d_model = 256, c.n_heads = c.n_kv_heads = 4, c.d_ff = 688, c.n_layers = 4;
  else if (name == "M")
    c.d_model = 512, c.n_heads = c.n_kv_heads = 8, c.d_ff = 1376, c.n_layers = 4;
  else if (name == "L")
    c.d_model = 768, c.n_heads = c.n_kv_heads = 12, c.d_ff = 2048, c.n_layers = 12;
  else
    return model_config_from_file(name);
  return c;
}

// Seconds of one test: `prompt` tokens prefilled per sequence in one chunk each, or (generate > 0) that many
// one-token steps of every sequence after a one-token context.
double time_test(Decoder& decoder, int batch, int prompt, int generate, Rng& rng) {
  const ModelConfig& c = decoder.model().config();
  std::vector<KVCache> caches(batch);
  std::vector<std::vector<int32_t>> tokens(batch);
  for (auto& t : tokens) {
    t.resize(std::max(prompt, generate) + 1);
    for (auto& x : t) x = (int32_t)rng.uniform(c.vocab_size);
  }
  std::vector<float> logits;
  std::vector<DecodeChunk> chunks(batch);
  auto run = [&](int offset, int n) {
    for (int b = 0; b < batch; b++) chunks[b] = {&caches[b], tokens[b].data() + offset, n};
    decoder.forward(chunks, logits);
  };
  if (generate > 0) run(0, 1);  // the context the generated tokens follow, outside the timing
  auto t0 = std::chrono::steady_clock::now();
  if (generate > 0)
    for (int i = 1; i <= generate; i++) run(i, 1);
  else
    run(0, prompt);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The rates (tokens/s over all sequences) of o.repetitions runs of one test, after an untimed warm-up run unless
// --no_warmup.
std::vector<double> test_rates(const BenchDecodeOptions& o, Decoder& decoder, int batch, int prompt, int generate,
                               Rng& rng) {
  if (o.warmup) time_test(decoder, batch, prompt, generate, rng);
  std::vector<double> rates;
  for (int r = 0; r < o.repetitions; r++)
    rates.push_back(batch * (prompt + generate) / time_test(decoder, batch, prompt, generate, rng));
  return rates;
}

void print_row(const BenchDecodeOptions& o, const std::string& name, const Model& model, const std::string& test,
               int batch, const std::vector<double>& rates, double weight_gbs) {
  double mean = 0, var = 0;
  for (double r : rates) mean += r / rates.size();
  for (double r : rates) var += (r - mean) * (r - mean) / std::max<size_t>(1, rates.size() - 1);
  double sd = std::sqrt(var);
  if (o.json) {
    nlohmann::json row = {{"model", name},
                          {"params", model.n_params()},
                          {"test", test},
                          {"batch", batch},
                          {"threads", num_threads()},
                          {"tokens_per_s", mean},
                          {"tokens_per_s_sd", sd},
                          {"samples", rates}};
    if (weight_gbs > 0) row["weight_gb_per_s"] = weight_gbs;
    std::printf("%s\n", row.dump().c_str());
    return;
  }
  std::string bandwidth = weight_gbs > 0 ? std::to_string(weight_gbs).substr(0, 5) : "-";
  std::printf("| %s | %.2fM | %s | %d | %d | %.1f ± %.1f | %s |\n", name.c_str(), model.n_params() / 1e6, test.c_str(),
              batch, num_threads(), mean, sd, bandwidth.c_str());
}

// bf16 against f32 on the same weights: greedy continuations of one prompt (random tokens), and how many tokens
// agree before the first divergence. Leaves the model at bf16.
void print_greedy_agreement(const BenchDecodeOptions& o, Model& model, int n_tokens) {
  Rng rng(5);
  std::vector<int32_t> prompt(16);
  for (auto& t : prompt) t = (int32_t)rng.uniform(model.config().vocab_size);
  SampleOptions greedy;
  greedy.temperature = 0, greedy.max_new_tokens = n_tokens;
  model.set_precision(Precision::f32);
  std::vector<int32_t> f32 = generate(model, prompt, greedy);
  model.set_precision(Precision::bf16);
  std::vector<int32_t> bf16 = generate(model, prompt, greedy);
  int same = 0;
  while (same < n_tokens && f32[same] == bf16[same]) same++;
  if (o.json)
    std::printf("%s\n",
                nlohmann::json({{"test", "greedy_agreement"}, {"tokens", n_tokens}, {"agree", same}}).dump().c_str());
  else
    std::printf("\ngreedy bf16 vs f32: %d of %d tokens agree before the first divergence\n", same, n_tokens);
}

int run_bench_decode(const BenchDecodeOptions& o) {
  check(o.repetitions >= 1, "bench decode: --reps must be >= 1");
  use_gemm(o.gemm);
  Model model = o.checkpoint.empty() ? Model(preset(o.model)) : checkpoint_load_model(o.checkpoint);
  model.set_precision(precision_from_name(o.precision));
  std::string name = o.checkpoint.empty() ? o.model : o.checkpoint;
  const int max_len = model.config().max_seq_len;
  if (!o.json)
    std::printf(
        "| model | params | test | sequences | threads | tokens/s | weights GB/s |\n|---|---|---|---|---|---|---|\n");
  Decoder decoder(model);
  Rng rng(11);
  for (int batch : o.batch) {
    check(batch >= 1, "bench decode: every --batch must be >= 1");
    for (int pp : o.prompt) {
      if (pp == 0) continue;
      check(pp >= 1 && pp <= max_len, "bench decode: --pp ", pp, " must be in [1, max_seq_len ", max_len, "]");
      print_row(o, name, model, "pp" + std::to_string(pp), batch, test_rates(o, decoder, batch, pp, 0, rng), 0);
    }
    for (int tg : o.generate) {
      if (tg == 0) continue;
      check(tg >= 1 && tg < max_len, "bench decode: --tg ", tg, " must be in [1, max_seq_len ", max_len, ")");
      std::vector<double> rates = test_rates(o, decoder, batch, 0, tg, rng);
      double mean = 0;
      for (double x : rates) mean += x / rates.size();
      // every decode step streams all weights once for the whole batch
      size_t weight_bytes = model.precision() == Precision::bf16 ? 2 : 4;
      double weight_gbs = mean / batch * model.n_params() * weight_bytes / 1e9;
      print_row(o, name, model, "tg" + std::to_string(tg), batch, rates, weight_gbs);
    }
  }
  if (model.precision() == Precision::bf16) print_greedy_agreement(o, model, std::min(128, max_len - 16));
  return 0;
}

}  // namespace

Command add_bench_decode_command(CLI::App& bench) {
  return make_command(bench, "decode",
                      "prompt processing and token generation rates of the KV-cache decoder (like llama-bench)",
                      add_flags, run_bench_decode);
}

}  // namespace recur::cli
