// The tasks at the papers' formats (docs/tasks.md): i-GSM's uniform answers, its constant-with-parameter forms
// checked by a solver written here from the text rendering, its template-level split; addition at 3 digits,
// most significant digit first, with test n never seen in training.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "recur/error.h"
#include "recur/tasks.h"
#include "test_util.h"

using namespace recur::tasks;
using nlohmann::json;

namespace {

std::vector<int32_t> prompt_of(const Example& e) {
  return std::vector<int32_t>(e.tokens.begin(), e.tokens.begin() + e.answer_begin);
}

std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool is_name(const std::string& word) { return word.find('#') != std::string::npos; }
bool is_operator(const std::string& word) { return word == "+" || word == "-" || word == "*"; }

// An i-GSM problem from its text, `X#Y := 3 + A#B - C#D . ... Q#R ? 5 <end>`, solved by brute force: every
// definition evaluated with * before + and -, mod 7, by recursion over the names.
struct WordProblem {
  std::map<std::string, std::vector<std::string>> definitions;
  std::string query;
  int answer = -1;

  explicit WordProblem(const std::string& text) {
    std::vector<std::string> w = words_of(text);
    size_t i = 0;
    for (; w[i + 1] == ":="; i++) {
      std::string name = w[i];
      for (i += 2; w[i] != "."; i++) definitions[name].push_back(w[i]);
    }
    query = w[i];
    answer = std::stoi(w[i + 2]);
  }

  int value(const std::string& name) const {
    const std::vector<std::string>& rhs = definitions.at(name);
    auto factor = [&](size_t k) { return is_name(rhs[k]) ? value(rhs[k]) : std::stoi(rhs[k]); };
    int total = 0, product = factor(0), sign = 1;
    for (size_t k = 1; k + 1 < rhs.size(); k += 2) {
      if (rhs[k] == "*") {
        product = product * factor(k + 1) % 7;
        continue;
      }
      total = ((total + sign * product) % 7 + 7) % 7;
      sign = rhs[k] == "+" ? 1 : -1;
      product = factor(k + 1);
    }
    return ((total + sign * product) % 7 + 7) % 7;
  }

  // Operations the query needs: each needed definition's operators, a copy counting one.
  int operations(const std::string& name, std::set<std::string>* seen) const {
    if (!seen->insert(name).second) return 0;
    int own = 0, operands = 0, below = 0;
    for (const std::string& word : definitions.at(name)) {
      own += is_operator(word);
      if (is_name(word)) operands++, below += operations(word, seen);
    }
    return below + (operands == 0 ? 0 : std::max(1, own));
  }
};

}  // namespace

TEST(IgsmFormats, AnswersAreUniformByDefault) {
  auto uniform = make_task("igsm", nullptr, 11), natural = make_task("igsm", {{"answers", "natural"}}, 11);
  std::vector<int> counts(7, 0), natural_counts(7, 0);
  int total = 0;
  for (int ops : uniform->difficulties(Split::train))
    for (uint64_t i = 0; i < 300; i++, total++) {
      counts[uniform->generate(Split::train, i, ops).tokens.end()[-2]]++;
      natural_counts[natural->generate(Split::train, i, ops).tokens.end()[-2]]++;
    }
  // 2400 answers, 343 expected per digit (sd about 17): within 20% of uniform
  for (int a = 0; a < 7; a++) {
    EXPECT_GT(counts[a], total / 7 * 0.8) << "answer " << a;
    EXPECT_LT(counts[a], total / 7 * 1.2) << "answer " << a;
  }
  // the natural distribution favours 0 (products with a 0 operand): the bias the uniform option removes
  EXPECT_GT(natural_counts[0], total / 6);
}

TEST(IgsmFormats, ConstantFormsAreSolvedByAnIndependentSolver) {
  auto task = make_task("igsm", {{"constant_forms", true}}, 5);
  int more_than = 0, times = 0, total = 0;
  for (Split split : {Split::train, Split::test})
    for (int ops : task->difficulties(split))
      for (uint64_t i = 0; i < 150; i++, total++) {
        Example e = task->generate(split, i, ops);
        std::string text = task->to_text(e.tokens);
        WordProblem problem(text);
        ASSERT_EQ(problem.value(problem.query), problem.answer) << text;
        ASSERT_EQ(task->solve(prompt_of(e)), std::vector<int32_t>(e.tokens.begin() + e.answer_begin, e.tokens.end()));
        std::set<std::string> seen;
        ASSERT_EQ(problem.operations(problem.query, &seen), ops) << text;
        for (const auto& [name, rhs] : problem.definitions)
          if (rhs.size() >= 3 && !is_name(rhs[0])) (rhs[1] == "*" ? times : more_than)++;
      }
  EXPECT_GT(more_than, total / 4) << "c + X#Y forms";
  EXPECT_GT(times, total / 10) << "c * X#Y forms";
}

