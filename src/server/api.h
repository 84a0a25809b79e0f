// The OpenAI-style request and response formats of the HTTP server (recur/server.h), apart from any socket:
// request bodies parsed and checked into engine requests (errors name the field), text encoded with the model's
// tokenizer, the JSON of completions, stream chunks and errors, and the Prometheus text. A completion's text is
// released by a TextStream (recur/text_stream.h).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "recur/config.h"
#include "recur/engine.h"
#include "recur/text_stream.h"
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
  bool ignore_eos = false;        // llama-server's option: the end-of-text token does not end the completion
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
