// recur/serve.h: generation for many requests at once. Continuous batching: up to max_batch sequences decode
// together, and a finished sequence's slot goes to the next waiting request at once. MoR models add
// continuous depth-wise batching: tokens at different recursion steps run the shared block in one batch (its
// weights are the same at every step), so the slots that tokens leaving early free are filled by the next
// tokens at once instead of idling until the deepest token of the batch finishes. With gather_exits, tokens
// that finished their recursion wait until half the decoding sequences have (or the stack is empty) and then
// run the coda and head together: fewer calls of the unique outer layers, at the price of fuller block passes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "recur/decode.h"
#include "recur/model.h"
#include "recur/sample.h"

namespace recur {

struct ServeRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 64;
  std::string name;  // what errors call the request (e.g. its id in a request file); empty: its index
};

struct ServeOptions {
  int max_batch = 16;         // sequences decoding at once
  bool depthwise = true;      // MoR: depth-wise batching (false: every token finishes all its steps before the next)
  bool gather_exits = false;  // depth-wise: tokens that finished their recursion wait to leave together (below)
  int32_t stop_token = -1;    // a generated token that ends its request, left out of the result (-1: none)
  SampleOptions sampling;     // temperature and top-k; each request draws from seed mixed with its index
};

struct ServeStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double seconds = 0;
  int64_t decode_iterations = 0;
  int64_t block_passes = 0, block_rows = 0;        // MoR: passes of the shared block and the token rows they ran
  size_t peak_kv_bytes = 0;                        // the largest total of the live sequences' KV caches
  double prefill_seconds = 0, sample_seconds = 0;  // prompt prefills; drawing the sampled tokens from the logits
  MorStageTimes decode_stages;                     // MoR: the decode steps' time by stage (prefills not included)
};

// Generates max_new_tokens tokens for every request, or fewer when it generates stop_token; returns the generated
// tokens of each request in order (a result shorter than max_new_tokens stopped). Greedy results equal generate()
// for each request alone, cut before its first stop_token. Errors name the request that cannot be served.
std::vector<std::vector<int32_t>> serve(const Model& model, const std::vector<ServeRequest>& requests,
                                        const ServeOptions& options, ServeStats* stats = nullptr);

}  // namespace recur
