// Model features beyond parity: running a looped model at another loop count, sampled loop counts in
// training, the regularizer's fixed points, and errors for features that need a looped block.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "recur/error.h"
#include "recur/expert_choice.h"
#include "recur/model.h"
#include "recur/rng.h"
#include "recur/token_choice.h"
#include "recur/train.h"

using namespace recur;

namespace {

ModelConfig looped(int L) {
  ModelConfig c;
  c.vocab_size = 32, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48, c.max_seq_len = 16;
  c.prelude = 1, c.loop_block = 2, c.loop_count = L, c.coda = 1, c.n_layers = 2 + 2 * L;
  return c;
}

std::vector<int32_t> tokens(int n, int V) {
  Rng rng(3);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)rng.uniform(V);
  return t;
}

TEST(Model, RunAtAnotherLoopCount) {
  Model trained(looped(3));
  trained.init_weights(1);
  Model reference(looped(5));
  reference.params = trained.params;  // same unique weights: the loop count does not change the parameters
  auto t = tokens(2 * 16, 32);
  trained.set_loop_count(5);
  EXPECT_EQ(trained.config().n_layers, 12);
  TrainPass trained_pass(trained), reference_pass(reference);
  trained_pass.forward(t.data(), nullptr, 2, 16);
  reference_pass.forward(t.data(), nullptr, 2, 16);
  EXPECT_EQ(0, std::memcmp(trained_pass.logits(), reference_pass.logits(), sizeof(float) * 2 * 16 * 32));
  Model flat(ModelConfig{});
  EXPECT_THROW(flat.set_loop_count(2), Error);
}

TEST(Model, SampledLoopCountsTrainAndRestore) {
  Model model(looped(2));
  model.init_weights(2);
  TrainConfig tc;
  tc.batch_size = 2, tc.seq_len = 16, tc.steps = 6, tc.warmup_steps = 1, tc.loop_count_min = 1, tc.loop_count_max = 4;
  TrainPass pass(model);
  AdamW opt;
  opt.init(model.n_params());
  std::vector<uint8_t> text(500);
  for (size_t i = 0; i < text.size(); i++) text[i] = (uint8_t)(i % 31);
  for (int s = 0; s < 6; s++) {
    StepMetrics m = train_step(model, pass, opt, tc, [&](int64_t step, int micro) {
      Batch b = sample_batch(text, 2, 16, 1, step, micro);
      return b;
    });
    EXPECT_TRUE(std::isfinite(m.loss));
    EXPECT_EQ(model.config().loop_count, 2);  // restored after each step
  }
}

TEST(Model, RegularizerIsZeroForIdenticalBlocksAndPositiveOtherwise) {
  ModelConfig c;
  c.vocab_size = 32, c.d_model = 16, c.n_heads = 2, c.n_kv_heads = 2, c.d_ff = 24, c.n_layers = 4, c.max_seq_len = 8;
  c.loop_reg_k = 2, c.loop_reg_lambda = 3.0f;
  Model model(c);
  model.init_weights(4);
  EXPECT_GT(loop_regularizer(model, nullptr), 2.0f);  // random layers are nearly orthogonal: about λ
  // copy layers 0,1 onto 2,3: every cosine is 1, the regularizer vanishes
  for (const ParamInfo& p : model.param_table()) {
    for (int l : {0, 1}) {
      std::string prefix = "model.layers." + std::to_string(l) + ".";
      if (p.name.rfind(prefix, 0) != 0) continue;
      const ParamInfo& q = model.param("model.layers." + std::to_string(l + 2) + "." + p.name.substr(prefix.size()));
      std::copy(model.params.begin() + p.offset, model.params.begin() + p.offset + p.numel,
                model.params.begin() + q.offset);
    }
  }
  EXPECT_NEAR(loop_regularizer(model, nullptr), 0.0f, 1e-5);
}

TEST(Model, LoopingFeaturesNeedALoop) {
  ModelConfig c;
  c.input_injection = InputInjection::add;
  EXPECT_THROW(c.validate(), Error);
  ModelConfig r;
  r.loop_reg_k = 3;  // 4 layers: not divisible
  EXPECT_THROW(r.validate(), Error);
  r.loop_reg_k = 2, r.sharing = Sharing::cycle, r.n_recursions = 2;
  EXPECT_THROW(r.validate(), Error);
}

}  // namespace

