// libFuzzer target (scripts/fuzz.sh): one HTTP request body through every parser of `recur server`
// (src/server/api.cpp: completions, tokenize, detokenize), which must answer with an ApiError or a recur::Error
// and never crash, hang or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/error.h"
#include "recur/tokenizer.h"
#include "server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  recur::ModelConfig config;  // the defaults: a byte vocabulary
  config.max_seq_len = 64;
  static std::unique_ptr<recur::Tokenizer> bytes = recur::make_byte_tokenizer();
  auto attempt = [&](auto&& parse) {
    try {
      parse();
    } catch (const recur::server::ApiError&) {
    } catch (const recur::Error&) {
    }
  };
  attempt([&] { recur::server::parse_completion(body, config, *bytes, 7); });
  attempt([&] { bytes->encode(recur::server::parse_tokenize(body)); });
  attempt([&] { bytes->decode(recur::server::parse_detokenize(body, config)); });
  return 0;
}
