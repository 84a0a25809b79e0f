// Few-shot task files: one JSON item per line, multiple choice {"context", "choices", "gold"} or generation
// {"context", "target", "until"}, one kind per file, each file a task named by its stem.
#include <filesystem>
#include <fstream>
#include <map>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/harness.h"

namespace recur {

const char* task_kind_name(TaskKind kind) { return kind == TaskKind::generation ? "generation" : "multiple_choice"; }

namespace {

constexpr const char* kLayouts =
    "{\"context\": text, \"choices\": [two or more texts], \"gold\": index} (multiple choice) or "
    "{\"context\": text, \"target\": text, \"until\": [texts]} (generation)";

FewShotItem multiple_choice_item(const nlohmann::json& j, const std::string& where) {
  check(j["context"].is_string() && j["choices"].is_array() && j["choices"].size() >= 2 && j.contains("gold") &&
            j["gold"].is_number_integer(),
        "eval: ", where, " needs {\"context\": text, \"choices\": [two or more texts], \"gold\": index}");
  FewShotItem item;
  item.context = j["context"].get<std::string>();
  for (const nlohmann::json& c : j["choices"]) {
    check(c.is_string() && !c.get<std::string>().empty(), "eval: ", where, ": every choice must be a non-empty text");
    item.choices.push_back(c.get<std::string>());
  }
  item.gold = j["gold"].get<int>();
  check(item.gold >= 0 && item.gold < (int)item.choices.size(), "eval: ", where, ": gold ", item.gold,
        " is not an index into its ", item.choices.size(), " choices");
  return item;
}

FewShotItem generation_item(const nlohmann::json& j, const std::string& where) {
  check(j["context"].is_string(), "eval: ", where, ": \"context\" must be a text");
  check(j["target"].is_string(), "eval: ", where, ": \"target\" must be a text (the expected output), not ",
        brief_json(j["target"]));
  FewShotItem item;
  item.context = j["context"].get<std::string>();
  item.target = j["target"].get<std::string>();
  check(item.target.find_first_not_of(" \t\n\r\f\v") != std::string::npos, "eval: ", where,
        ": the target is empty (or only whitespace); give the expected output");
  if (j.contains("until")) {
    const nlohmann::json& until = j["until"];
    bool texts = until.is_array();
    for (size_t k = 0; texts && k < until.size(); k++)
      texts = until[k].is_string() && !until[k].get<std::string>().empty();
    check(texts, "eval: ", where, ": \"until\" must be a list of non-empty texts, e.g. [\"\\n\"] (the default ",
          "when it is left out)");
    item.until = until.get<std::vector<std::string>>();
  }
  return item;
}

}  // namespace

FewShotTask read_fewshot_task(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "eval: cannot read ", path, "; give a JSONL file of ", kLayouts, " lines");
  FewShotTask task;
  task.name = std::filesystem::path(path).stem().string(), task.file = path;
  std::string line;
  int64_t first_line = 0;
  for (int64_t line_no = 1; std::getline(in, line); line_no++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = path + " line " + std::to_string(line_no);
    nlohmann::json j = parse_json_strict(line, "eval: " + where, uint64_t(16) << 20);
    check(j.is_object() && j.contains("context") && (j.contains("choices") != j.contains("target")), "eval: ", where,
          " needs ", kLayouts);
    TaskKind kind = j.contains("target") ? TaskKind::generation : TaskKind::multiple_choice;
    if (task.items.empty()) task.kind = kind, first_line = line_no;
    check(kind == task.kind, "eval: ", where, " is a ", task_kind_name(kind), " item but line ", first_line, " is ",
          task_kind_name(task.kind), "; one file holds one kind: put the ", task_kind_name(kind),
          " items in a file of their own");
    task.items.push_back(kind == TaskKind::generation ? generation_item(j, where) : multiple_choice_item(j, where));
  }
  check(!task.items.empty(), "eval: ", path, " holds no items");
  return task;
}

std::vector<FewShotTask> read_fewshot_tasks(const std::vector<std::string>& paths) {
  std::map<std::string, std::string> file_of;  // stem -> file
  std::vector<FewShotTask> tasks;
  for (const std::string& path : paths) {
    std::string stem = std::filesystem::path(path).stem().string();
    auto [it, fresh] = file_of.emplace(stem, path);
    check(fresh, "eval: ", it->second, " and ", path, " are both task \"", stem,
          "\" (a task is named by its file's stem); rename one of them");
    tasks.push_back(read_fewshot_task(path));
  }
  return tasks;
}

}  // namespace recur
