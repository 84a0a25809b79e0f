// Request parsing and response JSON of the HTTP server (see api.h): every field of a completion request is
// checked by type and range, and an error names it, so a client learns what to fix from the 400 alone.
#include "api.h"

#include <cstdio>
#include <set>

namespace recur::server {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& param, const std::string& message, const std::string& code) {
  throw ApiError{400, message, "invalid_request_error", param, code};
}

json parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) fail("", "the request body is not valid JSON", "invalid_json");
  if (!j.is_object()) fail("", "the request body must be a JSON object", "invalid_type");
  return j;
}

void check_fields(const json& j, const std::set<std::string>& known) {
  for (const auto& item : j.items())
    if (!known.count(item.key())) fail(item.key(), "unknown field '" + item.key() + "'", "unknown_field");
}

// The field's value if present and not null, checked against [lo, hi] for numbers.
const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t integer_field(const json& j, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(j, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) fail(name, std::string("'") + name + "' must be an integer", "invalid_type");
  // unsigned JSON numbers (every integer >= 0) may not fit int64_t: compare them as unsigned
  bool unsigned_value = v->is_number_unsigned();
  if (unsigned_value ? v->get<uint64_t>() > (uint64_t)hi || (int64_t)v->get<uint64_t>() < lo
                     : v->get<int64_t>() < lo || v->get<int64_t>() > hi)
    fail(name, std::string("'") + name + "' must be from " + std::to_string(lo) + " to " + std::to_string(hi),
         "invalid_value");
  return v->get<int64_t>();
}

double number_field(const json& j, const char* name, double fallback, double lo, double hi, bool open_lo) {
  const json* v = field(j, name);
  if (!v) return fallback;
  if (!v->is_number()) fail(name, std::string("'") + name + "' must be a number", "invalid_type");
  double x = v->get<double>();
  if (!(open_lo ? x > lo : x >= lo) || !(x <= hi)) {
    char range[96];
    std::snprintf(range, sizeof range, "%s%g, %g]", open_lo ? "(" : "[", lo, hi);
    fail(name, std::string("'") + name + "' must be in " + range, "invalid_value");
  }
  return x;
}

std::vector<int32_t> token_array(const json& v, const char* name, int vocab) {
  std::vector<int32_t> tokens;
  for (const json& t : v) {
    if (!t.is_number_integer()) fail(name, std::string("'") + name + "' must be a string or token ids", "invalid_type");
    if (t.is_number_unsigned() ? t.get<uint64_t>() >= (uint64_t)vocab
                               : t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab)
      fail(name,
           "token id " + t.dump() + " in '" + name + "' is outside the model's vocabulary (ids 0 to " +
               std::to_string(vocab - 1) + ")",
           "invalid_value");
    tokens.push_back(t.get<int32_t>());
  }
  return tokens;
}

std::vector<int32_t> prompt_field(const json& j, int vocab, const Tokenizer& tokenizer) {
  const json* v = field(j, "prompt");
  if (!v) fail("prompt", "'prompt' is required", "missing_field");
  if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) v = &(*v)[0];  // ["text"]: one prompt
  std::vector<int32_t> prompt;
  if (v->is_string())
    prompt = tokenizer.encode(v->get_ref<const std::string&>());
  else if (v->is_array())
    prompt = token_array(*v, "prompt", vocab);
  else
    fail("prompt", "'prompt' must be a string or an array of token ids", "invalid_type");
  if (prompt.empty()) fail("prompt", "'prompt' is empty", "invalid_value");
  return prompt;
}

std::vector<std::string> stop_field(const json& j) {
  const json* v = field(j, "stop");
  std::vector<std::string> stop;
  if (!v) return stop;
  if (v->is_string()) {
    stop.push_back(v->get<std::string>());
  } else if (v->is_array() && v->size() <= 4) {
    for (const json& s : *v) {
      if (!s.is_string()) fail("stop", "'stop' must be a string or an array of strings", "invalid_type");
      stop.push_back(s.get<std::string>());
    }
  } else {
    fail("stop", "'stop' must be a string or an array of at most 4 strings", "invalid_type");
  }
  for (const auto& s : stop)
    if (s.empty()) fail("stop", "a stop string is empty", "invalid_value");
  return stop;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

}  // namespace

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

