// recur/eval.h: language-model evaluation of a checkpoint on a token stream: negative log-likelihood per token,
// perplexity and bits per byte of the decoded text (docs/lm.md, "What eval measures"); and few-shot multiple choice.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "recur/model.h"

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

class Tokenizer;  // recur/tokenizer.h

// Few-shot multiple choice in the layout lm-evaluation-harness users know: one JSON object per line,
// {"context": text, "choices": [text, ...], "gold": index}.
struct FewShotItem {
  std::string context;
  std::vector<std::string> choices;
  int gold = 0;
};
// The items of a JSONL file; a malformed line is an Error naming the file, the line and the fix.
std::vector<FewShotItem> read_fewshot_jsonl(const std::string& path);

struct FewShotOptions {
  int shots = 0;                   // solved examples before each item: context + gold choice, joined by separator
  uint64_t seed = 1234;            // which other items are the shots of item i: drawn by (seed, i)
  std::string separator = "\n\n";  // between shots and before the item
};
struct FewShotResult {
  int64_t items = 0;
  double acc = 0, acc_norm = 0;             // fraction right by log-likelihood, and by log-likelihood per byte
  std::vector<std::vector<double>> loglik;  // per item, per choice: ln p(choice | prompt)
};

// The item indices that serve as item i's shots: `shots` distinct others, drawn by (seed, i).
std::vector<size_t> fewshot_indices(size_t n_items, size_t i, const FewShotOptions& options);
// ln p(continuation | prompt) under the model, the prompt cut from the left to fit max_seq_len.
double continuation_loglik(const Model& model, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& continuation);
// Scores every choice of every item (prompt and choice tokenized separately, as the harness does); an item is right
// when its gold choice has the highest log-likelihood (acc) or log-likelihood per byte of the choice (acc_norm).
FewShotResult evaluate_fewshot(const Model& model, const Tokenizer& tokenizer, const std::vector<FewShotItem>& items,
                               const FewShotOptions& options);

}  // namespace recur
