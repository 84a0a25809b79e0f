// recur: the command-line program, a thin layer over the engine library.
//   recur train   train a model on a text corpus (default: the built-in KJV), checkpoint, resume
//   recur sample  continue a prompt from a checkpoint
//   recur serve   generate for many requests (JSON lines) with continuous batching (serve.cpp)
//   recur experiment  train and evaluate a grid of looped / deep / shallow models on a task (experiment.cpp)
//   recur task    print a task's examples (task.cpp)
//   recur bench   throughput benchmarks (see bench_train.cpp)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "recur/checkpoint.h"
#include "recur/config.h"
#include "recur/data.h"
#include "recur/error.h"
#include "recur/experiment.h"
#include "recur/report.h"
#include "recur/runtime.h"
#include "recur/sample.h"
#include "recur/train.h"
#include "tools.h"

using namespace recur;

namespace {

// Model flags: a config file and/or per-key overrides, named exactly like the JSON keys. Each flag is only
// applied when given, so a --config file's values stand unless overridden.
struct ModelFlags {
  std::string config_path;
  std::map<std::string, std::optional<int>> ints;
  std::map<std::string, std::optional<float>> floats;
  std::optional<std::string> sharing;
  std::optional<bool> tied_embeddings, mor_kv_sharing;
  std::map<std::string, std::optional<std::string>> strings;
  std::vector<float> mor_capacity;
  void add(CLI::App* app) {
    ModelConfig d;
    app->add_option("--config", config_path, "model config JSON; the flags below override its keys");
    const std::pair<const char*, std::string> int_keys[] = {
        {"d_model", "model width"}, {"n_heads", "attention heads"},
        {"n_kv_heads", "key/value heads (grouped-query attention; default n_heads)"}, {"d_ff", "SwiGLU hidden width"},
        {"n_layers", "layer applications (effective depth)"}, {"max_seq_len", "longest sequence (RoPE table)"},
        {"vocab_size", "vocabulary size"}, {"n_recursions", "N_r for cycle/sequence/middle sharing"},
        {"prelude", "middle looping: unique layers before the loop"},
        {"loop_block", "middle looping: layers in the looped block (0: off)"},
        {"loop_count", "middle looping: times the block is applied"},
        {"coda", "middle looping: unique layers after the loop"}};
    std::map<std::string, int> default_int = {
        {"d_model", d.d_model}, {"n_heads", d.n_heads}, {"n_kv_heads", d.n_kv_heads}, {"d_ff", d.d_ff},
        {"n_layers", d.n_layers}, {"max_seq_len", d.max_seq_len}, {"vocab_size", d.vocab_size},
        {"n_recursions", d.n_recursions}, {"prelude", d.prelude}, {"loop_block", d.loop_block},
        {"loop_count", d.loop_count}, {"coda", d.coda}};
    for (const auto& [key, help] : int_keys)
      app->add_option("--" + std::string(key), ints[key], help + " [default: " + std::to_string(default_int[key]) + "]");
    app->add_option("--rope_theta", floats["rope_theta"], "RoPE base [default: 10000]");
    app->add_option("--norm_eps", floats["norm_eps"], "RMSNorm epsilon [default: 1e-05]");
    app->add_option("--sharing", sharing, "layer sharing: none | cycle | sequence | middle_cycle | middle_sequence [default: none]");
    app->add_option("--tied_embeddings", tied_embeddings, "output head tied to the embedding [default: true]");
    app->add_option("--input_injection", strings["input_injection"], "looped block input injection: none | add | concat [default: none]");
    app->add_option("--loop_reg_k", ints["loop_reg_k"], "looping regularizer block size k (0: off) [default: 0]");
    app->add_option("--loop_reg_lambda", floats["loop_reg_lambda"], "looping regularizer weight λ [default: 0]");
    app->add_option("--mor_routing", strings["mor_routing"], "Mixture-of-Recursions routing: none | expert | token [default: none]");
    app->add_option("--mor_gate", strings["mor_gate"], "expert-choice gate: sigmoid | tanh [default: sigmoid]");
    app->add_option("--mor_alpha", floats["mor_alpha"], "gate scale α [default: 0.1]");
    app->add_option("--mor_aux_loss", floats["mor_aux_loss"], "expert-choice auxiliary BCE coefficient [default: 0.001]");
    app->add_option("--mor_balance_loss", floats["mor_balance_loss"], "token-choice balancing coefficient [default: 0.1]");
    app->add_option("--mor_z_loss", floats["mor_z_loss"], "router z-loss coefficient [default: 1e-05]");
    app->add_option("--mor_kv_sharing", mor_kv_sharing, "later recursions reuse the first recursion's K/V [default: false]");
    app->add_option("--mor_capacity", mor_capacity, "expert-choice capacity per step [default: (N_r-r)/N_r]");
  }
  ModelConfig resolve() const {
    nlohmann::json j = config_path.empty() ? nlohmann::json::object()
                                           : nlohmann::json::parse(model_config_to_json(model_config_from_file(config_path)));
    if (!config_path.empty() && ints.at("n_heads") && !ints.at("n_kv_heads")) j.erase("n_kv_heads");
    for (const auto& [key, value] : ints)
      if (value) j[key] = *value;
    for (const auto& [key, value] : floats)
      if (value) j[key] = *value;
    if (sharing) j["sharing"] = *sharing;
    if (tied_embeddings) j["tied_embeddings"] = *tied_embeddings;
    if (mor_kv_sharing) j["mor_kv_sharing"] = *mor_kv_sharing;
    for (const auto& [key, value] : strings)
      if (value) j[key] = *value;
    if (!mor_capacity.empty()) j["mor_capacity"] = mor_capacity;
    return model_config_from_json(j.dump());
  }
};

}  // namespace

