// tools/experiment.cpp: `recur experiment`: flags for the looped-transformer grid (task, models, base width,
// training) and their defaults, a short p-hop comparison that runs in a few minutes on two cores.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "recur/distributed.h"
#include "recur/error.h"
#include "recur/experiment.h"
#include "recur/report.h"

namespace recur::cli {

namespace {

struct ExperimentCommandOptions {
  ExperimentConfig experiment;
  std::string models = "1x1,4x1,1x4";
  std::string task_options = "default";  // the short p-hop below for phop, the task's own defaults otherwise
};

// The default grid's p-hop: short sequences, dense supervision, so that it trains in minutes.
const char* kShortPhopOptions = R"({"length": 32, "p_train": [1, 2, 3, 4], "p_test": [1, 2, 3, 4], "dense": true})";

// The grid's own defaults: a small model and a short run, so the default grid finishes in minutes.
void set_defaults(ExperimentConfig& e) {
  e.task = "phop";
  e.base.d_model = 128;
  e.base.n_heads = 4;
  e.base.n_kv_heads = 4;
  e.base.d_ff = 512;
  e.train.batch_size = 32;
  e.train.steps = 1500;
  e.train.lr = 1e-3f;
  e.train.warmup_steps = 100;
  e.train.eval_every = 500;
  e.train.log_every = 250;
  e.train.save_every = 500;
  e.eval_examples = 256;
  e.out_dir = "runs/experiment";
}

void add_flags(CLI::App* app, ExperimentCommandOptions& o) {
  ExperimentConfig& e = o.experiment;
  set_defaults(e);
  add_task_source_flags(app, e.task, o.task_options, e.task_seed);
  app->get_option("--task_options")
      ->description(std::string("task options as JSON (docs/tasks.md); default: for phop ") + kShortPhopOptions +
                    ", for the other tasks their own defaults");
  app->add_option("--models", o.models, "grid: kxL or p+kxL+c, comma separated")->capture_default_str();
  app->add_option("--d_model", e.base.d_model, "model width")->capture_default_str();
  app->add_option("--n_heads", e.base.n_heads, "attention heads")->capture_default_str();
  app->add_option("--n_kv_heads", e.base.n_kv_heads, "key/value heads")->capture_default_str();
  app->add_option("--d_ff", e.base.d_ff, "SwiGLU hidden width")->capture_default_str();
  app->add_option("--eval_examples", e.eval_examples, "test examples per difficulty")->capture_default_str();
  app->add_option("--eval_batch", e.eval_batch, "evaluation batch size")->capture_default_str();
  app->add_option("--seeds", e.seeds,
                  "seeds per model: seed index s trains with --seed + s; tables show mean ± s.e. over seeds "
                  "(3 for documented results)")
      ->capture_default_str();
  app->add_flag("--reevaluate", e.reevaluate,
                "finished models: redo the final test evaluation from their last checkpoint if --eval_examples "
                "differs from the one they were evaluated with (no retraining)");
  app->add_option("--out", e.out_dir, "experiment folder (models/, results.csv, report.md, plot.svg)")
      ->capture_default_str();
  add_train_flags(app, e.train);
}

int run_experiment_command(const ExperimentCommandOptions& o) {
  ExperimentConfig e = o.experiment;
  std::string options = o.task_options;
  if (options == "default") options = e.task == "phop" ? kShortPhopOptions : "null";
  e.task_options = parse_task_options(options, "experiment");
  e.models.clear();
  std::stringstream list(o.models);
  std::string item;
  while (std::getline(list, item, ','))
    if (!item.empty()) e.models.push_back(LoopSpec::parse(item));
  note_precision(e.train.precision);
  ExperimentReport report = run_experiment(e);
  if (dist_rank() != 0) return 0;  // rank 0 writes the report (docs/distributed.md)
  std::string table = write_experiment_report(e, report);
  std::printf("\n%s\nwrote %s/results.csv, results.json, report.md, plot.svg\n", table.c_str(), e.out_dir.c_str());
  return 0;
}

}  // namespace

Command add_experiment_command(CLI::App& parent) {
  return make_command<ExperimentCommandOptions>(parent, "experiment",
                                                "train and evaluate a grid of looped / deep / shallow models on a task",
                                                add_flags, run_experiment_command);
}

}  // namespace recur::cli
