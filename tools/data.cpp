// tools/data.cpp: `recur data prepare`: tokenizes text files, folders or JSONL into token shards (recur/shards.h)
// with a seeded train/validation split by document, for `recur train --data DIR` and `recur eval --data DIR`;
// `recur data probes`: writes the generated LM probes (recur/probes.h) as training text and harness tasks.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/probes.h"
#include "recur/shards.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct PrepareCommandOptions {
  std::vector<std::string> inputs;
  std::string tokenizer = "byte", out;
  PrepareOptions prepare;
};

void add_prepare_flags(CLI::App* app, PrepareCommandOptions& o) {
  app->add_option("--input", o.inputs, "text files, folders or .jsonl files")->required();
  app->add_option("--tokenizer", o.tokenizer, "a SentencePiece .model file (recur tokenizer train), or byte")
      ->capture_default_str();
  app->add_option("--out", o.out, "the shard folder to write")->required();
  app->add_option("--field", o.prepare.documents.field, "the text field of each JSONL line")->capture_default_str();
  app->add_option("--unit", o.prepare.documents.unit,
                  "documents of a text file: file (the whole file) or paragraph (split at blank lines)")
      ->capture_default_str();
  app->add_option("--val_fraction", o.prepare.val_fraction, "probability a document goes to validation")
      ->capture_default_str();
  app->add_option("--seed", o.prepare.seed, "seed of the train/validation draw")->capture_default_str();
  app->add_option("--shard_tokens", o.prepare.shard_tokens, "tokens per shard file (a document is never split)")
      ->capture_default_str();
}

int run_prepare(const PrepareCommandOptions& o) {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(o.tokenizer);
  PrepareSummary s = prepare_shards(o.inputs, *tokenizer, o.out, o.prepare);
  std::printf(
      "recur data prepare: %s (%s): train %lld documents, %lld tokens in %lld shards | val %lld documents, "
      "%lld tokens in %lld shards\n",
      o.out.c_str(), tokenizer->describe().c_str(), (long long)s.documents[0], (long long)s.tokens[0],
      (long long)s.shards[0], (long long)s.documents[1], (long long)s.tokens[1], (long long)s.shards[1]);
  return 0;
}

struct ProbesCommandOptions {
  std::string out;
  ProbeOptions probes;
};

void add_probes_flags(CLI::App* app, ProbesCommandOptions& o) {
  ProbeOptions& p = o.probes;
  app->add_option("--out", o.out, "the folder to write (train/, tasks/, probes.json)")->required();
  app->add_option("--seed", p.seed, "seed of every draw")->capture_default_str();
  app->add_option("--people", p.people, "closed-book people; half get worked QA")->capture_default_str();
  app->add_option("--paraphrases", p.paraphrases, "biographies per closed-book person")->capture_default_str();
  app->add_option("--test_items", p.test_items, "items per task file")->capture_default_str();
  app->add_option("--open_book_train", p.open_book_train, "worked open-book examples in the training text")
      ->capture_default_str();
  app->add_option("--igsm_train", p.igsm_train, "solved i-GSM problems in the training text")->capture_default_str();
  app->add_option("--primitives_train", p.primitives_train, "solved primitives per flavour and depth in training")
      ->capture_default_str();
  app->add_option("--igsm_ops_train", p.igsm_ops_train, "i-GSM operation counts trained on")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--igsm_ops_test", p.igsm_ops_test, "i-GSM operation counts tested")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--igsm_distractors", p.igsm_distractors, "unneeded definitions per i-GSM problem")
      ->capture_default_str();
  app->add_option("--igsm_max_operands", p.igsm_max_operands, "operands per i-GSM expression")->capture_default_str();
}

int run_probes(const ProbesCommandOptions& o) {
  nlohmann::json summary = write_probes(generate_probes(o.probes), o.probes, o.out);
  std::printf("recur data probes: %s\n", o.out.c_str());
  for (const auto& [kind, t] : summary["train"].items()) {
    std::printf("  train/%s.txt: %lld documents, %lld bytes\n", kind.c_str(), t["documents"].get<long long>(),
                t["bytes"].get<long long>());
  }
  for (const auto& [name, t] : summary["tasks"].items()) {
    std::printf("  tasks/%s.jsonl: %lld items, majority baseline %.3f, longest item %lld bytes\n", name.c_str(),
                t["items"].get<long long>(), t["majority_baseline"].get<double>(),
                t["longest_item_bytes"].get<long long>());
  }
  return 0;
}

}  // namespace

std::vector<Command> add_data_commands(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand("data", "prepare token shards, generate the LM probes");
  app->require_subcommand(1);
  return {make_command<PrepareCommandOptions>(*app, "prepare", "tokenize text into token shards", add_prepare_flags,
                                              run_prepare),
          make_command<ProbesCommandOptions>(*app, "probes", "generate the LM probes: training text and harness tasks",
                                             add_probes_flags, run_probes)};
}

}  // namespace recur::cli
