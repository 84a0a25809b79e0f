// The HTTP layer of `recur server` (recur/server.h) on cpp-httplib: routes, OpenAI-style completions (whole or
// as server-sent events), limits (413, 429), and the shutdown on SIGINT/SIGTERM. The engine thread turns a
// request's tokens into text (a TextStream in the model's tokenizer) and hands it to the request's HTTP thread
// through a Channel; a stream whose client went away cancels its sequence.
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include "api.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "recur/server.h"

namespace recur {

namespace {

using nlohmann::json;
using server::ApiError;

struct Channel {
  Channel(const Tokenizer& tokenizer, std::vector<std::string> stop, int32_t end_token)
      : text(tokenizer, std::move(stop), end_token) {}
  std::mutex mutex;
  std::condition_variable ready;
  TextStream text;       // fed by the engine thread
  std::string released;  // text released by it, not yet sent
  bool done = false;
  EngineResult result;
};

// How often a waiting whole completion checks that its client is still there.
constexpr std::chrono::milliseconds kHeartbeat{250};

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, server::error_json(e)); }

class HttpServer {
 public:
  HttpServer(const Model& model, const Tokenizer& tokenizer, const ServerOptions& options)
      : model_(model), tokenizer_(tokenizer), options_(options), engine_(model, options.engine) {}
  int run(const sigset_t& signals);

 private:
  void routes();
  void completions(const httplib::Request& req, httplib::Response& res);
  void stream(httplib::Response& res, uint64_t id, std::shared_ptr<Channel> channel, int prompt_tokens);
  void whole(httplib::Response& res, uint64_t id, std::shared_ptr<Channel> channel);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
  void wait_for_signal(const sigset_t& signals);

  const Model& model_;
  const Tokenizer& tokenizer_;
  const ServerOptions& options_;
  Engine engine_;
  httplib::Server http_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> seeds_{0}, http_requests_{0}, http_errors_{0};
  std::atomic<int> open_streams_{0};  // streams not yet fully written: shutdown waits for them
  uint64_t seed_base_ = (uint64_t)std::chrono::system_clock::now().time_since_epoch().count();
};

void HttpServer::completions(const httplib::Request& req, httplib::Response& res) {
  server::CompletionParams p =
      server::parse_completion(req.body, model_.config(), tokenizer_, mix_seed(seed_base_, seeds_++));
  auto channel = std::make_shared<Channel>(tokenizer_, std::move(p.stop), p.ignore_eos ? -1 : tokenizer_.eos());
  EngineRequest request{p.prompt, p.sampling, nullptr, nullptr};
  request.on_tokens = [channel](const std::vector<int32_t>& tokens) {
    std::lock_guard<std::mutex> lock(channel->mutex);
    bool more = channel->text.add(tokens);
    channel->released += channel->text.take(false);
    channel->ready.notify_one();
    return more;  // false: a stop string appeared
  };
  request.on_done = [channel](const EngineResult& result) {
    std::lock_guard<std::mutex> lock(channel->mutex);
    channel->released += channel->text.take(true);
    channel->result = result, channel->done = true;
    channel->ready.notify_one();
  };
  uint64_t id = engine_.submit(std::move(request));
  if (id == 0 && stopping_) throw ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"};
  if (id == 0) {
    res.set_header("Retry-After", "1");
    throw ApiError{429, "the request queue is full; retry later", "rate_limit_error", "", "queue_full"};
  }
  if (p.stream) return stream(res, id, channel, (int)p.prompt.size());
  whole(res, id, channel);
}

// A whole (non-streamed) completion, sent as one chunked JSON body once the sequence is done. While it waits, a
// space (JSON allows leading whitespace) goes out every heartbeat: a failed write means the client left, and its
// sequence is cancelled instead of running to the end for nobody.
void HttpServer::whole(httplib::Response& res, uint64_t id, std::shared_ptr<Channel> channel) {
  open_streams_++;
  auto provide = [this, id, channel](size_t, httplib::DataSink& sink) {
    EngineResult r;
    std::string completion;
    {
      std::unique_lock<std::mutex> lock(channel->mutex);
      if (!channel->ready.wait_for(lock, kHeartbeat, [&] { return channel->done; })) {
        lock.unlock();
        return sink.write(" ", 1);  // false: the releaser below cancels
      }
      r = channel->result, completion = channel->released;
    }
    std::string text =
        json_text(server::final_completion_json("cmpl-" + std::to_string(id), options_.model_name, std::time(nullptr),
                                                completion, r.reason, {r.prompt_tokens, (int)r.tokens.size()}));
    if (!sink.write(text.data(), text.size())) return false;
    sink.done();
    return true;
  };
  // With the charset parameter httplib does not gzip the body (it compresses only an exact "application/json"):
  // a compressor would hold back the heartbeats, and a client that left would go unnoticed.
  res.set_chunked_content_provider("application/json; charset=utf-8", provide, [this, id](bool success) {
    if (!success) engine_.cancel(id);
    open_streams_--;
  });
}