namespace {

ModelConfig mor_config(const char* routing, std::vector<float> capacity = {}) {
  ModelConfig c;
  c.vocab_size = 32, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48, c.max_seq_len = 24;
  c.sharing = Sharing::cycle, c.n_layers = 6, c.n_recursions = 3;
  c.mor_routing = std::string(routing) == "expert" ? MorRouting::expert : MorRouting::token;
  c.mor_capacity = capacity;
  c.validate();
  return c;
}

TEST(Mor, SkippedTokensCostNoFlopsOrMemory) {
  auto t = tokens(4 * 24, 32);
  Model full(mor_config("expert", {1, 1, 1})), routed(mor_config("expert"));
  routed.params = full.params;
  TrainPass full_pass(full), routed_pass(routed);
  full_pass.forward(t.data(), nullptr, 4, 24);
  routed_pass.forward(t.data(), nullptr, 4, 24);
  MorStats s = routed_pass.mor_stats();
  ASSERT_EQ(s.active_fraction.size(), 3u);
  EXPECT_DOUBLE_EQ(s.active_fraction[0], 1.0);
  EXPECT_DOUBLE_EQ(s.active_fraction[1], 16.0 / 24);  // floor(2/3 · 24) per sequence
  EXPECT_DOUBLE_EQ(s.active_fraction[2], 8.0 / 24);
  // the block's matmuls ran on 1 + 2/3 + 1/3 of the tokens: about 2/3 of the full model's FLOPs
  double ratio = routed_pass.last_forward_flops() / full_pass.last_forward_flops();
  EXPECT_GT(ratio, 0.55);
  EXPECT_LT(ratio, 0.72);
  EXPECT_LT(routed_pass.activation_bytes(), 0.85 * full_pass.activation_bytes());
}

// forward_flops_per_token (used to match training budgets) predicts what last_forward_flops counts as run.
TEST(Mor, ExpectedFlopsPerTokenMatchWhatRan) {
  const int B = 3, T = 24;
  auto t = tokens(B * T, 32);
  for (bool kv_sharing : {false, true}) {
    ModelConfig c = mor_config("expert");
    c.mor_kv_sharing = kv_sharing;
    Model m(c);
    m.init_weights(5);
    TrainPass pass(m);
    pass.forward(t.data(), nullptr, B, T);
    double predicted = m.forward_flops_per_token(T) * B * T;
    // exact up to the router term without sharing; with it, the chosen tokens' positions set the key counts
    EXPECT_NEAR(pass.last_forward_flops() / predicted, 1.0, kv_sharing ? 0.03 : 1e-3) << "kv_sharing " << kv_sharing;
  }
  ModelConfig dense = mor_config("expert");
  dense.mor_routing = MorRouting::none;
  Model d(dense);
  TrainPass dense_pass(d);
  dense_pass.forward(t.data(), nullptr, B, T);
  EXPECT_NEAR(dense_pass.last_forward_flops() / (d.forward_flops_per_token(T) * B * T), 1.0, 1e-12);
  // KV sharing skips K/V projections and, at full capacity, scores the same pairs
  ModelConfig shared = mor_config("expert", {1, 1, 1}), unshared = shared;
  shared.mor_kv_sharing = true;
  EXPECT_LT(Model(shared).forward_flops_per_token(T), Model(unshared).forward_flops_per_token(T));
}

TEST(Mor, TopKIsHierarchicalAndCausalRuleIsReported) {
  auto t = tokens(2 * 24, 32);
  Model m(mor_config("expert"));
  m.init_weights(9);
  TrainPass pass(m);
  pass.forward(t.data(), nullptr, 2, 24);
  MorStats s = pass.mor_stats();
  EXPECT_GE(s.causal_agreement, 0.0);
  EXPECT_LE(s.causal_agreement, 1.0);
  EXPECT_NEAR(s.depth_load[0] + s.depth_load[1] + s.depth_load[2], 1.0, 1e-12);
}

// Dead tokens: never selected by a router that had a choice, under the rule the pass used; none if no router chose.
TEST(Mor, DeadTokensFollowTheRuleUsed) {
  EXPECT_DOUBLE_EQ(expert_dead_token_ratio({kNoChoice, kNotChosen, kChosen, kChosen}), 1.0 / 3);
  EXPECT_DOUBLE_EQ(expert_dead_token_ratio({kNoChoice, kNoChoice}), 0.0);
  auto t = tokens(2 * 24, 32);
  auto dead = [&](std::vector<float> capacity, bool causal) {
    Model m(mor_config("expert", capacity));
    m.init_weights(9);
    for (size_t offset : m.offsets().expert_router)  // z = 0 for every token: the causal rule continues them all
      std::fill(m.params.begin() + offset, m.params.begin() + offset + 32, 0.0f);
    TrainPass pass(m);
    pass.set_mor_causal_routing(causal);
    pass.forward(t.data(), nullptr, 2, 24);
    return pass.mor_stats().dead_token_ratio;
  };
  EXPECT_DOUBLE_EQ(dead({1, 1, 1}, false), 0.0);       // no step chooses (it was 1 before the fix)
  EXPECT_DOUBLE_EQ(dead({1, 0.5, 0.25}, false), 0.5);  // top-k: half of each sequence is left out at step 1
  EXPECT_DOUBLE_EQ(dead({1, 0.5, 0.25}, true), 0.0);   // causal: every logit is >= 0, every token continues
  // validation logs both rules: top-k's dead tokens and active fractions, and the causal rule's beside them
  Model m(mor_config("expert", {1, 0.5, 0.25}));
  for (size_t offset : m.offsets().expert_router)
    std::fill(m.params.begin() + offset, m.params.begin() + offset + 32, 0.0f);
  std::vector<uint8_t> text(400);
  for (size_t i = 0; i < text.size(); i++) text[i] = (uint8_t)(i * 7 % 32);
  TrainConfig tc;
  tc.batch_size = 2, tc.seq_len = 24, tc.eval_batches = 1;
  TrainPass pass(m);
  std::map<std::string, double> logged;
  for (const auto& [name, value] : text_validation(text, tc)(pass)) logged[name] = value;
  EXPECT_DOUBLE_EQ(logged.at("mor_dead_tokens"), 0.5);
  EXPECT_DOUBLE_EQ(logged.at("mor_dead_tokens_causal"), 0.0);
  EXPECT_DOUBLE_EQ(logged.at("mor_active_1"), 0.5);
  EXPECT_DOUBLE_EQ(logged.at("mor_active_1_causal"), 1.0);
}

// The causal rule's bias moves against the excess of causal continues over top-k's choices by rate·σ·excess, and
// repeated on a batch it settles where the causal rule runs top-k's capacities (1, 2/3, 1/3) and mostly agrees
// with it, whatever the logits' scale.
TEST(Mor, ExpertChoiceCausalBiasCalibratesToCapacities) {
  for (float scale : {1.0f, 4.0f}) {
    Model m(mor_config("expert"));
    m.init_weights(3);
    for (float& w : m.params) w *= scale;
    const int B = 16, T = 24;
    auto t = tokens(B * T, 32);
    TrainPass pass(m);
    pass.forward(t.data(), nullptr, B, T);
    std::vector<double> sums = pass.mor_stats().causal_sums;
    ASSERT_EQ(sums.size(), 3u * kCausalSums);
    EXPECT_EQ(sums[1], 0.0);                        // capacity 1: no choice, no candidates counted
    EXPECT_NEAR(sums[kCausalSums + 1], 1.0, 1e-9);  // step 1 chooses among every token
    const double* s = &sums[kCausalSums];
    double sigma = std::sqrt(s[3] / s[1] - (s[2] / s[1]) * (s[2] / s[1]));
    expert_update_bias(m, sums, 0.5f);
    EXPECT_FLOAT_EQ(m.mor_bias[1], (float)(-0.5 * sigma * s[0] / s[1]));
    for (int i = 0; i < 100; i++) {
      pass.forward(t.data(), nullptr, B, T);
      expert_update_bias(m, pass.mor_stats().causal_sums, 0.5f);
    }
    pass.forward(t.data(), nullptr, B, T);
    double agreement = pass.mor_stats().causal_agreement;
    pass.set_mor_causal_routing(true);
    pass.forward(t.data(), nullptr, B, T);
    const std::vector<double>& active = pass.mor_stats().active_fraction;
    EXPECT_NEAR(active[1], 2.0 / 3, 0.02) << "scale " << scale;
    EXPECT_NEAR(active[2], 1.0 / 3, 0.05) << "scale " << scale;  // its candidates are the causal rule's own
    EXPECT_GT(agreement, 0.85) << "scale " << scale;             // a random router: 0.88-0.90
  }
}

TEST(Mor, TokenChoiceBiasBalancesAndIsSaved) {
  Model m(mor_config("token"));
  m.init_weights(3);
  auto t = tokens(2 * 24, 32);
  TrainPass pass(m);
  pass.forward(t.data(), nullptr, 2, 24);
  std::vector<double> load = pass.mor_stats().depth_load;
  token_update_bias(m, load, 1e-3f);
  for (int i = 0; i < 3; i++) {
    double expected = load[i] < 1.0 / 3 ? 1e-3 : (load[i] > 1.0 / 3 ? -1e-3 : 0.0);
    EXPECT_NEAR(m.mor_bias[i], expected, 1e-9) << "depth " << i;  // under-loaded depths are pushed up
  }
}

}  // namespace
