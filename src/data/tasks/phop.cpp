// p-hop induction (docs/tasks.md): a hop-count token p, a sequence v_1..v_n over a small alphabet and '=', answered
// by hop_p(v) = v[find_p(v, n)]. The generator plants a chain of exactly p hops; the solver follows the
// definition of find_1 literally. Optional dense targets supervise hop_p of every prefix.
#include <algorithm>

#include "recur/error.h"
#include "task_common.h"

namespace recur::tasks {

namespace {

// find_1(v, i) with 1-based positions (v[0] unused): the largest j <= i with v[j-1] == v[i], or 0 if none.
int find_one(const std::vector<int32_t>& v, int i) {
  if (i < 1) return 0;
  for (int j = i; j >= 2; j--) {
    if (v[j - 1] == v[i]) return j;
  }
  return 0;
}

// find_p(v, i) = find_1 applied p times; 0 as soon as a hop does not exist.
int find_p(const std::vector<int32_t>& v, int i, int p) {
  for (int hop = 0; hop < p && i > 0; hop++) i = find_one(v, i);
  return i;
}

class PhopTask : public TaskBase {
 public:
  PhopTask(Options& options, uint64_t seed)
      : TaskBase(seed, options, "p_train", {1, 2, 3, 4, 5, 6, 7, 8}, "p_test", {2, 4, 6, 8}, 1, 1000) {
    alphabet_ = options.get_int("alphabet", 4, 2, 26);
    length_ = options.get_int("length", 64, 3, 100000);
    dense_ = options.get_bool("dense", false);
    options.check_no_unknown_keys();
    int p = max_difficulty();
    // The planted chain needs 2p + 1 positions: v_n plus one (v_{j-1}, v_j) pair per hop.
    check(2 * p + 1 <= length_, "phop: length ", length_, " is too short for p = ", p,
          " (a chain of p hops needs length >= 2p + 1 = ", 2 * p + 1, "); raise length or lower p_train / p_test");
    max_p_ = p;
  }

  std::string name() const override { return "phop"; }
  // Symbols, then one hop-count token per p in 1..max_p, then '=' and end.
  int vocab_size() const override { return alphabet_ + max_p_ + 2; }
  int max_length() const override { return length_ + 4; }  // p token, n symbols, '=', answer, end

  Example generate(Split split, uint64_t index, int difficulty) const override {
    return sample_in_split(split, index, difficulty, [&](Rng& rng) { return make_candidate(rng, difficulty); });
  }

  std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const override {
    int p = 0;
    std::vector<int32_t> v = parse_sequence(prompt, &p);
    int n = (int)v.size() - 1;
    int position = find_p(v, n, p);
    if (position == 0) throw_bad_prompt(name(), "the " + std::to_string(p) + "-hop of this sequence is undefined");
    return {v[position], end_token()};
  }

  std::string to_text(const std::vector<int32_t>& tokens) const override {
    std::vector<std::string> names;
    for (int s = 0; s < alphabet_; s++) names.push_back(std::string(1, (char)('a' + s)));
    for (int p = 1; p <= max_p_; p++) names.push_back("p" + std::to_string(p));
    names.push_back("=");
    names.push_back("<end>");
    return render_tokens(names, tokens, " ");
  }

 private:
  int32_t hop_token(int p) const { return alphabet_ + p - 1; }
  int32_t equals_token() const { return alphabet_ + max_p_; }
  int32_t end_token() const { return alphabet_ + max_p_ + 1; }

  // Uniform symbol different from `avoid`.
  int32_t symbol_other_than(Rng& rng, int32_t avoid) const {
    int32_t s = (int32_t)rng.uniform((uint64_t)(alphabet_ - 1));
    return s >= avoid ? s + 1 : s;
  }

  // Splits the slack n - (2p + 1) into p gaps and a free prefix: sorted uniform cut points.
  std::vector<int> sample_gaps(Rng& rng, int p) const {
    int slack = length_ - (2 * p + 1);
    std::vector<int> cuts;
    for (int k = 0; k < p; k++) cuts.push_back(uniform_int(rng, 0, slack));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int> gaps;
    int previous = 0;
    for (int cut : cuts) {
      gaps.push_back(cut - previous);
      previous = cut;
    }
    return gaps;  // the prefix takes the remaining slack - previous positions
  }

