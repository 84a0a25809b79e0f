// `recur experiment`: flags for the looped-transformer grid (task, models, base width, training) and their
// defaults: a short p-hop comparison that runs in a few minutes on two cores.
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/error.h"
#include "recur/experiment.h"
#include "tools.h"

using namespace recur;

void add_experiment_flags(CLI::App* app, ExperimentConfig& e, std::string& models, std::string& task_options) {
  e.task = "phop";
  task_options = R"({"length": 32, "p_train": [1, 2, 3, 4], "p_test": [1, 2, 3, 4], "dense": true})";
  models = "1x1,4x1,1x4";
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
  add_task_source_flags(app, e.task, task_options, e.task_seed);
  app->add_option("--models", models, "grid: kxL or p+kxL+c, comma separated")->capture_default_str();
  app->add_option("--d_model", e.base.d_model, "model width")->capture_default_str();
  app->add_option("--n_heads", e.base.n_heads, "attention heads")->capture_default_str();
  app->add_option("--n_kv_heads", e.base.n_kv_heads, "key/value heads")->capture_default_str();
  app->add_option("--d_ff", e.base.d_ff, "SwiGLU hidden width")->capture_default_str();
  app->add_option("--eval_examples", e.eval_examples, "test examples per difficulty")->capture_default_str();
  app->add_option("--eval_batch", e.eval_batch, "evaluation batch size")->capture_default_str();
  app->add_flag("--reevaluate", e.reevaluate,
                "finished models: redo the final test evaluation from their last checkpoint if --eval_examples "
                "differs from the one they were evaluated with (no retraining)");
  app->add_option("--out", e.out_dir, "experiment folder (models/, results.csv, report.md, plot.svg)")
      ->capture_default_str();
  add_train_flags(app, e.train);
}

void add_task_source_flags(CLI::App* app, std::string& task, std::string& task_options, uint64_t& task_seed) {
  app->add_option("--task", task, "addition | phop | igsm | primitives | group")->capture_default_str();
  app->add_option("--task_options", task_options, "task options as JSON (docs/tasks.md)")->capture_default_str();
  app->add_option("--task_seed", task_seed, "seed of the task's data generator")->capture_default_str();
}

nlohmann::json parse_task_options(const std::string& text, const std::string& command) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& err) {
    throw Error(command + ": --task_options is not valid JSON (" + err.what() + ")");
  }
}

void finish_experiment_config(ExperimentConfig& e, const std::string& models, const std::string& task_options) {
  e.task_options = parse_task_options(task_options, "experiment");
  e.models.clear();
  std::stringstream ss(models);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) e.models.push_back(LoopSpec::parse(item));
}
