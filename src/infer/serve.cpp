// Serving a fixed list of requests: the shared continuous batching loop (batch_loop.h; depth-wise for MoR, see
// recur/serve.h) fed from the list as slots free up.
#include "recur/serve.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "batch_loop.h"
#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

namespace {

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

}  // namespace

std::vector<std::vector<int32_t>> serve(const Model& model, const std::vector<ServeRequest>& requests,
                                        const ServeOptions& options, ServeStats* stats_out) {
  check_requests(model.config(), requests, options);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> results(requests.size());
  BatchLoop::Options loop_options;
  loop_options.max_batch = options.max_batch, loop_options.depthwise = options.depthwise;
  loop_options.gather_exits = options.gather_exits;
  loop_options.on_token = [&](BatchSequence& s) {
    if (s.out.back() == options.stop_token) s.out.pop_back(), s.finished = true;
  };
  loop_options.on_retire = [&](BatchSequence& s) { results[s.id] = std::move(s.out); };
  BatchLoop loop(model, loop_options);
  for (size_t next = 0; next < requests.size() || !loop.empty(); loop.step()) {
    for (; next < requests.size() && loop.has_room(); next++) {
      auto s = std::make_unique<BatchSequence>();
      s->id = next;
      s->prompt = requests[next].prompt;
      s->sampling = options.sampling;
      s->sampling.max_new_tokens = requests[next].max_new_tokens;
      s->rng = Rng(mix_seed(options.sampling.seed, next));
      loop.add(std::move(s));
    }
  }
  if (stats_out) {
    *stats_out = loop.stats();
    stats_out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return results;
}

}  // namespace recur
