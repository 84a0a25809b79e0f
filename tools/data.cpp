// tools/data.cpp: `recur data prepare`: tokenizes text files, folders or JSONL into token shards (recur/shards.h)
// with a seeded train/validation split by document, for `recur train --data DIR` and `recur eval --data DIR`.
#include <cstdio>

#include "cli.h"
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

}  // namespace

std::vector<Command> add_data_commands(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand("data", "prepare token shards for training and evaluation");
  app->require_subcommand(1);
  return {make_command<PrepareCommandOptions>(*app, "prepare", "tokenize text into token shards", add_prepare_flags,
                                              run_prepare)};
}

}  // namespace recur::cli
