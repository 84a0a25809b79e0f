// n-ary addition (docs/tasks.md): n zero-padded operands `315+120+045+824=` followed by the sum, most significant
// digit first and not padded, then an end token. The solver adds the prompt's digit columns by hand.
// Option answer_order "lsb" writes the sum least significant digit first: the same task in the order a small
// model learns in minutes (each digit then needs only its column and the carry), for CPU-scale comparisons.
#include <algorithm>

#include "recur/error.h"
#include "task_common.h"

namespace recur::tasks {

namespace {

// Token ids: digits 0-9 are their own ids.
constexpr int32_t kPlus = 10, kEquals = 11, kEnd = 12, kVocab = 13;

class AdditionTask : public TaskBase {
 public:
  AdditionTask(Options& options, uint64_t seed)
      : TaskBase(seed, options, "n_train", {2, 4, 8, 16, 32}, "n_test", {8, 16, 24, 32}, 1, 1000) {
    digits_ = options.get_int("digits", 3, 1, 9);
    lsb_first_ = options.get_string("answer_order", "msb", {"msb", "lsb"}) == "lsb";
    options.check_no_unknown_keys();
  }

  std::string name() const override { return "addition"; }
  int vocab_size() const override { return kVocab; }

  int max_length() const override {
    int n = max_difficulty();
    // Largest sum: n * (10^digits - 1); its digit count bounds the answer.
    long long largest_sum = (long long)n * (power_of_ten(digits_) - 1);
    int answer_digits = (int)std::to_string(largest_sum).size();
    return n * (digits_ + 1) + answer_digits + 1;
  }

  Example generate(Split split, uint64_t index, int difficulty) const override {
    return sample_in_split(split, index, difficulty, [&](Rng& rng) { return make_candidate(rng, difficulty); });
  }

  std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const override {
    std::vector<std::vector<int32_t>> operands = parse_operands(prompt);
    // Column addition, least significant digit first.
    std::vector<int32_t> sum_reversed;
    int carry = 0;
    for (size_t column = 0;; column++) {
      bool any_digit = false;
      int column_sum = carry;
      for (const std::vector<int32_t>& operand : operands) {
        if (column < operand.size()) {
          column_sum += operand[operand.size() - 1 - column];
          any_digit = true;
        }
      }
      if (!any_digit && carry == 0) break;
      sum_reversed.push_back(column_sum % 10);
      carry = column_sum / 10;
    }
    while (sum_reversed.size() > 1 && sum_reversed.back() == 0) sum_reversed.pop_back();  // no padding
    std::vector<int32_t> answer(sum_reversed.rbegin(), sum_reversed.rend());
    if (lsb_first_) answer = sum_reversed;
    answer.push_back(kEnd);
    return answer;
  }

  std::string to_text(const std::vector<int32_t>& tokens) const override {
    static const std::vector<std::string> names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", "<end>"};
    return render_tokens(names, tokens, "");
  }

 private:
  static long long power_of_ten(int exponent) {
    long long p = 1;
    for (int i = 0; i < exponent; i++) p *= 10;
    return p;
  }

  Example make_candidate(Rng& rng, int n) const {
    Example example;
    long long sum = 0;
    long long range = power_of_ten(digits_);
    for (int i = 0; i < n; i++) {
      long long operand = (long long)rng.uniform((uint64_t)range);
      sum += operand;
      if (i > 0) example.tokens.push_back(kPlus);
      std::string padded = std::to_string(operand);
      padded.insert(0, digits_ - padded.size(), '0');
      for (char c : padded) example.tokens.push_back(c - '0');
    }
    example.tokens.push_back(kEquals);
    example.answer_begin = (int32_t)example.tokens.size();
    std::string digits = std::to_string(sum);
    if (lsb_first_) std::reverse(digits.begin(), digits.end());
    for (char c : digits) example.tokens.push_back(c - '0');
    example.tokens.push_back(kEnd);
    return example;
  }

  // Splits `d..d+d..d+...=` into digit lists; throws on anything else.
  std::vector<std::vector<int32_t>> parse_operands(const std::vector<int32_t>& prompt) const {
    if (prompt.empty() || prompt.back() != kEquals) throw_bad_prompt(name(), "it does not end with '='");
    std::vector<std::vector<int32_t>> operands(1);
    for (size_t i = 0; i + 1 < prompt.size(); i++) {
      int32_t t = prompt[i];
      if (t >= 0 && t <= 9) {
        operands.back().push_back(t);
      } else if (t == kPlus && !operands.back().empty()) {
        operands.emplace_back();
      } else {
        throw_bad_prompt(name(), "unexpected token " + std::to_string(t) + " at position " + std::to_string(i));
      }
    }
    if (operands.back().empty()) throw_bad_prompt(name(), "empty operand before '='");
    return operands;
  }

  int digits_ = 3;
  bool lsb_first_ = false;
};

}  // namespace

std::unique_ptr<Task> make_addition_task(const nlohmann::json& options, uint64_t seed) {
  Options parsed("addition", options);
  return std::make_unique<AdditionTask>(parsed, seed);
}

}  // namespace recur::tasks
