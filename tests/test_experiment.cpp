// Experiments: grid specs, the depth fit, and a tiny resumable grid run end to end (results, tables, resume).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "recur/error.h"
#include "recur/experiment.h"
#include "recur/report.h"
#include "test_util.h"

using namespace recur;
namespace fs = std::filesystem;

TEST(Experiment, LoopSpecParsesAndRejects) {
  LoopSpec a = LoopSpec::parse("2x3"), b = LoopSpec::parse("1+2x2+1");
  EXPECT_EQ(a.depth(), 6);
  EXPECT_TRUE(a.looped());
  EXPECT_EQ(b.depth(), 6);
  EXPECT_EQ(b.name(), "1+2x2+1");
  EXPECT_FALSE(LoopSpec::parse("4x1").looped());
  for (const char* bad : {"2y3", "x3", "0x2", "2x0", "1+2x2+", ""}) EXPECT_THROW(LoopSpec::parse(bad), Error) << bad;
}

TEST(Experiment, DepthFitRecoversALogLaw) {
  std::vector<ModelResult> results;
  for (int L : {1, 2, 4, 8}) {
    ModelResult r;
    r.spec = LoopSpec::parse("1x" + std::to_string(L));
    r.mean_accuracy = 0.1 * std::log((double)L) + 0.3;
    results.push_back(r);
  }
  DepthFit fit = fit_depth(results, true);
  EXPECT_EQ(fit.points, 4);  // (1x1) is the first member of the looped family of k = 1
  EXPECT_NEAR(fit.alpha, 0.1, 1e-9);
  EXPECT_NEAR(fit.beta, 0.3, 1e-9);
}

TEST(Experiment, TinyGridRunsAndResumes) {
  ExperimentConfig e;
  e.task = "phop";
  e.task_options = {{"length", 8}, {"p_train", {1, 2}}, {"p_test", {1, 2}}, {"dense", true}};
  e.base.d_model = 16, e.base.n_heads = 2, e.base.n_kv_heads = 2, e.base.d_ff = 32;
  e.models = {LoopSpec::parse("1x1"), LoopSpec::parse("1x2")};
  e.train.steps = 6, e.train.warmup_steps = 2, e.train.batch_size = 4, e.train.eval_every = 0, e.train.save_every = 3,
  e.train.log_every = 0;
  e.eval_examples = 16, e.eval_batch = 8;
  e.out_dir = temp_dir("experiment");
  ExperimentReport first = run_experiment(e, true);
  write_experiment_report(e, first);
  ASSERT_EQ(first.results.size(), 2u);
  for (const ModelResult& r : first.results) {
    EXPECT_EQ(r.steps, 6);
    EXPECT_EQ(r.difficulties, (std::vector<int>{1, 2}));
    EXPECT_GT(r.train_seconds, 0.0);
    EXPECT_GE(r.mean_accuracy, 0.0);
    EXPECT_LE(r.mean_accuracy, 1.0);
  }
  EXPECT_EQ(first.results[0].params, first.results[1].params);  // looping adds no parameters
  EXPECT_NEAR(first.results[1].flops_per_token / first.results[0].flops_per_token, 2.0, 0.2);
  EXPECT_NE(report_markdown(first.results).find("(1x2)"), std::string::npos);
  EXPECT_TRUE(fs::exists(e.out_dir + "/results.csv"));
  EXPECT_TRUE(fs::exists(e.out_dir + "/plot.svg"));
  // a re-run reuses the finished models' results
  ExperimentReport again = run_experiment(e, true);
  ASSERT_EQ(again.results.size(), 2u);
  EXPECT_EQ(again.results[1].mean_accuracy, first.results[1].mean_accuracy);
  EXPECT_EQ(again.results[1].train_seconds, first.results[1].train_seconds);
  EXPECT_EQ(again.results[1].eval_examples, 16);
  // --reevaluate with more examples: evaluated again from the last checkpoint, training untouched
  e.reevaluate = true;
  e.eval_examples = 40;
  ExperimentReport wider = run_experiment(e, true);
  ASSERT_EQ(wider.results.size(), 2u);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(wider.results[i].eval_examples, 40);
    EXPECT_EQ(wider.results[i].train_seconds, first.results[i].train_seconds);
    EXPECT_EQ(wider.results[i].steps, 6);
    // accuracies are multiples of 1/40 now (16 examples could only give multiples of 1/16)
    for (double a : wider.results[i].accuracy) EXPECT_NEAR(a * 40, std::round(a * 40), 1e-9);
  }
  EXPECT_NE(report_markdown(wider.results).find("| 40 |"), std::string::npos);
  // the same model evaluated on a prefix of the same test examples agrees with the recorded result
  e.eval_examples = 16;
  ExperimentReport back = run_experiment(e, true);
  EXPECT_EQ(back.results[1].accuracy, first.results[1].accuracy);
}

TEST(Experiment, GapNeedsDeepAndShallowApartBeyondNoise) {
  auto result = [](const char* name, double acc, int examples) {
    ModelResult r;
    r.spec = LoopSpec::parse(name);
    r.difficulties = {1};
    r.accuracy = {acc};
    r.mean_accuracy = acc;
    r.eval_examples = examples;
    return r;
  };
  // 0.30 vs 0.32 on 2048 examples each: 2 points apart, s.e. of the difference 1.4 points -> within noise
  std::string close =
      report_markdown({result("1x1", 0.30, 2048), result("4x1", 0.32, 2048), result("1x4", 0.31, 2048)});
  EXPECT_NE(close.find("%Gap undefined"), std::string::npos) << close;
  // 0.30 vs 0.60: a gap well beyond noise, (1x4) at 0.45 is half way
  std::string apart =
      report_markdown({result("1x1", 0.30, 2048), result("4x1", 0.60, 2048), result("1x4", 0.45, 2048)});
  EXPECT_NE(apart.find("(1x4) between (1x1) and (4x1): 50%"), std::string::npos) << apart;
}

TEST(Experiment, StderrOfTheMeanAccuracy) {
  ModelResult r;
  r.accuracy = {0.5, 0.5};
  EXPECT_EQ(mean_accuracy_stderr(r), 0.0);  // unknown example count
  r.eval_examples = 100;
  EXPECT_NEAR(mean_accuracy_stderr(r), std::sqrt(2 * 0.25 / 100) / 2, 1e-12);
}
