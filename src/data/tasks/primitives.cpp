// Reasoning primitives, variable assignment (docs/tasks.md): chains of assignments `a=1, c=a, ...` of a given depth,
// interleaved, then a query about the end of one chain; "math" (`a=1, b=a, b=?`) and "code"
// (`a = 1; b = a; print(b)`) flavours. The solver executes the assignments in order like an interpreter; optional
// dense targets are what that interpreter reads: the value of every variable at each place it is read.
#include <functional>
#include <map>
#include <span>

#include "recur/error.h"
#include "task_common.h"

namespace recur::tasks {

namespace {

// Token ids: variables a-z are 0-25, digits 0-9 are 26-35, then the symbols of both flavours.
constexpr int32_t kDigit0 = 26, kEquals = 36, kComma = 37, kQuestion = 38, kSemicolon = 39, kPrint = 40, kOpen = 41,
                  kClose = 42, kEnd = 43, kVocab = 44;

bool is_variable(int32_t t) { return t >= 0 && t < 26; }
bool is_digit(int32_t t) { return t >= kDigit0 && t < kDigit0 + 10; }

class PrimitivesTask : public TaskBase {
 public:
  PrimitivesTask(Options& options, uint64_t seed)
      : TaskBase(seed, options, "depth_train", {0, 1, 2, 3, 4}, "depth_test", {0, 1, 2, 3, 4}, 0, 25) {
    flavour_ = options.get_string("flavour", "math", {"math", "code"});
    chains_ = options.get_int("chains", 3, 1, 10);
    dense_ = options.get_bool("dense", false);
    options.check_no_unknown_keys();
    int variables = chains_ * (max_difficulty() + 1);
    check(variables <= 26, "primitives: ", chains_, " chains of depth ", max_difficulty(), " need ", variables,
          " distinct variables but there are 26 (a-z); lower chains or the depths");
  }

  std::string name() const override { return "primitives"; }
  int vocab_size() const override { return kVocab; }

  int max_length() const override {
    // Every statement is 4 tokens (`x = y ,` or `x = y ;`); the query `x = ?` or `print ( x )`; answer, end.
    int statements = chains_ * (max_difficulty() + 1);
    return 4 * statements + (flavour_ == "code" ? 4 : 3) + 2;
  }

  Example generate(Split split, uint64_t index, int difficulty) const override {
    return sample_in_split(split, index, difficulty, [&](Rng& rng) { return make_candidate(rng, difficulty); });
  }

  std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const override {
    return {interpret(prompt, [](size_t, int32_t) {}), kEnd};
  }

  std::string to_text(const std::vector<int32_t>& tokens) const override {
    std::vector<std::string> names;
    for (int v = 0; v < 26; v++) names.push_back(std::string(1, (char)('a' + v)));
    for (int d = 0; d < 10; d++) names.push_back(std::to_string(d));
    bool code = flavour_ == "code";
    std::vector<std::string> symbols = {code ? " = " : "=", ", ", "? ", "; ", "print", "(", ") ", "<end>"};
    names.insert(names.end(), symbols.begin(), symbols.end());
    return render_tokens(names, tokens, "");
  }