CompletionParams parse_completion(const std::string& body, const ModelConfig& config, const Tokenizer& tokenizer,
                                  uint64_t default_seed) {
  json j = parse_object(body);
  check_fields(j, {"model", "prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "stop", "n", "stream",
                   "user", "ignore_eos"});
  for (const char* name : {"model", "user"})
    if (const json* v = field(j, name); v && !v->is_string())
      fail(name, std::string("'") + name + "' must be a string", "invalid_type");
  for (const char* name : {"stream", "ignore_eos"})
    if (const json* v = field(j, name); v && !v->is_boolean())
      fail(name, std::string("'") + name + "' must be a boolean", "invalid_type");
  integer_field(j, "n", 1, 1, 1);
  CompletionParams p;
  p.prompt = prompt_field(j, config.vocab_size, tokenizer);
  p.sampling.max_new_tokens = (int)integer_field(j, "max_tokens", 16, 1, config.max_seq_len);
  p.sampling.temperature = (float)number_field(j, "temperature", 1.0, 0, 2, false);
  p.sampling.top_k = (int)integer_field(j, "top_k", 0, 0, config.vocab_size);
  p.sampling.top_p = (float)number_field(j, "top_p", 1.0, 0, 1, true);
  p.sampling.seed = (uint64_t)integer_field(j, "seed", (int64_t)(default_seed >> 1), 0, INT64_MAX);
  p.stop = stop_field(j);
  p.stream = field(j, "stream") && j["stream"].get<bool>();
  p.ignore_eos = field(j, "ignore_eos") && j["ignore_eos"].get<bool>();
  int64_t need = (int64_t)p.prompt.size() + p.sampling.max_new_tokens - 1;
  if (need > config.max_seq_len)
    throw ApiError{400,
                   "the prompt (" + std::to_string(p.prompt.size()) + " tokens) and max_tokens (" +
                       std::to_string(p.sampling.max_new_tokens) + ") need " + std::to_string(need) +
                       " positions, but the model's context is " + std::to_string(config.max_seq_len) +
                       "; shorten the prompt or lower max_tokens",
                   "invalid_request_error", (int64_t)p.prompt.size() > config.max_seq_len ? "prompt" : "max_tokens",
                   "context_length_exceeded"};
  return p;
}

std::string parse_tokenize(const std::string& body) {
  json j = parse_object(body);
  check_fields(j, {"content"});
  const json* v = field(j, "content");
  if (!v || !v->is_string()) fail("content", "'content' must be a string", "invalid_type");
  return v->get<std::string>();
}

std::vector<int32_t> parse_detokenize(const std::string& body, const ModelConfig& config) {
  json j = parse_object(body);
  check_fields(j, {"tokens"});
  const json* v = field(j, "tokens");
  if (!v || !v->is_array()) fail("tokens", "'tokens' must be an array of token ids", "invalid_type");
  return token_array(*v, "tokens", config.vocab_size);
}

json completion_json(const std::string& id, const std::string& model, int64_t created, const std::string& text,
                     const char* finish_reason) {
  json choice = {{"text", text},
                 {"index", 0},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", {choice}}};
}

std::string finish_reason_text(FinishReason reason) { return reason == FinishReason::length ? "length" : "stop"; }

json final_completion_json(const std::string& id, const std::string& model, int64_t created, const std::string& text,
                           FinishReason reason, const Usage& usage) {
  json body = completion_json(id, model, created, text, finish_reason_text(reason).c_str());
  body["usage"] = usage_json(usage);
  return body;
}

}  // namespace recur::server
