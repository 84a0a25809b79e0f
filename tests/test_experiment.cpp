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

static ModelResult result_of(const char* name, std::vector<double> accuracy, uint64_t seed = 0, int examples = 0) {
  ModelResult r;
  r.spec = LoopSpec::parse(name);
  for (size_t d = 0; d < accuracy.size(); d++) r.difficulties.push_back((int)d + 1);
  r.accuracy = accuracy;
  for (double a : accuracy) r.mean_accuracy += a / accuracy.size();
  r.seed = seed;
  r.eval_examples = examples;
  return r;
}

TEST(Experiment, DepthFitRecoversALogLawAndKeepsTheFamiliesApart) {
  std::vector<ModelResult> results;
  for (int L : {1, 2, 4, 8}) {
    std::string name = "1x" + std::to_string(L);
    results.push_back(result_of(name.c_str(), {0.1 * std::log((double)L) + 0.3}));
  }
  for (int k : {2, 4}) {
    std::string name = std::to_string(k) + "x1";
    results.push_back(result_of(name.c_str(), {0.05 * std::log((double)k) + 0.3}));
  }
  DepthFit looped = fit_depth(results, true), flat = fit_depth(results, false);
  // (1x1) is the same model as the deep family's first member: it counts there, not in the looped family
  EXPECT_EQ(looped.models, (std::vector<std::string>{"1x2", "1x4", "1x8"}));
  EXPECT_EQ(flat.models, (std::vector<std::string>{"1x1", "2x1", "4x1"}));
  EXPECT_EQ(looped.points, 3);
  EXPECT_NEAR(looped.alpha, 0.1, 1e-9);
  EXPECT_NEAR(looped.beta, 0.3, 1e-9);
  EXPECT_NEAR(flat.alpha, 0.05, 1e-9);
  std::string report = report_markdown(results);
  EXPECT_NE(report.find("looped on (1x2), (1x4), (1x8): α = 0.100"), std::string::npos) << report;
  EXPECT_NE(report.find("non-looped on (1x1), (2x1), (4x1): α = 0.050"), std::string::npos) << report;
  // one looped model cannot be fitted, and the report says which it had
  DepthFit lone = fit_depth({results[0], results[1]}, true);
  EXPECT_EQ(lone.points, 0);
  EXPECT_EQ(lone.models, (std::vector<std::string>{"1x2"}));
}

