// recur/eval.h: language-model evaluation of a checkpoint on a token stream: negative log-likelihood per token,
// perplexity and bits per byte of the decoded text (docs/lm.md, "What eval measures"); and the log-likelihood of a
// continuation after a prompt.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "recur/model.h"
#include "recur/train_pass.h"

namespace recur {

struct EvalOptions {
  int seq_len = 0;         // window length (0: the model's max_seq_len)
  int batch_size = 8;      // windows per forward
  int64_t max_tokens = 0;  // score at most this many tokens of the stream (0: all)
};

struct LmEvalResult {
  int64_t tokens = 0;  // predicted tokens (every token of the stream but the first)
  int64_t bytes = 0;   // bytes those tokens decode to
  double nll_sum = 0;  // sum over them of -ln p(token | the tokens before it in its window), nats
  int64_t windows = 0;
  double nll() const { return nll_sum / (double)tokens; }  // nats per token
  double perplexity() const;
  double bits_per_byte() const;  // nll_sum / ln 2 / bytes
};

// Reads tokens [start, start + n) of a stream of n_tokens into out.
using TokenReader = std::function<void(uint64_t start, size_t n, int32_t* out)>;

// Scores the stream (or its first max_tokens) in consecutive windows of seq_len + 1 tokens that overlap by one,
// so every token after the first is predicted exactly once, from the tokens of its window before it; the last window
// may be shorter. token_bytes[id] is the bytes token id decodes to (Tokenizer::token_byte_lengths). Expert-choice
// MoR models route causally, as decoding does. Errors name a token outside the model's vocabulary.
LmEvalResult evaluate_lm(const Model& model, const TokenReader& read, uint64_t n_tokens,
                         const std::vector<int32_t>& token_bytes, const EvalOptions& options);

// ln p(continuation | prompt) under the model in one forward (only the continuation's tokens count), the prompt cut
// from the left to fit max_seq_len; expert-choice MoR models route causally. The few-shot harness's multiple-choice
// score (recur/harness.h). `pass` is the model's forward pass, reused across calls (it holds the gradient buffer
// and the activations, too large to make per choice).
double continuation_loglik(TrainPass& pass, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& continuation);

}  // namespace recur
