// The looped-vs-deep grid experiment: trains each model of the grid on a task with one or more seeds (resumably)
// and evaluates it; src/experiment/analysis.cpp aggregates and fits the results, src/report renders them.
#include "recur/experiment.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "recur/checkpoint.h"
#include "recur/distributed.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "recur/task_train.h"
#include "recur/tasks.h"

namespace recur {

namespace fs = std::filesystem;

LoopSpec LoopSpec::parse(const std::string& text) {
  LoopSpec s;
  std::string body = text;
  auto fail = [&] {
    throw Error("experiment: cannot read model \"" + text + "\"; write kxL (e.g. 2x3, 6x1) or p+kxL+c (e.g. 1+2x2+1)");
  };
  size_t plus1 = body.find('+');
  if (plus1 != std::string::npos) {
    size_t plus2 = body.find('+', plus1 + 1);
    if (plus2 == std::string::npos) fail();
    try {
      s.prelude = std::stoi(body.substr(0, plus1));
      s.coda = std::stoi(body.substr(plus2 + 1));
    } catch (...) {
      fail();
    }
    body = body.substr(plus1 + 1, plus2 - plus1 - 1);
  }
  size_t x = body.find('x');
  if (x == std::string::npos) fail();
  try {
    size_t used = 0;
    s.k = std::stoi(body.substr(0, x), &used);
    if (used != x) fail();
    s.L = std::stoi(body.substr(x + 1), &used);
    if (used != body.size() - x - 1) fail();
  } catch (const Error&) {
    throw;
  } catch (...) {
    fail();
  }
  if (s.k < 1 || s.L < 1 || s.prelude < 0 || s.coda < 0) fail();
  return s;
}

std::string LoopSpec::name() const {
  std::string core = std::to_string(k) + "x" + std::to_string(L);
  if (prelude == 0 && coda == 0) return core;
  return std::to_string(prelude) + "+" + core + "+" + std::to_string(coda);
}

static ModelConfig model_for(const ExperimentConfig& e, const LoopSpec& s, const tasks::Task& task) {
  ModelConfig c = e.base;
  c.vocab_size = task.vocab_size();
  c.max_seq_len = task.max_length();
  c.sharing = Sharing::none;
  c.prelude = s.prelude;
  c.loop_block = s.k;
  c.loop_count = s.L;
  c.coda = s.coda;
  c.n_layers = s.depth();
  c.validate();
  return c;
}

static nlohmann::json result_to_json(const ModelResult& r) {
  return {{"model", r.spec.name()},
          {"params", r.params},
          {"flops_per_token", r.flops_per_token},
          {"difficulties", r.difficulties},
          {"accuracy", r.accuracy},
          {"eval_examples", r.eval_examples},
          {"mean_accuracy", r.mean_accuracy},
          {"train_seconds", r.train_seconds},
          {"steps", r.steps},
          {"seed", r.seed}};
}

static ModelResult result_from_json(const nlohmann::json& j, uint64_t default_seed) {
  ModelResult r;
  r.spec = LoopSpec::parse(j.at("model").get<std::string>());
  r.params = j.at("params").get<size_t>();
  r.flops_per_token = j.at("flops_per_token").get<double>();
  r.difficulties = j.at("difficulties").get<std::vector<int>>();
  r.accuracy = j.at("accuracy").get<std::vector<double>>();
  r.eval_examples = j.value("eval_examples", 0);  // results written before it was recorded have none
  r.mean_accuracy = j.at("mean_accuracy").get<double>();
  r.train_seconds = j.at("train_seconds").get<double>();
  r.steps = j.at("steps").get<int64_t>();
  r.seed = j.value("seed", default_seed);  // results written before seeds were recorded: seed index 0's
  return r;
}

// The final test evaluation: accuracy per test difficulty on e.eval_examples examples each.
static void evaluate_final(const Model& model, const tasks::Task& task, const ExperimentConfig& e, ModelResult* r) {
  TrainPass pass(model);
  r->difficulties.clear();
  r->accuracy.clear();
  for (const DifficultyAccuracy& a : evaluate_task(pass, task, tasks::Split::test, e.eval_examples, e.eval_batch)) {
    r->difficulties.push_back(a.difficulty);
    r->accuracy.push_back(a.accuracy());
  }
  r->mean_accuracy = 0;
  for (double a : r->accuracy) r->mean_accuracy += a / r->accuracy.size();
  r->eval_examples = e.eval_examples;
}

// Of several ranks (docs/distributed.md) only rank 0 writes; every rank computes the same result.
static void write_result(const std::string& path, const ModelResult& r) {
  if (dist_rank() != 0) return;
  std::string text = result_to_json(r).dump(2) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

// Seed index 0 keeps the folder of single-seed experiments, so they resume and extend to more seeds.
static std::string run_dir(const ExperimentConfig& e, const LoopSpec& spec, int seed_index) {
  std::string dir = e.out_dir + "/models/" + spec.name();
  return seed_index == 0 ? dir : dir + ".seed" + std::to_string(seed_index);
}

// One (model, seed): its earlier result (re-evaluated if asked), or trained (resuming a checkpoint) and evaluated.
static ModelResult run_one(const ExperimentConfig& e, const tasks::Task& task, TrainConfig train, const LoopSpec& spec,
                           int seed_index, const std::string& progress, bool quiet) {
  std::string dir = run_dir(e, spec, seed_index), result_path = dir + "/result.json";
  train.seed += (uint64_t)seed_index;
  if (fs::exists(result_path)) {
    std::vector<uint8_t> bytes = read_file_bytes(result_path);
    ModelResult r = result_from_json(nlohmann::json::parse(bytes.begin(), bytes.end()), train.seed);
    const char* how = "done earlier";
    if (e.reevaluate && r.eval_examples != e.eval_examples) {
      Model model = checkpoint_load_model(dir);  // the last checkpoint is the trained model
      evaluate_final(model, task, e, &r);
      write_result(result_path, r);
      how = "re-evaluated";
    }
    if (!quiet)
      std::printf("%s %s: mean accuracy %.1f%% on %d test examples per difficulty\n", progress.c_str(), how,
                  100 * r.mean_accuracy, r.eval_examples);
    return r;
  }
  Model model(model_for(e, spec, task));
  model.init_weights(train.seed);
  ModelResult r;
  r.spec = spec;
  r.seed = train.seed;
  r.params = model.n_params();
  r.flops_per_token = model.forward_flops_per_token(task.max_length());
  if (!quiet)
    std::printf("%s: depth %d, %zu parameters, %.2f MFLOPs/token, %lld steps\n", progress.c_str(), spec.depth(),
                r.params, r.flops_per_token / 1e6, (long long)train.steps);
  TrainOptions options;
  options.out_dir = dir;
  options.quiet = quiet;
  if (fs::exists(dir + "/latest")) options.resume_from = dir;
  train_run(model, train, task_batches(task, train),
            task_validation(task, std::min(e.eval_examples, 128), e.eval_batch), options);
  r.train_seconds = read_run_totals(dir).seconds;  // every resumed segment's steps
  r.steps = train.steps;
  evaluate_final(model, task, e, &r);
  write_result(result_path, r);
  if (!quiet) std::printf("%s: mean test accuracy %.1f%%\n", progress.c_str(), 100 * r.mean_accuracy);
  return r;
}

ExperimentReport run_experiment(const ExperimentConfig& e, bool quiet) {
  check(!e.models.empty(), "experiment: no models given; pass --models, e.g. 1x1,2x1,6x1,2x3");
  check(e.seeds >= 1 && e.seeds <= 1000, "experiment: seeds must be in 1..1000, got ", e.seeds);
  e.train.validate();
  auto task = tasks::make_task(e.task, e.task_options, e.task_seed);
  TrainConfig train = e.train;
  train.seq_len = task->max_length();  // rows are padded per batch; this only bounds them
  fs::create_directories(e.out_dir);
  ExperimentReport report;
  size_t total = e.models.size() * (size_t)e.seeds, index = 0;
  for (const LoopSpec& spec : e.models)
    for (int s = 0; s < e.seeds; s++) {
      std::string progress = "[" + std::to_string(++index) + "/" + std::to_string(total) + "] (" + spec.name() + ")";
      if (e.seeds > 1) progress += " seed " + std::to_string(train.seed + (uint64_t)s);
      report.runs.push_back(run_one(e, *task, train, spec, s, progress, quiet));
    }
  report.results = aggregate_seeds(report.runs);
  report.looped = fit_depth(report.results, true);
  report.non_looped = fit_depth(report.results, false);
  report.spread = fit_depth_over_seeds(report.runs);
  report.majority_baseline = majority_baseline(*task, e.eval_examples);
  return report;
}

}  // namespace recur
