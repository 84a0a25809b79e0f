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

}  // namespace

std::vector<std::vector<int32_t>> serve(Model& model, const std::vector<ServeRequest>& requests,
                                        const ServeOptions& options, ServeStats* stats_out) {
  const ModelConfig& c = model.config();
  int V = c.vocab_size;
  check(options.max_batch >= 1, "serve: max_batch must be >= 1");
  for (size_t i = 0; i < requests.size(); i++) {
    const ServeRequest& r = requests[i];
    std::string which = "serve: request " + (r.name.empty() ? std::to_string(i) : r.name);
    check(!r.prompt.empty(), which + " has an empty prompt");
    check(r.max_new_tokens >= 1, which + " asks for max_new_tokens < 1");
    check((int)r.prompt.size() + r.max_new_tokens - 1 <= c.max_seq_len,
          which + " needs " + std::to_string(r.prompt.size() + r.max_new_tokens - 1) +
              " positions but the model's max_seq_len is " + std::to_string(c.max_seq_len) +
              "; shorten the prompt or max_new_tokens");
    for (int32_t t : r.prompt)
      check(t >= 0 && t < V, which + ": token id " + std::to_string(t) + " is outside the vocabulary");
  }
  ServeStats stats;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> results(requests.size());
  std::deque<size_t> waiting;
  for (size_t i = 0; i < requests.size(); i++) waiting.push_back(i);
  std::vector<std::unique_ptr<Sequence>> live;
  std::vector<Sequence*> by_request(requests.size(), nullptr);  // depth-wise: a token's seq is its request
  std::vector<float> logits;
  bool depthwise = c.mor() && options.depthwise;

  // Takes a sampled token; a sequence that has all its tokens leaves with its result.
  auto accept = [&](Sequence& s, const float* row) {
    s.next = sample_token(row, V, options.sampling, s.rng);
    s.out.push_back(s.next);
    stats.generated_tokens++;
  };
  auto retire_finished = [&] {
    size_t kv = 0;
    for (const auto& s : live) kv += s->cache.bytes();
    stats.peak_kv_bytes = std::max(stats.peak_kv_bytes, kv);
    auto done = [&](const std::unique_ptr<Sequence>& s) {
      if ((int)s->out.size() < requests[s->request].max_new_tokens || s->in_flight) return false;
      results[s->request] = std::move(s->out);
      return true;
    };
    live.erase(std::remove_if(live.begin(), live.end(), done), live.end());
  };

  while (!live.empty() || !waiting.empty()) {
    // admit waiting requests into free slots: one batched prefill, then each samples its first token
    std::vector<DecodeChunk> prefill;
    size_t first_new = live.size();
    while ((int)live.size() < options.max_batch && !waiting.empty()) {
      auto s = std::make_unique<Sequence>();
      s->request = waiting.front();
      s->rng = Rng(mix_seed(options.sampling.seed, s->request));
      waiting.pop_front();
      const std::vector<int32_t>& prompt = requests[s->request].prompt;
      prefill.push_back({&s->cache, prompt.data(), (int)prompt.size()});
      stats.prompt_tokens += (int64_t)prompt.size();
      live.push_back(std::move(s));
    }
    if (!prefill.empty()) {
      model.decode_forward(prefill, logits);
      size_t row = 0;
      for (size_t i = first_new; i < live.size(); i++) {
        row += (size_t)prefill[i - first_new].n;
        accept(*live[i], logits.data() + (row - 1) * V);
      }
      retire_finished();
      continue;
    }
    stats.decode_iterations++;
    if (!depthwise) {
      // every live sequence runs its next token through the whole model
      std::vector<DecodeChunk> chunks;
      for (auto& s : live) chunks.push_back({&s->cache, &s->next, 1});
      model.decode_forward(chunks, logits, &stats.block_passes, &stats.block_rows);
      for (size_t i = 0; i < live.size(); i++) accept(*live[i], logits.data() + i * V);
      retire_finished();
      continue;
    }
    // depth-wise: new tokens enter the stack, one block pass runs every token at its own step, and the tokens
    // that finished their recursion leave and sample the next token of their sequence
    std::vector<DecodeChunk> entering;
    std::vector<Sequence*> entering_seqs;
    for (auto& s : live)
      if (!s->in_flight) entering.push_back({&s->cache, &s->next, 1}), entering_seqs.push_back(s.get());
    if (!entering.empty()) {
      std::vector<RecursionToken> tokens = model.mor_enter(entering);
      for (size_t i = 0; i < tokens.size(); i++) {
        entering_seqs[i]->token = std::move(tokens[i]);
        entering_seqs[i]->token.seq = (int)entering_seqs[i]->request;
        by_request[entering_seqs[i]->request] = entering_seqs[i];
        entering_seqs[i]->in_flight = true;
      }
    }
    std::vector<RecursionToken*> active, exited;
    for (auto& s : live)
      if (s->in_flight) active.push_back(&s->token);
    stats.block_rows += model.mor_advance(active, exited);
    stats.block_passes++;
    if (!exited.empty()) {
      std::sort(exited.begin(), exited.end(), [](const RecursionToken* a, const RecursionToken* b) { return a->seq < b->seq; });
      model.mor_leave(exited, logits);
      for (size_t i = 0; i < exited.size(); i++) {
        Sequence& s = *by_request[exited[i]->seq];
        s.in_flight = false;
        accept(s, logits.data() + i * V);
      }
    }
    retire_finished();
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats_out) *stats_out = stats;
  return results;
}

}  // namespace recur
