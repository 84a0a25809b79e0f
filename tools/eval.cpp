// tools/eval.cpp: `recur eval`: validation NLL, perplexity and bits per byte of a checkpoint on a shard folder's
// split or a text file (tokenized with the checkpoint's tokenizer), or the few-shot harness on JSONL task files
// (multiple choice and exact-match generation, recur/harness.h), as a table or JSON.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/eval.h"
#include "recur/harness.h"
#include "recur/safetensors.h"
#include "recur/shards.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct EvalCommandOptions {
  std::string checkpoint, data, text, split = "val", per_item;
  std::vector<std::string> fewshot;
  EvalOptions eval;
  FewShotOptions shots;
  bool json = false;
};

void add_flags(CLI::App* app, EvalCommandOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  CLI::Option* data = app->add_option("--data", o.data, "a token shard folder (recur data prepare)");
  CLI::Option* text = app->add_option("--text", o.text, "a text file, tokenized with the checkpoint's tokenizer");
  CLI::Option* fewshot = app->add_option("--fewshot", o.fewshot,
                                         "a task file (repeatable; the task is its stem), JSONL of multiple choice "
                                         "{\"context\", \"choices\", \"gold\"} or generation {\"context\", "
                                         "\"target\", \"until\"}");
  data->excludes(text)->excludes(fewshot);
  text->excludes(fewshot);
  app->add_option("--shots", o.shots.shots, "--fewshot: solved examples before each item")->capture_default_str();
  app->add_option("--shot_seed", o.shots.seed, "--fewshot: seed of the shots' selection")->capture_default_str();
  app->add_option("--max_items", o.shots.max_items, "--fewshot: score the first N items of each task (0: all)")
      ->capture_default_str();
  app->add_option("--max_gen_tokens", o.shots.max_gen_tokens, "--fewshot: most tokens a generation item's output has")
      ->capture_default_str();
  app->add_option("--per_item", o.per_item, "--fewshot: write one JSON line per scored item to this file");
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

// "0.7500 ± 0.0250" (the standard error left out for one item).
std::string fraction_cell(double p, int64_t n) {
  char cell[64];
  double se = fraction_stderr(p, n);
  if (std::isnan(se))
    std::snprintf(cell, sizeof cell, "%.4f", p);
  else
    std::snprintf(cell, sizeof cell, "%.4f ± %.4f", p, se);
  return cell;
}

nlohmann::ordered_json task_json(const FewShotResult& r) {
  nlohmann::ordered_json j = {{"task", r.task}, {"file", r.file}, {"kind", task_kind_name(r.kind)}, {"items", r.items}};
  if (r.kind == TaskKind::generation) {
    j["exact_match"] = r.exact_match, j["exact_match_stderr"] = fraction_stderr(r.exact_match, r.items);
  } else {
    j["acc"] = r.acc, j["acc_stderr"] = fraction_stderr(r.acc, r.items);
    j["acc_norm"] = r.acc_norm, j["acc_norm_stderr"] = fraction_stderr(r.acc_norm, r.items);
  }
  return j;
}

std::string dump(const nlohmann::ordered_json& j) {  // texts of invalid UTF-8 (a model's output) get U+FFFD
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string hex(const std::string& bytes) {  // the exact output, where "output" has U+FFFD for invalid UTF-8
  static const char* digits = "0123456789abcdef";
  std::string h;
  for (unsigned char b : bytes) h += {digits[b >> 4], digits[b & 15]};
  return h;
}

void write_per_item(const std::string& path, const std::vector<FewShotResult>& results) {
  std::ofstream out(path);
  check(out.good(), "eval: cannot write --per_item ", path, "; give a path in a writable folder");
  for (const FewShotResult& r : results)
    for (size_t i = 0; i < r.item.size(); i++) {
      const FewShotItemResult& item = r.item[i];
      nlohmann::ordered_json j = {{"task", r.task}, {"index", i}, {"correct", item.correct}};
      if (r.kind == TaskKind::generation)
        j["output"] = item.output, j["output_hex"] = hex(item.output);
      else
        j["correct_norm"] = item.correct_norm, j["loglik"] = item.loglik;
      out << dump(j) << "\n";
    }
  check(out.good(), "eval: writing --per_item ", path, " failed; check the disk");
}

int run_fewshot(const EvalCommandOptions& o, const std::vector<FewShotTask>& tasks, const Model& model,
                const Tokenizer& tokenizer) {
  std::vector<FewShotResult> results;
  for (const FewShotTask& task : tasks) results.push_back(evaluate_fewshot(model, tokenizer, task, o.shots));
  if (!o.per_item.empty()) write_per_item(o.per_item, results);
  if (o.json) {
    nlohmann::ordered_json j = {
        {"checkpoint", o.checkpoint}, {"shots", o.shots.shots}, {"tasks", nlohmann::ordered_json::array()}};
    for (const FewShotResult& r : results) j["tasks"].push_back(task_json(r));
    std::printf("%s\n", dump(j).c_str());
    return 0;
  }
  std::printf(
      "| checkpoint | task | kind | shots | items | acc | acc_norm | exact_match "
      "|\n|---|---|---|---|---|---|---|---|\n");
  for (const FewShotResult& r : results) {
    bool mc = r.kind == TaskKind::multiple_choice;
    std::printf("| %s | %s | %s | %d | %lld | %s | %s | %s |\n", o.checkpoint.c_str(), r.task.c_str(),
                task_kind_name(r.kind), o.shots.shots, (long long)r.items,
                mc ? fraction_cell(r.acc, r.items).c_str() : "", mc ? fraction_cell(r.acc_norm, r.items).c_str() : "",
                mc ? "" : fraction_cell(r.exact_match, r.items).c_str());
  }
  return 0;
}

int run_eval(const EvalCommandOptions& o) {
  check(!o.data.empty() + !o.text.empty() + !o.fewshot.empty() == 1,
        "eval: give --data (a shard folder), --text (a file) or --fewshot (JSONL task files)");
  check(o.split == "val" || o.split == "train", "eval: --split must be val or train");
  std::vector<FewShotTask> tasks = read_fewshot_tasks(o.fewshot);  // before the model: bad files fail fast
  Model model = checkpoint_load_model(o.checkpoint);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  if (!tasks.empty()) return run_fewshot(o, tasks, model, *tokenizer);
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
