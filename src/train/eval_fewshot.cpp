// Few-shot multiple choice: k solved shots drawn per item (seeded), the log-likelihood of each choice after the
// prompt (one forward per choice; only the choice's tokens are counted as targets), acc and acc_norm.
#include <cmath>
#include <fstream>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/eval.h"
#include "recur/rng.h"
#include "recur/tokenizer.h"
#include "recur/train_pass.h"

namespace recur {

std::vector<FewShotItem> read_fewshot_jsonl(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "eval: cannot read ", path, "; give a JSONL file of {\"context\", \"choices\", \"gold\"}");
  std::vector<FewShotItem> items;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); line_no++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = path + " line " + std::to_string(line_no);
    nlohmann::json j = parse_json_strict(line, "eval: " + where, uint64_t(16) << 20);
    check(j.is_object() && j.contains("context") && j["context"].is_string() && j.contains("choices") &&
              j["choices"].is_array() && j["choices"].size() >= 2 && j.contains("gold") &&
              j["gold"].is_number_integer(),
          "eval: ", where, " needs {\"context\": text, \"choices\": [two or more texts], \"gold\": index}");
    FewShotItem item;
    item.context = j["context"].get<std::string>();
    for (const nlohmann::json& c : j["choices"]) {
      check(c.is_string() && !c.get<std::string>().empty(), "eval: ", where, ": every choice must be a non-empty text");
      item.choices.push_back(c.get<std::string>());
    }
    item.gold = j["gold"].get<int>();
    check(item.gold >= 0 && item.gold < (int)item.choices.size(), "eval: ", where, ": gold ", item.gold,
          " is not an index into its ", item.choices.size(), " choices");
    items.push_back(std::move(item));
  }
  check(!items.empty(), "eval: ", path, " holds no items");
  return items;
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

double continuation_loglik(const Model& model, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& continuation) {
  int max_len = model.config().max_seq_len;
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
  TrainPass pass(model);
  pass.set_mor_causal_routing(model.config().mor_routing == MorRouting::expert);
  pass.forward(seq.data(), targets.data(), 1, T);
  return -(double)pass.last_cross_entropy() * pass.n_targets();
}

FewShotResult evaluate_fewshot(const Model& model, const Tokenizer& tokenizer, const std::vector<FewShotItem>& items,
                               const FewShotOptions& o) {
  FewShotResult result;
  for (size_t i = 0; i < items.size(); i++) {
    std::string prompt;
    for (size_t k : fewshot_indices(items.size(), i, o))
      prompt += items[k].context + items[k].choices[items[k].gold] + o.separator;
    prompt += items[i].context;
    std::vector<int32_t> prompt_tokens = tokenizer.encode(prompt);
    std::vector<double> ll;
    int best = 0, best_norm = 0;
    for (size_t c = 0; c < items[i].choices.size(); c++) {
      ll.push_back(continuation_loglik(model, prompt_tokens, tokenizer.encode(items[i].choices[c])));
      auto per_byte = [&](size_t k) { return ll[k] / (double)items[i].choices[k].size(); };
      if (ll[c] > ll[best]) best = (int)c;
      if (per_byte(c) > per_byte(best_norm)) best_norm = (int)c;
    }
    result.acc += best == items[i].gold;
    result.acc_norm += best_norm == items[i].gold;
    result.loglik.push_back(std::move(ll));
  }
  result.items = (int64_t)items.size();
  result.acc /= (double)result.items, result.acc_norm /= (double)result.items;
  return result;
}

}  // namespace recur
