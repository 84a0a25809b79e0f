// Tokenizers: byte-level, and SentencePiece with byte fallback made exact on every byte string. SentencePiece alone
// turns invalid UTF-8 into U+FFFD and decodes a literal U+2581 as a space, so encode hands it only valid UTF-8 runs
// without U+2581 or NUL and writes the other bytes as byte pieces <0xNN>; decode concatenates the pieces itself
// (U+2581 -> space, byte pieces -> their byte), which is SentencePiece's decoding for the models recur trains. A run
// whose pieces do not spell it again (a foreign model's normalizer or unknown pieces) is written as byte pieces too.
#include "recur/tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

namespace {

constexpr uint64_t kMaxTokenizerBytes = uint64_t(256) << 20;
constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581, SentencePiece's whitespace

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> tokens(text.size());
    for (size_t i = 0; i < text.size(); i++) tokens[i] = (uint8_t)text[i];
    return tokens;
  }
  std::string decode(const std::vector<int32_t>& tokens) const override {
    std::string text;
    for (int32_t t : tokens) {
      check(t >= 0 && t < 256, "byte-level decode: token ", t, " is not a byte (0..255)");
      text += (char)(uint8_t)t;
    }
    return text;
  }
  int vocab_size() const override { return 256; }
  int32_t eos() const override { return 0; }
  std::vector<int32_t> token_byte_lengths() const override { return std::vector<int32_t>(256, 1); }
  std::string describe() const override { return "byte-level"; }
  std::string serialized() const override { return {}; }
  std::vector<TokenPiece> pieces() const override { return {}; }
};

// The length of the valid UTF-8 sequence at text[i] (1-4), or 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  uint8_t lead = (uint8_t)text[i];
  if (lead < 0x80) return 1;
  size_t n = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  uint8_t second = (uint8_t)text[i + 1];
  uint8_t lo = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
  uint8_t hi = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
  if (second < lo || second > hi) return 0;
  for (size_t k = 2; k < n; k++)
    if (((uint8_t)text[i + k] & 0xC0) != 0x80) return 0;
  return n;
}

// The varint at model[at] (advancing `at`), or false when it runs past the end or over 10 bytes.
bool read_varint(std::string_view model, size_t& at, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 70 && at < model.size(); shift += 7) {
    uint8_t byte = (uint8_t)model[at++];
    value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// The framing of a serialized SentencePiece ModelProto, checked before libsentencepiece sees the bytes: a list of
// length-delimited fields 1..5 (pieces first, then trainer, normalizer, self-test and denormalizer specs), each
// inside the file. The fields' contents are left to SentencePiece's own parser.
void check_model_framing(std::string_view model, const std::string& source) {
  size_t at = 0;
  while (at < model.size()) {
    size_t field_at = at;
    uint64_t key = 0, length = 0;
    bool framed = read_varint(model, at, key) && (key & 7) == 2 && (key >> 3) >= 1 && (key >> 3) <= 5 &&
                  (field_at > 0 || key >> 3 == 1) && read_varint(model, at, length) && length <= model.size() - at;
    check(framed, "tokenizer: ", source, " is not a SentencePiece model (its bytes from offset ", field_at,
          " are not a model field); train one with recur tokenizer train");
    at += length;
  }
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model, const std::string& source) : serialized_(model) {
    check_model_framing(model, source);
    sentencepiece::util::Status status;
    try {
      status = sp_.LoadFromSerializedProto(model);
    } catch (const std::exception& e) {  // its trie builder throws on some pieces (e.g. empty or repeated ones)
      throw Error("tokenizer: " + source + " is not a usable SentencePiece model (" + e.what() +
                  "); train one with recur tokenizer train");
    }
    check(status.ok(), "tokenizer: ", source, " is not a SentencePiece model (", status.ToString(),
          "); train one with recur tokenizer train");
    build_tables(source);
    check_round_trip(source);
  }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& tokens) const override;
  int vocab_size() const override { return (int)pieces_.size(); }
  int32_t eos() const override { return eos_; }
  std::vector<int32_t> token_byte_lengths() const override {
    std::vector<int32_t> lengths(pieces_.size());
    for (size_t i = 0; i < pieces_.size(); i++) lengths[i] = (int32_t)pieces_[i].size();
    return lengths;
  }
  std::string describe() const override { return "sentencepiece (" + std::to_string(pieces_.size()) + " pieces)"; }
  std::string serialized() const override { return serialized_; }
  std::vector<TokenPiece> pieces() const override;

 private:
  void build_tables(const std::string& source);
  void check_round_trip(const std::string& source) const;
  bool decodes_to(const std::vector<int>& ids, std::string_view text) const;
  sentencepiece::SentencePieceProcessor sp_;
  std::string serialized_;
  std::vector<std::string> pieces_;  // the bytes each id decodes to
  int32_t byte_ids_[256] = {};
  int32_t eos_ = -1;
};

