// Shared machinery of the synthetic tasks (see task_common.h): options, the split rule, the per-example
// generator stream, rendering, and the task registry behind make_task.
#include "task_common.h"

#include <algorithm>

#include "core/json_read.h"
#include "recur/error.h"

namespace recur::tasks {

// ---- options -------------------------------------------------------------------------------------------

Options::Options(const std::string& task, const nlohmann::json& options) : task_(task), json_(options) {
  if (json_.is_null()) json_ = nlohmann::json::object();
  check(json_.is_object(), task_, ": options must be a JSON object such as {\"test_permille\": 50}, got ",
        brief_json(json_));
}

bool Options::has(const std::string& key) const { return json_.contains(key); }

int Options::get_int(const std::string& key, int default_value, int min_value, int max_value) {
  known_keys_.push_back(key);
  if (!json_.contains(key)) return default_value;
  const nlohmann::json& value = json_[key];
  check(value.is_number_integer(), task_, ": option ", key, " must be an integer, got ", brief_json(value));
  long long v = value.get<long long>();
  check(v >= min_value && v <= max_value, task_, ": option ", key, " = ", v, " is out of range; use a value in [",
        min_value, ", ", max_value, "]");
  return (int)v;
}

bool Options::get_bool(const std::string& key, bool default_value) {
  known_keys_.push_back(key);
  if (!json_.contains(key)) return default_value;
  const nlohmann::json& value = json_[key];
  check(value.is_boolean(), task_, ": option ", key, " must be true or false, got ", brief_json(value));
  return value.get<bool>();
}

std::string Options::get_string(const std::string& key, const std::string& default_value,
                                const std::vector<std::string>& allowed) {
  known_keys_.push_back(key);
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
  if (!json_.contains(key)) return default_value;
  const nlohmann::json& value = json_[key];
  check(value.is_string(), task_, ": option ", key, " must be a string, one of ", list, "; got ", brief_json(value));
  std::string s = value.get<std::string>();
  check(std::find(allowed.begin(), allowed.end(), s) != allowed.end(), task_, ": unknown ", key, " \"", s,
        "\"; use one of ", list);
  return s;
}

std::vector<int> Options::get_int_list(const std::string& key, const std::vector<int>& default_value, int min_value,
                                       int max_value) {
  known_keys_.push_back(key);
  if (!json_.contains(key)) return default_value;
  const nlohmann::json& value = json_[key];
  std::string example = default_value.empty() ? "1" : std::to_string(default_value.front());
  std::string hint = "; e.g. \"" + key + "\": [" + example + "]";
  check(value.is_array() && !value.empty(), task_, ": option ", key, " must be a non-empty list of integers, got ",
        brief_json(value), hint);
  std::vector<int> out;
  for (const nlohmann::json& item : value) {
    check(item.is_number_integer(), task_, ": option ", key, " must hold integers only, got ", brief_json(item), hint);
    long long v = item.get<long long>();
    check(v >= min_value && v <= max_value, task_, ": option ", key, " contains ", v, ", out of range; use values in [",
          min_value, ", ", max_value, "]");
    out.push_back((int)v);
  }
  return out;
}

void Options::check_no_unknown_keys() const {
  for (auto it = json_.begin(); it != json_.end(); ++it) {
    if (std::find(known_keys_.begin(), known_keys_.end(), it.key()) != known_keys_.end()) continue;
    std::string list;
    for (const std::string& k : known_keys_) list += (list.empty() ? "" : ", ") + k;
    throw Error(task_ + ": unknown option \"" + it.key() + "\"; known options: " + list);
  }
}

// ---- hashing and splits ----------------------------------------------------------------------------------

uint64_t hash_tokens(const std::vector<int32_t>& tokens, size_t count) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a offset basis
  for (size_t i = 0; i < count; i++) {
    uint32_t t = (uint32_t)tokens[i];
    for (int byte = 0; byte < 4; byte++) {
      h ^= (t >> (8 * byte)) & 0xffu;
      h *= 0x100000001b3ull;  // FNV prime
    }
  }
  // splitmix64 finalizer: FNV's low bits are weak, and the split uses h % 1000.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

bool prompt_in_test_split(const std::vector<int32_t>& prompt, int test_permille) {
  return (int)(hash_tokens(prompt, prompt.size()) % 1000) < test_permille;
}

// ---- rendering -------------------------------------------------------------------------------------------

std::string render_tokens(const std::vector<std::string>& names, const std::vector<int32_t>& tokens,
                          const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); i++) {
    if (i > 0) out += separator;
    int32_t t = tokens[i];
    if (t >= 0 && t < (int32_t)names.size()) {
      out += names[t];
    } else {
      out += "<?" + std::to_string(t) + ">";
    }
  }
  return out;
}

void throw_bad_prompt(const std::string& task, const std::string& problem) {
  throw Error(task + ": cannot solve the prompt: " + problem +
              " (prompts must be tokens[0, answer_begin) of an example of this task; see docs/tasks.md)");
}

// ---- base class ------------------------------------------------------------------------------------------

