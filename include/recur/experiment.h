// recur/experiment.h: the looped-transformer comparisons of Saunshi et al. as a command: train a grid of
// (k⊗L), (kL⊗1), (k⊗1) and middle-looped models on one task, evaluate exact-match accuracy per difficulty, and
// analyse them: the depth-scaling fit accuracy = α·log D + β per family and %Gap (report.h renders the tables).
// Each model's run is resumable; finished models are skipped on a re-run, or only re-evaluated (`reevaluate`).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recur/config.h"
#include "recur/tasks.h"
#include "recur/train.h"

namespace recur {

// One grid entry, written "kxL" or with unique prelude/coda layers "p+kxL+c" (e.g. "2x3", "1+2x2+1").
struct LoopSpec {
  int prelude = 0, k = 1, L = 1, coda = 0;
  static LoopSpec parse(const std::string& text);  // throws recur::Error with the accepted forms
  std::string name() const;
  int depth() const { return prelude + k * L + coda; }  // effective depth D
  bool looped() const { return L > 1; }
};

struct ExperimentConfig {
  std::string task = "phop";
  nlohmann::json task_options = nlohmann::json::object();
  uint64_t task_seed = 1;
  ModelConfig base;  // width, heads, d_ff; vocab and max_seq_len come from the task
  std::vector<LoopSpec> models;
  TrainConfig train;
  // Seeds per model: seed index s = 0..seeds-1 trains with train.seed + s (weight init and the training batch
  // stream); the task (task_seed) and so the test examples are the same for every seed. Seed index 0 runs in
  // models/<name>, seed index s > 0 in models/<name>.seed<s>.
  int seeds = 1;
  int eval_examples = 500;  // test examples per difficulty
  int eval_batch = 64;
  // Finished models: repeat the final test evaluation from their last checkpoint when it used a different
  // eval_examples (tighter error bars without retraining). Off: a finished model's result is reused as is.
  bool reevaluate = false;
  std::string out_dir = "runs/experiment";
};

struct ModelResult {
  LoopSpec spec;
  size_t params = 0;
  double flops_per_token = 0;  // forward, at the task's longest example
  std::vector<int> difficulties;
  std::vector<double> accuracy;  // per difficulty, test split
  int eval_examples = 0;         // test examples per difficulty behind `accuracy` (0: not recorded)
  double mean_accuracy = 0, train_seconds = 0;
  int64_t steps = 0;
  uint64_t seed = 0;  // the training seed of this run (train.seed + seed index)
  // A cell of several seeds (aggregate_seeds): accuracy and mean_accuracy are means over the seeds' runs,
  // train_seconds their sum, and these the standard errors over seeds (0 for one seed).
  int n_seeds = 1;
  std::vector<double> accuracy_seed_stderr;  // per difficulty
  double mean_accuracy_seed_stderr = 0;
  std::vector<double> seed_mean_accuracy;  // each seed's mean accuracy, in seed order
};

// A mean with its standard error (sample standard deviation / sqrt(n); 0 when n < 2).
struct MeanStderr {
  double mean = 0, se = 0;
  int n = 0;
};
MeanStderr mean_stderr(const std::vector<double>& values);

struct DepthFit {
  double alpha = 0, beta = 0;
  int points = 0;                   // models in the fit (it needs two distinct depths; 0: no fit)
  std::vector<std::string> models;  // the models the fit uses, by name
};

// α of each family and their ratio fitted on each seed's runs alone, as mean ± s.e. over the seeds that fit.
struct DepthFitSpread {
  MeanStderr alpha_looped, alpha_non_looped, alpha_ratio;
};

// %Gap of one (k⊗L) between its shallow (k⊗1) and deep (kL⊗1) counterparts.
struct LoopGap {
  std::string looped, shallow, deep;                        // model names
  double looped_minus_shallow = 0, deep_minus_shallow = 0;  // differences of mean accuracy
  bool defined = false;  // false when deep and shallow are within two standard errors: the ratio is noise
  MeanStderr per_seed;   // %Gap (a fraction) of each seed whose three runs exist and deep ≠ shallow
};

// The experiment's outcome as data; report.h renders it (markdown, CSV, SVG, JSON).
struct ExperimentReport {
  std::vector<ModelResult> runs;     // one per (model, seed)
  std::vector<ModelResult> results;  // one per model: aggregate_seeds(runs)
  DepthFit looped, non_looped;       // on the per-model means
  DepthFitSpread spread;
  // Per test difficulty: the accuracy of always answering the most frequent answer of those test examples (the
  // majority-class baseline, e.g. 1/7 for uniform i-GSM answers).
  std::vector<double> majority_baseline;
};

ExperimentReport run_experiment(const ExperimentConfig& config, bool quiet = false);
// The majority-class baseline over the first `examples` test examples of each test difficulty.
std::vector<double> majority_baseline(const tasks::Task& task, int examples);
// One cell per model name (in order of first appearance): means and standard errors over its seeds' runs.
std::vector<ModelResult> aggregate_seeds(const std::vector<ModelResult>& runs);
// Least squares of accuracy = α·ln(D) + β over one family: the looped family is every model with L > 1, the
// non-looped family every model with L = 1 (so (k⊗1), the same model as the deep family's (k·1⊗1), counts once,
// in the non-looped family).
DepthFit fit_depth(const std::vector<ModelResult>& results, bool looped_family);
DepthFitSpread fit_depth_over_seeds(const std::vector<ModelResult>& runs);
// Standard error of mean_accuracy: over seeds for a cell of several seeds, else the binomial
// (1/n_d)·sqrt(Σ_d p_d(1−p_d)/eval_examples); 0 if eval_examples is unknown.
double mean_accuracy_stderr(const ModelResult& r);
// %Gap for each (k⊗L) without prelude or coda whose (k⊗1) and (kL⊗1) ran, in the order of `results`; with the
// per-seed runs, also each gap's mean ± s.e. over seeds.
std::vector<LoopGap> loop_gaps(const std::vector<ModelResult>& results, const std::vector<ModelResult>& runs = {});

}  // namespace recur