 private:
  // Chain c is x_0 = value, x_1 = x_0, ..., x_depth = x_{depth-1}; chains are interleaved at random (each keeps
  // its own order) and the query asks for x_depth of one chain. Values differ between chains.
  Example make_candidate(Rng& rng, int depth) const {
    std::vector<int32_t> letters(26), digits(10);
    for (int i = 0; i < 26; i++) letters[i] = i;
    for (int i = 0; i < 10; i++) digits[i] = i;
    shuffle_in_place(letters, rng);
    shuffle_in_place(digits, rng);
    auto variable = [&](int chain, int step) { return letters[chain * (depth + 1) + step]; };

    bool code = flavour_ == "code";
    Example example;
    std::vector<int> next_step(chains_, 0);
    int remaining = chains_ * (depth + 1);
    while (remaining > 0) {
      int chain = (int)rng.uniform((uint64_t)chains_);
      if (next_step[chain] > depth) continue;  // this chain is complete; draw again
      int step = next_step[chain]++;
      remaining--;
      int32_t rhs = step == 0 ? kDigit0 + digits[chain] : variable(chain, step - 1);
      example.tokens.insert(example.tokens.end(), {variable(chain, step), kEquals, rhs, code ? kSemicolon : kComma});
    }
    int query = (int)rng.uniform((uint64_t)chains_);
    if (code) {
      example.tokens.insert(example.tokens.end(), {kPrint, kOpen, variable(query, depth), kClose});
    } else {
      example.tokens.insert(example.tokens.end(), {variable(query, depth), kEquals, kQuestion});
    }
    example.answer_begin = (int32_t)example.tokens.size();
    example.tokens.push_back(kDigit0 + digits[query]);
    example.tokens.push_back(kEnd);
    if (dense_) add_dense_targets(example);
    return example;
  }

  // The output at each variable read (a right-hand side, the query's variable) predicts its value; then the
  // answer as in next-token training.
  void add_dense_targets(Example& example) const {
    example.dense_targets.assign(example.tokens.size(), -1);
    std::span<const int32_t> prompt(example.tokens.data(), (size_t)example.answer_begin);
    interpret(prompt, [&](size_t position, int32_t value) { example.dense_targets[position] = value; });
    add_answer_targets(example);
  }

  int32_t interpret(std::span<const int32_t> prompt, const std::function<void(size_t, int32_t)>& on_read) const;

  std::string flavour_ = "math";
  int chains_ = 3;
  bool dense_ = false;
};

// Runs the statements in order (x = digit, or x = y for an already assigned y), then reads the queried variable
// and returns its digit token; on_read(position, digit token) sees every variable read. Accepts both flavours.
int32_t PrimitivesTask::interpret(std::span<const int32_t> prompt,
                                  const std::function<void(size_t, int32_t)>& on_read) const {
  std::map<int32_t, int32_t> env;  // variable -> digit token
  size_t i = 0;
  auto at = [&](size_t k) { return k < prompt.size() ? prompt[k] : (int32_t)-1; };
  auto lookup = [&](size_t position) {
    auto found = env.find(prompt[position]);
    if (found == env.end()) throw_bad_prompt(name(), "a variable is read before it is assigned");
    on_read(position, found->second);
    return found->second;
  };
  while (i < prompt.size()) {
    if (at(i) == kPrint) {  // code query: print ( x )
      if (at(i + 1) != kOpen || !is_variable(at(i + 2)) || at(i + 3) != kClose || i + 4 != prompt.size()) {
        throw_bad_prompt(name(), "malformed print(...) query");
      }
      return lookup(i + 2);
    }
    if (!is_variable(at(i)) || at(i + 1) != kEquals) {
      throw_bad_prompt(name(), "expected `x =` at position " + std::to_string(i));
    }
    int32_t target = at(i), rhs = at(i + 2);
    if (rhs == kQuestion) {  // math query: x = ?
      if (i + 3 != prompt.size()) throw_bad_prompt(name(), "tokens after the query");
      return lookup(i);
    }
    if (at(i + 3) != kComma && at(i + 3) != kSemicolon) {
      throw_bad_prompt(name(), "expected ',' or ';' at position " + std::to_string(i + 3));
    }
    if (is_digit(rhs)) {
      env[target] = rhs;
    } else if (is_variable(rhs)) {
      env[target] = lookup(i + 2);
    } else {
      throw_bad_prompt(name(), "the right side of an assignment must be a digit or a variable");
    }
    i += 4;
  }
  throw_bad_prompt(name(), "no query at the end");
}

}  // namespace

std::unique_ptr<Task> make_primitives_task(const nlohmann::json& options, uint64_t seed) {
  Options parsed("primitives", options);
  return std::make_unique<PrimitivesTask>(parsed, seed);
}

}  // namespace recur::tasks
