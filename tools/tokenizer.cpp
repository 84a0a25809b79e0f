// tools/tokenizer.cpp: `recur tokenizer train|encode|decode`: trains a SentencePiece tokenizer (BPE or unigram, byte
// fallback) on text files, folders or JSONL, and encodes text to token ids or decodes ids back to the exact bytes.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli.h"
#include "recur/error.h"
#include "recur/runtime.h"
#include "recur/safetensors.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct TrainTokenizerOptions {
  std::vector<std::string> inputs;
  std::string out = "tokenizer.model";
  TokenizerTrainOptions train;
};

void add_train_flags(CLI::App* app, TrainTokenizerOptions& o) {
  app->add_option("--input", o.inputs, "text files, folders or .jsonl files")->required();
  app->add_option("--out", o.out, "the SentencePiece model file to write")->capture_default_str();
  app->add_option("--model_type", o.train.model_type, "bpe | unigram")->capture_default_str();
  app->add_option("--vocab_size", o.train.vocab_size, "pieces, the 256 byte pieces and <unk> <s> </s> included")
      ->capture_default_str();
  app->add_option("--field", o.train.field, "the text field of each JSONL line")->capture_default_str();
  app->add_option("--max_sentences", o.train.max_sentences, "lines sampled for training (seeded)")
      ->capture_default_str();
  app->add_option("--seed", o.train.seed, "seed of the line sample")->capture_default_str();
}

int run_train_tokenizer(const TrainTokenizerOptions& o) {
  TokenizerTrainOptions train = o.train;
  train.threads = num_threads();
  std::string model = train_sentencepiece(o.inputs, train);
  std::unique_ptr<Tokenizer> tokenizer = tokenizer_from_serialized(model, o.out);  // checks it round-trips
  write_file_atomic(o.out, model.data(), model.size());
  std::printf("recur tokenizer: wrote %s (%s, %s, EOS %d)\n", o.out.c_str(), tokenizer->describe().c_str(),
              train.model_type.c_str(), tokenizer->eos());
  return 0;
}

struct CodecOptions {
  std::string tokenizer = "byte", input = "-", text;
  bool has_text = false;
};

void add_codec_flags(CLI::App* app, CodecOptions& o, const char* input_help) {
  app->add_option("--tokenizer", o.tokenizer, "a SentencePiece .model file, or byte")->capture_default_str();
  app->add_option("--input", o.input, input_help)->capture_default_str();
}

std::string read_input(const CodecOptions& o) {
  if (o.has_text) return o.text;
  if (o.input == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::vector<uint8_t> bytes = read_file_bytes(o.input);
  return std::string(bytes.begin(), bytes.end());
}

void add_encode_flags(CLI::App* app, CodecOptions& o) {
  add_codec_flags(app, o, "file to encode (- reads stdin)");
  app->add_option("--text", o.text, "text to encode instead of --input")->each([&o](const std::string&) {
    o.has_text = true;
  });
}

int run_encode(const CodecOptions& o) {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(o.tokenizer);
  std::vector<int32_t> ids = tokenizer->encode(read_input(o));
  std::string line;
  for (size_t i = 0; i < ids.size(); i++) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  return 0;
}

void add_decode_flags(CLI::App* app, CodecOptions& o) {
  add_codec_flags(app, o, "file of token ids separated by white space (- reads stdin)");
  app->add_option("--ids", o.text, "token ids separated by spaces instead of --input")->each([&o](const std::string&) {
    o.has_text = true;
  });
}

int run_decode(const CodecOptions& o) {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(o.tokenizer);
  std::istringstream in(read_input(o));
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == word.size() && id >= 0 && id < tokenizer->vocab_size(), "tokenizer decode: \"", word,
          "\" is not a token id of this tokenizer (0..", tokenizer->vocab_size() - 1, ")");
    ids.push_back((int32_t)id);
  }
  std::string text = tokenizer->decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);  // the exact bytes, no newline added
  return 0;
}

}  // namespace

std::vector<Command> add_tokenizer_commands(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand("tokenizer", "train a SentencePiece tokenizer; encode and decode text");
  app->require_subcommand(1);
  return {make_command<TrainTokenizerOptions>(*app, "train", "train a SentencePiece tokenizer (byte fallback)",
                                              add_train_flags, run_train_tokenizer),
          make_command<CodecOptions>(*app, "encode", "text to token ids", add_encode_flags, run_encode),
          make_command<CodecOptions>(*app, "decode", "token ids to the exact bytes", add_decode_flags, run_decode)};
}

}  // namespace recur::cli
