// The few-shot harness: k solved shots drawn per item (seeded); multiple choice by the log-likelihood of each choice
// after the prompt (recur/eval.h), generation by the exact match of the greedy continuation (recur/sample.h).
#include "recur/harness.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "recur/error.h"
#include "recur/eval.h"
#include "recur/rng.h"
#include "recur/sample.h"
#include "recur/text_stream.h"
#include "recur/tokenizer.h"

namespace recur {

double fraction_stderr(double p, int64_t n) {
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(p * (1 - p) / (double)(n - 1));
}

std::vector<size_t> fewshot_indices(size_t n_items, size_t i, const FewShotOptions& o) {
  check(o.shots >= 0 && (size_t)o.shots < n_items, "eval: --shots ", o.shots, " needs more than that many items (",
        n_items, ")");
  std::vector<size_t> others;
  for (size_t k = 0; k < n_items; k++)
    if (k != i) others.push_back(k);
  Rng rng(mix_seed(o.seed, (uint64_t)i));
  for (int s = 0; s < o.shots; s++) std::swap(others[s], others[s + rng.uniform(others.size() - s)]);
  others.resize(o.shots);
  return others;
}

std::string fewshot_prompt(const FewShotTask& task, size_t i, const FewShotOptions& o) {
  std::string prompt;
  for (size_t k : fewshot_indices(task.items.size(), i, o)) {
    const FewShotItem& shot = task.items[k];
    prompt += shot.context + (task.kind == TaskKind::generation ? shot.target : shot.choices[shot.gold]);
    prompt += o.separator;
  }
  return prompt + task.items[i].context;
}

std::string greedy_until(const Model& model, const Tokenizer& tokenizer, std::vector<int32_t> prompt,
                         const std::vector<std::string>& until, int max_gen_tokens) {
  check(!prompt.empty(), "eval: a generation item's prompt is empty; give each item a context");
  check(max_gen_tokens >= 1, "eval: --max_gen_tokens must be >= 1");
  int window = model.config().max_seq_len;
  if ((int)prompt.size() > window) prompt.erase(prompt.begin(), prompt.end() - window);
  SampleOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = std::min(max_gen_tokens, window + 1 - (int)prompt.size());  // no context shift
  TextStream text(tokenizer, until, tokenizer.eos());  // as in lm-evaluation-harness, EOS ends the output too
  generate(model, prompt, greedy, [&](int32_t token) { return !text.add(token); });
  return text.bytes();
}

namespace {

std::string strip(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  size_t begin = s.find_first_not_of(space);
  return begin == std::string::npos ? std::string() : s.substr(begin, s.find_last_not_of(space) + 1 - begin);
}

FewShotItemResult score_choices(TrainPass& pass, const Tokenizer& tokenizer, const FewShotItem& item,
                                const std::vector<int32_t>& prompt) {
  FewShotItemResult r;
  std::vector<double>& ll = r.loglik;
  int best = 0, best_norm = 0;
  for (size_t c = 0; c < item.choices.size(); c++) {
    ll.push_back(continuation_loglik(pass, prompt, tokenizer.encode(item.choices[c])));
    auto per_byte = [&](size_t k) { return ll[k] / (double)item.choices[k].size(); };
    if (ll[c] > ll[best]) best = (int)c;
    if (per_byte(c) > per_byte(best_norm)) best_norm = (int)c;
  }
  r.correct = best == item.gold, r.correct_norm = best_norm == item.gold;
  return r;
}

}  // namespace

FewShotResult evaluate_fewshot(const Model& model, const Tokenizer& tokenizer, const FewShotTask& task,
                               const FewShotOptions& o) {
  check(o.max_items >= 0, "eval: --max_items must be >= 0 (0: every item)");
  FewShotResult result;
  result.task = task.name, result.file = task.file, result.kind = task.kind;
  size_t n = task.items.size();
  if (o.max_items > 0) n = std::min(n, (size_t)o.max_items);
  int64_t right = 0, right_norm = 0;
  std::optional<TrainPass> pass;  // multiple choice: one forward pass for every choice of every item
  if (task.kind == TaskKind::multiple_choice) pass.emplace(model);
  for (size_t i = 0; i < n; i++) {
    const FewShotItem& item = task.items[i];
    std::vector<int32_t> prompt = tokenizer.encode(fewshot_prompt(task, i, o));
    FewShotItemResult r;
    if (task.kind == TaskKind::multiple_choice) {
      r = score_choices(*pass, tokenizer, item, prompt);
    } else {
      r.output = greedy_until(model, tokenizer, std::move(prompt), item.until, o.max_gen_tokens);
      r.correct = strip(r.output) == strip(item.target);
    }
    right += r.correct, right_norm += r.correct_norm;
    result.item.push_back(std::move(r));
  }
  result.items = (int64_t)n;
  if (task.kind == TaskKind::generation)
    result.exact_match = (double)right / (double)n;
  else
    result.acc = (double)right / (double)n, result.acc_norm = (double)right_norm / (double)n;
  return result;
}

}  // namespace recur