  // Plants the chain right to left: v_n = c_0; hop k puts the pair (c_{k-1}, c_k) at positions (i_k - 1, i_k)
  // after a gap that avoids c_{k-1}, so position i_k - 1 is the last occurrence of c_{k-1} before i_{k-1}.
  // Returns v (1-based) and stores the chain's last symbol c_p, the planted answer, in *answer.
  std::vector<int32_t> plant_sequence(Rng& rng, int p, int32_t* answer) const {
    std::vector<int32_t> chain = {(int32_t)rng.uniform((uint64_t)alphabet_)};
    for (int k = 1; k <= p; k++) chain.push_back(symbol_other_than(rng, chain.back()));
    std::vector<int> gaps = sample_gaps(rng, p);
    std::vector<int32_t> v(length_ + 1, -1);  // 1-based; v[0] unused
    int cursor = length_;                     // leftmost position filled so far
    v[cursor] = chain[0];
    for (int k = 1; k <= p; k++) {
      for (int g = 0; g < gaps[k - 1]; g++) v[--cursor] = symbol_other_than(rng, chain[k - 1]);
      v[--cursor] = chain[k];      // position i_k
      v[--cursor] = chain[k - 1];  // position i_k - 1
    }
    for (int i = cursor - 1; i >= 1; i--) v[i] = (int32_t)rng.uniform((uint64_t)alphabet_);  // free prefix
    *answer = chain[p];
    return v;
  }

  Example make_candidate(Rng& rng, int p) const {
    int32_t answer = 0;
    std::vector<int32_t> v = plant_sequence(rng, p, &answer);
    Example example;
    example.tokens.push_back(hop_token(p));
    for (int i = 1; i <= length_; i++) example.tokens.push_back(v[i]);
    example.tokens.push_back(equals_token());
    example.answer_begin = (int32_t)example.tokens.size();
    example.tokens.push_back(answer);  // from the planted chain; solve() recomputes it from the definition
    example.tokens.push_back(end_token());
    if (dense_) {
      example.dense_targets = prefix_hop_targets(v, p);
      add_answer_targets(example);  // '=' -> answer -> end
    }
    return example;
  }

  // Output at the token of v_i predicts hop_p(v_1..v_i) (-1 if undefined), for the p token and v_1..v_n.
  std::vector<int32_t> prefix_hop_targets(const std::vector<int32_t>& v, int p) const {
    std::vector<int32_t> targets(length_ + 1, -1);
    for (int i = 1; i <= length_; i++) {
      int position = find_p(v, i, p);
      if (position > 0) targets[i] = v[position];  // token index of v_i is i (after the p token)
    }
    return targets;
  }

  // Reads `p_token v_1..v_n =` into a 1-based sequence; throws on anything else.
  std::vector<int32_t> parse_sequence(const std::vector<int32_t>& prompt, int* p) const {
    if (prompt.size() < 3) throw_bad_prompt(name(), "too short");
    int32_t first = prompt.front();
    if (first < hop_token(1) || first > hop_token(max_p_)) throw_bad_prompt(name(), "no hop-count token first");
    *p = first - alphabet_ + 1;
    if (prompt.back() != equals_token()) throw_bad_prompt(name(), "it does not end with '='");
    std::vector<int32_t> v = {-1};
    for (size_t i = 1; i + 1 < prompt.size(); i++) {
      if (prompt[i] < 0 || prompt[i] >= alphabet_) {
        throw_bad_prompt(
            name(), "token " + std::to_string(prompt[i]) + " at position " + std::to_string(i) + " is not a symbol");
      }
      v.push_back(prompt[i]);
    }
    return v;
  }

  int alphabet_ = 4, length_ = 64, max_p_ = 8;
  bool dense_ = false;
};

}  // namespace

std::unique_ptr<Task> make_phop_task(const nlohmann::json& options, uint64_t seed) {
  Options parsed("phop", options);
  return std::make_unique<PhopTask>(parsed, seed);
}

}  // namespace recur::tasks
