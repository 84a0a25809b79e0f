// tools/train.cpp: `recur train`: trains a model on a byte-level text corpus (default: the built-in KJV) or on token
// shards (`recur data prepare`, with their tokenizer), with checkpoints, exact resume, an optional FLOPs budget
// instead of a step count, and a sample at the end.
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
#include "recur/shards.h"
#include "recur/tokenizer.h"
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
  cmd->add_option("--data", o.data,
                  "text file, folder of text files, builtin:kjv, or a token shard folder (recur data prepare)")
      ->capture_default_str();
  cmd->add_option("--val_fraction", o.val_fraction, "tail of the corpus held out for validation")
      ->capture_default_str();
  cmd->add_option("--out", o.out_dir, "output folder: checkpoints, metrics.jsonl")->capture_default_str();
  cmd->add_option("--resume", o.resume, "continue from a checkpoint folder or an --out folder");
  cmd->add_option("--stop_at", o.stop_at, "checkpoint and stop after this step (train in pieces; 0: run to --steps)")
      ->capture_default_str();
  cmd->add_option("--sample_tokens", o.sample_tokens, "after training, print a sample of this many tokens (0: none)")
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

// The data of a run: a byte-level text corpus, or a shard folder with its tokenizer and data position.
struct TrainData {
  TextCorpus corpus;
  ShardFolder shards;
  std::unique_ptr<ShardTraining> shard_training;
  std::unique_ptr<Tokenizer> tokenizer = make_byte_tokenizer();
  std::string describe() const {
    if (shards.dir.empty())
      return std::to_string(corpus.train.size()) + " train / " + std::to_string(corpus.val.size()) + " val bytes";
    return std::to_string(shards.train.size()) + " train / " + std::to_string(shards.val.size()) + " val tokens, " +
           tokenizer->describe();
  }
};

// Shards set the model's vocab_size unless --vocab_size says otherwise (then it must agree).
void load_data(const TrainCommandOptions& o, ModelConfig& config, TrainData& data) {
  if (!is_shard_folder(o.data)) {
    data.corpus = TextCorpus::load(o.data, o.val_fraction);
    check(config.vocab_size >= 256, "train: byte-level text needs vocab_size >= 256");
    return;
  }
  data.shards = ShardFolder::open(o.data);
  data.tokenizer = tokenizer_from_serialized(data.shards.tokenizer_model, o.data + "/" + kTokenizerFile);
  if (!o.model.given.contains("vocab_size")) config.vocab_size = data.shards.vocab_size;
  check(config.vocab_size == data.shards.vocab_size, "train: --vocab_size ", config.vocab_size, " differs from the ",
        data.shards.vocab_size, " tokens of the shards in ", o.data, "; leave --vocab_size out to take theirs");
}

int run_train(const TrainCommandOptions& o) {
  ModelConfig config = o.model.resolve();
  TrainConfig train_config = o.train;
  TrainData data;
  load_data(o, config, data);
  Model model(config);
  model.init_weights(train_config.seed);
  check(o.flops_budget >= 0, "train: --flops_budget must be >= 0 (0: train for --steps)");
  if (o.flops_budget > 0) {
    check(o.steps_flag->count() == 0, "train: pass either --steps or --flops_budget, not both");
    train_config.steps = steps_for_budget(model, train_config, o.flops_budget);
  }
  std::printf(
      "recur train: %s | %zu parameters | %d layer applications over %d unique layers | %.2f MFLOPs/token "
      "(forward) | %d threads | data %s (%s)\n",
      o.resume.empty() ? "new model" : "resuming", model.n_params(), config.n_layers, config.n_unique_layers(),
      model.forward_flops_per_token(train_config.seq_len) / 1e6, num_threads(), o.data.c_str(),
      data.describe().c_str());
  note_precision(train_config.precision);
  TrainOptions options;
  options.out_dir = o.out_dir;
  options.resume_from = o.resume;
  options.stop_at = o.stop_at;
  if (is_shard_folder(o.data)) {
    data.shard_training = std::make_unique<ShardTraining>(data.shards, train_config);
    options.data_position = data.shard_training.get();
    options.tokenizer_model = data.shards.tokenizer_model;
    train_run(model, train_config, data.shard_training->batches(), data.shard_training->validation(), options);
  } else {
    train_run(model, train_config, text_batches(data.corpus.train, train_config),
              text_validation(data.corpus.val, train_config), options);
  }
  if (o.sample_tokens > 0) {
    SampleOptions sampling;
    sampling.max_new_tokens = o.sample_tokens;
    std::vector<int32_t> out = generate(model, data.tokenizer->encode(o.sample_prompt), sampling);
    std::printf("\nsample (temperature %.1f, top-k %d):\n%s%s\n", sampling.temperature, sampling.top_k,
                o.sample_prompt.c_str(), data.tokenizer->decode(out).c_str());
  }
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& parent) {
  return make_command<TrainCommandOptions>(
      parent, "train", "train a model on a text corpus (byte-level) or token shards", add_flags, run_train);
}

}  // namespace recur::cli
