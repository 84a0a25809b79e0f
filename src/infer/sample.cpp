// Sampling: temperature, top-k and top-p over the last position's logits; generation decodes with a KV cache
// (MoR models route causally, see recur/decode.h).
#include "recur/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "recur/decode.h"
#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

int32_t sample_token(const float* logits, int V, const SampleOptions& o, Rng& rng) {
  if (o.temperature <= 0) return (int32_t)(std::max_element(logits, logits + V) - logits);
  thread_local std::vector<int32_t> ids;  // per-thread scratch: no allocation per sampled token
  thread_local std::vector<double> p;
  ids.resize(V);
  std::iota(ids.begin(), ids.end(), 0);
  int k = o.top_k > 0 && o.top_k < V ? o.top_k : V;
  // Highest logits first; ties broken by the lower id so the draw is reproducible.
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  p.resize(k);
  double mx = logits[ids[0]], sum = 0;
  for (int i = 0; i < k; i++) sum += p[i] = std::exp((logits[ids[i]] - mx) / o.temperature);
  if (o.top_p < 1) {  // keep the most likely tokens until their mass reaches top_p (at least one)
    double kept = 0;
    int n = 0;
    while (n < k && (n == 0 || kept < o.top_p * sum)) kept += p[n++];
    k = n, sum = kept;
  }
  double r = rng.uniform_float() * sum;
  for (int i = 0; i < k; i++) {
    r -= p[i];
    if (r < 0) return ids[i];
  }
  return ids[k - 1];
}

std::vector<int32_t> generate(const Model& model, const std::vector<int32_t>& prompt, const SampleOptions& o,
                              const StopAfter& stop) {
  check(!prompt.empty(), "sample: the prompt is empty; give at least one character");
  check(o.max_new_tokens >= 0, "sample: max_new_tokens must be >= 0");
  check(o.top_k >= 0, "sample: top_k must be >= 0");
  check(o.top_p > 0 && o.top_p <= 1, "sample: top_p must be in (0, 1]");
  int V = model.config().vocab_size, window = model.config().max_seq_len;
  Rng rng(o.seed);
  std::vector<int32_t> tokens = prompt, out;
  // KV cache: prefill the prompt's last window, then one token per step. When the cache is full, the context
  // shifts: the last half window is prefilled again at positions from 0.
  KVCache cache;
  Decoder decoder(model);
  std::vector<float> logits;
  std::vector<DecodeChunk> step(1);
  auto prefill = [&](int n) {
    cache.clear();
    decoder.forward({{&cache, tokens.data() + tokens.size() - n, n}}, logits);
  };
  prefill(std::min<int>((int)tokens.size(), window));
  for (int i = 0; i < o.max_new_tokens; i++) {
    int32_t next = sample_token(logits.data() + logits.size() - V, V, o, rng);
    tokens.push_back(next);
    out.push_back(next);
    if ((stop && stop(next)) || i + 1 == o.max_new_tokens) break;
    if (cache.length == window)
      prefill(std::max(1, window / 2));
    else
      step[0] = {&cache, &tokens.back(), 1}, decoder.forward(step, logits);
  }
  return out;
}

}  // namespace recur
