// recur/tokenizer.h: text <-> token ids behind one interface, byte-level (vocab 256, the default) or a SentencePiece
// model (BPE or unigram with byte fallback) trained by `recur tokenizer train`. Any bytes round-trip exactly:
// decode(encode(text)) == text for every byte string, valid UTF-8 or not. A checkpoint that was trained with a
// SentencePiece model carries it as tokenizer.model (docs/lm.md).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace recur {

inline constexpr const char* kTokenizerFile = "tokenizer.model";

// One entry of a SentencePiece vocabulary as the model file spells it, for other engines' files (GGUF export).
struct TokenPiece {
  enum class Kind { normal, unknown, control, unused, byte };
  std::string piece;  // U+2581 for a space, "<0x41>" for a byte piece
  float score = 0;    // BPE: minus the merge rank
  Kind kind = Kind::normal;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The exact bytes; the end-of-sequence token decodes to nothing (SentencePiece) or to its byte (byte-level).
  virtual std::string decode(const std::vector<int32_t>& tokens) const = 0;
  virtual int vocab_size() const = 0;
  // The token that separates documents in token shards: NUL (0) for byte-level, the model's </s> for SentencePiece.
  virtual int32_t eos() const = 0;
  // Bytes each token decodes to (decode of a sequence is the concatenation of its tokens' decodings).
  virtual std::vector<int32_t> token_byte_lengths() const = 0;
  virtual std::string describe() const = 0;  // "byte-level" or "sentencepiece (8000 pieces)"
  // The serialized SentencePiece model, written beside checkpoints and shards; empty for byte-level.
  virtual std::string serialized() const = 0;
  // The SentencePiece vocabulary, one entry per id; empty for byte-level.
  virtual std::vector<TokenPiece> pieces() const = 0;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();
// "byte" for byte-level, else a SentencePiece .model file. A file that is not one, or a model trained without the
// settings that make bytes round-trip (identity normalization, no dummy prefix, byte fallback), is an Error naming
// the file and the fix.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);
// A SentencePiece model from its serialized bytes (empty: byte-level); `source` names it in errors.
std::unique_ptr<Tokenizer> tokenizer_from_serialized(const std::string& model, const std::string& source);

// The tokenizer of a checkpoint folder or out_dir: its tokenizer.model, or byte-level without one. The model's
// vocab_size must equal the tokenizer's (byte-level: at least 256), else an Error naming both.
std::unique_ptr<Tokenizer> checkpoint_tokenizer(const std::string& checkpoint, int model_vocab_size);
// Writes dir/tokenizer.model for a SentencePiece tokenizer (nothing for byte-level).
void save_tokenizer(const Tokenizer& tokenizer, const std::string& dir);

struct TokenizerTrainOptions {
  std::string model_type = "bpe";  // bpe | unigram
  int vocab_size = 4096;
  std::string field = "text";       // the string field of each JSONL line
  int64_t max_sentences = 2000000;  // lines sampled for training (SentencePiece's input_sentence_size)
  int threads = 1;
  uint64_t seed = 1337;
};
// Trains a SentencePiece model with byte fallback on the lines of text files, folders and JSONL files (see
// for_each_document in recur/shards.h), at most max_sentences of them drawn evenly (seeded); returns the
// serialized model. SentencePiece's own errors (say a vocabulary too large for the text) are passed on.
std::string train_sentencepiece(const std::vector<std::string>& inputs, const TokenizerTrainOptions& options);

}  // namespace recur