TEST(IgsmFormats, TemplateSplitKeepsTemplatesApart) {
  // few templates: one operation, no distractors
  json small = {{"distractors", 0}, {"ops_train", {1}}, {"ops_test", {1}}, {"test_permille", 300}, {"names", "tokens"}};
  auto leaked = [&](const std::string& split) {
    json options = small;
    options["split"] = split;
    auto task = make_task("igsm", options, 3);
    std::set<std::vector<int32_t>> train_templates, test_templates;
    for (uint64_t i = 0; i < 400; i++) {
      train_templates.insert(task->split_key(prompt_of(task->generate(Split::train, i, 1))));
      test_templates.insert(task->split_key(prompt_of(task->generate(Split::test, i, 1))));
    }
    int shared = 0;
    for (const auto& t : test_templates) shared += train_templates.count(t);
    return shared;
  };
  EXPECT_EQ(leaked("template"), 0);
  // the prompt split hashes exact prompts: the templates of test problems also occur in training
  json prompt_options = small;
  prompt_options["split"] = "prompt";
  auto prompt_task = make_task("igsm", prompt_options, 3);
  std::set<std::vector<int32_t>> seen_in_train;
  int shared = 0;
  json template_options = small;
  template_options["split"] = "template";
  auto template_task = make_task("igsm", template_options, 3);
  for (uint64_t i = 0; i < 400; i++)
    seen_in_train.insert(template_task->split_key(prompt_of(prompt_task->generate(Split::train, i, 1))));
  for (uint64_t i = 0; i < 400; i++)
    shared += seen_in_train.count(template_task->split_key(prompt_of(prompt_task->generate(Split::test, i, 1))));
  EXPECT_GT(shared, 0);
  // the template is the same under renaming and other digits, so the split decision is too
  Example e = template_task->generate(Split::test, 0, 1);
  std::vector<int32_t> renamed = prompt_of(e);
  for (int32_t& t : renamed)
    if (t >= 0 && t < 7)
      t = (t + 3) % 7;
    else if (t >= 7 && t < 7 + 48)
      t = 7 + (t - 7 + 5) % 48;  // 48 = 3 · 4 · 4 single-token names
  EXPECT_NE(renamed, prompt_of(e));
  EXPECT_EQ(template_task->split_key(renamed), template_task->split_key(prompt_of(e)));
}

TEST(IgsmFormats, BadOptionsNameTheOption) {
  EXPECT_NE(error_of([] {
              make_task("igsm", {{"answers", "flat"}}, 1);
            }).find("unknown answers \"flat\""),
            std::string::npos);
  EXPECT_NE(error_of([] {
              make_task("igsm", {{"split", "exact"}}, 1);
            }).find("use one of \"prompt\", \"template\""),
            std::string::npos);
  EXPECT_NE(error_of([] {
              make_task("igsm", {{"constant_forms", 1}}, 1);
            }).find("constant_forms must be true or false"),
            std::string::npos);
}

// The paper's format: 3-digit zero-padded operands, the sum most significant digit first, trained on n in
// {2, 4, 8, 16, 32} and tested on n in {8, 16, 24, 32}, 24 never seen in training.
TEST(AdditionFormats, PaperFormatWithUnseenTestN) {
  auto task = make_task("addition", nullptr, 4);
  std::vector<int> train = task->difficulties(Split::train), test = task->difficulties(Split::test);
  EXPECT_EQ(train, (std::vector<int>{2, 4, 8, 16, 32}));
  EXPECT_EQ(test, (std::vector<int>{8, 16, 24, 32}));
  EXPECT_EQ(std::count(train.begin(), train.end(), 24), 0);
  auto custom = make_task("addition", {{"n_train", {2, 4, 8}}, {"n_test", {6, 12}}}, 4);
  EXPECT_EQ(custom->difficulties(Split::test), (std::vector<int>{6, 12}));
  for (int n : test)
    for (uint64_t i = 0; i < 50; i++) {
      Example e = task->generate(Split::test, i, n);
      std::string text = task->to_text(e.tokens);  // "315+120+...=1304<end>"
      std::string prompt = text.substr(0, text.find('=')), answer = text.substr(text.find('=') + 1);
      long long sum = 0;
      int operands = 0;
      std::stringstream in(prompt);
      for (std::string operand; std::getline(in, operand, '+'); operands++) {
        ASSERT_EQ(operand.size(), 3u) << text;
        sum += std::stoll(operand);
      }
      ASSERT_EQ(operands, n);
      ASSERT_EQ(answer, std::to_string(sum) + "<end>") << text;  // not padded, most significant digit first
    }
  EXPECT_NE(error_of([] { make_task("addition", {{"n_test", {0}}}, 1); }).find("n_test"), std::string::npos);
}
