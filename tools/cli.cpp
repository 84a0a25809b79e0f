// tools/cli.cpp: the flags the `recur` subcommands share. Model and training flags come from the config tables
// (model_config_keys, train_config_keys), so every config key is a flag named like the key, with its default.
#include "cli.h"

#include <type_traits>

#include "core/config_keys.h"
#include "core/json_read.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/gguf.h"
#include "recur/rng.h"
#include "recur/tokenizer.h"

namespace recur::cli {

using nlohmann::json;

namespace {

// The type a key's value has on the command line: the field's own type, or the value's name for an enum.
template <class Config, class Field>
struct FlagValue {
  using type = std::string;
};
template <class Config, class T>
struct FlagValue<Config, T Config::*> {
  using type = T;
};

// Adds --<key> with `help` [and `default_text`]; when given, its value reaches `on_value` as JSON. A recur::Error
// from `on_value` becomes a CLI11 validation error, so it is reported like any other bad flag value.
template <class Config>
CLI::Option* add_key_flag(CLI::App* app, const ConfigKey<Config>& key, const std::string& help,
                          std::function<void(const json&)> on_value) {
  std::string flag = "--" + key.name;
  return std::visit(
      [&](const auto& member) {
        using Value = typename FlagValue<Config, std::decay_t<decltype(member)>>::type;
        auto callback = [flag, on_value](const Value& value) {
          try {
            on_value(json(value));
          } catch (const Error& e) {
            throw CLI::ValidationError(flag, e.what());
          }
        };
        return app->template add_option_function<Value>(flag, callback, help);
      },
      key.field);
}

}  // namespace

void ModelFlags::add(CLI::App* app) {
  app->add_option("--config", config_path, "model config JSON; the flags below override its keys");
  for (const auto& key : model_config_keys())
    add_key_flag(app, key, key.help + " [default: " + key.default_text() + "]",
                 [this, name = key.name](const json& value) { given[name] = value; });
}

ModelConfig ModelFlags::resolve() const {
  json j =
      config_path.empty() ? json::object() : json::parse(model_config_to_json(model_config_from_file(config_path)));
  if (!config_path.empty() && given.contains("n_heads") && !given.contains("n_kv_heads")) j.erase("n_kv_heads");
  for (const auto& item : given.items()) j[item.key()] = item.value();
  return model_config_from_json(j.dump());
}

void add_train_flags(CLI::App* app, TrainConfig& config) {
  for (const auto& key : train_config_keys())
    add_key_flag(app, key, key.help, [&config, &key](const json& value) {
      key.read(config, value, "train");
    })->default_str(value_text(key.write(config)));
}

void add_sampling_flags(CLI::App* app, SampleOptions& options) {
  app->add_option("--temperature", options.temperature, "softmax temperature (0: greedy)")->capture_default_str();
  app->add_option("--top_k", options.top_k, "sample among the k most likely (0: all)")->capture_default_str();
  app->add_option("--top_p", options.top_p, "sample among the most likely tokens of this total probability (1: all)")
      ->capture_default_str();
  app->add_option("--seed", options.seed, "sampling seed")->capture_default_str();
}

void add_gather_exits_flag(CLI::App* app, bool& gather_exits) {
  app->add_flag("--gather_exits", gather_exits,
                "MoR: tokens that finished their recursion wait to run the coda and head together (recur/serve.h)");
}

void add_precision_flag(CLI::App* app, std::string& precision) {
  app->add_option("--precision", precision,
                  "matrix products: f32, or bf16 (weights and activations rounded to bf16, f32 sums)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
}

void add_gemm_flag(CLI::App* app, std::string& backend) {
  app->add_option("--gemm", backend, "matrix products of many rows: onednn (bf16 native on AVX512-BF16) or openblas")
      ->check(CLI::IsMember({"onednn", "openblas"}))
      ->capture_default_str();
}

void use_gemm(const std::string& backend) {
  kernels::set_gemm_backend(backend == "openblas" ? kernels::GemmBackend::openblas : kernels::GemmBackend::onednn);
}

void note_precision(Precision precision) {
  if (precision != Precision::bf16) return;
  if (kernels::bf16_products_native())
    std::fprintf(stderr, "recur: bf16 products run natively (oneDNN bf16 matmul on AVX512-BF16), summed in f32\n");
  else
    std::fprintf(stderr,
                 "recur: bf16 products emulated: operands rounded to bf16 and summed in f32 by the f32 product (the "
                 "exact bf16 result at about f32 speed; this CPU %s AVX512-BF16, the GEMM backend is %s)\n",
                 kernels::cpu_has_avx512_bf16() ? "has" : "has no",
                 kernels::gemm_backend_name(kernels::gemm_backend()));
}

Model load_for_inference(const std::string& checkpoint, const std::string& precision) {
  Model model = checkpoint_load_model(checkpoint);
  model.set_precision(precision_from_name(precision));
  return model;
}

void add_task_source_flags(CLI::App* app, std::string& task, std::string& task_options, uint64_t& task_seed) {
  app->add_option("--task", task, "addition | phop | igsm | primitives | group")->capture_default_str();
  app->add_option("--task_options", task_options, "task options as JSON (docs/tasks.md)")->capture_default_str();
  app->add_option("--task_seed", task_seed, "seed of the task's data generator")->capture_default_str();
}

json parse_task_options(const std::string& text, const std::string& command) {
  return parse_json_strict(text, command + ": --task_options", kMaxConfigBytes);
}

std::vector<int32_t> bytes_to_tokens(const std::string& text) {
  std::vector<int32_t> tokens;
  for (char c : text) tokens.push_back((int32_t)(uint8_t)c);
  return tokens;
}

std::string tokens_to_text(const std::vector<int32_t>& tokens) {
  std::string text;
  for (int32_t t : tokens) text += (char)(uint8_t)t;
  return text;
}

std::vector<double> time_train_steps(Model& model, TrainPass& pass, int batch_size, int seq_len, int warmup,
                                     int steps) {
  TrainConfig tc;
  tc.batch_size = batch_size;
  tc.seq_len = seq_len;
  tc.lr = 3e-4f;
  tc.warmup_steps = 0;
  tc.steps = warmup + steps;
  AdamW opt;
  opt.init(model.n_params());
  std::vector<uint8_t> text(1 << 20);
  Rng rng(7);
  for (auto& b : text) b = (uint8_t)rng.uniform(256);
  std::vector<double> seconds;
  for (int s = 0; s < warmup + steps; s++) {
    StepMetrics m = train_step(model, pass, opt, tc, text_batches(text, tc));
    if (s >= warmup) seconds.push_back(m.elapsed_s);
  }
  return seconds;
}

// The tokenizer's vocabulary for llama.cpp: SentencePiece's pieces, scores and kinds (<s> as BOS), or bytes.
GgufVocabulary gguf_vocabulary_of(const Tokenizer& tokenizer, int vocab_size) {
  std::vector<TokenPiece> pieces = tokenizer.pieces();
  if (pieces.empty()) return gguf_byte_vocabulary(vocab_size);
  GgufVocabulary v;
  for (int32_t id = 0; id < (int32_t)pieces.size(); id++) {
    const TokenPiece& p = pieces[id];
    using Kind = TokenPiece::Kind;
    v.tokens.push_back(p.piece), v.scores.push_back(p.score);
    v.types.push_back(p.kind == Kind::byte      ? GgufTokenType::byte
                      : p.kind == Kind::unknown ? GgufTokenType::unknown
                      : p.kind == Kind::control ? GgufTokenType::control
                      : p.kind == Kind::unused  ? GgufTokenType::unused
                                                : GgufTokenType::normal);
    if (p.kind == Kind::unknown) v.unk = id;
    if (p.kind == Kind::control && p.piece == "<s>") v.bos = id;
  }
  v.eos = tokenizer.eos();
  return v;
}

}  // namespace recur::cli
