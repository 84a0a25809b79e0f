// The generated LM probes (recur/probes.h): deterministic bytes, no test item in the training text, closed-book
// test people in the biographies only, open-book test people nowhere in training, 256-byte items, option errors.
// tests/probes_check.py re-derives every answer with independent solvers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/probes.h"
#include "test_util.h"

namespace recur {
namespace {

std::string training_text(const ProbeSet& set) {
  std::string text;
  for (const ProbeTrainText& t : set.train) {
    for (const std::string& doc : t.documents) text += doc + "\n\n";
  }
  return text;
}

const ProbeTrainText& train_kind(const ProbeSet& set, const std::string& kind) {
  for (const ProbeTrainText& t : set.train) {
    if (t.kind == kind) return t;
  }
  throw Error("no training text " + kind);
}

bool same_probes(const ProbeSet& a, const ProbeSet& b) {
  if (training_text(a) != training_text(b) || a.tasks.size() != b.tasks.size()) return false;
  for (size_t t = 0; t < a.tasks.size(); t++) {
    if (a.tasks[t].items.size() != b.tasks[t].items.size()) return false;
    for (size_t i = 0; i < a.tasks[t].items.size(); i++) {
      if (a.tasks[t].items[i].context != b.tasks[t].items[i].context ||
          a.tasks[t].items[i].target != b.tasks[t].items[i].target)
        return false;
    }
  }
  return true;
}

// Generated once at the defaults and shared by the tests below.
const ProbeSet& default_probes() {
  static const ProbeSet set = generate_probes(ProbeOptions{});
  return set;
}

TEST(Probes, SameSeedSameBytesOtherSeedDiffers) {
  ProbeOptions small;
  small.people = 40;
  small.test_items = 30;
  small.open_book_train = 20;
  small.igsm_train = 50;
  small.primitives_train = 20;
  ProbeSet a = generate_probes(small), b = generate_probes(small);
  EXPECT_TRUE(same_probes(a, b));
  small.seed = 7;
  EXPECT_FALSE(same_probes(a, generate_probes(small)));
  for (const ProbeTask& task : a.tasks) EXPECT_EQ(task.items.size(), 30u) << task.name;
}

TEST(Probes, WrittenFilesAreIdenticalAcrossRuns) {
  ProbeOptions small;
  small.people = 20;
  small.test_items = 10;
  small.open_book_train = small.igsm_train = small.primitives_train = 10;
  std::string dir_a = temp_dir("probes_a"), dir_b = temp_dir("probes_b");
  write_probes(generate_probes(small), small, dir_a);
  write_probes(generate_probes(small), small, dir_b);
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_a)) {
    if (!entry.is_regular_file()) continue;
    std::string rel = std::filesystem::relative(entry.path(), dir_a).string();
    EXPECT_EQ(read(entry.path().string()), read(dir_b + "/" + rel)) << rel;
    files++;
  }
  EXPECT_EQ(files, 5 + 7 + 1);  // train kinds, task files, probes.json
  nlohmann::json summary = nlohmann::json::parse(read(dir_a + "/probes.json"));
  EXPECT_EQ(summary["tasks"]["igsm"]["category"], "math_word");
  EXPECT_EQ(summary["tasks"]["primitives_code_d1"]["file"], "tasks/primitives_code_d1.jsonl");
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}

TEST(Probes, NoTestItemInTheTrainingTextAndAllFit256Bytes) {
  const ProbeSet& set = default_probes();
  std::string train = training_text(set);
  ASSERT_EQ(set.tasks.size(), 7u);
  for (const ProbeTask& task : set.tasks) {
    ASSERT_EQ(task.items.size(), 200u) << task.name;
    for (const ProbeItem& item : task.items) {
      EXPECT_EQ(train.find(item.context + item.target), std::string::npos) << task.name << ": " << item.context;
      EXPECT_LE(item.context.size() + item.target.size(), 256u) << task.name << ": " << item.context;
      EXPECT_EQ(item.target.substr(0, 1), " ") << task.name;
    }
  }
}

TEST(Probes, ClosedBookPeopleAreInTheBiographiesButNotInTheTrainingQa) {
  const ProbeSet& set = default_probes();
  std::string bios;
  for (const std::string& doc : train_kind(set, "bios").documents) bios += doc + "\n";
  std::string qa;
  for (const std::string& doc : train_kind(set, "qa_closed").documents) qa += doc + "\n";
  ASSERT_EQ(set.closed_book_test_people.size(), 200u);
  for (const std::string& name : set.closed_book_test_people) {
    EXPECT_NE(bios.find(name + " "), std::string::npos) << name;
    EXPECT_EQ(qa.find(name), std::string::npos) << name;
  }
  for (const ProbeItem& item : set.tasks[0].items) {
    EXPECT_EQ(qa.find(item.context.substr(0, item.context.find('\n'))), std::string::npos) << item.context;
  }
}

TEST(Probes, OpenBookTestPeopleAppearNowhereInTraining) {
  const ProbeSet& set = default_probes();
  std::string train = training_text(set);
  ASSERT_EQ(set.open_book_test_people.size(), 200u);
  for (const std::string& name : set.open_book_test_people) EXPECT_EQ(train.find(name), std::string::npos) << name;
}

TEST(Probes, MajorityBaselineCountsTheCommonestTargetPerKind) {
  ProbeTask task{"t", "c", {{"q", " a", "x"}, {"q", " a", "x"}, {"q", " b", "x"}, {"q", " c", "y"}}};
  EXPECT_DOUBLE_EQ(majority_baseline(task), 0.75);
}

TEST(Probes, BadOptionsGetClearErrors) {
  ProbeOptions o;
  o.paraphrases = 0;
  EXPECT_ERROR(check_probe_options(o), "--paraphrases 0 is out of range");
  o = ProbeOptions{};
  o.people = 2000;
  EXPECT_ERROR(check_probe_options(o), "need distinct names");
  o = ProbeOptions{};
  o.people = 10;
  EXPECT_ERROR(check_probe_options(o), "raise --people or lower --test_items");
  o = ProbeOptions{};
  o.igsm_ops_test = {};
  EXPECT_ERROR(check_probe_options(o), "--igsm_ops_test is empty");
  o = ProbeOptions{};
  o.igsm_ops_train = {0};
  EXPECT_ERROR(check_probe_options(o), "--igsm_ops_train 0 is out of range");
  o = ProbeOptions{};
  o.test_items = 10;
  o.open_book_train = o.igsm_train = o.primitives_train = 0;
  o.igsm_ops_test = {8};
  o.igsm_distractors = 8;  // every problem is longer than 256 bytes
  EXPECT_ERROR(generate_probes(o), "distinct examples of at most 256 bytes");
}

}  // namespace
}  // namespace recur
