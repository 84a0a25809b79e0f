// Training: schedules, determinism, exact resume (a run in two pieces equals an uninterrupted one), loss falls
// on a small corpus, data windows and corpus errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "recur/checkpoint.h"
#include "recur/data.h"
#include "recur/error.h"
#include "recur/sample.h"
#include "recur/train.h"
#include "test_util.h"

using namespace recur;
namespace fs = std::filesystem;

namespace {

std::string write_corpus(const std::string& dir) {
  std::string text;
  const char* verses[] = {"In the beginning God created the heaven and the earth. ",
                          "And the earth was without form, and void. ", "And God said, Let there be light. "};
  for (int i = 0; i < 400; i++) text += verses[i % 3];
  std::string path = dir + "/corpus.txt";
  std::ofstream(path) << text;
  return path;
}

ModelConfig small_model() {
  ModelConfig c;
  c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 64, c.n_layers = 2, c.max_seq_len = 32;
  return c;
}

TrainConfig small_training() {
  TrainConfig t;
  t.batch_size = 4, t.seq_len = 32, t.steps = 8, t.warmup_steps = 2, t.lr = 3e-3f;
  t.eval_every = 4, t.eval_batches = 2, t.log_every = 0;
  return t;
}

std::vector<double> losses_in(const std::string& metrics_path) {
  std::vector<double> losses;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) losses.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return losses;
}

TEST(Schedule, WarmupCosineWsd) {
  TrainConfig t;
  t.lr = 1.0f, t.warmup_steps = 10, t.steps = 110, t.min_lr_ratio = 0.1f;
  EXPECT_FLOAT_EQ(lr_at(t, 0), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(t, 9), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(t, 10), 1.0f);
  EXPECT_NEAR(lr_at(t, 60), 0.55f, 1e-6);
  EXPECT_NEAR(lr_at(t, 110), 0.1f, 1e-6);
  t.schedule = "wsd", t.decay_frac = 0.2f, t.steps = 100;
  EXPECT_FLOAT_EQ(lr_at(t, 50), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(t, 79), 1.0f);
  EXPECT_NEAR(lr_at(t, 80), 1.0f - 0.9f / 20, 1e-6);
  EXPECT_NEAR(lr_at(t, 99), 0.1f, 1e-6);
  t.schedule = "sawtooth";
  EXPECT_THROW(t.validate(), Error);
}

TEST(Data, WindowsAreSeededAndShifted) {
  std::vector<uint8_t> text(1000);
  for (size_t i = 0; i < text.size(); i++) text[i] = (uint8_t)(i * 7 % 251);
  Batch a = sample_batch(text, 3, 16, 1, 5, 0), b = sample_batch(text, 3, 16, 1, 5, 0),
        c = sample_batch(text, 3, 16, 1, 6, 0);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NE(a.tokens, c.tokens);
  for (int i = 0; i < 3 * 16; i++)
    if (i % 16 != 15) {
      EXPECT_EQ(a.targets[i], a.tokens[i + 1]);
    }
  EXPECT_THROW(sample_batch(std::vector<uint8_t>(10), 1, 16, 1, 0, 0), Error);
}

TEST(Data, CorpusErrors) {
  std::string dir = temp_dir("corpus");
  EXPECT_THROW(TextCorpus::load(dir + "/missing.txt", 0.1), Error);
  std::ofstream(dir + "/tiny.txt") << "abc";
  EXPECT_THROW(TextCorpus::load(dir + "/tiny.txt", 0.1), Error);
  std::string path = write_corpus(dir);
  TextCorpus c = TextCorpus::load(path, 0.1);
  EXPECT_EQ(c.train.size() + c.val.size(), fs::file_size(path));
  fs::create_directories(dir + "/folder/sub");
  fs::copy_file(path, dir + "/folder/sub/b.txt");
  fs::copy_file(path, dir + "/folder/a.txt");
  TextCorpus f = TextCorpus::load(dir + "/folder", 0.1);
  EXPECT_EQ(f.train.size() + f.val.size(), 2 * fs::file_size(path));
  fs::remove_all(dir);
}

TEST(Train, LossFallsAndSampleRuns) {
  std::string dir = temp_dir("falls");
  TextCorpus corpus = TextCorpus::load(write_corpus(dir), 0.1);
  Model model(small_model());
  model.init_weights(1);
  TrainConfig t = small_training();
  t.steps = 80, t.lr = 1e-2f;
  TrainOptions o;
  o.out_dir = dir + "/run";
  o.quiet = true;
  train_run(model, t, text_batches(corpus.train, t), text_validation(corpus.val, t), o);
  std::vector<double> losses = losses_in(o.out_dir + "/metrics.jsonl");
  ASSERT_EQ(losses.size(), 80u);
  EXPECT_GT(losses.front(), 5.0);  // about ln(256) at the start
  EXPECT_LT(losses.back(), 3.0);   // the repeated verses are easy to learn
  SampleOptions so;
  so.max_new_tokens = 20;
  std::vector<int32_t> prompt = {'A', 'n', 'd'};
  auto out1 = generate(model, prompt, so), out2 = generate(model, prompt, so);
  EXPECT_EQ(out1.size(), 20u);
  EXPECT_EQ(out1, out2);  // seeded
  fs::remove_all(dir);
}

