// `recur data probes` (recur/probes.h, docs/lm.md "Generated probes"): checks the options, assembles the people
// and reasoning probes, and writes the training text, the harness task files and probes.json.
#include "recur/probes.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "probes_parts.h"
#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

namespace {

namespace fs = std::filesystem;
using probes_detail::ProbePart;

void check_count(int value, int min_value, int max_value, const char* flag, const char* what) {
  check(value >= min_value && value <= max_value, "data probes: ", flag, " ", value, " is out of range; give ",
        min_value, "..", max_value, " ", what);
}

void check_ops(const std::vector<int>& ops, const char* flag) {
  check(!ops.empty(), "data probes: ", flag, " is empty; give operation counts such as 1,2,3");
  for (int op : ops) check_count(op, 1, 8, flag, "(i-GSM operations per problem)");
}

void append(ProbeSet& set, ProbePart part) {
  for (ProbeTrainText& t : part.train) set.train.push_back(std::move(t));
  for (ProbeTask& t : part.tasks) set.tasks.push_back(std::move(t));
  for (std::string& n : part.closed_book_test_people) set.closed_book_test_people.push_back(std::move(n));
  for (std::string& n : part.open_book_test_people) set.open_book_test_people.push_back(std::move(n));
}

std::string joined_documents(const ProbeTrainText& text) {
  std::string out;
  for (const std::string& doc : text.documents) out += (out.empty() ? "" : "\n\n") + doc;
  return out + "\n";
}

void write_text(const std::string& path, const std::string& text) { write_file_atomic(path, text.data(), text.size()); }

nlohmann::json options_json(const ProbeOptions& o) {
  return {{"people", o.people},
          {"paraphrases", o.paraphrases},
          {"test_items", o.test_items},
          {"open_book_train", o.open_book_train},
          {"igsm_train", o.igsm_train},
          {"primitives_train", o.primitives_train},
          {"igsm_ops_train", o.igsm_ops_train},
          {"igsm_ops_test", o.igsm_ops_test},
          {"igsm_distractors", o.igsm_distractors},
          {"igsm_max_operands", o.igsm_max_operands}};
}

size_t longest_item(const ProbeTask& task) {
  size_t longest = 0;
  for (const ProbeItem& item : task.items) longest = std::max(longest, item.context.size() + item.target.size());
  return longest;
}

}  // namespace

void check_probe_options(const ProbeOptions& o) {
  check_count(o.people, 2, probes_detail::name_capacity(), "--people", "(closed-book people)");
  check_count(o.paraphrases, 1, 16, "--paraphrases", "(biographies per person)");
  check_count(o.test_items, 1, 100000, "--test_items", "(items per task file)");
  check_count(o.open_book_train, 0, probes_detail::name_capacity(), "--open_book_train", "(worked open-book examples)");
  check_count(o.igsm_train, 0, 1000000, "--igsm_train", "(solved i-GSM problems)");
  check_count(o.primitives_train, 0, 1000000, "--primitives_train", "(solved primitives per flavour and depth)");
  check_count(o.igsm_distractors, 0, 8, "--igsm_distractors", "(unneeded i-GSM definitions)");
  check_count(o.igsm_max_operands, 1, 4, "--igsm_max_operands", "(operands per i-GSM expression)");
  check_ops(o.igsm_ops_train, "--igsm_ops_train");
  check_ops(o.igsm_ops_test, "--igsm_ops_test");
  int closed_test_pairs = (o.people - o.people / 2) * 6;
  check(o.test_items <= closed_test_pairs, "data probes: --test_items ", o.test_items, " exceeds the ",
        closed_test_pairs, " closed-book questions about the untrained half of --people ", o.people,
        "; raise --people or lower --test_items");
  int names = o.people + o.open_book_train + o.test_items;
  check(names <= probes_detail::name_capacity(), "data probes: --people + --open_book_train + --test_items = ", names,
        " people need distinct names but there are ", probes_detail::name_capacity(), "; lower them");
}

ProbeSet generate_probes(const ProbeOptions& options) {
  check_probe_options(options);
  ProbeSet set;
  append(set, probes_detail::make_people_probes(options));
  append(set, probes_detail::make_igsm_probes(options));
  append(set, probes_detail::make_primitives_probes(options));
  return set;
}

double majority_baseline(const ProbeTask& task) {
  std::map<std::string, std::map<std::string, int>> counts;  // kind -> target -> count
  for (const ProbeItem& item : task.items) counts[item.kind][item.target]++;
  int hits = 0;
  for (const auto& [kind, targets] : counts) {
    int best = 0;
    for (const auto& [target, n] : targets) best = std::max(best, n);
    hits += best;
  }
  return task.items.empty() ? 0.0 : (double)hits / (double)task.items.size();
}

nlohmann::json write_probes(const ProbeSet& probes, const ProbeOptions& options, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir + "/train", ec);
  if (!ec) fs::create_directories(out_dir + "/tasks", ec);
  check(!ec, "data probes: cannot create \"", out_dir, "\" (", ec.message(), "); give a writable --out folder");
  nlohmann::json train = nlohmann::json::object();
  for (const ProbeTrainText& text : probes.train) {
    std::string joined = joined_documents(text);
    write_text(out_dir + "/train/" + text.kind + ".txt", joined);
    train[text.kind] = {
        {"file", "train/" + text.kind + ".txt"}, {"documents", text.documents.size()}, {"bytes", joined.size()}};
  }
  nlohmann::json tasks = nlohmann::json::object();
  for (const ProbeTask& task : probes.tasks) {
    std::string lines;
    for (const ProbeItem& item : task.items) {
      nlohmann::json line = {{"context", item.context}, {"target", item.target}, {"until", {"\n"}}};
      lines += line.dump() + "\n";
    }
    std::string file = "tasks/" + task.name + ".jsonl";
    write_text(out_dir + "/" + file, lines);
    tasks[task.name] = {{"category", task.category},
                        {"items", task.items.size()},
                        {"file", file},
                        {"majority_baseline", majority_baseline(task)},
                        {"longest_item_bytes", longest_item(task)}};
  }
  nlohmann::json summary = {
      {"seed", options.seed}, {"options", options_json(options)}, {"train", train}, {"tasks", tasks}};
  write_text(out_dir + "/probes.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace recur
