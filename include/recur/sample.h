// recur/sample.h: text generation from a trained model (temperature, top-k, top-p, seeded).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "recur/model.h"

namespace recur {

struct SampleOptions {
  int max_new_tokens = 200;
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;            // 0: the whole vocabulary
  float top_p = 1.0f;        // nucleus: the fewest most likely tokens (of the top k) whose probability is >= top_p
  uint64_t seed = 42;
};

// Draw one token id from logits (V) with the options' temperature, top-k and top-p (rng advanced by one draw).
struct Rng;
int32_t sample_token(const float* logits, int V, const SampleOptions& options, Rng& rng);

// Called with each generated token (after it joined the output); true ends the generation there.
using StopAfter = std::function<bool(int32_t token)>;

// Continues `prompt` (token ids) by options.max_new_tokens tokens with a KV cache, or fewer when `stop` says so.
// The context is at most max_seq_len tokens: when it is full, the last max_seq_len/2 tokens are prefilled again (a
// context shift).
std::vector<int32_t> generate(const Model& model, const std::vector<int32_t>& prompt, const SampleOptions& options,
                              const StopAfter& stop = nullptr);

}  // namespace recur
