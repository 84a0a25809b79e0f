// Subcommands of the recur program that live in their own files.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recur/serve.h"

namespace recur {
struct ExperimentConfig;
struct TrainConfig;
}
void add_train_flags(CLI::App* app, recur::TrainConfig& config);
void add_experiment_flags(CLI::App* app, recur::ExperimentConfig& config, std::string& models, std::string& task_options);
void finish_experiment_config(recur::ExperimentConfig& config, const std::string& models, const std::string& task_options);
// --task, --task_options (JSON text, see parse_task_options) and --task_seed: the flags that pick a task's data.
void add_task_source_flags(CLI::App* app, std::string& task, std::string& task_options, uint64_t& task_seed);
// --task_options text as JSON; a parse error names the command and the flag.
nlohmann::json parse_task_options(const std::string& text, const std::string& command);
// --temperature, --top_k, --seed (recur sample and recur serve).
void add_sampling_flags(CLI::App* app, recur::SampleOptions& options);

// Byte-level text <-> tokens 0..255 (the models recur train makes).
inline std::vector<int32_t> bytes_to_tokens(const std::string& text) {
  std::vector<int32_t> tokens;
  for (char c : text) tokens.push_back((int32_t)(uint8_t)c);
  return tokens;
}
inline std::string tokens_to_text(const std::vector<int32_t>& tokens) {
  std::string text;
  for (int32_t t : tokens) text += (char)(uint8_t)t;
  return text;
}


struct TaskDumpOptions {
  std::string task = "phop", task_options = "{}", split = "train", format = "text";
  uint64_t task_seed = 1;
  int64_t count = 10;
  int difficulty = 0;  // 0: cycle through the split's difficulties
};
void add_task_flags(CLI::App* app, TaskDumpOptions& options);
int run_task_dump(const TaskDumpOptions& options);

struct ServeCliOptions {
  std::string checkpoint, requests = "-";
  int max_new_tokens = 64;       // for requests that do not set it
  recur::ServeOptions serve;     // --max_batch and the sampling flags
};
void add_serve_flags(CLI::App* app, ServeCliOptions& options);
int run_serve(const ServeCliOptions& options);

struct BenchTrainOptions {
  std::vector<std::string> configs = {"S", "M"};  // S, M, or model config JSON files
  int steps = 10;     // timed steps per config
  int warmup = 2;     // untimed steps first
  int batch_size = 0; // 0: the config's own (S: 16, M: 8)
  int seq_len = 256;
  int peak_size = 2048;  // n of the n×n×n sgemm that measures the peak
  bool json = false;
};
void add_bench_train_flags(CLI::App* app, BenchTrainOptions& options);
int run_bench_train(const BenchTrainOptions& options);

struct BenchMorOptions {
  int d_model = 512, n_heads = 8, d_ff = 1376, n_layers = 6, n_recursions = 3;
  std::string sharing = "cycle";
  int batch_size = 8, seq_len = 256, steps = 6, warmup = 2;
  std::string routing = "expert";
  bool json = false;
};
void add_bench_mor_flags(CLI::App* app, BenchMorOptions& options);
int run_bench_mor(const BenchMorOptions& options);

struct BenchServeOptions {
  std::vector<std::string> checkpoints;
  int requests = 32, prompt_len = 64, max_new_tokens = 64, max_batch = 16;
  std::string data = "builtin:kjv";
  bool json = false;
};
void add_bench_serve_flags(CLI::App* app, BenchServeOptions& options);
int run_bench_serve(const BenchServeOptions& options);
