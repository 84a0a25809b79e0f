// tools/cli.h: what the `recur` subcommands share (flags built from the config tables, sampling and task flags,
// text <-> tokens, benchmark step timing, a tokenizer's GGUF vocabulary) and the registration each one provides.
// It includes no subcommand file; each tools/<command>.cpp includes only this and the engine headers.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recur/config.h"
#include "recur/model.h"
#include "recur/sample.h"
#include "recur/train.h"

namespace recur {
struct GgufVocabulary;
class Tokenizer;
}  // namespace recur

namespace recur::cli {

// Model flags: a --config file and/or one flag per model config key, named exactly like the key. A flag is only
// applied when given, so a --config file's values stand unless overridden.
struct ModelFlags {
  std::string config_path;
  nlohmann::json given = nlohmann::json::object();  // the flags given, as JSON values keyed by config key
  void add(CLI::App* app);  // the flags write into this object while `app` parses: keep it in place until then
  // The config file (if any) with the given flags over it, validated. --n_heads without --n_kv_heads drops the
  // file's n_kv_heads, so n_kv_heads follows n_heads as it does in a config file without it.
  ModelConfig resolve() const;
};

// One flag per training setting, bound to `config`: its current values are the defaults the help shows.
void add_train_flags(CLI::App* app, TrainConfig& config);
// --temperature, --top_k, --top_p, --seed (recur sample and recur serve).
void add_sampling_flags(CLI::App* app, SampleOptions& options);
// --gather_exits (recur serve and recur server): MoR tokens that finished their recursion leave together.
void add_gather_exits_flag(CLI::App* app, bool& gather_exits);
// --precision f32|bf16: the model's matrix products (Model::set_precision) in sample, serve, server and the benches.
void add_precision_flag(CLI::App* app, std::string& precision);
// --gemm onednn|openblas (the benches): the library behind the GEMM seam (kernels::GemmBackend); use_gemm sets it.
void add_gemm_flag(CLI::App* app, std::string& backend);
void use_gemm(const std::string& backend);
// For bf16, says on stderr how this build computes it on this CPU (docs/precision.md).
void note_precision(Precision precision);
// A checkpoint's model loaded for inference, at that precision.
Model load_for_inference(const std::string& checkpoint, const std::string& precision);
// --task, --task_options (JSON text, see parse_task_options) and --task_seed: the flags that pick a task's data.
void add_task_source_flags(CLI::App* app, std::string& task, std::string& task_options, uint64_t& task_seed);
// --task_options text as JSON; a parse error names the command and the flag.
nlohmann::json parse_task_options(const std::string& text, const std::string& command);

// Byte-level text <-> tokens 0..255 (the models recur train makes).
std::vector<int32_t> bytes_to_tokens(const std::string& text);
std::string tokens_to_text(const std::vector<int32_t>& tokens);

// Benchmarks (bench train, bench mor): seconds of each timed full training step (forward, backward, clip, AdamW)
// on random bytes, after `warmup` untimed steps.
std::vector<double> time_train_steps(Model& model, TrainPass& pass, int batch_size, int seq_len, int warmup, int steps);

// A registered subcommand: `run` is called after parsing when `app` was given, and returns the exit code.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
// Adds subcommand `name` to `parent`; `add_flags` binds its flags to an Options that the returned run() keeps
// alive and passes to `run`.
template <class Options>
Command make_command(CLI::App& parent, const std::string& name, const std::string& description,
                     void (*add_flags)(CLI::App*, Options&), int (*run)(const Options&)) {
  CLI::App* app = parent.add_subcommand(name, description);
  auto options = std::make_shared<Options>();
  add_flags(app, *options);
  return {app, [options, run] { return run(*options); }};
}
// A checkpoint tokenizer's vocabulary for a GGUF (recur export): its SentencePiece pieces, scores and kinds
// (<s> as BOS, </s> as EOS), or vocab_size bytes for byte-level.
GgufVocabulary gguf_vocabulary_of(const Tokenizer& tokenizer, int vocab_size);
// One per tools/<command>.cpp; each adds its subcommand (and the state its flags fill) to `parent`.
Command add_train_command(CLI::App& parent);
Command add_sample_command(CLI::App& parent);
Command add_serve_command(CLI::App& parent);
Command add_server_command(CLI::App& parent);
Command add_experiment_command(CLI::App& parent);
Command add_task_command(CLI::App& parent);
Command add_export_command(CLI::App& parent);
// `recur tokenizer train|encode|decode` and `recur data prepare` (a group of subcommands each).
std::vector<Command> add_tokenizer_commands(CLI::App& parent);
std::vector<Command> add_data_commands(CLI::App& parent);
Command add_eval_command(CLI::App& parent);
Command add_bench_train_command(CLI::App& bench);
Command add_bench_mor_command(CLI::App& bench);
Command add_bench_serve_command(CLI::App& bench);
Command add_bench_decode_command(CLI::App& bench);

}  // namespace recur::cli