TEST(Experiment, SeedsAggregateToMeanAndStandardError) {
  // (1x2) on three seeds, two difficulties: means 0.5, 0.6, 0.7 of the runs
  std::vector<ModelResult> runs = {result_of("1x2", {0.4, 0.6}, 1), result_of("1x1", {0.2, 0.2}, 1),
                                   result_of("1x2", {0.5, 0.7}, 2), result_of("1x1", {0.3, 0.1}, 2),
                                   result_of("1x2", {0.6, 0.8}, 3), result_of("1x1", {0.1, 0.3}, 3)};
  std::vector<ModelResult> cells = aggregate_seeds(runs);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].spec.name(), "1x2");  // in order of first appearance
  EXPECT_EQ(cells[0].n_seeds, 3);
  EXPECT_NEAR(cells[0].mean_accuracy, 0.6, 1e-12);
  // sample sd of (0.5, 0.6, 0.7) is 0.1; s.e. 0.1/sqrt(3)
  EXPECT_NEAR(cells[0].mean_accuracy_seed_stderr, 0.1 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(mean_accuracy_stderr(cells[0]), 0.1 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(cells[0].accuracy[0], 0.5, 1e-12);
  EXPECT_NEAR(cells[0].accuracy_seed_stderr[1], 0.1 / std::sqrt(3.0), 1e-12);
  EXPECT_EQ(cells[0].seed_mean_accuracy.size(), 3u);
  // (1x1): means 0.2 each seed, per difficulty (0.2, 0.3, 0.1): s.e. 0.1/sqrt(3), of the mean 0
  EXPECT_NEAR(cells[1].mean_accuracy, 0.2, 1e-12);
  EXPECT_NEAR(cells[1].mean_accuracy_seed_stderr, 0.0, 1e-12);
  EXPECT_NEAR(cells[1].accuracy_seed_stderr[0], 0.1 / std::sqrt(3.0), 1e-12);
  MeanStderr m = mean_stderr({1, 2, 3, 4});
  EXPECT_NEAR(m.mean, 2.5, 1e-12);
  EXPECT_NEAR(m.se, std::sqrt(5.0 / 3 / 4), 1e-12);
  EXPECT_EQ(mean_stderr({7}).se, 0.0);
  std::string report = report_markdown(cells, runs);
  EXPECT_NE(report.find("| 50.0 ± 5.8 | 70.0 ± 5.8 | 60.0 | 5.8 | 3 |"), std::string::npos) << report;
}

TEST(Experiment, AlphaAndGapOverSeeds) {
  // per seed s: (1x1) 0.2, (4x1) 0.2 + 0.4·c_s, (1x4) 0.2 + 0.4·c_s·g_s with gaps g = 0.5, 0.7 and c = 1, 0.5
  std::vector<ModelResult> runs;
  double c[2] = {1.0, 0.5}, g[2] = {0.5, 0.7};
  for (int s = 0; s < 2; s++) {
    runs.push_back(result_of("1x1", {0.2}, s, 1000));
    runs.push_back(result_of("4x1", {0.2 + 0.4 * c[s]}, s, 1000));
    runs.push_back(result_of("1x4", {0.2 + 0.4 * c[s] * g[s]}, s, 1000));
    runs.push_back(result_of("1x2", {0.2 + 0.2 * c[s] * g[s]}, s, 1000));
  }
  std::vector<ModelResult> cells = aggregate_seeds(runs);
  std::vector<LoopGap> gaps = loop_gaps(cells, runs);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].looped, "1x4");
  EXPECT_EQ(gaps[0].per_seed.n, 2);
  EXPECT_NEAR(gaps[0].per_seed.mean, 0.6, 1e-12);
  EXPECT_NEAR(gaps[0].per_seed.se, 0.1, 1e-12);  // sd of (0.5, 0.7) is 0.1414, / sqrt(2)
  // α per seed: looped (1x2, 1x4) rise 0.2·c·g per ln 2, non-looped (1x1, 4x1) 0.4·c per ln 4
  DepthFitSpread spread = fit_depth_over_seeds(runs);
  EXPECT_EQ(spread.alpha_looped.n, 2);
  EXPECT_NEAR(spread.alpha_looped.mean, (0.2 * 0.5 + 0.2 * 0.35) / 2 / std::log(2.0), 1e-9);
  EXPECT_NEAR(spread.alpha_non_looped.mean, (0.4 + 0.2) / 2 / std::log(4.0), 1e-9);
  EXPECT_NEAR(spread.alpha_ratio.mean, 0.6, 1e-9);  // (0.2cg/ln2)/(0.4c/ln4) = g
  EXPECT_NEAR(spread.alpha_ratio.se, 0.1, 1e-9);
  std::string report = report_markdown(cells, runs);
  EXPECT_NE(report.find("per seed 60% ± 10% (2 seeds)"), std::string::npos) << report;
  EXPECT_NE(report.find("per seed 0.60 ± 0.10 (2 seeds)"), std::string::npos) << report;
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
  auto result = [](const char* name, double acc, int examples) { return result_of(name, {acc}, 0, examples); };
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

TEST(Experiment, SeedsTrainApartAndResume) {
  ExperimentConfig e;
  e.task = "phop";
  e.task_options = {{"length", 8}, {"p_train", {1}}, {"p_test", {1}}, {"dense", true}};
  e.base.d_model = 16, e.base.n_heads = 2, e.base.n_kv_heads = 2, e.base.d_ff = 32;
  e.models = {LoopSpec::parse("1x1")};
  e.train.steps = 4, e.train.warmup_steps = 1, e.train.batch_size = 4, e.train.eval_every = 0, e.train.save_every = 2,
  e.train.log_every = 0, e.train.seed = 7;
  e.eval_examples = 16, e.eval_batch = 8, e.seeds = 2;
  e.out_dir = temp_dir("experiment_seeds");
  ExperimentReport first = run_experiment(e, true);
  ASSERT_EQ(first.runs.size(), 2u);
  EXPECT_EQ(first.runs[0].seed, 7u);
  EXPECT_EQ(first.runs[1].seed, 8u);
  EXPECT_TRUE(fs::exists(e.out_dir + "/models/1x1/result.json"));
  EXPECT_TRUE(fs::exists(e.out_dir + "/models/1x1.seed1/result.json"));
  ASSERT_EQ(first.results.size(), 1u);
  EXPECT_EQ(first.results[0].n_seeds, 2);
  EXPECT_NEAR(first.results[0].mean_accuracy, (first.runs[0].mean_accuracy + first.runs[1].mean_accuracy) / 2, 1e-12);
  write_experiment_report(e, first);
  EXPECT_TRUE(fs::exists(e.out_dir + "/results.json"));
  // a third seed trains only the new run; the first two are reused
  e.seeds = 3;
  ExperimentReport more = run_experiment(e, true);
  ASSERT_EQ(more.runs.size(), 3u);
  EXPECT_EQ(more.runs[1].train_seconds, first.runs[1].train_seconds);
  EXPECT_EQ(more.runs[2].seed, 9u);
  EXPECT_EQ(more.results[0].n_seeds, 3);
  e.seeds = 0;
  EXPECT_THROW(run_experiment(e, true), Error);
  fs::remove_all(e.out_dir);
}
