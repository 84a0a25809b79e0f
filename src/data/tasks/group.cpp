// Group composition (docs/tasks.md, theory check): n elements of Z_p or of a symmetric group S_3, S_4 or S_5, '=',
// then their product. The generator multiplies with a Cayley table; the solver adds residues (Z_p) or applies the
// permutations one by one (S_m).
#include <algorithm>
#include <numeric>

#include "recur/error.h"
#include "task_common.h"

namespace recur::tasks {

namespace {

using Permutation = std::vector<int>;  // one-line notation: perm[i] is the image of i

// All m! permutations of {0..m-1} in lexicographic order: element id k is the k-th of them.
std::vector<Permutation> symmetric_group(int m) {
  Permutation p(m);
  std::iota(p.begin(), p.end(), 0);
  std::vector<Permutation> all;
  do all.push_back(p);
  while (std::next_permutation(p.begin(), p.end()));
  return all;
}

// Product convention: "a then b", the permutation i -> b(a(i)).
Permutation then(const Permutation& a, const Permutation& b) {
  Permutation r(a.size());
  for (size_t i = 0; i < a.size(); i++) r[i] = b[a[i]];
  return r;
}

class GroupTask : public TaskBase {
 public:
  GroupTask(Options& options, uint64_t seed)
      : TaskBase(seed, options, "n_train", {2, 4, 8, 16, 32}, "n_test", {8, 16, 24, 32}, 1, 10000) {
    group_ = options.get_string("group", "z", {"z", "s3", "s4", "s5"});
    check(group_ == "z" || !options.has("p"),
          "group: option p applies only to group \"z\" (Z_p); remove it for group \"", group_, "\"");
    p_ = options.get_int("p", 5, 2, 1000);
    options.check_no_unknown_keys();
    if (group_ != "z") {
      elements_ = symmetric_group(group_[1] - '0');
      order_ = (int)elements_.size();
      table_.assign(order_ * order_, 0);
      for (int a = 0; a < order_; a++) {
        for (int b = 0; b < order_; b++) table_[a * order_ + b] = element_id(then(elements_[a], elements_[b]));
      }
    } else {
      order_ = p_;
    }
  }

  std::string name() const override { return "group"; }
  int vocab_size() const override { return order_ + 2; }            // elements, '=', end
  int max_length() const override { return max_difficulty() + 3; }  // n elements, '=', answer, end

  Example generate(Split split, uint64_t index, int difficulty) const override {
    return sample_in_split(split, index, difficulty, [&](Rng& rng) { return make_candidate(rng, difficulty); });
  }

  std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const override {
    if (prompt.size() < 2 || prompt.back() != equals_token()) throw_bad_prompt(name(), "it does not end with '='");
    for (size_t i = 0; i + 1 < prompt.size(); i++) {
      if (prompt[i] < 0 || prompt[i] >= order_) throw_bad_prompt(name(), "a token before '=' is not an element");
    }
    if (group_ == "z") {
      long long sum = 0;
      for (size_t i = 0; i + 1 < prompt.size(); i++) sum += prompt[i];
      return {(int32_t)(sum % p_), end_token()};
    }
    // Track where each point goes: apply g_1 first, then g_2, ... (point by point, not through the table)
    Permutation where = elements_[0];  // the identity
    for (size_t i = 0; i + 1 < prompt.size(); i++) {
      for (int& point : where) point = elements_[prompt[i]][point];
    }
    return {element_id(where), end_token()};
  }

  std::string to_text(const std::vector<int32_t>& tokens) const override {
    std::vector<std::string> names;
    for (int e = 0; e < order_; e++) {
      if (group_ == "z") {
        names.push_back(std::to_string(e));
      } else {
        std::string s;
        for (int i : elements_[e]) s += (char)('0' + i);
        names.push_back(s);
      }
    }
    names.push_back("=");
    names.push_back("<end>");
    return render_tokens(names, tokens, " ");
  }

 private:
  int32_t equals_token() const { return order_; }
  int32_t end_token() const { return order_ + 1; }

  int element_id(const Permutation& p) const {
    return (int)(std::lower_bound(elements_.begin(), elements_.end(), p) - elements_.begin());
  }

  int32_t multiply(int32_t a, int32_t b) const { return group_ == "z" ? (a + b) % p_ : table_[a * order_ + b]; }

  Example make_candidate(Rng& rng, int n) const {
    Example example;
    int32_t product = 0;  // the identity has id 0 in both groups
    for (int i = 0; i < n; i++) {
      int32_t g = (int32_t)rng.uniform((uint64_t)order_);
      example.tokens.push_back(g);
      product = multiply(product, g);
    }
    example.tokens.push_back(equals_token());
    example.answer_begin = (int32_t)example.tokens.size();
    example.tokens.push_back(product);
    example.tokens.push_back(end_token());
    return example;
  }

  std::string group_ = "z";
  int p_ = 5, order_ = 5;
  std::vector<Permutation> elements_;  // S_m only
  std::vector<int32_t> table_;         // S_m only: table_[a * order + b] = id of "a then b"
};

}  // namespace

std::unique_ptr<Task> make_group_task(const nlohmann::json& options, uint64_t seed) {
  Options parsed("group", options);
  return std::make_unique<GroupTask>(parsed, seed);
}

}  // namespace recur::tasks