void add_train_flags(CLI::App* app, TrainConfig& t) {
  app->add_option("--batch_size", t.batch_size, "sequences per micro-batch")->capture_default_str();
  app->add_option("--seq_len", t.seq_len, "tokens per sequence")->capture_default_str();
  app->add_option("--steps", t.steps, "optimizer steps in total")->capture_default_str();
  app->add_option("--grad_accum", t.grad_accum, "micro-batches per optimizer step")->capture_default_str();
  app->add_option("--schedule", t.schedule, "lr schedule after warm-up: cosine | wsd | constant")->capture_default_str();
  app->add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  app->add_option("--warmup_steps", t.warmup_steps, "linear warm-up steps")->capture_default_str();
  app->add_option("--min_lr_ratio", t.min_lr_ratio, "final lr as a fraction of --lr")->capture_default_str();
  app->add_option("--decay_frac", t.decay_frac, "wsd: fraction of steps in the final linear decay")->capture_default_str();
  app->add_option("--weight_decay", t.weight_decay, "AdamW decoupled weight decay (2-D weights only)")->capture_default_str();
  app->add_option("--beta1", t.beta1, "AdamW beta1")->capture_default_str();
  app->add_option("--beta2", t.beta2, "AdamW beta2")->capture_default_str();
  app->add_option("--eps", t.eps, "AdamW epsilon")->capture_default_str();
  app->add_option("--grad_clip", t.grad_clip, "global grad-norm clip (0: off)")->capture_default_str();
  app->add_option("--seed", t.seed, "seed for initialization and data windows")->capture_default_str();
  app->add_option("--eval_every", t.eval_every, "validate every N steps (0: at the end)")->capture_default_str();
  app->add_option("--eval_batches", t.eval_batches, "validation batches")->capture_default_str();
  app->add_option("--save_every", t.save_every, "checkpoint every N steps (0: at the end)")->capture_default_str();
  app->add_option("--log_every", t.log_every, "progress line every N steps")->capture_default_str();
  app->add_option("--loop_count_min", t.loop_count_min, "looped models: sample each step's loop count from "
                  "[min, max] (0: off)")->capture_default_str();
  app->add_option("--loop_count_max", t.loop_count_max, "upper end of the sampled loop count")->capture_default_str();
  app->add_option("--mor_capacity_warmup_steps", t.mor_capacity_warmup_steps,
                  "MoR: cosine warm-up of capacities from 1 to target (0: off)")->capture_default_str();
  app->add_option("--mor_balance_warmup_steps", t.mor_balance_warmup_steps,
                  "MoR: linear warm-up of the balancing loss (0: off)")->capture_default_str();
  app->add_option("--mor_bias_rate", t.mor_bias_rate, "MoR token choice: loss-free balancing bias step (SPEC: 1e-3; 0: off)")
      ->capture_default_str();
}

