// The looped-vs-deep grid experiment: trains each model of the grid on a task (resumably), evaluates it, and
// analyses the results (depth fits, standard errors, %Gap); src/report renders and writes them.
#include "recur/experiment.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

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
          {"steps", r.steps}};
}

static ModelResult result_from_json(const nlohmann::json& j) {
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
  return r;
}

DepthFit fit_depth(const std::vector<ModelResult>& results, bool looped_family) {
  std::vector<std::pair<double, double>> points;
  for (const ModelResult& r : results) {
    bool member = r.spec.looped();
    if (!looped_family) member = !r.spec.looped();
    // (k⊗1) is the first member of the looped family of its k
    if (looped_family && !r.spec.looped())
      for (const ModelResult& o : results)
        if (o.spec.looped() && o.spec.k == r.spec.k && o.spec.prelude == r.spec.prelude && o.spec.coda == r.spec.coda)
          member = true;
    if (member) points.push_back({std::log((double)r.spec.depth()), r.mean_accuracy});
  }
  DepthFit fit;
  fit.points = (int)points.size();
  double n = points.size(), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double denom = n * sxx - sx * sx;
  if (n >= 2 && denom > 1e-12) {
    fit.alpha = (n * sxy - sx * sy) / denom;
    fit.beta = (sy - fit.alpha * sx) / n;
  } else {
    fit.points = 0;
  }
  return fit;
}

double mean_accuracy_stderr(const ModelResult& r) {
  if (r.eval_examples <= 0 || r.accuracy.empty()) return 0;
  double variance = 0;
  for (double p : r.accuracy) variance += p * (1 - p) / r.eval_examples;
  return std::sqrt(variance) / (double)r.accuracy.size();
}

std::vector<LoopGap> loop_gaps(const std::vector<ModelResult>& results) {
  std::map<std::string, const ModelResult*> by_name;
  for (const ModelResult& r : results) by_name[r.spec.name()] = &r;
  std::vector<LoopGap> gaps;
  for (const ModelResult& r : results) {
    if (!r.spec.looped() || r.spec.prelude || r.spec.coda) continue;
    auto shallow = by_name.find(std::to_string(r.spec.k) + "x1");
    auto deep = by_name.find(std::to_string(r.spec.k * r.spec.L) + "x1");
    if (shallow == by_name.end() || deep == by_name.end()) continue;
    LoopGap gap;
    gap.looped = r.spec.name();
    gap.shallow = shallow->first;
    gap.deep = deep->first;
    gap.looped_minus_shallow = r.mean_accuracy - shallow->second->mean_accuracy;
    gap.deep_minus_shallow = deep->second->mean_accuracy - shallow->second->mean_accuracy;
    // Two standard errors of the difference (0 when the example counts are unknown): a smaller gap between deep
    // and shallow is noise, and a ratio over it would mean nothing.
    double noise = 2 * std::hypot(mean_accuracy_stderr(*deep->second), mean_accuracy_stderr(*shallow->second));
    gap.defined = std::fabs(gap.deep_minus_shallow) >= std::max(1e-9, noise);
    gaps.push_back(gap);
  }
  return gaps;
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

ExperimentReport run_experiment(const ExperimentConfig& e, bool quiet) {
  check(!e.models.empty(), "experiment: no models given; pass --models, e.g. 1x1,2x1,6x1,2x3");
  e.train.validate();
  auto task = tasks::make_task(e.task, e.task_options, e.task_seed);
  TrainConfig train = e.train;
  train.seq_len = task->max_length();  // rows are padded per batch; this only bounds them
  fs::create_directories(e.out_dir);
  ExperimentReport report;
  int index = 0;
  for (const LoopSpec& spec : e.models) {
    index++;
    std::string dir = e.out_dir + "/models/" + spec.name();
    std::string result_path = dir + "/result.json";
    if (fs::exists(result_path)) {
      std::vector<uint8_t> bytes = read_file_bytes(result_path);
      ModelResult r = result_from_json(nlohmann::json::parse(bytes.begin(), bytes.end()));
      const char* how = "done earlier";
      if (e.reevaluate && r.eval_examples != e.eval_examples) {
        Model model = checkpoint_load_model(dir);  // the last checkpoint is the trained model
        evaluate_final(model, *task, e, &r);
        write_result(result_path, r);
        how = "re-evaluated";
      }
      report.results.push_back(r);
      if (!quiet)
        std::printf("[%d/%zu] (%s) %s: mean accuracy %.1f%% on %d test examples per difficulty\n", index,
                    e.models.size(), spec.name().c_str(), how, 100 * r.mean_accuracy, r.eval_examples);
      continue;
    }
    Model model(model_for(e, spec, *task));
    model.init_weights(train.seed);
    ModelResult r;
    r.spec = spec;
    r.params = model.n_params();
    r.flops_per_token = model.forward_flops_per_token(task->max_length());
    if (!quiet)
      std::printf("[%d/%zu] (%s): depth %d, %zu parameters, %.2f MFLOPs/token, %lld steps\n", index, e.models.size(),
                  spec.name().c_str(), spec.depth(), r.params, r.flops_per_token / 1e6, (long long)train.steps);
    TrainOptions options;
    options.out_dir = dir;
    options.quiet = quiet;
    if (fs::exists(dir + "/latest")) options.resume_from = dir;
    train_run(model, train, task_batches(*task, train),
              task_validation(*task, std::min(e.eval_examples, 128), e.eval_batch), options);
    r.train_seconds = read_run_totals(dir).seconds;  // every resumed segment's steps
    r.steps = train.steps;
    evaluate_final(model, *task, e, &r);
    write_result(result_path, r);
    report.results.push_back(r);
    if (!quiet)
      std::printf("[%d/%zu] (%s): mean test accuracy %.1f%%\n", index, e.models.size(), spec.name().c_str(),
                  100 * r.mean_accuracy);
  }
  report.looped = fit_depth(report.results, true);
  report.non_looped = fit_depth(report.results, false);
  return report;
}

}  // namespace recur
