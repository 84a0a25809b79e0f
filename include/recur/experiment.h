// recur/experiment.h: the looped-transformer comparisons of Saunshi et al. as a command: train a grid of
// (k⊗L), (kL⊗1), (k⊗1) and middle-looped models on one task, evaluate exact-match accuracy per difficulty, and
// analyse them: the depth-scaling fit accuracy = α·log D + β per family and %Gap (report.h renders the tables).
// Each model's run is resumable; finished models are skipped on a re-run, or only re-evaluated (`reevaluate`).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recur/config.h"
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
};

struct DepthFit {
  double alpha = 0, beta = 0;
  int points = 0;  // models in the family (the fit needs two distinct depths)
};

// The experiment's outcome as data; report.h renders it (markdown, CSV, SVG).
struct ExperimentReport {
  std::vector<ModelResult> results;
  DepthFit looped, non_looped;
};

// %Gap of one (k⊗L) between its shallow (k⊗1) and deep (kL⊗1) counterparts.
struct LoopGap {
  std::string looped, shallow, deep;                        // model names
  double looped_minus_shallow = 0, deep_minus_shallow = 0;  // differences of mean accuracy
  bool defined = false;  // false when deep and shallow are within two standard errors: the ratio is noise
};

ExperimentReport run_experiment(const ExperimentConfig& config, bool quiet = false);
// Least squares of accuracy = α·ln(D) + β over the models in `results` of one family.
DepthFit fit_depth(const std::vector<ModelResult>& results, bool looped_family);
// Standard error of mean_accuracy, (1/n_d)·sqrt(Σ_d p_d(1−p_d)/eval_examples); 0 if eval_examples is unknown.
double mean_accuracy_stderr(const ModelResult& r);
// %Gap for each (k⊗L) without prelude or coda whose (k⊗1) and (kL⊗1) ran, in the order of `results`.
std::vector<LoopGap> loop_gaps(const std::vector<ModelResult>& results);

}  // namespace recur
