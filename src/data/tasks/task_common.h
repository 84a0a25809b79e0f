// Shared machinery of the synthetic tasks: option parsing with helpful errors, the seeded per-example
// generator stream, the prompt-hash split rule and a base class that samples candidates until one lands in
// the requested split. Each task lives in its own file and only adds its format, generator and solver.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recur/rng.h"
#include "recur/tasks.h"

namespace recur::tasks {

// ---- options -------------------------------------------------------------------------------------------
// Reads a task's JSON options; every accessor names the task and the key in its error messages.
class Options {
 public:
  Options(const std::string& task, const nlohmann::json& options);
  int get_int(const std::string& key, int default_value, int min_value, int max_value);
  bool get_bool(const std::string& key, bool default_value);
  std::string get_string(const std::string& key, const std::string& default_value,
                         const std::vector<std::string>& allowed);
  // A non-empty list of integers, each in [min_value, max_value].
  std::vector<int> get_int_list(const std::string& key, const std::vector<int>& default_value, int min_value,
                                int max_value);
  bool has(const std::string& key) const;
  const std::string& task() const { return task_; }  // the task's name, for error messages
  // Throws if the options contain a key none of the accessors asked for (catches typos such as "digit").
  void check_no_unknown_keys() const;

 private:
  std::string task_;
  nlohmann::json json_;
  std::vector<std::string> known_keys_;
};

// ---- hashing and splits ----------------------------------------------------------------------------------
// FNV-1a over the tokens' little-endian bytes, then a splitmix64 finalizer: a fixed 64-bit hash.
uint64_t hash_tokens(const std::vector<int32_t>& tokens, size_t count);

// ---- rendering -------------------------------------------------------------------------------------------
// Joins the names of tokens with separator; ids outside names render as "<?id>".
std::string render_tokens(const std::vector<std::string>& names, const std::vector<int32_t>& tokens,
                          const std::string& separator);

// Error for a prompt the solver cannot read.
[[noreturn]] void throw_bad_prompt(const std::string& task, const std::string& problem);

// ---- base class ------------------------------------------------------------------------------------------
// Holds what every task shares: the seed, the test bucket size and the difficulty lists of both splits.
class TaskBase : public Task {
 public:
  std::vector<int> difficulties(Split split) const override;
  std::vector<int> train_difficulties_at(int64_t step) const override;

 protected:
  TaskBase(uint64_t seed, Options& options, const std::string& train_key, const std::vector<int>& train_default,
           const std::string& test_key, const std::vector<int>& test_default, int min_difficulty, int max_difficulty);
  // Largest difficulty over both lists (for max_length and vocabulary sizes).
  int max_difficulty() const;
  // Draws candidates from the stream of (seed, split, index, difficulty) until one's prompt hash falls in
  // split. make_candidate fills tokens and answer_begin (and dense_targets when used).
  Example sample_in_split(Split split, uint64_t index, int difficulty,
                          const std::function<Example(Rng&)>& make_candidate) const;

  uint64_t seed_;
  int test_permille_;
  std::vector<int> train_difficulties_, test_difficulties_;

 private:
  void read_curriculum(Options& options, const std::string& train_key);
  std::vector<int> curriculum_steps_;  // empty, or the step from which train_difficulties_[i + 1] joins
};

// ---- small helpers shared by several generators ----------------------------------------------------------
// Ends an example's dense targets as next-token training does: sized to the tokens (-1 where unset), the output
// at the prompt's last token predicts the answer's first token and each answer token the next one; `<end>` none.
void add_answer_targets(Example& example);

// Fisher-Yates shuffle with our own uniform draws (std::shuffle's output differs between libraries).
template <typename T>
void shuffle_in_place(std::vector<T>& items, Rng& rng) {
  for (size_t i = items.size(); i > 1; i--) {
    size_t j = (size_t)rng.uniform(i);
    std::swap(items[i - 1], items[j]);
  }
}

// Uniform integer in [lo, hi].
inline int uniform_int(Rng& rng, int lo, int hi) { return lo + (int)rng.uniform((uint64_t)(hi - lo + 1)); }

// Per-task factories (one per file).
std::unique_ptr<Task> make_addition_task(const nlohmann::json& options, uint64_t seed);
std::unique_ptr<Task> make_phop_task(const nlohmann::json& options, uint64_t seed);
std::unique_ptr<Task> make_igsm_task(const nlohmann::json& options, uint64_t seed);
std::unique_ptr<Task> make_primitives_task(const nlohmann::json& options, uint64_t seed);
std::unique_ptr<Task> make_group_task(const nlohmann::json& options, uint64_t seed);

}  // namespace recur::tasks
