// Serving many requests: continuous batching over sequences, and for MoR models continuous depth-wise batching
// over recursion steps (see recur/serve.h). Every sequence has at most one token in the model at a time.
#include "recur/serve.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>

#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

namespace {

struct Sequence {
  size_t request = 0;
  KVCache cache;
  Rng rng{0};
  std::vector<int32_t> out;
  int32_t next = 0;        // the last sampled token: the one to run next
  bool in_flight = false;  // depth-wise: its token is inside the recursion stack
  RecursionToken token;
};

void check_requests(const ModelConfig& c, const std::vector<ServeRequest>& requests, const ServeOptions& options) {
  check(options.max_batch >= 1, "serve: max_batch must be >= 1");
  for (size_t i = 0; i < requests.size(); i++) {
    const ServeRequest& r = requests[i];
    std::string which = "serve: request " + (r.name.empty() ? std::to_string(i) : r.name);
    check(!r.prompt.empty(), which, " has an empty prompt");
    check(r.max_new_tokens >= 1, which, " asks for max_new_tokens < 1");
    check((int)r.prompt.size() + r.max_new_tokens - 1 <= c.max_seq_len, which, " needs ",
          r.prompt.size() + r.max_new_tokens - 1, " positions but the model's max_seq_len is ", c.max_seq_len,
          "; shorten the prompt or max_new_tokens");
    for (int32_t t : r.prompt) check(t >= 0 && t < c.vocab_size, which, ": token id ", t, " is outside the vocabulary");
  }
}

// The batching loop over one list of requests: admit waiting requests into free slots, then run one decode
// iteration (every sequence's next token through the whole model, or one depth-wise block pass).
class ServeLoop {
 public:
  ServeLoop(const Model& model, const std::vector<ServeRequest>& requests, const ServeOptions& options)
      : model_(model),
        requests_(requests),
        options_(options),
        decoder_(model),
        results_(requests.size()),
        by_request_(requests.size(), nullptr) {
    for (size_t i = 0; i < requests.size(); i++) waiting_.push_back(i);
  }
  std::vector<std::vector<int32_t>> run(ServeStats& stats);

 private:
  bool admit();  // one batched prefill of the admitted requests; false if none was admitted
  void decode_synchronous();
  void decode_depthwise();
  void accept(Sequence& s, const float* logits_row);  // takes a sampled token
  void retire_finished();                             // a sequence that has all its tokens leaves with its result

  const Model& model_;
  const std::vector<ServeRequest>& requests_;
  const ServeOptions& options_;
  Decoder decoder_;
  ServeStats stats_;
  std::vector<std::vector<int32_t>> results_;
  std::deque<size_t> waiting_;
  std::vector<std::unique_ptr<Sequence>> live_;
  std::vector<Sequence*> by_request_;  // depth-wise: a token's seq is its request
  std::vector<float> logits_;
};

std::vector<std::vector<int32_t>> ServeLoop::run(ServeStats& stats) {
  auto t0 = std::chrono::steady_clock::now();
  bool depthwise = model_.config().mor() && options_.depthwise;
  while (!live_.empty() || !waiting_.empty()) {
    if (admit()) continue;
    stats_.decode_iterations++;
    if (depthwise)
      decode_depthwise();
    else
      decode_synchronous();
  }
  stats_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats = stats_;
  return std::move(results_);
}

void ServeLoop::accept(Sequence& s, const float* row) {
  s.next = sample_token(row, model_.config().vocab_size, options_.sampling, s.rng);
  s.out.push_back(s.next);
  stats_.generated_tokens++;
}

void ServeLoop::retire_finished() {
  size_t kv = 0;
  for (const auto& s : live_) kv += s->cache.bytes();
  stats_.peak_kv_bytes = std::max(stats_.peak_kv_bytes, kv);
  auto done = [&](const std::unique_ptr<Sequence>& s) {
    if ((int)s->out.size() < requests_[s->request].max_new_tokens || s->in_flight) return false;
    results_[s->request] = std::move(s->out);
    return true;
  };
  live_.erase(std::remove_if(live_.begin(), live_.end(), done), live_.end());
}

bool ServeLoop::admit() {
  std::vector<DecodeChunk> prefill;
  size_t first_new = live_.size();
  while ((int)live_.size() < options_.max_batch && !waiting_.empty()) {
    auto s = std::make_unique<Sequence>();
    s->request = waiting_.front();
    s->rng = Rng(mix_seed(options_.sampling.seed, s->request));
    waiting_.pop_front();
    const std::vector<int32_t>& prompt = requests_[s->request].prompt;
    prefill.push_back({&s->cache, prompt.data(), (int)prompt.size()});
    stats_.prompt_tokens += (int64_t)prompt.size();
    live_.push_back(std::move(s));
  }
  if (prefill.empty()) return false;
  decoder_.forward(prefill, logits_);
  size_t row = 0, V = model_.config().vocab_size;
  for (size_t i = first_new; i < live_.size(); i++) {
    row += (size_t)prefill[i - first_new].n;
    accept(*live_[i], logits_.data() + (row - 1) * V);
  }
  retire_finished();
  return true;
}

void ServeLoop::decode_synchronous() {
  std::vector<DecodeChunk> chunks;
  for (auto& s : live_) chunks.push_back({&s->cache, &s->next, 1});
  decoder_.forward(chunks, logits_, &stats_.block_passes, &stats_.block_rows);
  size_t V = model_.config().vocab_size;
  for (size_t i = 0; i < live_.size(); i++) accept(*live_[i], logits_.data() + i * V);
  retire_finished();
}

// New tokens enter the stack, one block pass runs every token at its own step, and the tokens that finished
// their recursion leave and sample the next token of their sequence.
void ServeLoop::decode_depthwise() {
  std::vector<DecodeChunk> entering;
  std::vector<Sequence*> entering_seqs;
  for (auto& s : live_)
    if (!s->in_flight) entering.push_back({&s->cache, &s->next, 1}), entering_seqs.push_back(s.get());
  if (!entering.empty()) {
    std::vector<RecursionToken> tokens = decoder_.mor_enter(entering);
    for (size_t i = 0; i < tokens.size(); i++) {
      Sequence* s = entering_seqs[i];
      s->token = std::move(tokens[i]);
      s->token.seq = (int)s->request;
      by_request_[s->request] = s;
      s->in_flight = true;
    }
  }
  std::vector<RecursionToken*> active, exited;
  for (auto& s : live_)
    if (s->in_flight) active.push_back(&s->token);
  stats_.block_rows += decoder_.mor_advance(active, exited);
  stats_.block_passes++;
  if (!exited.empty()) {
    std::sort(exited.begin(), exited.end(),
              [](const RecursionToken* a, const RecursionToken* b) { return a->seq < b->seq; });
    decoder_.mor_leave(exited, logits_);
    size_t V = model_.config().vocab_size;
    for (size_t i = 0; i < exited.size(); i++) {
      Sequence& s = *by_request_[exited[i]->seq];
      s.in_flight = false;
      accept(s, logits_.data() + i * V);
    }
  }
  retire_finished();
}

}  // namespace

std::vector<std::vector<int32_t>> serve(const Model& model, const std::vector<ServeRequest>& requests,
                                        const ServeOptions& options, ServeStats* stats_out) {
  check_requests(model.config(), requests, options);
  ServeStats stats;
  std::vector<std::vector<int32_t>> results = ServeLoop(model, requests, options).run(stats);
  if (stats_out) *stats_out = stats;
  return results;
}

}  // namespace recur
