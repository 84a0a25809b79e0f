// tools/serve.cpp: `recur serve`, the request front end of serve(). Reads requests as JSON lines (a file or stdin),
// generates them all with continuous batching (and depth-wise batching for MoR models), and writes one JSON line per
// request in input order, with throughput on stderr. Prompts and completions are text in the checkpoint's tokenizer;
// a request ends at max_new_tokens or at the tokenizer's end-of-text token (left out of the completion).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/json_read.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/serve.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct ServeCommandOptions {
  std::string checkpoint, precision = "f32", requests = "-";
  int max_new_tokens = 64;  // for requests that do not set it
  ServeOptions serve;       // --max_batch, --gather_exits and the sampling flags
  bool ignore_eos = false;
};

void add_flags(CLI::App* app, ServeCommandOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  add_precision_flag(app, o.precision);
  app->add_option("--requests", o.requests,
                  "JSON lines, one request each: {\"prompt\": text, \"max_new_tokens\": n, \"id\": any} "
                  "(max_new_tokens and id optional; - reads stdin)")
      ->capture_default_str();
  app->add_option("--max_new_tokens", o.max_new_tokens, "for requests that do not set it")->capture_default_str();
  app->add_option("--max_batch", o.serve.max_batch, "sequences decoding at once")->capture_default_str();
  add_gather_exits_flag(app, o.serve.gather_exits);
  add_sampling_flags(app, o.serve.sampling);  // each request's draws mix its index into the seed
  app->add_flag("--ignore_eos", o.ignore_eos,
                "keep generating past the end-of-text token (by default it ends the request)");
}

constexpr uint64_t kMaxRequestBytes = uint64_t(16) << 20;  // one request line: a prompt of up to 16 MiB

struct ParsedRequests {
  std::vector<ServeRequest> requests;
  std::vector<nlohmann::json> ids;  // the request's "id", or its line number
};

ParsedRequests parse_requests(std::istream& in, const std::string& source, int default_max_new_tokens,
                              const Tokenizer& tokenizer) {
  ParsedRequests parsed;
  std::string line;
  for (int line_no = 1; std::getline(in, line); line_no++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = source + " line " + std::to_string(line_no);
    nlohmann::json j = parse_json_strict(line, "serve: " + where, kMaxRequestBytes);
    check(j.is_object(), "serve: " + where + " is not a JSON object; write {\"prompt\": \"...\"}");
    for (const auto& item : j.items())
      check(item.key() == "prompt" || item.key() == "max_new_tokens" || item.key() == "id",
            "serve: " + where + " has an unknown key \"" + item.key() + "\"; the keys are prompt, max_new_tokens, id");
    check(j.contains("prompt") && j["prompt"].is_string() && !j["prompt"].get<std::string>().empty(),
          "serve: " + where + " needs \"prompt\": a non-empty string");
    ServeRequest request;
    request.prompt = tokenizer.encode(j["prompt"].get<std::string>());
    request.max_new_tokens = default_max_new_tokens;
    if (j.contains("max_new_tokens")) {
      check(j["max_new_tokens"].is_number_integer() && j["max_new_tokens"].get<int64_t>() >= 1 &&
                j["max_new_tokens"].get<int64_t>() <= 1000000,
            "serve: " + where + ": \"max_new_tokens\" must be an integer from 1 to 1000000");
      request.max_new_tokens = j["max_new_tokens"].get<int>();
    }
    parsed.ids.push_back(j.contains("id") ? j["id"] : nlohmann::json(line_no));
    request.name = brief_json(parsed.ids.back()) + " (" + where + ")";  // serve() checks the lengths and names it
    parsed.requests.push_back(std::move(request));
  }
  check(!parsed.requests.empty(), "serve: no requests in " + source + "; write one JSON object per line");
  return parsed;
}

int run_serve(const ServeCommandOptions& o) {
  check(o.max_new_tokens >= 1, "serve: --max_new_tokens must be >= 1");
  check(o.serve.max_batch >= 1, "serve: --max_batch must be >= 1");
  check(o.serve.sampling.temperature >= 0, "serve: --temperature must be >= 0 (0: greedy)");
  check(o.serve.sampling.top_k >= 0, "serve: --top_k must be >= 0 (0: the whole vocabulary)");
  Model model = load_for_inference(o.checkpoint, o.precision);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  ParsedRequests parsed;
  if (o.requests == "-") {
    parsed = parse_requests(std::cin, "stdin", o.max_new_tokens, *tokenizer);
  } else {
    std::ifstream in(o.requests);
    check((bool)in, "serve: cannot read --requests " + o.requests + "; give a JSON-lines file or - for stdin");
    parsed = parse_requests(in, o.requests, o.max_new_tokens, *tokenizer);
  }
  ServeStats stats;
  ServeOptions options = o.serve;
  options.stop_token = o.ignore_eos ? -1 : tokenizer->eos();
  std::vector<std::vector<int32_t>> outputs = serve(model, parsed.requests, options, &stats);
  for (size_t i = 0; i < outputs.size(); i++) {
    bool stopped = (int)outputs[i].size() < parsed.requests[i].max_new_tokens;  // serve() left the EOS out
    nlohmann::json line = {{"id", parsed.ids[i]},
                           {"completion", tokenizer->decode(outputs[i])},
                           {"generated_tokens", outputs[i].size()},
                           {"finish_reason", stopped ? "stop" : "length"}};
    // a model can emit bytes that are not UTF-8 (byte pieces); they become U+FFFD in the JSON text
    std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::fprintf(stderr, "serve: %zu requests, %lld prompt + %lld generated tokens in %.2f s (%.0f generated tokens/s)\n",
               outputs.size(), (long long)stats.prompt_tokens, (long long)stats.generated_tokens, stats.seconds,
               stats.seconds > 0 ? stats.generated_tokens / stats.seconds : 0.0);
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& parent) {
  return make_command<ServeCommandOptions>(
      parent, "serve", "generate for many requests (JSON lines in, JSON lines out)", add_flags, run_serve);
}

}  // namespace recur::cli
