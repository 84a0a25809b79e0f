// recur/tasks.h: the synthetic reasoning tasks of docs/tasks.md (addition, p-hop, i-GSM, primitives, groups):
// seeded, deterministic example generators with disjoint train/test splits and brute-force answer checkers.
// Token formats, options and defaults are described in docs/tasks.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace recur::tasks {

enum class Split { train, test };

struct Example {
  std::vector<int32_t> tokens;  // prompt followed by answer tokens; every answer ends with the task's end token
  int32_t answer_begin = 0;     // index of the first answer token in tokens (the prompt is tokens[0, answer_begin))
  int32_t difficulty = 0;       // accuracy-table bucket: n (addition, group), p (phop), ops (igsm), depth (primitives)
  // Optional per-position supervision (phop with "dense": true), else empty. When present it has tokens.size()
  // entries: dense_targets[t] is the token the model's output at position t must predict, or -1 for no loss.
  std::vector<int32_t> dense_targets;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int vocab_size() const = 0;  // token ids are in [0, vocab_size)
  virtual int max_length() const = 0;  // longest tokens.size() this task can produce with its options
  // Difficulties configured for a split (the option lists, e.g. n_train / n_test for addition).
  virtual std::vector<int> difficulties(Split split) const = 0;
  // The training difficulties in use at an optimizer step: all of difficulties(train), or with the "curriculum"
  // option the first of them until the first curriculum step, the first two from there, and so on.
  virtual std::vector<int> train_difficulties_at(int64_t step) const = 0;
  // Deterministic in (seed, split, index, difficulty) on any machine. An example is in the test split iff the
  // hash of its split_key falls in the test bucket, so no prompt (or template) can appear in both splits. difficulty
  // must be one of difficulties(train) or difficulties(test) (either split may use either list).
  virtual Example generate(Split split, uint64_t index, int difficulty) const = 0;
  // The exact answer tokens (including the end token) computed from the prompt alone by a brute-force solver.
  // Throws recur::Error if the prompt is not in the task's format.
  virtual std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const = 0;
  // What the split hashes: the prompt itself, or (i-GSM with "split": "template") its template, the prompt with
  // every name replaced by its order of first appearance and every digit by one placeholder.
  virtual std::vector<int32_t> split_key(const std::vector<int32_t>& prompt) const { return prompt; }
  virtual std::string to_text(const std::vector<int32_t>& tokens) const = 0;  // human-readable rendering
};

// name: one of task_names(). options: a JSON object (or null for all defaults); unknown keys and bad values
// throw recur::Error naming the option and a valid alternative.
std::unique_ptr<Task> make_task(const std::string& name, const nlohmann::json& options, uint64_t seed);
std::vector<std::string> task_names();

// The split rule, exposed for tests and tools: true iff this prompt belongs to the test split.
bool prompt_in_test_split(const std::vector<int32_t>& prompt, int test_permille);

}  // namespace recur::tasks
