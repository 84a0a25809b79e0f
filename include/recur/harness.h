// recur/harness.h: the few-shot evaluation harness over JSONL task files in the layout lm-evaluation-harness users
// know: multiple choice scored by log-likelihood (acc, acc_norm) and generation scored by the exact match of a
// greedy continuation, with k seeded shots and standard errors (docs/lm.md, "Few-shot tasks").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "recur/model.h"

namespace recur {

class Tokenizer;  // recur/tokenizer.h

enum class TaskKind { multiple_choice, generation };
const char* task_kind_name(TaskKind kind);  // "multiple_choice" or "generation"

// One line of a task file: {"context", "choices", "gold"} (multiple choice) or {"context", "target", "until"}
// (generation).
struct FewShotItem {
  std::string context;
  std::vector<std::string> choices;  // multiple choice
  int gold = 0;
  std::string target;                       // generation: the expected output
  std::vector<std::string> until = {"\n"};  // generation: the output ends at the first of these
};

// A task: the items of one file, all of one kind, named by the file's stem.
struct FewShotTask {
  std::string name, file;
  TaskKind kind = TaskKind::multiple_choice;
  std::vector<FewShotItem> items;
};

// A file's items; a malformed line (or one of the other kind than the file's first) is an Error naming the file,
// the line and the fix.
FewShotTask read_fewshot_task(const std::string& path);
// Several files, one task each; two files of one stem are an Error naming both.
std::vector<FewShotTask> read_fewshot_tasks(const std::vector<std::string>& paths);

struct FewShotOptions {
  int shots = 0;                   // solved examples before each item: context + answer, joined by separator
  uint64_t seed = 1234;            // which other items are the shots of item i: drawn by (seed, i)
  std::string separator = "\n\n";  // between shots and before the item
  int64_t max_items = 0;           // score only the first this many items (0: all); shots come from all of them
  int max_gen_tokens = 32;         // generation: the output's most tokens
};

struct FewShotItemResult {
  bool correct = false;        // acc (multiple choice) or exact match (generation)
  bool correct_norm = false;   // multiple choice: acc_norm
  std::vector<double> loglik;  // multiple choice: per choice, ln p(choice | prompt)
  std::string output;          // generation: the greedy continuation, cut before the first stop string
};

struct FewShotResult {
  std::string task, file;
  TaskKind kind = TaskKind::multiple_choice;
  int64_t items = 0;                    // scored items
  double acc = 0, acc_norm = 0;         // multiple choice: fraction right by log-likelihood, by it per byte
  double exact_match = 0;               // generation: fraction of outputs equal to the target
  std::vector<FewShotItemResult> item;  // per scored item, in file order
};

// The standard error of a fraction p of n 0/1 scores: sqrt(p(1-p)/(n-1)), the sample standard error of the mean
// (lm-evaluation-harness's); NaN for n < 2.
double fraction_stderr(double p, int64_t n);

// The item indices that serve as item i's shots: `shots` distinct others, drawn by (seed, i).
std::vector<size_t> fewshot_indices(size_t n_items, size_t i, const FewShotOptions& options);
// Item i's prompt: its shots, each its context + its answer (the gold choice or the target) + separator, then its
// context.
std::string fewshot_prompt(const FewShotTask& task, size_t i, const FewShotOptions& options);

// The greedy continuation of prompt, as `recur sample --temperature 0` decodes it (recur/sample.h; MoR routes
// causally), as text: it ends before the first occurrence of any `until` string, after max_gen_tokens tokens, or
// when prompt and output fill max_seq_len + 1 tokens (the model never sees more than max_seq_len). A prompt longer
// than max_seq_len is cut from the left to its last max_seq_len tokens.
std::string greedy_until(const Model& model, const Tokenizer& tokenizer, std::vector<int32_t> prompt,
                         const std::vector<std::string>& until, int max_gen_tokens);

// Scores the task's first max_items items. Multiple choice: every choice by ln p(choice | prompt) (prompt and choice
// tokenized separately, as lm-evaluation-harness does); right when the gold choice has the highest log-likelihood
// (acc) or log-likelihood per byte of the choice (acc_norm). Generation: right when greedy_until's output and the
// target are equal with surrounding whitespace stripped from both.
FewShotResult evaluate_fewshot(const Model& model, const Tokenizer& tokenizer, const FewShotTask& task,
                               const FewShotOptions& options);

}  // namespace recur
