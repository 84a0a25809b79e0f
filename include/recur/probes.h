// recur/probes.h: the looped-transformers paper's language-model probes generated at CPU scale (docs/lm.md,
// "Generated probes"): synthetic biographies for closed-book and open-book QA, i-GSM rendered as English word
// problems and variable-assignment primitives, as a training text plus harness task files. Seeded and
// deterministic: the same options give the same bytes on every machine.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace recur {

struct ProbeOptions {
  uint64_t seed = 1337;
  int people = 400;            // closed-book people (biographies in the training text); half get worked QA
  int paraphrases = 4;         // biography documents per closed-book person, each in other templates and order
  int test_items = 200;        // items per task file
  int open_book_train = 400;   // worked open-book documents (each a new person) in the training text
  int igsm_train = 2000;       // solved i-GSM word problems (train split) in the training text
  int primitives_train = 500;  // solved primitives per flavour and depth in the training text
  std::vector<int> igsm_ops_train = {1, 2, 3};  // i-GSM operation counts of the training problems
  std::vector<int> igsm_ops_test = {1, 2, 3};   // and of the test problems
  int igsm_distractors = 1;                     // i-GSM parameters defined but not needed by the query
  int igsm_max_operands = 3;                    // operands per i-GSM expression
};

// One harness item: the model reads context and must continue with target (which starts with a space).
// kind groups items for the majority baseline: the asked attribute for QA, empty otherwise.
struct ProbeItem {
  std::string context, target, kind;
};

struct ProbeTask {
  std::string name, category;  // file stem (e.g. "primitives_math_d1") and probes.json category
  std::vector<ProbeItem> items;
};

// The training documents of one kind (written to train/<kind>.txt), in generation order.
struct ProbeTrainText {
  std::string kind;
  std::vector<std::string> documents;
};

struct ProbeSet {
  std::vector<ProbeTrainText> train;
  std::vector<ProbeTask> tasks;
  std::vector<std::string> closed_book_test_people;  // whose biographies are in train but whose QA is not
  std::vector<std::string> open_book_test_people;    // who occur only in the test items
};

// Throws recur::Error naming the bad option and a valid value.
void check_probe_options(const ProbeOptions& options);
ProbeSet generate_probes(const ProbeOptions& options);
// Sum over kinds of the most frequent target's count, over the item count: the accuracy of always answering
// the commonest answer to each kind of question.
double majority_baseline(const ProbeTask& task);
// Writes out_dir/train/<kind>.txt, out_dir/tasks/<task>.jsonl and out_dir/probes.json; returns probes.json.
nlohmann::json write_probes(const ProbeSet& probes, const ProbeOptions& options, const std::string& out_dir);

}  // namespace recur
