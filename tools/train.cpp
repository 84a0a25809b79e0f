// tools/train.cpp: `recur train`: trains a byte-level model on a text corpus (default: the built-in KJV), with
// checkpoints, exact resume, an optional FLOPs budget instead of a step count, and a sample at the end.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/data.h"
#include "recur/error.h"
#include "recur/model.h"
#include "recur/runtime.h"
#include "recur/sample.h"
#include "recur/train.h"

namespace recur::cli {

namespace {

struct TrainCommandOptions {
  ModelFlags model;
  TrainConfig train;
  std::string data = kBuiltinCorpus, out_dir = "runs/default", resume, sample_prompt = "And God said";
  double val_fraction = 0.05, flops_budget = 0;
  int sample_tokens = 300;
  int64_t stop_at = 0;
  const CLI::Option* steps_flag = nullptr;  // --steps, to refuse it together with --flops_budget
};

void add_flags(CLI::App* cmd, TrainCommandOptions& o) {
  o.train.steps = 600;
  o.train.warmup_steps = 50;
  o.model.add(cmd);
  cmd->add_option("--data", o.data, "text file, folder of text files, or builtin:kjv")->capture_default_str();
  cmd->add_option("--val_fraction", o.val_fraction, "tail of the corpus held out for validation")
      ->capture_default_str();
  cmd->add_option("--out", o.out_dir, "output folder: checkpoints, metrics.jsonl")->capture_default_str();
  cmd->add_option("--resume", o.resume, "continue from a checkpoint folder or an --out folder");
  cmd->add_option("--stop_at", o.stop_at, "checkpoint and stop after this step (train in pieces; 0: run to --steps)")
      ->capture_default_str();
  cmd->add_option("--sample_tokens", o.sample_tokens, "after training, print a sample of this many bytes (0: none)")
      ->capture_default_str();
  cmd->add_option("--prompt", o.sample_prompt, "prompt for the final sample")->capture_default_str();
  add_train_flags(cmd, o.train);
  o.steps_flag = cmd->get_option("--steps");
  cmd->add_option("--flops_budget", o.flops_budget,
                  "train for this many FLOPs instead of --steps: steps = budget / (3 x forward FLOPs/token x "
                  "tokens/step), with MoR at its configured capacities (0: use --steps)");
}

// The step count a --flops_budget buys for this model and batch shape.
int64_t steps_for_budget(const Model& model, const TrainConfig& config, double flops_budget) {
  double step_flops =
      model.train_flops_per_token(config.seq_len) * config.batch_size * config.seq_len * config.grad_accum;
  int64_t steps = std::max<int64_t>(1, std::llround(flops_budget / step_flops));
  std::printf("recur train: --flops_budget %.3g = %lld steps of %.3g FLOPs\n", flops_budget, (long long)steps,
              step_flops);
  return steps;
}

int run_train(const TrainCommandOptions& o) {
  ModelConfig config = o.model.resolve();
  TrainConfig train_config = o.train;
  TextCorpus corpus = TextCorpus::load(o.data, o.val_fraction);
  Model model(config);
  model.init_weights(train_config.seed);
  check(o.flops_budget >= 0, "train: --flops_budget must be >= 0 (0: train for --steps)");
  if (o.flops_budget > 0) {
    check(o.steps_flag->count() == 0, "train: pass either --steps or --flops_budget, not both");
    train_config.steps = steps_for_budget(model, train_config, o.flops_budget);
  }
  std::printf(
      "recur train: %s | %zu parameters | %d layer applications over %d unique layers | %.2f MFLOPs/token "
      "(forward) | %d threads | data %s (%zu train / %zu val bytes)\n",
      o.resume.empty() ? "new model" : "resuming", model.n_params(), config.n_layers, config.n_unique_layers(),
      model.forward_flops_per_token(train_config.seq_len) / 1e6, num_threads(), o.data.c_str(), corpus.train.size(),
      corpus.val.size());
  TrainOptions options;
  options.out_dir = o.out_dir;
  options.resume_from = o.resume;
  options.stop_at = o.stop_at;
  check(config.vocab_size >= 256, "train: byte-level text needs vocab_size >= 256");
  train_run(model, train_config, text_batches(corpus.train, train_config), text_validation(corpus.val, train_config),
            options);
  if (o.sample_tokens > 0) {
    SampleOptions sampling;
    sampling.max_new_tokens = o.sample_tokens;
    std::vector<int32_t> out = generate(model, bytes_to_tokens(o.sample_prompt), sampling);
    std::printf("\nsample (temperature %.1f, top-k %d):\n%s%s\n", sampling.temperature, sampling.top_k,
                o.sample_prompt.c_str(), tokens_to_text(out).c_str());
  }
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& parent) {
  return make_command<TrainCommandOptions>(parent, "train", "train a model on a text corpus (byte-level, vocab 256)",
                                           add_flags, run_train);
}

}  // namespace recur::cli