TaskBase::TaskBase(uint64_t seed, Options& options, const std::string& train_key, const std::vector<int>& train_default,
                   const std::string& test_key, const std::vector<int>& test_default, int min_difficulty,
                   int max_difficulty)
    : seed_(seed) {
  // At least 1 and at most 999 per mille: both buckets must be non-empty or generate could never finish.
  test_permille_ = options.get_int("test_permille", 50, 1, 999);
  train_difficulties_ = options.get_int_list(train_key, train_default, min_difficulty, max_difficulty);
  test_difficulties_ = options.get_int_list(test_key, test_default, min_difficulty, max_difficulty);
  read_curriculum(options, train_key);
}

// "curriculum": [s_1, ..., s_{n-1}] for an n-entry training list: entry i + 1 joins the training mix at step s_i.
void TaskBase::read_curriculum(Options& options, const std::string& train_key) {
  curriculum_steps_ = options.get_int_list("curriculum", {}, 1, 1 << 30);
  if (!options.has("curriculum")) return;
  size_t want = train_difficulties_.size() - 1;
  check(want > 0, options.task(), ": option curriculum needs at least two ", train_key,
        " entries to introduce one after another; add entries to ", train_key, " or remove curriculum");
  check(curriculum_steps_.size() == want, options.task(), ": option curriculum must give one step per ", train_key,
        " entry after the first (", want, " for ", train_key, " ", brief_json(train_difficulties_), "), got ",
        curriculum_steps_.size());
  for (size_t i = 1; i < want; i++)
    check(curriculum_steps_[i] > curriculum_steps_[i - 1], options.task(),
          ": option curriculum must be strictly increasing steps, got ", brief_json(curriculum_steps_));
}

std::vector<int> TaskBase::difficulties(Split split) const {
  return split == Split::train ? train_difficulties_ : test_difficulties_;
}

std::vector<int> TaskBase::train_difficulties_at(int64_t step) const {
  if (curriculum_steps_.empty()) return train_difficulties_;
  size_t joined =
      1 + std::count_if(curriculum_steps_.begin(), curriculum_steps_.end(), [step](int s) { return s <= step; });
  return std::vector<int>(train_difficulties_.begin(), train_difficulties_.begin() + joined);
}

int TaskBase::max_difficulty() const {
  int m = 0;
  for (int d : train_difficulties_) m = std::max(m, d);
  for (int d : test_difficulties_) m = std::max(m, d);
  return m;
}

static std::string join_ints(const std::vector<int>& values) {
  std::string out;
  for (int v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

Example TaskBase::sample_in_split(Split split, uint64_t index, int difficulty,
                                  const std::function<Example(Rng&)>& make_candidate) const {
  bool known = std::count(train_difficulties_.begin(), train_difficulties_.end(), difficulty) > 0 ||
               std::count(test_difficulties_.begin(), test_difficulties_.end(), difficulty) > 0;
  // Per example: the message's pieces cost strings, so they are built only when the check fails.
  if (!known)
    throw Error(name() + ": difficulty " + std::to_string(difficulty) +
                " is not configured (train: " + join_ints(train_difficulties_) +
                "; test: " + join_ints(test_difficulties_) + "); add it to the task's difficulty options");
  uint64_t stream = mix_seed(mix_seed(mix_seed(seed_, split == Split::test ? 2 : 1), index), (uint64_t)difficulty);
  Rng rng(stream);
  bool want_test = split == Split::test;
  // With test_permille >= 1 a test candidate comes every 1000/test_permille draws on average; the cap only
  // trips when a difficulty has so few distinct prompts that none of them hashes into the requested bucket.
  const int max_attempts = 200000;
  for (int attempt = 0; attempt < max_attempts; attempt++) {
    Example candidate = make_candidate(rng);
    std::vector<int32_t> prompt(candidate.tokens.begin(), candidate.tokens.begin() + candidate.answer_begin);
    if (prompt_in_test_split(split_key(prompt), test_permille_) == want_test) {
      candidate.difficulty = difficulty;
      return candidate;
    }
  }
  throw Error(name() + ": found no " + (want_test ? "test" : "train") + " prompt at difficulty " +
              std::to_string(difficulty) + " in " + std::to_string(max_attempts) +
              " draws; this difficulty has too few distinct prompts to split, use a larger difficulty or change "
              "test_permille");
}

void add_answer_targets(Example& example) {
  example.dense_targets.resize(example.tokens.size(), -1);
  for (size_t t = (size_t)example.answer_begin - 1; t + 1 < example.tokens.size(); t++)
    example.dense_targets[t] = example.tokens[t + 1];
}

// ---- registry --------------------------------------------------------------------------------------------

std::vector<std::string> task_names() { return {"addition", "phop", "igsm", "primitives", "group"}; }

std::unique_ptr<Task> make_task(const std::string& name, const nlohmann::json& options, uint64_t seed) {
  if (name == "addition") return make_addition_task(options, seed);
  if (name == "phop") return make_phop_task(options, seed);
  if (name == "igsm") return make_igsm_task(options, seed);
  if (name == "primitives") return make_primitives_task(options, seed);
  if (name == "group") return make_group_task(options, seed);
  std::string list;
  for (const std::string& n : task_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error("unknown task \"" + name + "\"; known tasks: " + list);
}

}  // namespace recur::tasks
