// metrics.jsonl read back strictly (read_run_totals) and reopened after a kill mid-row (open_metrics_for_append).
#include <gtest/gtest.h>

#include <fstream>

#include "recur/train.h"
#include "test_util.h"

namespace {

std::string write_metrics(const std::string& name, const std::string& text) {
  std::string dir = temp_dir(name);
  std::ofstream(dir + "/metrics.jsonl", std::ios::binary) << text;
  return dir;
}

TEST(RunTotals, SumsTheLastRowOfEachStep) {
  std::string dir =
      write_metrics("totals_ok",
                    "{\"step\":1,\"seconds\":1.5,\"flops\":10}\n\n{\"step\":2,\"seconds\":2,\"flops\":20}\n"
                    "{\"step\":2,\"seconds\":3,\"flops\":20}\n");
  recur::RunTotals t = recur::read_run_totals(dir);
  EXPECT_EQ(t.steps, 2);
  EXPECT_DOUBLE_EQ(t.seconds, 4.5);
  EXPECT_DOUBLE_EQ(t.flops, 30);
}

TEST(RunTotals, CorruptedRowsNameTheFileLineAndFix) {
  using namespace std::string_literals;
  const std::pair<std::string, const char*> cases[] = {
      {"{\"step\":1}\n{\"step\":2,\"lo", "line 2: not valid JSON"},
      {"{\"step\":1}\n[1,2]\n", "line 2: not a metrics row"},
      {"{\"step\":1.5}\n", "line 1: not a metrics row"},
      {"{\"step\":-3}\n", "line 1: not a metrics row"},
      {"{\"step\":1,\"seconds\":\"x\"}\n", "line 1: \"seconds\" is \"x\", not a number >= 0"},
      {"{\"step\":1,\"flops\":-1}\n", "line 1: \"flops\" is -1"},
      {"{\"step\":1}\0garbage\n"s, "line 1: a NUL byte"},
      {"{\"step\":1} {\"step\":2}\n", "line 1: not valid JSON"},
      {"{\"step\":1,\"seconds\":1e999}\n", "line 1: not valid JSON"},
  };
  for (const auto& [text, want] : cases) {
    std::string dir = write_metrics("totals_bad", text);
    std::string error = error_of([&] { recur::read_run_totals(dir); });
    EXPECT_NE(error.find(dir + "/metrics.jsonl " + want), std::string::npos) << text << " -> " << error;
    EXPECT_NE(error.find("; "), std::string::npos) << error;  // and the fix
  }
}

TEST(RunTotals, DeepOrHugeOrMissingInputIsAnError) {
  std::string deep = write_metrics("totals_deep", std::string(100000, '[') + "\n");
  EXPECT_NE(error_of([&] { recur::read_run_totals(deep); }).find("nested deeper"), std::string::npos);
  std::string dir = temp_dir("totals_dir");
  std::filesystem::create_directory(dir + "/metrics.jsonl");
  EXPECT_NE(error_of([&] { recur::read_run_totals(dir); }).find("not a regular file"), std::string::npos);
  EXPECT_NE(error_of([&] { recur::read_run_totals(temp_dir("totals_none")); }).find("does not exist"),
            std::string::npos);
}

TEST(RunTotals, AppendingDropsARowCutShortByAKill) {
  std::string dir = write_metrics("totals_cut", "{\"step\":1,\"seconds\":1}\n{\"step\":2,\"sec");
  {
    std::ofstream metrics;
    recur::open_metrics_for_append(dir, metrics);
    metrics << "{\"step\":2,\"seconds\":2}\n";
  }
  recur::RunTotals t = recur::read_run_totals(dir);
  EXPECT_EQ(t.steps, 2);
  EXPECT_DOUBLE_EQ(t.seconds, 3);
}

}  // namespace
