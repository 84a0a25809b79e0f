// Tests of the synthetic reasoning tasks (recur/tasks.h, docs/tasks.md): solver/generator agreement, determinism,
// disjoint splits, token and length bounds, task-specific structure (p-hop chains, i-GSM operation counts,
// group conventions) and helpful errors for bad options.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "recur/error.h"
#include "recur/task_train.h"
#include "recur/tasks.h"
#include "test_util.h"

using namespace recur::tasks;
using nlohmann::json;

namespace {

struct TaskConfig {
  std::string name;
  json options;
};

// Every task with its defaults, plus the variants that change the format.
std::vector<TaskConfig> all_configs() {
  return {
      {"addition", nullptr},
      {"addition", {{"digits", 2}, {"n_train", {1, 3}}, {"n_test", {5}}}},
      {"phop", nullptr},
      {"phop", {{"dense", true}, {"length", 32}, {"alphabet", 3}}},
      {"igsm", nullptr},
      {"igsm",
       {{"order", "dependency"},
        {"dense", true},
        {"levels", 3},
        {"entities", 3},
        {"ops_train", {1, 2, 3}},
        {"ops_test", {3}},
        {"distractors", 1},
        {"max_operands", 2}}},
      {"igsm", {{"names", "tokens"}, {"dense", true}, {"distractor_kind", "constants"}}},
      {"igsm", {{"constant_forms", true}, {"split", "template"}, {"answers", "natural"}}},
      {"primitives", nullptr},
      {"primitives", {{"flavour", "code"}, {"chains", 4}}},
      {"primitives", {{"dense", true}, {"depth_train", {0, 2}}, {"depth_test", {1, 3}}}},
      {"group", nullptr},
      {"group", {{"group", "s5"}}},
      {"group", {{"group", "s3"}, {"n_train", {3, 4}}, {"n_test", {6}}}},  // n = 2: 36 prompts, too few to split
      {"group", {{"group", "s4"}, {"n_train", {2, 3}}, {"n_test", {5}}}},
  };
}

std::string label(const TaskConfig& config) { return config.name + " " + config.options.dump(); }

std::vector<int32_t> prompt_of(const Example& e) {
  return std::vector<int32_t>(e.tokens.begin(), e.tokens.begin() + e.answer_begin);
}

std::vector<int32_t> answer_of(const Example& e) {
  return std::vector<int32_t>(e.tokens.begin() + e.answer_begin, e.tokens.end());
}

}  // namespace

TEST(Tasks, NamesAndFactory) {
  std::vector<std::string> names = task_names();
  EXPECT_EQ(names, (std::vector<std::string>{"addition", "phop", "igsm", "primitives", "group"}));
  for (const std::string& name : names) {
    std::unique_ptr<Task> task = make_task(name, nullptr, 1);
    EXPECT_EQ(task->name(), name);
    EXPECT_FALSE(task->difficulties(Split::train).empty());
    EXPECT_FALSE(task->difficulties(Split::test).empty());
  }
}

