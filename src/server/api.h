// The OpenAI-style request and response formats of the HTTP server (recur/server.h), apart from any socket:
// request bodies parsed and checked into engine requests (errors name the field), text encoded with the model's
// tokenizer, a completion's text released as its tokens arrive (stop strings, whole UTF-8 sequences, invalid bytes
// replaced), the JSON of completions, stream chunks and errors, and the Prometheus text.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "recur/config.h"
#include "recur/engine.h"
#include "recur/tokenizer.h"

namespace recur::server {

// A request the server answers with an error: HTTP status and OpenAI's error object.
struct ApiError {
  int status = 400;
  std::string message, type = "invalid_request_error", param, code;
};
nlohmann::json error_json(const ApiError& e);  // {"error": {"message", "type", "param", "code"}}

struct CompletionParams {
  std::vector<int32_t> prompt;
  SampleOptions sampling;         // max_new_tokens = max_tokens
  std::vector<std::string> stop;  // stop strings, matched on the decoded text (TextStream)
  bool stream = false;
};

// POST /v1/completions: throws ApiError for malformed JSON, an unknown field, a wrong type or value, a token id
// outside the model's vocabulary, or a prompt and max_tokens beyond the model's max_seq_len. A text prompt is
// encoded with `tokenizer`; default_seed is used when the request gives none.
CompletionParams parse_completion(const std::string& body, const ModelConfig& config, const Tokenizer& tokenizer,
                                  uint64_t default_seed);
// POST /tokenize {"content": text} -> the text; POST /detokenize {"tokens": [ids]} -> ids (checked).
std::string parse_tokenize(const std::string& body);
std::vector<int32_t> parse_detokenize(const std::string& body, const ModelConfig& config);

// Bytes -> UTF-8 text. Invalid bytes become U+FFFD (one per maximal invalid subpart, as the Unicode standard and
// WHATWG decoders do); an incomplete sequence at the end is kept for the next piece of a stream unless `last`.
class Utf8Decoder {
 public:
  std::string decode(std::string_view bytes, bool last);

 private:
  std::string pending_;
};

// A completion's text as its tokens arrive, the one path of whole and streamed completions (byte-level or
// SentencePiece): the tokens' bytes (Tokenizer::decode, which concatenates per token) are cut before the first
// stop string, and released up to the last complete UTF-8 sequence that no stop string can still claim.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop)
      : tokenizer_(tokenizer), stop_(std::move(stop)) {}
  // Adds generated tokens; false once the text holds a stop string (the text ends before it; generation should).
  bool add(const std::vector<int32_t>& tokens);
  // The text released since the last call; `last` (the completion is over) releases the rest.
  std::string take(bool last);

 private:
  size_t held_back() const;  // the longest end of the bytes that begins a stop string
  const Tokenizer& tokenizer_;
  std::vector<std::string> stop_;
  std::string bytes_;    // decoded so far, cut before the stop string once one appeared
  size_t released_ = 0;  // bytes_[0, released_) went to utf8_
  bool stopped_ = false;
  Utf8Decoder utf8_;
};

struct Usage {
  int prompt_tokens = 0, completion_tokens = 0;
};
// A text_completion object, or (chunk) one server-sent event's object; finish_reason null while streaming.
nlohmann::json completion_json(const std::string& id, const std::string& model, int64_t created,
                               const std::string& text, const char* finish_reason);
std::string finish_reason_text(FinishReason reason);  // OpenAI's words: "length", "stop" (a cancel: "stop")
// The last object of a completion, whole or streamed: completion_json with its finish_reason, plus usage.
nlohmann::json final_completion_json(const std::string& id, const std::string& model, int64_t created,
                                     const std::string& text, FinishReason reason, const Usage& usage);

// Counters the HTTP layer keeps beside the engine's metrics.
struct HttpCounters {
  uint64_t requests = 0, errors = 0;
};
// GET /metrics: the engine's metrics and the HTTP counters in the Prometheus text format.
std::string prometheus_text(const EngineMetrics& m, const HttpCounters& http);

}  // namespace recur::server