void add_sampling_flags(CLI::App* app, SampleOptions& o) {
  app->add_option("--temperature", o.temperature, "softmax temperature (0: greedy)")->capture_default_str();
  app->add_option("--top_k", o.top_k, "sample among the k most likely (0: all)")->capture_default_str();
  app->add_option("--seed", o.seed, "sampling seed")->capture_default_str();
}

int main(int argc, char** argv) {
  CLI::App app{"recur: train, evaluate and serve looped and recursive transformers on the CPU"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  int threads = 2;
  app.add_option("--threads", threads, "threads for kernels and BLAS (0: all cores)")->capture_default_str();

  // ---- train
  CLI::App* train = app.add_subcommand("train", "train a model on a text corpus (byte-level, vocab 256)");
  ModelFlags train_model;
  train_model.add(train);
  TrainConfig train_config;
  train_config.steps = 600;
  train_config.warmup_steps = 50;
  std::string data = kBuiltinCorpus, out_dir = "runs/default", resume;
  double val_fraction = 0.05;
  int sample_tokens = 300;
  std::string sample_prompt = "And God said";
  train->add_option("--data", data, "text file, folder of text files, or builtin:kjv")->capture_default_str();
  train->add_option("--val_fraction", val_fraction, "tail of the corpus held out for validation")->capture_default_str();
  train->add_option("--out", out_dir, "output folder: checkpoints, metrics.jsonl")->capture_default_str();
  train->add_option("--resume", resume, "continue from a checkpoint folder or an --out folder");
  int64_t stop_at = 0;
  train->add_option("--stop_at", stop_at, "checkpoint and stop after this step (train in pieces; 0: run to --steps)")
      ->capture_default_str();
  train->add_option("--sample_tokens", sample_tokens, "after training, print a sample of this many bytes (0: none)")
      ->capture_default_str();
  train->add_option("--prompt", sample_prompt, "prompt for the final sample")->capture_default_str();
  add_train_flags(train, train_config);
  double flops_budget = 0;
  train->add_option("--flops_budget", flops_budget,
                    "train for this many FLOPs instead of --steps: steps = budget / (3 x forward FLOPs/token x "
                    "tokens/step), with MoR at its configured capacities (0: use --steps)");

  // ---- sample
  CLI::App* sample = app.add_subcommand("sample", "continue a prompt with a trained model");
  std::string checkpoint, prompt = "And God said";
  SampleOptions sample_options;
  sample->add_option("--checkpoint", checkpoint, "checkpoint folder or training --out folder")->required();
  sample->add_option("--prompt", prompt, "text to continue")->capture_default_str();
  sample->add_option("--max_new_tokens", sample_options.max_new_tokens, "bytes to generate")->capture_default_str();
  add_sampling_flags(sample, sample_options);

  // ---- serve
  CLI::App* serve_cmd = app.add_subcommand("serve", "generate for many requests (JSON lines in, JSON lines out)");
  ServeCliOptions serve_options;
  add_serve_flags(serve_cmd, serve_options);

  // ---- experiment
  CLI::App* experiment = app.add_subcommand("experiment", "train and evaluate a grid of looped / deep / shallow models on a task");
  ExperimentConfig exp;
  std::string exp_models = "1x1,2x1,4x1,2x2", exp_task_options = "{}";
  add_experiment_flags(experiment, exp, exp_models, exp_task_options);

  // ---- task
  CLI::App* task = app.add_subcommand("task", "print a task's examples (text, or JSON lines for other tools)");
  TaskDumpOptions task_options;
  add_task_flags(task, task_options);

  // ---- bench
  CLI::App* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  BenchTrainOptions bench_train_options;
  CLI::App* bench_train = bench->add_subcommand("train", "training throughput (tokens/s, GFLOP/s, % of sgemm peak)");
  add_bench_train_flags(bench_train, bench_train_options);
  BenchMorOptions bench_mor_options;
  CLI::App* bench_mor = bench->add_subcommand("mor", "MoR step time against the same model at full depth for every token");
  add_bench_mor_flags(bench_mor, bench_mor_options);
  BenchServeOptions bench_serve_options;
  CLI::App* bench_serve = bench->add_subcommand("serve", "generation throughput of trained models serving many requests");
  add_bench_serve_flags(bench_serve, bench_serve_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear at once in logs
  try {
    set_num_threads(threads);
    if (*train) {
      ModelConfig config = train_model.resolve();
      TextCorpus corpus = TextCorpus::load(data, val_fraction);
      Model model(config);
      model.init_weights(train_config.seed);
      check(flops_budget >= 0, "train: --flops_budget must be >= 0 (0: train for --steps)");
      if (flops_budget > 0) {
        check(!train->count("--steps"), "train: pass either --steps or --flops_budget, not both");
        double step_flops = model.train_flops_per_token(train_config.seq_len) * train_config.batch_size *
                            train_config.seq_len * train_config.grad_accum;
        train_config.steps = std::max<int64_t>(1, std::llround(flops_budget / step_flops));
        std::printf("recur train: --flops_budget %.3g = %lld steps of %.3g FLOPs\n", flops_budget,
                    (long long)train_config.steps, step_flops);
      }
      std::printf("recur train: %s | %zu parameters | %d layer applications over %d unique layers | %.2f MFLOPs/token "
                  "(forward) | %d threads | data %s (%zu train / %zu val bytes)\n",
                  resume.empty() ? "new model" : "resuming", model.n_params(), config.n_layers, config.n_unique_layers(),
                  model.forward_flops_per_token(train_config.seq_len) / 1e6, num_threads(), data.c_str(),
                  corpus.train.size(), corpus.val.size());
      TrainOptions options;
      options.out_dir = out_dir;
      options.resume_from = resume;
      options.stop_at = stop_at;
      check(config.vocab_size >= 256, "train: byte-level text needs vocab_size >= 256");
      train_run(model, train_config, text_batches(corpus.train, train_config),
                text_validation(corpus.val, train_config), options);
      if (sample_tokens > 0) {
        SampleOptions so;
        so.max_new_tokens = sample_tokens;
        std::vector<int32_t> out = generate(model, bytes_to_tokens(sample_prompt), so);
        std::printf("\nsample (temperature %.1f, top-k %d):\n%s%s\n", so.temperature, so.top_k, sample_prompt.c_str(),
                    tokens_to_text(out).c_str());
      }
    } else if (*sample) {
      Model model = checkpoint_load_model(checkpoint);
      std::vector<int32_t> out = generate(model, bytes_to_tokens(prompt), sample_options);
      std::printf("%s%s\n", prompt.c_str(), tokens_to_text(out).c_str());
    } else if (*experiment) {
      finish_experiment_config(exp, exp_models, exp_task_options);
      std::string table = write_experiment_report(exp, run_experiment(exp));
      std::printf("\n%s\nwrote %s/results.csv, report.md, plot.svg\n", table.c_str(), exp.out_dir.c_str());
    } else if (*serve_cmd) {
      return run_serve(serve_options);
    } else if (*task) {
      return run_task_dump(task_options);
    } else if (*bench_train) {
      return run_bench_train(bench_train_options);
    } else if (*bench_mor) {
      return run_bench_mor(bench_mor_options);
    } else if (*bench_serve) {
      return run_bench_serve(bench_serve_options);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "recur: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recur: unexpected error: %s\n", e.what());
    return 3;
  }
  return 0;
}
