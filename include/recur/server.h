// recur/server.h: the OpenAI-compatible HTTP server (`recur server`) over the online engine (recur/engine.h).
// HTTP threads parse and check requests and stream tokens back; one engine thread batches; one Model is shared
// read-only. Endpoints, errors and metrics: README.md, "Server".
#pragma once
#include <cstddef>
#include <string>

#include "recur/engine.h"
#include "recur/model.h"
#include "recur/tokenizer.h"

namespace recur {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (printed on stdout when listening)
  std::string model_name = "recur";  // the id GET /v1/models reports
  EngineOptions engine;
  int http_threads = 96;            // connections served at once (streams hold one each)
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  bool cancel_on_shutdown = false;  // SIGINT/SIGTERM: cancel running requests instead of finishing them
};

// Serves until SIGINT or SIGTERM, then stops accepting, finishes (or cancels) the requests in flight and returns
// 0; text in and out is in `tokenizer` (the checkpoint's, whose vocab_size must be the model's). Throws
// recur::Error when it cannot listen.
int run_server(const Model& model, const Tokenizer& tokenizer, const ServerOptions& options);

}  // namespace recur
