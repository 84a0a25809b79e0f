// Language-model evaluation: the stream cut into windows overlapping by one token, forwarded in batches by the
// training pass (targets counted, no backward), the cross-entropy summed over every predicted token; and one
// continuation's log-likelihood after a prompt.
#include "recur/eval.h"

#include <algorithm>
#include <cmath>

#include "recur/error.h"
#include "recur/train_pass.h"

namespace recur {

double LmEvalResult::perplexity() const { return std::exp(nll()); }
double LmEvalResult::bits_per_byte() const { return nll_sum / std::log(2.0) / (double)bytes; }

// Adds the windows starting at `starts` (each of T predicted tokens) to `result`.
static void score_windows(TrainPass& pass, const TokenReader& read, const std::vector<uint64_t>& starts, int T,
                          const std::vector<int32_t>& token_bytes, LmEvalResult& result) {
  int B = (int)starts.size(), V = pass.model().config().vocab_size;
  std::vector<int32_t> span(T + 1), tokens((size_t)B * T), targets((size_t)B * T);
  for (int b = 0; b < B; b++) {
    read(starts[b], span.size(), span.data());
    for (int32_t t : span)
      check(t >= 0 && t < V && t < (int32_t)token_bytes.size(), "eval: token ", t,
            " is outside the model's vocabulary of ", V, "; evaluate on data made with the model's tokenizer");
    std::copy(span.begin(), span.end() - 1, tokens.begin() + (size_t)b * T);
    std::copy(span.begin() + 1, span.end(), targets.begin() + (size_t)b * T);
  }
  pass.forward(tokens.data(), targets.data(), B, T);
  result.nll_sum += (double)pass.last_cross_entropy() * pass.n_targets();
  result.tokens += pass.n_targets();
  for (int32_t t : targets) result.bytes += token_bytes[t];
  result.windows += B;
}

LmEvalResult evaluate_lm(const Model& model, const TokenReader& read, uint64_t n_tokens,
                         const std::vector<int32_t>& token_bytes, const EvalOptions& o) {
  int T = o.seq_len > 0 ? o.seq_len : model.config().max_seq_len;
  check(T <= model.config().max_seq_len, "eval: --seq_len ", T, " exceeds the model's max_seq_len ",
        model.config().max_seq_len, "; lower it");
  check(o.batch_size >= 1 && o.max_tokens >= 0, "eval: --batch_size must be >= 1 and --max_tokens >= 0");
  uint64_t n = o.max_tokens > 0 ? std::min<uint64_t>(n_tokens, (uint64_t)o.max_tokens) : n_tokens;
  check(n >= 2, "eval: the data holds ", n, " tokens; at least 2 are needed to predict one");
  TrainPass pass(model);
  pass.set_mor_causal_routing(model.config().mor_routing == MorRouting::expert);
  LmEvalResult result;
  uint64_t full = (n - 1) / T;
  std::vector<uint64_t> starts;
  for (uint64_t w = 0; w < full; w++) {
    starts.push_back(w * T);
    if ((int)starts.size() == o.batch_size || w + 1 == full) {
      score_windows(pass, read, starts, T, token_bytes, result);
      starts.clear();
    }
  }
  int rest = (int)(n - 1 - full * T);
  if (rest > 0) score_windows(pass, read, {full * T}, rest, token_bytes, result);
  return result;
}

double continuation_loglik(TrainPass& pass, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& continuation) {
  const ModelConfig& config = pass.model().config();
  int max_len = config.max_seq_len;
  check(!continuation.empty() && (int)continuation.size() < max_len, "eval: a choice of ", continuation.size(),
        " tokens does not fit after a prompt in max_seq_len ", max_len);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), continuation.begin(), continuation.end());
  size_t keep = std::min<size_t>(seq.size(), (size_t)max_len + 1);  // inputs are all but the last token
  seq.erase(seq.begin(), seq.end() - (long)keep);
  int T = (int)seq.size() - 1;
  check(T >= (int)continuation.size(), "eval: an item's prompt is empty; give each item a context");
  std::vector<int32_t> targets(T, -1);
  for (int t = T - (int)continuation.size(); t < T; t++) targets[t] = seq[t + 1];
  pass.set_mor_causal_routing(config.mor_routing == MorRouting::expert);
  pass.forward(seq.data(), targets.data(), 1, T);
  return -(double)pass.last_cross_entropy() * pass.n_targets();
}

}  // namespace recur
