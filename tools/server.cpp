// tools/server.cpp: `recur server`, the OpenAI-compatible HTTP server (recur/server.h) on a checkpoint: loads
// the model and its tokenizer once and serves them until SIGINT/SIGTERM. Endpoints and errors: README.md, "Server".
#include <filesystem>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/server.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct ServerCommandOptions {
  std::string checkpoint, precision = "f32";
  ServerOptions server;
};

void add_flags(CLI::App* app, ServerCommandOptions& o) {
  ServerOptions& s = o.server;
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  add_precision_flag(app, o.precision);
  app->add_option("--host", s.host, "address to listen on")->capture_default_str();
  app->add_option("--port", s.port, "port (0: any free port, printed when listening)")->capture_default_str();
  app->add_option("--model_name", s.model_name, "the model id clients see (default: the checkpoint's folder name)");
  app->add_option("--max_batch", s.engine.max_batch, "sequences decoding at once")->capture_default_str();
  app->add_option("--max_queue", s.engine.max_queue, "requests waiting for a slot (more get 429)")
      ->capture_default_str();
  app->add_option("--prefill_chunk", s.engine.prefill_chunk, "prompt tokens prefilled between decode steps")
      ->capture_default_str();
  add_gather_exits_flag(app, s.engine.gather_exits);
  app->add_option("--http_threads", s.http_threads, "connections served at once (each stream holds one)")
      ->capture_default_str();
  app->add_option("--max_body_bytes", s.max_body_bytes, "larger request bodies get 413")->capture_default_str();
  app->add_flag("--cancel_on_shutdown", s.cancel_on_shutdown,
                "on SIGINT/SIGTERM cancel running requests instead of finishing them");
}

int run_server_command(const ServerCommandOptions& o) {
  Model model = load_for_inference(o.checkpoint, o.precision);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  ServerOptions options = o.server;
  if (options.model_name == "recur")
    options.model_name = std::filesystem::path(o.checkpoint).lexically_normal().filename().string();
  if (options.model_name.empty()) options.model_name = "recur";
  return run_server(model, *tokenizer, options);
}

}  // namespace

Command add_server_command(CLI::App& parent) {
  return make_command<ServerCommandOptions>(parent, "server", "OpenAI-compatible HTTP server (POST /v1/completions)",
                                            add_flags, run_server_command);
}

}  // namespace recur::cli