void SentencePieceTokenizer::build_tables(const std::string& source) {
  int n = sp_.GetPieceSize();
  pieces_.resize(n);
  for (int b = 0; b < 256; b++) byte_ids_[b] = -1;
  for (int id = 0; id < n; id++) {
    const std::string& piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {
      int value = std::stoi(piece.substr(3, 2), nullptr, 16);  // "<0xNN>"
      byte_ids_[value] = id;
      pieces_[id] = std::string(1, (char)value);
    } else if (!sp_.IsControl(id) && !sp_.IsUnknown(id)) {
      std::string& text = pieces_[id];
      for (size_t i = 0; i < piece.size();)
        if (piece.compare(i, kSpaceMark.size(), kSpaceMark) == 0)
          text += ' ', i += kSpaceMark.size();
        else
          text += piece[i++];
    }
  }
  for (int b = 0; b < 256; b++)
    check(byte_ids_[b] >= 0, "tokenizer: ", source, " has no byte piece for byte ", b,
          ", so some text cannot be encoded; train it with byte fallback (recur tokenizer train does)");
  eos_ = sp_.eos_id();
  check(eos_ >= 0 && eos_ < n, "tokenizer: ", source,
        " has no end-of-sequence piece </s>; train it with recur "
        "tokenizer train");
}

// Models trained with normalization or a dummy prefix change text, so decoding by pieces would not give it back.
void SentencePieceTokenizer::check_round_trip(const std::string& source) const {
  const std::string probe = "  Two  spaces,\ta tab\n\xef\xbc\xa1 fullwidth, \xe2\x85\xa0 numeral.";
  check(decode(encode(probe)) == probe, "tokenizer: ", source,
        " changes text when encoding (normalization, a dummy prefix or removed spaces); train it with recur "
        "tokenizer train, which keeps text as it is");
}

std::vector<TokenPiece> SentencePieceTokenizer::pieces() const {
  std::vector<TokenPiece> out(pieces_.size());
  for (int id = 0; id < (int)out.size(); id++) {
    out[id].piece = sp_.IdToPiece(id), out[id].score = sp_.GetScore(id);
    using Kind = TokenPiece::Kind;
    out[id].kind = sp_.IsByte(id)      ? Kind::byte
                   : sp_.IsUnknown(id) ? Kind::unknown
                   : sp_.IsControl(id) ? Kind::control
                   : sp_.IsUnused(id)  ? Kind::unused
                                       : Kind::normal;
  }
  return out;
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> tokens;
  std::vector<int> run_ids;
  size_t run_start = 0;
  auto flush_run = [&](size_t end) {
    if (end <= run_start) return;
    std::string_view run = text.substr(run_start, end - run_start);
    auto status = sp_.Encode(run, &run_ids);
    check(status.ok(), "tokenizer: encoding failed: ", status.ToString());
    if (decodes_to(run_ids, run))
      tokens.insert(tokens.end(), run_ids.begin(), run_ids.end());
    else  // the model's normalizer changed this run (one the load-time probe did not meet): keep its bytes
      for (char c : run) tokens.push_back(byte_ids_[(uint8_t)c]);
  };
  for (size_t i = 0; i < text.size();) {
    size_t n = text[i] == '\0' || text.compare(i, 3, kSpaceMark) == 0 ? 0 : utf8_sequence_length(text, i);
    if (n > 0) {
      i += n;
      continue;
    }
    flush_run(i);  // bytes SentencePiece would not give back: written as byte pieces
    size_t raw = text.compare(i, 3, kSpaceMark) == 0 ? 3 : 1;
    for (size_t k = 0; k < raw; k++) tokens.push_back(byte_ids_[(uint8_t)text[i + k]]);
    i += raw;
    run_start = i;
  }
  flush_run(text.size());
  return tokens;
}

// Whether the pieces of `ids` spell `text` exactly (unknown and control pieces spell nothing).
bool SentencePieceTokenizer::decodes_to(const std::vector<int>& ids, std::string_view text) const {
  size_t at = 0;
  for (int id : ids) {
    const std::string& piece = pieces_[id];
    if (text.compare(at, piece.size(), piece) != 0) return false;
    at += piece.size();
  }
  return at == text.size();
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& tokens) const {
  std::string text;
  for (int32_t t : tokens) {
    check(t >= 0 && t < (int32_t)pieces_.size(), "decode: token ", t, " is outside the tokenizer's vocabulary (",
          pieces_.size(), " pieces)");
    text += pieces_[t];
  }
  return text;
}

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> tokenizer_from_serialized(const std::string& model, const std::string& source) {
  if (model.empty()) return make_byte_tokenizer();
  return std::make_unique<SentencePieceTokenizer>(model, source);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "byte") return make_byte_tokenizer();
  std::string model = read_file_checked(spec, kMaxTokenizerBytes);
  check(!model.empty(), "tokenizer: ", spec, " is empty; give a SentencePiece .model file or byte");
  return tokenizer_from_serialized(model, spec);
}

void save_tokenizer(const Tokenizer& tokenizer, const std::string& dir) {
  std::string model = tokenizer.serialized();
  if (!model.empty()) write_file_atomic(dir + "/" + kTokenizerFile, model.data(), model.size());
}

}  // namespace recur
