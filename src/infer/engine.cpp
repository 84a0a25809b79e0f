// The online engine (recur/engine.h): a bounded request queue in front of the batching loop that serve() shares
// (batch_loop.h), run by one engine thread. Callers' threads only touch the queue, the cancel set and the metrics,
// under one mutex; callbacks run on the engine thread without it held.
#include "recur/engine.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "batch_loop.h"
#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

using Clock = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::cancelled: return "cancelled";
  }
  return "length";
}

void LatencyHistogram::observe(double seconds) {
  for (size_t i = 0; i < bounds.size(); i++)
    if (seconds <= bounds[i]) counts[i]++;
  count++;
  sum += seconds;
}

struct Engine::Pending {
  uint64_t id = 0;
  EngineRequest request;
  Clock::time_point submitted;
};

// The engine thread's state: the loop, and per live request its callbacks and stream position.
struct Engine::Live {
  struct Request {
    EngineRequest request;
    size_t emitted = 0;  // tokens already given to on_tokens
    Clock::time_point submitted, last_token;
    FinishReason reason = FinishReason::length;
  };
  BatchLoop loop;
  std::unordered_map<uint64_t, Request> requests;
  LatencyHistogram ttft, itl;  // observed since the last publish
  Live(const Model& model, BatchLoop::Options options) : loop(model, std::move(options)) {}
  void on_token(BatchSequence& s);
};

// Streams the new token; the request's on_tokens returning false (the server's stop strings) ends the sequence.
void Engine::Live::on_token(BatchSequence& s) {
  Request& r = requests.at(s.id);
  Clock::time_point now = Clock::now();
  if (s.out.size() == 1)
    ttft.observe(std::chrono::duration<double>(now - r.submitted).count());
  else
    itl.observe(std::chrono::duration<double>(now - r.last_token).count());
  r.last_token = now;
  if (s.out.size() > r.emitted && r.request.on_tokens &&
      !r.request.on_tokens(std::vector<int32_t>(s.out.begin() + r.emitted, s.out.end())))
    s.finished = true, r.reason = FinishReason::stop;
  r.emitted = s.out.size();
}

Engine::Engine(const Model& model, EngineOptions options) : model_(model), options_(options) {
  check(options.max_batch >= 1, "engine: max_batch must be >= 1");
  check(options.max_queue >= 0, "engine: max_queue must be >= 0");
  check(options.prefill_chunk >= 1, "engine: prefill_chunk must be >= 1");
  metrics_.max_batch = options.max_batch;
  BatchLoop::Options loop;
  loop.max_batch = options.max_batch, loop.depthwise = options.depthwise, loop.prefill_chunk = options.prefill_chunk;
  loop.gather_exits = options.gather_exits;
  loop.on_token = [this](BatchSequence& s) { live_->on_token(s); };
  loop.on_retire = [this](BatchSequence& s) {
    auto it = live_->requests.find(s.id);
    EngineResult result{std::move(s.out), it->second.reason, (int)s.prompt.size()};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      (result.reason == FinishReason::cancelled ? metrics_.requests_cancelled : metrics_.requests_finished)++;
    }
    if (it->second.request.on_done) it->second.request.on_done(result);
    live_->requests.erase(it);
  };
  live_ = std::make_unique<Live>(model, std::move(loop));
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() { shutdown(true); }

uint64_t Engine::submit(EngineRequest request) {
  const ModelConfig& c = model_.config();
  const SampleOptions& o = request.sampling;
  check(!request.prompt.empty(), "engine: the prompt is empty");
  for (int32_t t : request.prompt)
    check(t >= 0 && t < c.vocab_size, "engine: token id ", t, " is outside the vocabulary");
  check(o.max_new_tokens >= 1, "engine: max_new_tokens must be >= 1");
  check((int64_t)request.prompt.size() + o.max_new_tokens - 1 <= c.max_seq_len, "engine: the prompt (",
        request.prompt.size(), " tokens) and max_new_tokens (", o.max_new_tokens, ") exceed max_seq_len ",
        c.max_seq_len);
  check(o.temperature >= 0 && o.top_k >= 0 && o.top_p > 0 && o.top_p <= 1,
        "engine: temperature must be >= 0, top_k >= 0 and top_p in (0, 1]");
  auto pending = std::make_unique<Pending>();
  pending->request = std::move(request);
  pending->submitted = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!accepting_ || (int)queue_.size() >= options_.max_queue) {
    metrics_.requests_rejected++;
    return 0;
  }
  pending->id = next_id_++;
  metrics_.requests_submitted++;
  queue_.push_back(std::move(pending));
  metrics_.queue_depth = queue_.size();
  wake_.notify_one();
  return queue_.back()->id;
}

