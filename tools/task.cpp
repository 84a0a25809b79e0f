// tools/task.cpp: `recur task` prints a task's generated examples, as text for reading or as JSON lines for other tools
// (for example reference/train_task.py, which trains the PyTorch reference model on exactly recur's data).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recur/error.h"
#include "recur/tasks.h"

namespace recur::cli {

namespace {

struct TaskDumpOptions {
  std::string task = "phop", task_options = "{}", split = "train", format = "text";
  uint64_t task_seed = 1;
  int64_t count = 10;
  int difficulty = 0;  // 0: cycle through the split's difficulties
};

void add_flags(CLI::App* app, TaskDumpOptions& o) {
  add_task_source_flags(app, o.task, o.task_options, o.task_seed);
  app->add_option("--split", o.split, "train | test")->capture_default_str();
  app->add_option("--count", o.count, "examples to print")->capture_default_str();
  app->add_option("--difficulty", o.difficulty, "only this difficulty (0: cycle through the split's difficulties)")
      ->capture_default_str();
  app->add_option("--format", o.format,
                  "text: one readable example per line; jsonl: difficulty, answer_begin, tokens, dense_targets, text")
      ->capture_default_str();
}

int run_task_dump(const TaskDumpOptions& o) {
  nlohmann::json options = parse_task_options(o.task_options, "task");
  check(o.split == "train" || o.split == "test", "task: --split '" + o.split + "' unknown; use train or test");
  check(o.format == "text" || o.format == "jsonl", "task: --format '" + o.format + "' unknown; use text or jsonl");
  check(o.count >= 0, "task: --count must be >= 0");
  auto task = tasks::make_task(o.task, options, o.task_seed);
  tasks::Split split = o.split == "train" ? tasks::Split::train : tasks::Split::test;
  std::vector<int> difficulties = task->difficulties(split);
  if (o.difficulty != 0) {
    bool known = false;
    for (tasks::Split s : {tasks::Split::train, tasks::Split::test})
      for (int d : task->difficulties(s)) known = known || d == o.difficulty;
    check(known, "task: --difficulty " + std::to_string(o.difficulty) + " is in neither split's difficulty list of " +
                     o.task + "; set it in --task_options or pass 0");
    difficulties = {o.difficulty};
  }
  for (int64_t i = 0; i < o.count; i++) {
    int difficulty = difficulties[(size_t)(i % (int64_t)difficulties.size())];
    tasks::Example e = task->generate(split, (uint64_t)(i / (int64_t)difficulties.size()), difficulty);
    std::string text = task->to_text(e.tokens);
    if (o.format == "text") {
      std::printf("%s\n", text.c_str());
    } else {
      nlohmann::json line = {{"difficulty", e.difficulty},
                             {"answer_begin", e.answer_begin},
                             {"tokens", e.tokens},
                             {"dense_targets", e.dense_targets},
                             {"text", text}};
      std::printf("%s\n", line.dump().c_str());
    }
  }
  return 0;
}

}  // namespace

Command add_task_command(CLI::App& parent) {
  return make_command<TaskDumpOptions>(parent, "task", "print a task's examples (text, or JSON lines for other tools)",
                                       add_flags, run_task_dump);
}

}  // namespace recur::cli
