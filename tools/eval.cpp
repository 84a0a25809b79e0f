// tools/eval.cpp: `recur eval`: validation NLL, perplexity and bits per byte of a checkpoint on a shard folder's
// split or a text file (tokenized with the checkpoint's tokenizer), or few-shot multiple-choice accuracy on a JSONL
// file, as a table or JSON.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/eval.h"
#include "recur/safetensors.h"
#include "recur/shards.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct EvalCommandOptions {
  std::string checkpoint, data, text, fewshot, split = "val";
  EvalOptions eval;
  FewShotOptions shots;
  bool json = false;
};

void add_flags(CLI::App* app, EvalCommandOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  CLI::Option* data = app->add_option("--data", o.data, "a token shard folder (recur data prepare)");
  CLI::Option* text = app->add_option("--text", o.text, "a text file, tokenized with the checkpoint's tokenizer");
  CLI::Option* fewshot =
      app->add_option("--fewshot", o.fewshot, "multiple choice JSONL: {\"context\", \"choices\", \"gold\"} per line");
  data->excludes(text)->excludes(fewshot);
  text->excludes(fewshot);
  app->add_option("--shots", o.shots.shots, "--fewshot: solved examples before each item")->capture_default_str();
  app->add_option("--shot_seed", o.shots.seed, "--fewshot: seed of the shots' selection")->capture_default_str();
  app->add_option("--split", o.split, "the shard folder's split: val or train")->capture_default_str();
  app->add_option("--seq_len", o.eval.seq_len, "window length (0: the model's max_seq_len)")->capture_default_str();
  app->add_option("--batch_size", o.eval.batch_size, "windows per forward")->capture_default_str();
  app->add_option("--max_tokens", o.eval.max_tokens, "score at most this many tokens (0: all)")->capture_default_str();
  app->add_flag("--json", o.json, "print one JSON object instead of the table");
}

void print_result(const EvalCommandOptions& o, const std::string& source, const LmEvalResult& r) {
  if (o.json) {
    nlohmann::json j = {{"checkpoint", o.checkpoint},   {"data", source},
                        {"tokens", r.tokens},           {"bytes", r.bytes},
                        {"windows", r.windows},         {"nll", r.nll()},
                        {"perplexity", r.perplexity()}, {"bits_per_byte", r.bits_per_byte()}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf(
      "| checkpoint | data | tokens | bytes | NLL (nats/token) | perplexity | bits/byte |\n"
      "|---|---|---|---|---|---|---|\n| %s | %s | %lld | %lld | %.4f | %.3f | %.4f |\n",
      o.checkpoint.c_str(), source.c_str(), (long long)r.tokens, (long long)r.bytes, r.nll(), r.perplexity(),
      r.bits_per_byte());
}

int run_fewshot(const EvalCommandOptions& o, const Model& model, const Tokenizer& tokenizer) {
  FewShotResult r = evaluate_fewshot(model, tokenizer, read_fewshot_jsonl(o.fewshot), o.shots);
  if (o.json) {
    nlohmann::json j = {{"checkpoint", o.checkpoint}, {"tasks", o.fewshot}, {"shots", o.shots.shots},
                        {"items", r.items},           {"acc", r.acc},       {"acc_norm", r.acc_norm}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf(
      "| checkpoint | tasks | shots | items | acc | acc_norm |\n|---|---|---|---|---|---|\n"
      "| %s | %s | %d | %lld | %.4f | %.4f |\n",
      o.checkpoint.c_str(), o.fewshot.c_str(), o.shots.shots, (long long)r.items, r.acc, r.acc_norm);
  return 0;
}

int run_eval(const EvalCommandOptions& o) {
  check(!o.data.empty() + !o.text.empty() + !o.fewshot.empty() == 1,
        "eval: give --data (a shard folder), --text (a file) or --fewshot (a JSONL file)");
  check(o.split == "val" || o.split == "train", "eval: --split must be val or train");
  Model model = checkpoint_load_model(o.checkpoint);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  if (!o.fewshot.empty()) return run_fewshot(o, model, *tokenizer);
  std::vector<int32_t> token_bytes = tokenizer->token_byte_lengths();
  if (!o.text.empty()) {
    std::vector<uint8_t> bytes = read_file_bytes(o.text);
    std::vector<int32_t> tokens = tokenizer->encode(std::string_view((const char*)bytes.data(), bytes.size()));
    TokenReader read = [&](uint64_t start, size_t n, int32_t* out) {
      std::copy(tokens.begin() + (long)start, tokens.begin() + (long)(start + n), out);
    };
    print_result(o, o.text, evaluate_lm(model, read, tokens.size(), token_bytes, o.eval));
    return 0;
  }
  ShardFolder folder = ShardFolder::open(o.data);
  check(folder.tokenizer_model == tokenizer->serialized(), "eval: the shards in ", o.data, " were made with ",
        folder.tokenizer_model.empty() ? "the byte-level tokenizer" : "another SentencePiece model",
        ", not the checkpoint's (", tokenizer->describe(), "); prepare them with the checkpoint's tokenizer");
  const ShardStream& stream = o.split == "val" ? folder.val : folder.train;
  TokenReader read = [&](uint64_t start, size_t n, int32_t* out) { stream.read(start, n, out); };
  print_result(o, o.data + " (" + o.split + ")", evaluate_lm(model, read, stream.size(), token_bytes, o.eval));
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& parent) {
  return make_command<EvalCommandOptions>(parent, "eval", "NLL, perplexity, bits per byte, few-shot accuracy",
                                          add_flags, run_eval);
}

}  // namespace recur::cli
