// Training a SentencePiece tokenizer: the lines of the documents (reservoir-sampled, seeded, when there are more
// than max_sentences) fed through SentencePiece's sentence iterator, with the settings that make every byte string
// round-trip through recur's Tokenizer: identity normalization, no dummy prefix, spaces kept, byte fallback.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "recur/error.h"
#include "recur/rng.h"
#include "recur/shards.h"
#include "recur/tokenizer.h"

namespace recur {

namespace {

class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { i_++; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  size_t i_ = 0;
};

// Every non-empty line of the documents, or a uniform sample of max_sentences of them (reservoir sampling).
std::vector<std::string> sample_lines(const std::vector<std::string>& inputs, const TokenizerTrainOptions& o) {
  std::vector<std::string> lines;
  Rng rng(mix_seed(o.seed, 0x70c));
  int64_t seen = 0;
  DocumentOptions documents;
  documents.field = o.field;
  for_each_document(inputs, documents, [&](std::string_view text, const std::string&) {
    for (size_t start = 0; start < text.size();) {
      size_t end = std::min(text.find('\n', start), text.size());
      if (end > start) {
        seen++;
        if ((int64_t)lines.size() < o.max_sentences)
          lines.emplace_back(text.substr(start, end - start));
        else if (uint64_t k = rng.uniform((uint64_t)seen); k < (uint64_t)o.max_sentences)
          lines[k] = std::string(text.substr(start, end - start));
      }
      start = end + 1;
    }
  });
  check(!lines.empty(), "tokenizer train: the inputs hold no text; give text files, folders or JSONL files");
  return lines;
}

}  // namespace

std::string train_sentencepiece(const std::vector<std::string>& inputs, const TokenizerTrainOptions& o) {
  check(o.model_type == "bpe" || o.model_type == "unigram", "tokenizer train: unknown --model_type \"", o.model_type,
        "\"; use bpe or unigram");
  check(o.vocab_size >= 260 && o.vocab_size <= (1 << 22), "tokenizer train: --vocab_size ", o.vocab_size,
        " must be in [260, 4194304] (256 byte pieces and the special pieces come first)");
  check(o.max_sentences >= 1 && o.threads >= 1, "tokenizer train: --max_sentences and the threads must be >= 1");
  std::vector<std::string> lines = sample_lines(inputs, o);
  LineIterator iterator(lines);
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"character_coverage", "0.9995"},
      {"max_sentence_length", "65536"},
      {"input_sentence_size", "0"},
      {"num_threads", std::to_string(o.threads)},
      {"model_prefix", ""},
      {"minloglevel", "2"},
  };
  sentencepiece::SetRandomGeneratorSeed((unsigned)o.seed);
  std::string model;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model);
  std::string reason = status.ToString();
  bool vocab_too_large = reason.find("Vocabulary size") != std::string::npos;
  check(status.ok(), "tokenizer train: SentencePiece failed: ", reason,
        vocab_too_large ? "; lower --vocab_size to at most the size SentencePiece names, or give it more text"
                        : "; check that the inputs hold text (recur tokenizer train --help lists the options)");
  return model;
}

}  // namespace recur
