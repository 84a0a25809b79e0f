// libFuzzer target (scripts/fuzz.sh): a tokenizer.model file (a serialized SentencePiece model, the only tokenizer
// file recur reads: src/data/tokenizer.cpp) must be refused with recur::Error or give a tokenizer that decodes its
// own encoding of any text back exactly; the first input bytes double as that text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "recur/error.h"
#include "recur/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::unique_ptr<recur::Tokenizer> tokenizer = recur::tokenizer_from_serialized(bytes, "fuzz.model");
    std::string text = bytes.substr(0, 64);
    if (tokenizer->decode(tokenizer->encode(text)) != text) std::abort();
    if ((int)tokenizer->token_byte_lengths().size() != tokenizer->vocab_size()) std::abort();
  } catch (const recur::Error&) {
  }
  return 0;
}
