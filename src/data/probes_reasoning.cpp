// The reasoning probes as text (docs/lm.md, "Generated probes"): i-GSM problems of src/data/tasks/igsm.cpp
// rendered as English sentences ("Each B has 3 F." / "Each C has as many H as B's F plus D's G."), and the
// variable-assignment primitives of src/data/tasks/primitives.cpp in their math and code renderings. Both reuse
// the tasks' generators and splits (recur/tasks.h); every answer is checked against the task's solver.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "probes_parts.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "recur/tasks.h"

namespace recur::probes_detail {

namespace {

enum Stream : uint64_t { kIgsmStream = 11, kPrimitivesStream };

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// A parameter "X#Y" (the number of Y in each X) as "X's Y"; an operator as a word; a digit as itself.
std::string igsm_term(const std::string& word) {
  if (word == "+") return "plus";
  if (word == "-") return "minus";
  if (word == "*") return "times";
  size_t hash = word.find('#');
  if (hash == std::string::npos) return word;
  return word.substr(0, hash) + "'s " + word.substr(hash + 1);
}

// One definition `X#Y := <rhs>` as a sentence.
std::string igsm_sentence(const std::string& name, const std::vector<std::string>& rhs) {
  size_t hash = name.find('#');
  check(hash != std::string::npos && !rhs.empty(), "data probes: unexpected i-GSM definition of \"", name, "\"");
  std::string out = "Each ";
  out.append(name, 0, hash);
  std::string y = name.substr(hash + 1);
  if (rhs.size() == 1 && rhs[0].find('#') == std::string::npos) return out + " has " + rhs[0] + " " + y + ".";
  out += " has as many " + y + " as";
  for (const std::string& w : rhs) out.append(" ").append(igsm_term(w));
  return out + ".";
}

// The prompt text `A#B := ... . C#D := ... . X#Y ?` of igsm's to_text as one sentence per line, then the
// question "How many Y does each X have? Answer:".
std::string igsm_context(const std::string& prompt) {
  std::vector<std::string> words = words_of(prompt);
  std::string out;
  size_t i = 0;
  while (i + 1 < words.size() && words[i + 1] == ":=") {
    std::vector<std::string> rhs;
    size_t j = i + 2;
    for (; j < words.size() && words[j] != "."; j++) rhs.push_back(words[j]);
    check(j < words.size(), "data probes: an i-GSM definition has no closing \".\"");
    out += igsm_sentence(words[i], rhs) + "\n";
    i = j + 1;
  }
  check(i + 2 == words.size() && words[i + 1] == "?", "data probes: an i-GSM prompt does not end with one query");
  size_t hash = words[i].find('#');
  check(hash != std::string::npos, "data probes: the i-GSM query is not a parameter");
  return out + "How many " + words[i].substr(hash + 1) + " does each " + words[i].substr(0, hash) + " have? Answer:";
}

// The text of an example's prompt and its answer (without the end token), from a task's to_text.
struct TextExample {
  std::string prompt, answer;
};

TextExample text_of(const tasks::Task& task, const tasks::Example& e) {
  std::vector<int32_t> prompt(e.tokens.begin(), e.tokens.begin() + e.answer_begin);
  std::vector<int32_t> answer = {e.tokens[(size_t)e.answer_begin]};  // one digit before <end> in both tasks
  std::vector<int32_t> solved = task.solve(prompt);
  check(std::equal(solved.begin(), solved.end(), e.tokens.begin() + e.answer_begin, e.tokens.end()),
        "data probes: the ", task.name(), " solver disagrees with its generator on ", task.to_text(e.tokens));
  std::string p = task.to_text(prompt);
  while (!p.empty() && p.back() == ' ') p.pop_back();
  return {p, task.to_text(answer)};
}

// Draws examples of `split` cycling over `difficulties` and keeps the first `count` distinct contexts of at most
// kMaxItemBytes with their targets.
std::vector<ProbeItem> draw_items(const tasks::Task& task, tasks::Split split, const std::vector<int>& difficulties,
                                  int count, std::string (*render)(const std::string&)) {
  std::vector<ProbeItem> items;
  std::set<std::string> seen;
  for (uint64_t index = 0; (int)items.size() < count; index++) {
    check(index < (uint64_t)count * 20 + 1000, "data probes: ", task.name(), " gave only ", items.size(),
          " distinct examples of at most ", kMaxItemBytes, " bytes of the ", count,
          " asked for; lower --test_items or the training counts (i-GSM: or --igsm_ops_*, --igsm_distractors)");
    tasks::Example e = task.generate(split, index, difficulties[index % difficulties.size()]);
    TextExample t = text_of(task, e);
    std::string context = render(t.prompt), target = " " + t.answer;
    if (context.size() + target.size() > kMaxItemBytes || !seen.insert(context).second) continue;
    items.push_back({context, target, ""});
  }
  return items;
}

std::string as_is(const std::string& text) { return text; }

std::vector<std::string> documents_of(const std::vector<ProbeItem>& items) {
  std::vector<std::string> docs;
  for (const ProbeItem& item : items) docs.push_back(item.context + item.target);
  return docs;
}

}  // namespace

ProbePart make_igsm_probes(const ProbeOptions& o) {
  nlohmann::json options = {
      {"ops_train", o.igsm_ops_train},       {"ops_test", o.igsm_ops_test}, {"distractors", o.igsm_distractors},
      {"max_operands", o.igsm_max_operands}, {"answers", "uniform"},        {"split", "template"}};
  std::unique_ptr<tasks::Task> task = tasks::make_task("igsm", options, mix_seed(o.seed, kIgsmStream));
  ProbePart part;
  part.train.push_back(
      {"igsm", documents_of(draw_items(*task, tasks::Split::train, o.igsm_ops_train, o.igsm_train, igsm_context))});
  part.tasks.push_back(
      {"igsm", "math_word", draw_items(*task, tasks::Split::test, o.igsm_ops_test, o.test_items, igsm_context)});
  return part;
}

ProbePart make_primitives_probes(const ProbeOptions& o) {
  ProbePart part;
  ProbeTrainText train{"primitives", {}};
  uint64_t stream = 0;
  for (const char* flavour : {"math", "code"}) {
    nlohmann::json options = {{"flavour", flavour}, {"depth_train", {0, 1}}, {"depth_test", {0, 1}}};
    std::unique_ptr<tasks::Task> task =
        tasks::make_task("primitives", options, mix_seed(mix_seed(o.seed, kPrimitivesStream), stream++));
    for (int depth : {0, 1}) {
      for (const std::string& doc :
           documents_of(draw_items(*task, tasks::Split::train, {depth}, o.primitives_train, as_is))) {
        train.documents.push_back(doc);
      }
      std::string name = std::string("primitives_") + flavour + "_d" + std::to_string(depth);
      part.tasks.push_back({name, "primitives", draw_items(*task, tasks::Split::test, {depth}, o.test_items, as_is)});
    }
  }
  part.train.push_back(std::move(train));
  return part;
}

}  // namespace recur::probes_detail