void Engine::cancel(uint64_t id) {
  std::unique_ptr<Pending> queued;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it)
      if ((*it)->id == id) {
        queued = std::move(*it);
        queue_.erase(it);
        metrics_.queue_depth = queue_.size();
        metrics_.requests_cancelled++;
        break;
      }
    if (!queued) cancels_.insert(id), wake_.notify_one();
  }
  if (queued && queued->request.on_done)
    queued->request.on_done({{}, FinishReason::cancelled, (int)queued->request.prompt.size()});
}

void Engine::shutdown(bool cancel_running) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    accepting_ = false, stopping_ = true, cancel_all_ = cancel_all_ || cancel_running;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return metrics_;
}

// Marks the sequences of requested cancels finished (cancel_all_: every one, and empties the queue).
void Engine::apply_cancels() {
  std::unordered_set<uint64_t> ids;
  std::deque<std::unique_ptr<Pending>> dropped;
  bool all;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ids.swap(cancels_);
    all = cancel_all_;
    if (all) dropped.swap(queue_), metrics_.queue_depth = 0, metrics_.requests_cancelled += dropped.size();
  }
  for (auto& p : dropped)
    if (p->request.on_done) p->request.on_done({{}, FinishReason::cancelled, (int)p->request.prompt.size()});
  for (auto& [id, r] : live_->requests) {
    if (!all && !ids.count(id)) continue;
    BatchSequence* s = live_->loop.find(id);
    if (s && !s->finished) s->finished = true, r.reason = FinishReason::cancelled;
  }
}

void Engine::admit_queued() {
  while (live_->loop.has_room()) {
    std::unique_ptr<Pending> p;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (queue_.empty()) return;
      p = std::move(queue_.front());
      queue_.pop_front();
      metrics_.queue_depth = queue_.size();
    }
    auto s = std::make_unique<BatchSequence>();
    s->id = p->id;
    s->prompt = std::move(p->request.prompt);
    s->sampling = p->request.sampling;
    s->rng = Rng(p->request.sampling.seed);  // the seed alone: equal to generate() whatever else runs
    Live::Request& r = live_->requests[p->id];
    r.request = std::move(p->request);
    r.submitted = p->submitted;
    live_->loop.add(std::move(s));
  }
}

void Engine::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !cancels_.empty() || !live_->loop.empty(); });
      if (stopping_ && queue_.empty() && live_->loop.empty()) return;
    }
    apply_cancels();
    admit_queued();
    size_t occupied = live_->loop.size();
    if (occupied > 0) live_->loop.step();
    const ServeStats& stats = live_->loop.stats();
    std::lock_guard<std::mutex> lock(mutex_);
    metrics_.iterations++;
    metrics_.occupied_slots += (int64_t)occupied;
    metrics_.prompt_tokens = stats.prompt_tokens, metrics_.generated_tokens = stats.generated_tokens;
    metrics_.block_passes = stats.block_passes, metrics_.block_rows = stats.block_rows;
    metrics_.live_sequences = live_->loop.size(), metrics_.kv_bytes = live_->loop.kv_bytes();
    for (auto [from, to] : {std::pair{&live_->ttft, &metrics_.time_to_first_token},
                            std::pair{&live_->itl, &metrics_.inter_token_latency}}) {
      for (size_t i = 0; i < to->counts.size(); i++) to->counts[i] += from->counts[i];
      to->count += from->count, to->sum += from->sum;
      *from = LatencyHistogram();
    }
  }
}

}  // namespace recur