TEST(Tasks, DefaultDifficultyBuckets) {
  auto addition = make_task("addition", nullptr, 1);
  EXPECT_EQ(addition->difficulties(Split::train), (std::vector<int>{2, 4, 8, 16, 32}));
  EXPECT_EQ(addition->difficulties(Split::test), (std::vector<int>{8, 16, 24, 32}));
  auto phop = make_task("phop", nullptr, 1);
  EXPECT_EQ(phop->difficulties(Split::train), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(phop->difficulties(Split::test), (std::vector<int>{2, 4, 6, 8}));
  auto group = make_task("group", {{"n_train", {3, 5}}, {"n_test", {7}}}, 1);
  EXPECT_EQ(group->difficulties(Split::train), (std::vector<int>{3, 5}));
  EXPECT_EQ(group->difficulties(Split::test), (std::vector<int>{7}));
}

// The brute-force solver reproduces every generated answer; tokens, lengths, buckets and splits are valid.
TEST(Tasks, SolverAgreesWithGenerator) {
  for (const TaskConfig& config : all_configs()) {
    SCOPED_TRACE(label(config));
    std::unique_ptr<Task> task = make_task(config.name, config.options, 11);
    for (Split split : {Split::train, Split::test}) {
      for (int difficulty : task->difficulties(split)) {
        SCOPED_TRACE("difficulty " + std::to_string(difficulty));
        int count = split == Split::train ? 200 : 100;
        for (int i = 0; i < count; i++) {
          Example e = task->generate(split, (uint64_t)i, difficulty);
          ASSERT_EQ(e.difficulty, difficulty);
          ASSERT_GT(e.answer_begin, 0);
          ASSERT_LT(e.answer_begin, (int32_t)e.tokens.size());
          ASSERT_LE((int)e.tokens.size(), task->max_length());
          for (int32_t t : e.tokens) ASSERT_TRUE(t >= 0 && t < task->vocab_size()) << t;
          ASSERT_EQ(prompt_in_test_split(task->split_key(prompt_of(e)), 50), split == Split::test);
          ASSERT_EQ(task->solve(prompt_of(e)), answer_of(e)) << task->to_text(e.tokens);
        }
      }
    }
  }
}

TEST(Tasks, SameSeedSameExamplesOtherSeedOthers) {
  for (const TaskConfig& config : all_configs()) {
    SCOPED_TRACE(label(config));
    std::unique_ptr<Task> a = make_task(config.name, config.options, 5);
    std::unique_ptr<Task> b = make_task(config.name, config.options, 5);
    std::unique_ptr<Task> c = make_task(config.name, config.options, 6);
    int same_as_other_seed = 0, total = 0;
    for (Split split : {Split::train, Split::test}) {
      for (int difficulty : a->difficulties(split)) {
        for (uint64_t i = 0; i < 10; i++) {
          Example x = a->generate(split, i, difficulty);
          Example y = b->generate(split, i, difficulty);
          ASSERT_EQ(x.tokens, y.tokens);
          ASSERT_EQ(x.answer_begin, y.answer_begin);
          ASSERT_EQ(x.dense_targets, y.dense_targets);
          same_as_other_seed += c->generate(split, i, difficulty).tokens == x.tokens;
          total++;
        }
      }
    }
    EXPECT_LT(same_as_other_seed, total / 10) << "another seed should give other examples";
  }
}

// No test prompt occurs among a large sample of training prompts.
TEST(Tasks, SplitsAreDisjoint) {
  for (const TaskConfig& config : all_configs()) {
    SCOPED_TRACE(label(config));
    std::unique_ptr<Task> task = make_task(config.name, config.options, 3);
    std::set<std::vector<int32_t>> train;
    std::vector<int> train_difficulties = task->difficulties(Split::train);
    for (uint64_t i = 0; i < 6000; i++) {
      int difficulty = train_difficulties[i % train_difficulties.size()];
      train.insert(prompt_of(task->generate(Split::train, i, difficulty)));
    }
    // Test prompts at the training difficulties too, where collisions would be likeliest.
    for (Split list : {Split::train, Split::test}) {
      for (int difficulty : task->difficulties(list)) {
        for (uint64_t i = 0; i < 60; i++) {
          std::vector<int32_t> prompt = prompt_of(task->generate(Split::test, i, difficulty));
          ASSERT_EQ(train.count(prompt), 0u) << task->to_text(prompt);
        }
      }
    }
  }
}

// Fixed checksums of the default generators: the same data on every machine and library. If a generator
// change is intended, update the numbers (and say so: earlier results were on other data). i-GSM changed when its
// answers became uniform by default (option "answers"; "natural" gives the earlier data).
TEST(Tasks, GoldenChecksums) {
  std::map<std::string, uint64_t> expected = {
      {"addition", 13119689657442603041ull},   {"phop", 793762683139511321ull},    {"igsm", 12973468542876999976ull},
      {"primitives", 14787047756411342898ull}, {"group", 13173599262108124079ull},
  };
  std::vector<std::pair<std::string, json>> configs;
  for (const std::string& name : task_names()) configs.push_back({name, nullptr});
  configs.push_back({"igsm", {{"answers", "natural"}}});
  expected["igsm {\"answers\":\"natural\"}"] = 5015313413273519222ull;  // the checksum before uniform answers
  for (const auto& [task_name, options] : configs) {
    std::string name = task_name + (options.is_null() ? "" : " " + options.dump());
    std::unique_ptr<Task> task = make_task(task_name, options, 2024);
    uint64_t h = 0xcbf29ce484222325ull;
    for (Split split : {Split::train, Split::test}) {
      for (int difficulty : task->difficulties(split)) {
        for (uint64_t i = 0; i < 4; i++) {
          for (int32_t t : task->generate(split, i, difficulty).tokens) h = (h ^ (uint32_t)t) * 0x100000001b3ull;
        }
      }
    }
    EXPECT_EQ(h, expected[name]) << name << " checksum is " << h << "ull";
  }
}

TEST(Tasks, HandWorkedAnswers) {
  // addition: 315+120+045+824= -> 1304 end (digits are ids 0-9, '+' 10, '=' 11, end 12)
  auto addition = make_task("addition", nullptr, 1);
  std::vector<int32_t> sum = {3, 1, 5, 10, 1, 2, 0, 10, 0, 4, 5, 10, 8, 2, 4, 11};
  EXPECT_EQ(addition->solve(sum), (std::vector<int32_t>{1, 3, 0, 4, 12}));
  EXPECT_EQ(addition->to_text(sum), "315+120+045+824=");
  EXPECT_EQ(addition->solve({0, 0, 0, 10, 0, 0, 0, 11}), (std::vector<int32_t>{0, 12}));

  // primitives: a=1, b=2, c=a, d=b, d=? -> 2 (a-z are 0-25, digits 26-35, '=' 36, ',' 37, '?' 38, end 43)
  auto primitives = make_task("primitives", nullptr, 1);
  std::vector<int32_t> program = {0, 36, 27, 37, 1, 36, 28, 37, 2, 36, 0, 37, 3, 36, 1, 37, 3, 36, 38};
  EXPECT_EQ(primitives->solve(program), (std::vector<int32_t>{28, 43}));
  EXPECT_EQ(primitives->to_text(program), "a=1, b=2, c=a, d=b, d=? ");

  // group Z_5: 3 4 = 2
  auto z5 = make_task("group", nullptr, 1);
  EXPECT_EQ(z5->solve({3, 4, 5}), (std::vector<int32_t>{2, 6}));

  // group S_5: (0 1) then (1 2) is 0->2, 1->0, 2->1. Ids are lexicographic ranks of the one-line notation.
  auto s5 = make_task("group", {{"group", "s5"}}, 1);
  EXPECT_EQ(s5->to_text({24, 6, 48, 30}), "10234 02134 20134 12034");
  EXPECT_EQ(s5->solve({24, 6, 120}), (std::vector<int32_t>{48, 121}));
  EXPECT_EQ(s5->solve({6, 24, 120}), (std::vector<int32_t>{30, 121}));
  // S_3 (the smallest non-abelian group): the same two swaps, ids 2 (102) and 1 (021); '=' is 6, <end> 7.
  auto s3 = make_task("group", {{"group", "s3"}}, 1);
  EXPECT_EQ(s3->vocab_size(), 8);
  EXPECT_EQ(s3->to_text({2, 1, 6, 4}), "102 021 = 201");
  EXPECT_EQ(s3->solve({2, 1, 6}), (std::vector<int32_t>{4, 7}));
  EXPECT_EQ(s3->solve({1, 2, 6}), (std::vector<int32_t>{3, 7}));
  EXPECT_EQ(make_task("group", {{"group", "s4"}}, 1)->vocab_size(), 26);

  // p-hop, alphabet 4 (a-d = 0-3), p tokens 4-11, '=' 12: p2 a b c a c = ?
  // find_1(5) = 4 (v_3 = c), find_1(4) = 2 (v_1 = a), so hop_2 = v_2 = b.
  auto phop = make_task("phop", {{"length", 5}, {"p_train", {1, 2}}, {"p_test", {2}}}, 1);
  EXPECT_EQ(phop->solve({5, 0, 1, 2, 0, 2, 6}), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(phop->solve({4, 0, 1, 2, 0, 2, 6}), (std::vector<int32_t>{0, 7}));  // 1-hop: v_4 = a
}

// ---- p-hop ----------------------------------------------------------------------------------------------

namespace {

// Positions i_0 = n, i_1, ..., i_p of the hop chain (1-based, v[0] unused), computed from the definition in
// the test itself; stops early at a missing hop (position 0).
std::vector<int> hop_chain(const std::vector<int32_t>& v, int p) {
  std::vector<int> chain = {(int)v.size() - 1};
  for (int k = 0; k < p; k++) {
    int i = chain.back(), found = 0;
    for (int j = i; j >= 2 && found == 0; j--) {
      if (v[j - 1] == v[i]) found = j;
    }
    chain.push_back(found);
    if (found == 0) break;
  }
  return chain;
}

}  // namespace

TEST(Phop, ExactlyPHopsAreWellDefined) {
  auto task = make_task("phop", nullptr, 17);
  for (int p : task->difficulties(Split::train)) {
    SCOPED_TRACE("p = " + std::to_string(p));
    int differs_from_one_hop = 0, count = 300;
    for (int i = 0; i < count; i++) {
      Example e = task->generate(Split::train, (uint64_t)i, p);
      std::vector<int32_t> v(e.tokens.begin(), e.tokens.begin() + e.answer_begin - 1);  // p token -> v[0]
      std::vector<int> chain = hop_chain(v, p);
      ASSERT_EQ((int)chain.size(), p + 1);
      for (int k = 1; k <= p; k++) ASSERT_TRUE(chain[k] >= 2 && chain[k] < chain[k - 1]) << task->to_text(e.tokens);
      ASSERT_EQ(e.tokens[e.answer_begin], v[chain[p]]);
      differs_from_one_hop += v[chain[p]] != v[chain[1]];
    }
    if (p >= 2) {
      EXPECT_GT(differs_from_one_hop, count / 3) << "the answer should often differ from a 1-hop lookup";
    }
  }
}

TEST(Phop, DenseTargetsFollowTheDefinition) {
  auto task = make_task("phop", {{"dense", true}, {"length", 40}}, 4);
  auto sparse = make_task("phop", {{"length", 40}}, 4);
  for (int p : {1, 3, 8}) {
    for (uint64_t i = 0; i < 50; i++) {
      Example e = task->generate(Split::train, i, p);
      ASSERT_EQ(e.dense_targets.size(), e.tokens.size());
      EXPECT_TRUE(sparse->generate(Split::train, i, p).dense_targets.empty());
      EXPECT_EQ(e.dense_targets[0], -1);  // the p token
      std::vector<int32_t> v(e.tokens.begin(), e.tokens.begin() + e.answer_begin - 1);
      for (int t = 1; t < e.answer_begin - 1; t++) {
        std::vector<int32_t> prefix(v.begin(), v.begin() + t + 1);
        std::vector<int> chain = hop_chain(prefix, p);
        int32_t expected = (int)chain.size() == p + 1 && chain[p] > 0 ? prefix[chain[p]] : -1;
        ASSERT_EQ(e.dense_targets[t], expected) << "position " << t;
      }
      EXPECT_EQ(e.dense_targets[e.answer_begin - 1], e.tokens[e.answer_begin]);  // '=' predicts the answer
      EXPECT_EQ(e.dense_targets[e.answer_begin], e.tokens.back());               // the answer predicts end
      EXPECT_EQ(e.dense_targets.back(), -1);
    }
  }
}

// ---- reasoning primitives ------------------------------------------------------------------------------

namespace {

// The digit token variable `var` holds just before token index `before`, found by following the statements
// (each 4 tokens from index 0: `x = y ,`) backwards; -1 if it is unassigned.
int32_t value_before(const std::vector<int32_t>& tokens, int32_t var, int before) {
  for (int s = (before - 1) / 4 * 4; s >= 0; s -= 4) {
    if (s + 2 >= before || tokens[s] != var || tokens[s + 1] != 36) continue;
    int32_t rhs = tokens[s + 2];
    if (rhs >= 26 && rhs < 36) return rhs;
    if (rhs < 26) return value_before(tokens, rhs, s);
  }
  return -1;
}

}  // namespace

// The dense targets are the values of the variables where they are read (a right-hand side, the query), then the
// answer at the prompt's last token and end at the answer; -1 everywhere else.
TEST(Primitives, DenseTargetsAreTheValuesRead) {
  for (const char* flavour : {"math", "code"}) {
    json options = {{"flavour", flavour}, {"dense", true}, {"depth_train", {0, 1, 3}}};
    auto task = make_task("primitives", options, 5);
    options.erase("dense");
    auto sparse = make_task("primitives", options, 5);
    for (int depth : {0, 1, 3}) {
      for (uint64_t i = 0; i < 40; i++) {
        Example e = task->generate(Split::train, i, depth);
        ASSERT_EQ(e.tokens, sparse->generate(Split::train, i, depth).tokens) << "dense must not change the data";
        ASSERT_EQ(e.dense_targets.size(), e.tokens.size());
        int query = e.answer_begin - (std::string(flavour) == "code" ? 2 : 3);
        int reads = 0;
        for (int t = 0; t < e.answer_begin - 1; t++) {
          bool rhs = t % 4 == 2 && t < query && e.tokens[t] < 26;
          int32_t expected = rhs || t == query ? value_before(e.tokens, e.tokens[t], t) : -1;
          reads += expected >= 0;
          ASSERT_EQ(e.dense_targets[t], expected) << task->to_text(e.tokens) << " position " << t;
        }
        EXPECT_EQ(reads, 3 * depth + 1);  // chains × depth right-hand variables, and the query
        EXPECT_EQ(e.dense_targets[e.answer_begin - 1], e.tokens[e.answer_begin]);
        EXPECT_EQ(e.dense_targets[e.answer_begin], e.tokens.back());
        EXPECT_EQ(e.dense_targets.back(), -1);
      }
    }
  }
}

// ---- i-GSM ----------------------------------------------------------------------------------------------

namespace {

// An i-GSM problem read back from its text rendering: `X#Y := a#b + c#d . ... Q#R ?`.
struct TextProblem {
  std::map<std::string, std::vector<std::string>> definitions;  // name -> right-hand side words
  std::vector<std::string> order;                               // names in the order defined
  std::string query;
  int answer = -1;
};

TextProblem parse_igsm_text(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  TextProblem problem;
  size_t i = 0;
  while (words[i + 1] == ":=") {
    std::string name = words[i];
    i += 2;
    while (words[i] != ".") problem.definitions[name].push_back(words[i++]);
    problem.order.push_back(name);
    i++;
  }
  problem.query = words[i];
  EXPECT_EQ(words[i + 1], "?");
  problem.answer = std::stoi(words[i + 2]);
  EXPECT_EQ(words[i + 3], "<end>");
  return problem;
}

bool is_parameter(const std::string& word) { return word.find('#') != std::string::npos; }

// The query's dependency closure, and its operation count: operators, with a copy counting one.
void closure(const TextProblem& problem, const std::string& name, std::set<std::string>* seen, int* ops) {
  if (!seen->insert(name).second) return;
  const std::vector<std::string>& rhs = problem.definitions.at(name);
  int operands = 0;
  for (const std::string& word : rhs) {
    if (!is_parameter(word)) continue;
    operands++;
    closure(problem, word, seen, ops);
  }
  if (operands > 0) *ops += std::max(1, operands - 1);
}

}  // namespace

TEST(Igsm, QueryNeedsTheStatedOperationsAndHasDistractors) {
  auto task = make_task("igsm", nullptr, 23);
  std::vector<int> answer_counts(7, 0);
  int used_before_defined = 0, total = 0;
  for (Split split : {Split::train, Split::test}) {
    for (int ops : task->difficulties(split)) {
      SCOPED_TRACE("ops = " + std::to_string(ops));
      for (uint64_t i = 0; i < 150; i++) {
        Example e = task->generate(split, i, ops);
        TextProblem problem = parse_igsm_text(task->to_text(e.tokens));
        ASSERT_TRUE(problem.answer >= 0 && problem.answer <= 6);
        answer_counts[problem.answer]++;
        std::set<std::string> needed;
        int counted = 0;
        closure(problem, problem.query, &needed, &counted);
        ASSERT_EQ(counted, ops) << task->to_text(e.tokens);
        ASSERT_EQ(problem.definitions.size(), problem.order.size()) << "a parameter is defined twice";
        ASSERT_EQ(problem.definitions.size() - needed.size(), 4u) << "4 distractors by default";
        // Shuffled definitions: some parameter is used before the line that defines it.
        std::set<std::string> defined;
        bool early_use = false;
        for (const std::string& name : problem.order) {
          for (const std::string& word : problem.definitions[name]) {
            if (is_parameter(word) && !defined.count(word)) early_use = true;
          }
          defined.insert(name);
        }
        used_before_defined += early_use;
        total++;
      }
    }
  }
  EXPECT_GT(used_before_defined, total / 2);
  for (int a = 0; a < 7; a++) {
    EXPECT_GT(answer_counts[a], total / 14) << "answer " << a << " is rare";
    EXPECT_LT(answer_counts[a], total * 2 / 5) << "answer " << a << " dominates";
  }
}

// Dense targets: the output at each definition's '.' predicts the parameter's value exactly when the
// prefix determines it, which the solver decides on its own: it answers a query about the parameter placed
// right after the definition, or rejects the prompt because something it needs is not yet defined. With
// dense_operands the output at each operand's name predicts the operand's value the same way.
TEST(Igsm, DenseTargetsAreTheValuesThePrefixDetermines) {
  struct Case {
    std::string order, names;
    bool operands;
  };
  for (const Case& c :
       {Case{"shuffled", "pairs", false}, Case{"dependency", "tokens", true}, Case{"shuffled", "pairs", true}}) {
    SCOPED_TRACE(c.order + " " + c.names + (c.operands ? " with operands" : ""));
    json options = {
        {"order", c.order}, {"dense", true}, {"distractors", 2}, {"names", c.names}, {"dense_operands", c.operands}};
    auto task = make_task("igsm", options, 5);
    options.erase("dense");
    options.erase("dense_operands");
    auto sparse = make_task("igsm", options, 5);
    // The symbols are the last 8 ids: '#' ':=' '+' '-' '*' '.' '?' '<end>'.
    const int32_t hash = (int32_t)task->vocab_size() - 8, assign = hash + 1, period = hash + 5, query = hash + 6;
    const bool pairs = c.names == "pairs";
    // The value of the parameter named by tokens [name_begin, name_end) after the first `prefix` tokens, or -1.
    auto value_after = [&](const Example& e, size_t prefix, size_t name_begin, size_t name_end) {
      std::vector<int32_t> prompt(e.tokens.begin(), e.tokens.begin() + prefix);
      prompt.insert(prompt.end(), e.tokens.begin() + name_begin, e.tokens.begin() + name_end);
      prompt.push_back(query);
      try {
        return task->solve(prompt)[0];
      } catch (const recur::Error&) {
        return -1;
      }
    };
    int determined = 0, definitions = 0, operand_targets = 0;
    for (int ops : {1, 4, 8}) {
      for (uint64_t i = 0; i < 40; i++) {
        Example e = task->generate(Split::train, i, ops);
        ASSERT_EQ(e.tokens, sparse->generate(Split::train, i, ops).tokens) << "dense must not change the data";
        ASSERT_EQ(e.dense_targets.size(), e.tokens.size());
        size_t start = 0, assign_at = 0;  // first token and ':=' of the current definition
        bool in_expression = false;       // between ':=' and '.'
        for (int t = 0; t < e.answer_begin - 1; t++) {
          int32_t expected = -1;
          if (e.tokens[t] == assign) {
            assign_at = t;
            in_expression = true;
          } else if (e.tokens[t] == period) {
            expected = value_after(e, t + 1, start, assign_at);
            determined += expected >= 0;
            definitions++;
          } else if (c.operands && in_expression && e.tokens[t] >= 7 && e.tokens[t] < hash &&
                     (!pairs || e.tokens[t - 1] == hash)) {
            expected = value_after(e, start, pairs ? t - 2 : t, t + 1);  // the operand's name ends here
            operand_targets += expected >= 0;
          }
          ASSERT_EQ(e.dense_targets[t], expected) << "position " << t << ": " << task->to_text(e.tokens);
          if (e.tokens[t] == period) start = t + 1, in_expression = false;
        }
        EXPECT_EQ(e.dense_targets[e.answer_begin - 1], e.tokens[e.answer_begin]);  // '?' predicts the answer
        EXPECT_EQ(e.dense_targets[e.answer_begin], e.tokens.back());               // the answer predicts end
        EXPECT_EQ(e.dense_targets.back(), -1);
      }
    }
    // In dependency order every definition is determined by its prefix; shuffled, only some are.
    if (c.order == "dependency") {
      EXPECT_EQ(determined, definitions);
    } else {
      EXPECT_LT(determined, definitions);
    }
    if (c.operands) {
      EXPECT_GT(operand_targets, 0);
    }
  }
}

TEST(Igsm, ConstantDistractors) {
  auto task = make_task("igsm", {{"distractor_kind", "constants"}, {"distractors", 5}}, 3);
  for (uint64_t i = 0; i < 60; i++) {
    Example e = task->generate(Split::train, i, 3);
    TextProblem problem = parse_igsm_text(task->to_text(e.tokens));
    std::set<std::string> needed;
    int counted = 0;
    closure(problem, problem.query, &needed, &counted);
    ASSERT_EQ(problem.definitions.size(), needed.size() + 5);
    for (const auto& [name, rhs] : problem.definitions) {
      if (needed.count(name)) continue;
      ASSERT_EQ(rhs.size(), 1u) << name << " is a distractor but not a constant";
      EXPECT_FALSE(is_parameter(rhs[0]));
    }
  }
}

TEST(Igsm, DependencyOrderDefinesOperandsFirst) {
  auto task = make_task("igsm", {{"order", "dependency"}, {"names", "tokens"}}, 9);
  for (int ops : task->difficulties(Split::train)) {
    for (uint64_t i = 0; i < 40; i++) {
      Example e = task->generate(Split::train, i, ops);
      TextProblem problem = parse_igsm_text(task->to_text(e.tokens));
      std::set<std::string> defined;
      for (const std::string& name : problem.order) {
        for (const std::string& word : problem.definitions[name]) {
          if (is_parameter(word)) {
            ASSERT_TRUE(defined.count(word)) << word << " used before its definition";
          }
        }
        defined.insert(name);
      }
      std::set<std::string> needed;
      int counted = 0;
      closure(problem, problem.query, &needed, &counted);
      ASSERT_EQ(counted, ops);
      EXPECT_EQ(task->solve(prompt_of(e)), answer_of(e));
    }
  }
}

// ---- errors ---------------------------------------------------------------------------------------------

TEST(Tasks, BadOptionsThrowHelpfulErrors) {
  struct Case {
    std::string task;
    json options;
    std::string must_mention;
  };
  std::vector<Case> cases = {
      {"addition", {{"n_train", {0, 2}}}, "n_train"},
      {"addition", {{"n_test", json::array()}}, "n_test"},
      {"addition", {{"digit", 3}}, "known options"},
      {"addition", {{"digits", "three"}}, "digits"},
      {"addition", {{"test_permille", 0}}, "test_permille"},
      {"addition", json::array({1, 2}), "JSON object"},
      {"phop", {{"length", 10}, {"p_train", {8}}}, "2p + 1"},
      {"phop", {{"alphabet", 1}}, "alphabet"},
      {"phop", {{"dense", 1}}, "dense"},
      {"igsm", {{"entities", 1}}, "entities"},
      {"igsm", {{"max_operands", 5}}, "max_operands"},
      {"igsm", {{"order", "sorted"}}, "order"},
      {"igsm", {{"names", "single"}}, "names"},
      {"igsm", {{"distractor_kind", "none"}}, "distractor_kind"},
      {"igsm", {{"dense_operands", true}}, "dense"},
      {"primitives", {{"flavour", "python"}}, "\"math\", \"code\""},
      {"primitives", {{"chains", 6}, {"depth_train", {5}}}, "26"},
      {"group", {{"group", "q"}}, "\"z\", \"s3\", \"s4\", \"s5\""},
      {"group", {{"group", "s5"}, {"p", 7}}, "p applies only"},
      {"group", {{"n_test", {0}}}, "n_test"},
      {"group", {{"n_train", {2, 4, 8}}, {"curriculum", {100}}}, "one step per n_train entry after the first (2"},
      {"group", {{"n_train", {2, 4, 8}}, {"curriculum", {200, 200}}}, "strictly increasing"},
      {"group", {{"n_train", {8}}, {"curriculum", {100}}}, "at least two n_train entries"},
      {"igsm", {{"curriculum", {0, 5, 9}}}, "out of range"},
  };
  for (const Case& c : cases) {
    std::string message = error_of([&] { make_task(c.task, c.options, 1); });
    EXPECT_NE(message.find(c.must_mention), std::string::npos)
        << c.task << " " << c.options.dump() << " gave: \"" << message << "\"";
  }
  std::string unknown = error_of([] { make_task("additon", nullptr, 1); });
  EXPECT_NE(unknown.find("known tasks: addition, phop, igsm, primitives, group"), std::string::npos) << unknown;
}

// "curriculum" introduces the training list's entries one after another, keeping the earlier ones; the test split
// and the examples themselves do not change, and without the option every step trains on the whole list.
TEST(Tasks, CurriculumAddsTrainingDifficultiesAtItsSteps) {
  json options = {{"group", "s3"}, {"n_train", {2, 4, 8}}, {"n_test", {4, 8}}, {"curriculum", {100, 250}}};
  auto task = make_task("group", options, 3);
  EXPECT_EQ(task->train_difficulties_at(0), (std::vector<int>{2}));
  EXPECT_EQ(task->train_difficulties_at(99), (std::vector<int>{2}));
  EXPECT_EQ(task->train_difficulties_at(100), (std::vector<int>{2, 4}));
  EXPECT_EQ(task->train_difficulties_at(249), (std::vector<int>{2, 4}));
  EXPECT_EQ(task->train_difficulties_at(250), (std::vector<int>{2, 4, 8}));
  EXPECT_EQ(task->difficulties(Split::train), (std::vector<int>{2, 4, 8}));
  options.erase("curriculum");
  auto plain = make_task("group", options, 3);
  EXPECT_EQ(plain->train_difficulties_at(0), (std::vector<int>{2, 4, 8}));
  EXPECT_EQ(plain->generate(Split::test, 5, 8).tokens, task->generate(Split::test, 5, 8).tokens);
  // A batch's rows are padded to its longest example (n elements, '=', answer: n + 2 inputs).
  EXPECT_EQ(recur::task_batch(*task, 64, 7, 50, 0).seq_len, 4);
  EXPECT_EQ(recur::task_batch(*task, 64, 7, 150, 0).seq_len, 6);
  EXPECT_EQ(recur::task_batch(*task, 64, 7, 300, 0).seq_len, 10);
}

TEST(Tasks, BadCallsThrow) {
  auto addition = make_task("addition", nullptr, 1);
  std::string message = error_of([&] { addition->generate(Split::train, 0, 3); });
  EXPECT_NE(message.find("difficulty 3 is not configured"), std::string::npos) << message;
  // Malformed prompts: the solvers refuse instead of guessing.
  for (const std::string& name : task_names()) {
    auto task = make_task(name, nullptr, 1);
    EXPECT_THROW(task->solve({}), recur::Error) << name;
    Example e = task->generate(Split::train, 0, task->difficulties(Split::train).back());
    std::vector<int32_t> truncated(e.tokens.begin(), e.tokens.begin() + e.answer_begin - 1);
    EXPECT_THROW(task->solve(truncated), recur::Error) << name;
  }
  // A difficulty with too few distinct prompts for both buckets says so instead of looping forever: find a
  // Z_p whose p one-element prompts `g =` all hash into the train bucket, and ask for a test example.
  for (int p = 2; p < 40; p++) {
    bool any_test = false;
    for (int32_t g = 0; g < p; g++) any_test = any_test || prompt_in_test_split({g, p}, 50);
    if (any_test) continue;
    auto tiny = make_task("group", {{"n_train", {1}}, {"n_test", {1}}, {"p", p}}, 1);
    message = error_of([&] { tiny->generate(Split::test, 0, 1); });
    EXPECT_NE(message.find("too few distinct prompts"), std::string::npos) << message;
    break;
  }
}

TEST(Tasks, AdditionLsbFirstAnswer) {
  auto task = recur::tasks::make_task("addition", {{"answer_order", "lsb"}, {"digits", 2}}, 5);
  for (uint64_t i = 0; i < 200; i++) {
    recur::tasks::Example e = task->generate(recur::tasks::Split::train, i, 4);
    std::vector<int32_t> prompt(e.tokens.begin(), e.tokens.begin() + e.answer_begin);
    std::vector<int32_t> answer(e.tokens.begin() + e.answer_begin, e.tokens.end());
    EXPECT_EQ(task->solve(prompt), answer);
    // reading the digits backwards gives the sum
    long long sum = 0, operand = 0;
    for (int32_t t : prompt) {
      if (t <= 9)
        operand = operand * 10 + t;
      else
        sum += operand, operand = 0;
    }
    long long written = 0;
    for (size_t k = answer.size() - 1; k-- > 0;) written = written * 10 + answer[k];
    EXPECT_EQ(written, sum);
  }
}