// Server-sent events in OpenAI's chunk format: one event per piece of released text, a last one with
// finish_reason and usage, then [DONE]. A failed write means the client left: its sequence is cancelled.
void HttpServer::stream(httplib::Response& res, uint64_t id, std::shared_ptr<Channel> channel, int prompt_tokens) {
  std::string cid = "cmpl-" + std::to_string(id);
  int64_t created = std::time(nullptr);
  res.set_header("Cache-Control", "no-cache");
  open_streams_++;
  auto provide = [this, id, channel, cid, created, prompt_tokens](size_t, httplib::DataSink& sink) {
    std::string text, events;
    bool done;
    FinishReason reason;
    int generated;
    {
      std::unique_lock<std::mutex> lock(channel->mutex);
      channel->ready.wait_for(lock, std::chrono::milliseconds(100),
                              [&] { return !channel->released.empty() || channel->done; });
      text.swap(channel->released);
      done = channel->done, reason = channel->result.reason, generated = (int)channel->result.tokens.size();
    }
    auto event = [&](const json& j) { events += "data: " + json_text(j) + "\n\n"; };
    if (!text.empty()) event(server::completion_json(cid, options_.model_name, created, text, nullptr));
    if (done) {
      event(server::final_completion_json(cid, options_.model_name, created, "", reason, {prompt_tokens, generated}));
      events += "data: [DONE]\n\n";
    }
    if (!events.empty() && !sink.write(events.data(), events.size())) {
      engine_.cancel(id);
      return false;
    }
    if (done) sink.done();
    return true;
  };
  res.set_chunked_content_provider("text/event-stream", provide, [this, id](bool success) {
    if (!success) engine_.cancel(id);
    open_streams_--;
  });
}

void HttpServer::routes() {
  auto guarded = [this](void (HttpServer::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*handler)(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, {400, e.what(), "invalid_request_error", "", "invalid_value"});
      }
    };
  };
  http_.Post("/v1/completions", guarded(&HttpServer::completions));
  http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", options_.model_name},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "recur"},
                  {"tokenizer", tokenizer_.describe()},
                  {"vocab_size", tokenizer_.vocab_size()}};
    send_json(res, 200, {{"object", "list"}, {"data", {model}}});
  });
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, stopping_ ? 503 : 200, {{"status", stopping_ ? "shutting_down" : "ok"}});
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(server::prometheus_text(engine_.metrics(), {http_requests_, http_errors_}),
                    "text/plain; version=0.0.4");
  });
  http_.Post("/tokenize", guarded(&HttpServer::tokenize));
  http_.Post("/detokenize", guarded(&HttpServer::detokenize));
  http_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, {413, "the request body is too large", "invalid_request_error", "", "payload_too_large"});
    else if (res.status == 404)
      send_error(res, {404, "no such endpoint", "invalid_request_error", "", "not_found"});
    else
      send_error(res, {res.status, "the request failed with HTTP status " + std::to_string(res.status),
                       "invalid_request_error", "", ""});
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, {500, "internal error", "server_error", "", "internal_error"});
  });
  http_.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    http_requests_++;
    if (res.status >= 400) http_errors_++;
  });
}

void HttpServer::tokenize(const httplib::Request& req, httplib::Response& res) {
  send_json(res, 200, {{"tokens", tokenizer_.encode(server::parse_tokenize(req.body))}});
}

void HttpServer::detokenize(const httplib::Request& req, httplib::Response& res) {
  std::vector<int32_t> tokens = server::parse_detokenize(req.body, model_.config());
  send_json(res, 200, {{"content", Utf8Decoder().decode(tokenizer_.decode(tokens), true)}});
}

// SIGINT/SIGTERM (blocked in every thread, taken here): refuse new requests, let the engine finish or cancel the
// running ones (their HTTP threads then complete their responses), and stop listening.
void HttpServer::wait_for_signal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  stopping_ = true;
  std::fprintf(stderr, "recur server: signal %d, %s the requests in flight\n", sig,
               options_.cancel_on_shutdown ? "cancelling" : "finishing");
  engine_.shutdown(options_.cancel_on_shutdown);
  // httplib ends chunked responses once it stops: let the streams write their last events first (bounded, in
  // case a stream's provider was never started)
  for (int i = 0; i < 1000 && open_streams_ > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  http_.stop();
}

int HttpServer::run(const sigset_t& signals) {
  routes();
  int threads = options_.http_threads;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool((size_t)threads); };
  http_.set_payload_max_length(options_.max_body_bytes);
  http_.set_socket_options([](socket_t sock) {  // accepted sockets inherit these on Linux
    httplib::default_socket_options(sock);
    int yes = 1;  // a stream writes small events: without this Nagle's algorithm holds them for the peer's ACK
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  });
  http_.set_keep_alive_timeout(2);
  http_.set_keep_alive_max_count(1000);
  int port = options_.port;
  if (port == 0)
    port = http_.bind_to_any_port(options_.host);
  else if (!http_.bind_to_port(options_.host, port))
    port = -1;
  check(port > 0, "server: cannot listen on ", options_.host, ":", options_.port,
        "; is the port in use? pick another with --port (0: any free port)");
  std::printf("recur server: listening on http://%s:%d\n", options_.host.c_str(), port);
  std::fflush(stdout);
  std::thread watcher([&] { wait_for_signal(signals); });
  http_.listen_after_bind();
  if (!stopping_) kill(getpid(), SIGTERM);  // listening failed: wake the watcher so it can stop the engine
  watcher.join();
  std::fprintf(stderr, "recur server: stopped\n");
  return 0;
}

}  // namespace

int run_server(const Model& model, const Tokenizer& tokenizer, const ServerOptions& options) {
  check(options.http_threads >= 1, "server: --http_threads must be >= 1");
  check(options.max_body_bytes >= 1, "server: --max_body_bytes must be >= 1");
  // Block the shutdown signals before any thread starts (engine, OpenMP, HTTP): all inherit the mask, so only
  // the watcher's sigwait sees them. A client that hangs up must not kill the server with SIGPIPE.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  check(tokenizer.vocab_size() == model.config().vocab_size, "server: the model's vocab_size is ",
        model.config().vocab_size, " but its tokenizer (", tokenizer.describe(), ") has ", tokenizer.vocab_size(),
        " tokens; serve a checkpoint whose tokenizer matches its model");
  HttpServer server(model, tokenizer, options);
  return server.run(signals);
}

}  // namespace recur
