// recur/engine.h: the online generation engine behind the HTTP server (recur/server.h). Requests join a bounded,
// thread-safe queue from any thread; one engine thread runs the continuous batching loop that serve() uses
// (depth-wise for MoR), prefilling new prompts in chunks between decode steps so running streams keep flowing.
// Each token reaches the caller through a callback as soon as it is generated. A finished or
// cancelled sequence frees its slot and KV memory at once. With a seed, a request's tokens equal generate()'s
// for it alone, whatever else runs: its draws come from Rng(seed) only.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "recur/model.h"
#include "recur/sample.h"

namespace recur {

enum class FinishReason { length, stop, cancelled };
const char* finish_reason_name(FinishReason reason);  // "length", "stop", "cancelled"

struct EngineResult {
  std::vector<int32_t> tokens;  // generated
  FinishReason reason = FinishReason::length;
  int prompt_tokens = 0;
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SampleOptions sampling;  // max_new_tokens, temperature, top_k, top_p, seed
  // Both run on the engine thread and must return quickly: tokens as they become final, then the result once.
  // on_tokens returning false ends the sequence there with FinishReason::stop, its tokens kept (the server's stop
  // strings, matched on the decoded text).
  std::function<bool(const std::vector<int32_t>& tokens)> on_tokens;
  std::function<void(const EngineResult& result)> on_done;
};

struct EngineOptions {
  int max_batch = 16;         // sequences decoding at once
  int max_queue = 256;        // requests waiting for a slot; submit() refuses more
  int prefill_chunk = 64;     // prompt tokens prefilled per iteration, between decode steps
  bool depthwise = true;      // MoR: depth-wise batching
  bool gather_exits = false;  // depth-wise: tokens that finished their recursion leave together (recur/serve.h)
};

// Cumulative histogram of latencies in seconds (Prometheus buckets: counts of observations <= each bound).
struct LatencyHistogram {
  std::vector<double> bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::vector<uint64_t> counts = std::vector<uint64_t>(13, 0);
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
};

struct EngineMetrics {
  uint64_t requests_submitted = 0, requests_rejected = 0, requests_finished = 0, requests_cancelled = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t iterations = 0, occupied_slots = 0;  // occupancy = occupied_slots / (iterations · max_batch)
  int64_t block_passes = 0, block_rows = 0;    // MoR: passes of the shared block and the rows they ran
  size_t queue_depth = 0, live_sequences = 0, kv_bytes = 0;
  int max_batch = 0;
  LatencyHistogram time_to_first_token, inter_token_latency;
};

class Engine {
 public:
  Engine(const Model& model, EngineOptions options);
  ~Engine();  // shutdown(true)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request and returns its id (> 0), or 0 when the queue is full or the engine is shutting down.
  // Throws recur::Error for a request the model cannot run (empty prompt, tokens outside the vocabulary,
  // prompt + max_new_tokens beyond max_seq_len, bad sampling options).
  uint64_t submit(EngineRequest request);
  // Ends a queued or running request: on_done reports FinishReason::cancelled with the tokens so far.
  void cancel(uint64_t id);
  // Refuses new requests, then finishes (or, with cancel_running, cancels) every queued and running one, and
  // stops the engine thread.
  void shutdown(bool cancel_running);
  EngineMetrics metrics() const;

 private:
  struct Pending;
  struct Live;
  void run();
  void admit_queued();
  void apply_cancels();

  const Model& model_;
  EngineOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::unordered_set<uint64_t> cancels_;
  bool accepting_ = true, stopping_ = false, cancel_all_ = false;
  uint64_t next_id_ = 1;
  EngineMetrics metrics_;
  std::unique_ptr<Live> live_;  // the batching loop and the callbacks of its sequences (engine thread only)
  std::thread thread_;
};

}  // namespace recur
