// The tokenizer.ggml.* keys of a GGUF (recur/gguf.h): the vocabulary llama.cpp's `llama` (SentencePiece)
// tokenizer reads, written from a byte-level or SentencePiece vocabulary and read back with every array and id
// checked, so a corrupted vocabulary is an error naming its key rather than a wrong tokenization.
#include <cstdio>
#include <cstring>

#include "recur/error.h"
#include "recur/gguf.h"

namespace recur {

GgufVocabulary gguf_byte_vocabulary(int vocab_size) {
  GgufVocabulary v;
  for (int i = 0; i < vocab_size; i++) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "<0x%02X>", i);
    if (i == ' ')  // llama.cpp writes a space as U+2581 before matching, so the space byte is that piece
      v.tokens.push_back("\xe2\x96\x81"), v.types.push_back(GgufTokenType::normal);
    else if (i < 256)
      v.tokens.push_back(hex), v.types.push_back(GgufTokenType::byte);
    else
      v.tokens.push_back("<unused_" + std::to_string(i) + ">"), v.types.push_back(GgufTokenType::unused);
  }
  v.scores.assign(vocab_size, 0.0f);
  return v;
}

void gguf_set_vocabulary(GgufFile& f, const GgufVocabulary& v) {
  size_t n = v.tokens.size();
  check(v.scores.size() == n && v.types.size() == n, "export gguf: the vocabulary has ", n, " tokens but ",
        v.scores.size(), " scores and ", v.types.size(), " token types");
  for (int32_t id : {v.bos, v.eos, v.unk})
    check(id >= -1 && id < (int64_t)n, "export gguf: special token id ", id, " is outside the ", n, " tokens");
  std::vector<int32_t> types;
  for (GgufTokenType t : v.types) types.push_back((int32_t)t);
  f.set("tokenizer.ggml.model", GgufValue::string("llama"));
  f.set("tokenizer.ggml.tokens", GgufValue::string_array(v.tokens));
  f.set("tokenizer.ggml.scores", GgufValue::f32_array(v.scores));
  f.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  const std::pair<const char*, int32_t> specials[] = {{"tokenizer.ggml.bos_token_id", v.bos},
                                                      {"tokenizer.ggml.eos_token_id", v.eos},
                                                      {"tokenizer.ggml.unknown_token_id", v.unk}};
  for (const auto& [key, id] : specials)
    if (id >= 0) f.set(key, GgufValue::u32((uint32_t)id));
  // our SentencePiece models keep text as it is (no dummy prefix, no whitespace folding), and prompts are ours
  f.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  f.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
  f.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  f.set("tokenizer.ggml.remove_extra_whitespaces", GgufValue::boolean(false));
}

namespace {

// The array at `key`, of elements of `type`, with `n` of them.
const GgufValue& array_of(const GgufFile& f, const std::string& key, GgufType type, const char* type_name, size_t n) {
  const GgufValue* v = f.find(key);
  check(v != nullptr, f.source, ": key \"", key, "\" is missing; export the model again");
  check(v->type == GgufType::array && v->array_type == type, f.source, ": key \"", key, "\" is not an array of ",
        type_name);
  size_t count = type == GgufType::string ? v->strings.size() : v->bytes.size() / 4;
  check(count == n, f.source, ": key \"", key, "\" has ", count, " elements but llama.vocab_size is ", n);
  return *v;
}

// The special id at `key` (-1 when absent), inside the n tokens.
int32_t special_id(const GgufFile& f, const std::string& key, size_t n) {
  if (!f.find(key)) return -1;
  uint32_t id = f.get_u32(key);
  check(id < n, f.source, ": key \"", key, "\" is token ", id, ", outside the ", n, " tokens");
  return (int32_t)id;
}

}  // namespace

GgufVocabulary gguf_vocabulary(const GgufFile& f) {
  check(f.get_string("tokenizer.ggml.model") == "llama", f.source, ": tokenizer.ggml.model is \"",
        f.get_string("tokenizer.ggml.model"), "\"; recur writes and reads only llama (SentencePiece) vocabularies");
  size_t n = f.get_u32("llama.vocab_size");
  GgufVocabulary v;
  v.tokens = array_of(f, "tokenizer.ggml.tokens", GgufType::string, "strings", n).strings;
  const GgufValue& scores = array_of(f, "tokenizer.ggml.scores", GgufType::f32, "float32", n);
  v.scores.resize(n);
  std::memcpy(v.scores.data(), scores.bytes.data(), n * 4);
  const GgufValue& types = array_of(f, "tokenizer.ggml.token_type", GgufType::i32, "int32", n);
  for (size_t i = 0; i < n; i++) {
    int32_t t;
    std::memcpy(&t, types.bytes.data() + 4 * i, 4);
    check(t >= 1 && t <= 6, f.source, ": tokenizer.ggml.token_type of token ", i, " is ", t,
          ", not a llama.cpp token type (1 to 6)");
    v.types.push_back((GgufTokenType)t);
  }
  v.bos = special_id(f, "tokenizer.ggml.bos_token_id", n);
  v.eos = special_id(f, "tokenizer.ggml.eos_token_id", n);
  v.unk = special_id(f, "tokenizer.ggml.unknown_token_id", n);
  return v;
}

}  // namespace recur