// A run in pieces against an uninterrupted one, in a precision; returns the uninterrupted run's losses.
std::vector<double> expect_resume_exact(Precision precision) {
  std::string dir = temp_dir("resume");
  TextCorpus corpus = TextCorpus::load(write_corpus(dir), 0.1);
  TrainConfig t = small_training();
  t.precision = precision;
  TrainOptions whole;
  whole.out_dir = dir + "/whole";
  whole.quiet = true;
  Model a(small_model());
  a.init_weights(t.seed);
  train_run(a, t, text_batches(corpus.train, t), text_validation(corpus.val, t), whole);

  TrainOptions first = whole;
  first.out_dir = dir + "/pieces";
  first.stop_at = 3;
  Model b(small_model());
  b.init_weights(t.seed);
  train_run(b, t, text_batches(corpus.train, t), text_validation(corpus.val, t), first);
  Model c(small_model());  // a fresh process would start like this
  TrainOptions second = first;
  second.stop_at = 0;
  second.resume_from = first.out_dir;
  train_run(c, t, text_batches(corpus.train, t), text_validation(corpus.val, t), second);

  std::vector<double> la = losses_in(whole.out_dir + "/metrics.jsonl"),
                      lc = losses_in(first.out_dir + "/metrics.jsonl");
  EXPECT_EQ(la.size(), 8u);
  EXPECT_EQ(la, lc);              // bit-identical losses
  EXPECT_EQ(a.params, c.params);  // and weights
  RunTotals whole_totals = read_run_totals(whole.out_dir), piece_totals = read_run_totals(first.out_dir);
  EXPECT_EQ(piece_totals.steps, 8);  // both segments, each step once
  EXPECT_GT(piece_totals.seconds, 0.0);
  EXPECT_DOUBLE_EQ(piece_totals.flops, whole_totals.flops);
  EXPECT_GT(whole_totals.flops, 0.0);

  for (int change = 0; change < 2; change++) {  // another batch size, or another precision, is refused
    TrainConfig changed = t;
    if (change == 0) changed.batch_size = 2;
    if (change == 1) changed.precision = precision == Precision::f32 ? Precision::bf16 : Precision::f32;
    Model d(small_model());
    EXPECT_ERROR(train_run(d, changed, text_batches(corpus.train, changed), nullptr, second),
                 "differ from the checkpoint's");
  }
  fs::remove_all(dir);
  return la;
}

// Exact in f32 and in bf16 (the bf16 copy is rebuilt from the resumed f32 weights); bf16 trains another trajectory.
TEST(Train, ResumeEqualsUninterrupted) {
  std::vector<double> f32 = expect_resume_exact(Precision::f32), bf16 = expect_resume_exact(Precision::bf16);
  EXPECT_NE(f32, bf16);
  EXPECT_NEAR(f32.back(), bf16.back(), 0.05 * f32.back());
}

TEST(Train, DeterministicForSeed) {
  std::string dir = temp_dir("det");
  TextCorpus corpus = TextCorpus::load(write_corpus(dir), 0.1);
  TrainConfig t = small_training();
  t.steps = 3;
  ParamBuffer params[2];
  for (int i = 0; i < 2; i++) {
    Model m(small_model());
    m.init_weights(t.seed);
    TrainPass pass(m);
    AdamW opt;
    opt.init(m.n_params());
    for (int s = 0; s < 3; s++) train_step(m, pass, opt, t, text_batches(corpus.train, t));
    params[i] = m.params;
  }
  EXPECT_EQ(params[0], params[1]);
  fs::remove_all(dir);
}

}  // namespace

// Expert-choice validation also reports the loss under the causal routing rule that decoding uses.
TEST(Train, ExpertChoiceValidationReportsCausalLoss) {
  std::string dir = temp_dir("mor_validation");
  TextCorpus corpus = TextCorpus::load(write_corpus(dir), 0.1);
  ModelConfig c = small_model();
  c.sharing = Sharing::cycle, c.n_layers = 3, c.n_recursions = 3, c.mor_routing = MorRouting::expert;
  c.validate();
  Model m(c);
  m.init_weights(2);
  TrainConfig t = small_training();
  TrainPass pass(m);
  EvalMetrics metrics = text_validation(corpus.val, t)(pass);
  std::map<std::string, double> by_name(metrics.begin(), metrics.end());
  ASSERT_TRUE(by_name.count("val_loss_causal"));
  EXPECT_TRUE(std::isfinite(by_name["val_loss_causal"]));
  EXPECT_TRUE(by_name.count("mor_active_2"));
  // the model is left routing by top-k for training
  Batch batch = sample_batch(corpus.val, t.batch_size, t.seq_len, 0xE7A1, 0, 0);
  pass.forward(batch.tokens.data(), batch.targets.data(), t.batch_size, t.seq_len);
  EXPECT_NEAR(pass.mor_stats().active_fraction[2], 1.0 / 3, 0.05);
}
