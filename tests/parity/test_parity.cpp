// PyTorch parity: the reference model (reference/model.py) wrote, for each case, a config, initial weights,
// a batch with its logits, loss and every gradient, and a 10-step AdamW run (losses, grad norms, lrs, final
// weights). recur must reproduce all of them within fp32 tolerances; each mismatch names the worst element.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "recur/checkpoint.h"
#include "recur/safetensors.h"
#include "recur/train.h"

using namespace recur;

namespace {

const std::string kDir = RECUR_PARITY_DIR;

// Max |a-b| relative to max |b| (scale-aware, so small and large tensors are judged alike).
void expect_close(const float* got, const float* want, size_t n, double tolerance, const std::string& what) {
  double worst = 0, scale = 1e-12;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; i++) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << ": non-finite value at " << i;
    scale = std::max(scale, (double)std::fabs(want[i]));
    double e = std::fabs((double)got[i] - want[i]);
    if (e > worst) worst = e, worst_i = i;
  }
  EXPECT_LE(worst / scale, tolerance) << what << ": worst element " << worst_i << " recur " << got[worst_i] << " torch "
                                      << want[worst_i] << " (max |torch| " << scale << ")";
}

// Token-choice fixtures fix the loss-free balancing bias; it is part of the routing rule.
void set_mor_bias(Model& model, const SafeTensors& ex) {
  if (!ex.metadata.count("mor_bias")) return;
  std::stringstream ss(ex.metadata.at("mor_bias"));
  std::string item;
  model.mor_bias.clear();
  while (std::getline(ss, item, ',')) model.mor_bias.push_back(std::stof(item));
}

// A fixture case: the model at its initial weights and what PyTorch computed for it.
struct Case {
  Model model;
  SafeTensors ex;
  TrainPass pass;
  explicit Case(const std::string& name)
      : model(model_config_from_file(kDir + "/" + name + "/config.json")),
        ex(safetensors_read(kDir + "/" + name + "/expected.safetensors")),
        pass(model) {
    load_weights(model, kDir + "/" + name + "/model.safetensors");
    set_mor_bias(model, ex);
  }
};

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsLossAndGradients) {
  Case k(GetParam());
  Model& model = k.model;
  TrainPass& pass = k.pass;
  const SafeTensors& ex = k.ex;
  const TensorData& tokens = ex.get("tokens");
  int B = (int)tokens.shape[0], T = (int)tokens.shape[1], V = model.config().vocab_size;
  float loss = pass.forward(tokens.i32(), ex.get("targets").i32(), B, T);
  expect_close(pass.logits(), ex.get("logits").f32(), (size_t)B * T * V, 2e-5, "logits");
  EXPECT_NEAR(loss, ex.get("loss").f32()[0], 2e-5) << "loss";
  if (ex.has("loop_reg")) {
    EXPECT_NEAR(pass.last_regularizer(), ex.get("loop_reg").f32()[0], 1e-5) << "regularizer";
  }
  if (ex.has("mor_depth")) {  // routing: same tokens at every step, same router losses
    MorStats stats = pass.mor_stats();
    EXPECT_NEAR(loss - pass.last_regularizer(), ex.get("loss_ce").f32()[0], 2e-5) << "cross-entropy part";
    EXPECT_NEAR(pass.last_regularizer(), ex.get("loss_aux").f32()[0] + ex.get("loss_z").f32()[0], 1e-6)
        << "router losses";
    for (int r = 0; r < model.config().n_recursions; r++) {
      const int32_t* want = ex.get("mor_selected_step" + std::to_string(r)).i32();
      int total = 0;
      for (int b = 0; b < B; b++) total += want[b];
      EXPECT_NEAR(stats.active_fraction[r], (double)total / (B * T), 1e-9) << "tokens active at step " << r;
    }
  }
  pass.zero_grad();
  pass.backward();
  for (const ParamInfo& p : model.param_table())
    expect_close(pass.grads.data() + p.offset, ex.get("grad." + p.name, p.shape).f32(), p.numel, 1e-4,
                 "grad." + p.name);
}

TEST_P(Parity, TenAdamWSteps) {
  Case k(GetParam());
  Model& model = k.model;
  TrainPass& pass = k.pass;
  const SafeTensors& ex = k.ex;
  auto meta = [&](const char* key) { return std::stod(ex.metadata.at(key)); };
  TrainConfig tc;
  tc.lr = (float)meta("lr");
  tc.beta1 = (float)meta("beta1");
  tc.beta2 = (float)meta("beta2");
  tc.eps = (float)meta("eps");
  tc.weight_decay = (float)meta("weight_decay");
  tc.grad_clip = (float)meta("grad_clip");
  tc.schedule = ex.metadata.at("schedule");
  tc.warmup_steps = (int64_t)meta("warmup_steps");
  tc.steps = (int64_t)meta("total_steps");
  tc.min_lr_ratio = (float)meta("min_lr_ratio");
  tc.decay_frac = (float)meta("decay_frac");
  const TensorData& tokens = ex.get("step_tokens");
  const TensorData& targets = ex.get("step_targets");
  int S = (int)tokens.shape[0], B = (int)tokens.shape[1], T = (int)tokens.shape[2];
  AdamW opt;
  opt.init(model.n_params());
  for (int s = 0; s < S; s++) {
    pass.zero_grad();
    float loss = pass.forward(tokens.i32() + (size_t)s * B * T, targets.i32() + (size_t)s * B * T, B, T);
    pass.backward();
    float norm = clip_grad_norm(pass.grads, tc.grad_clip);
    float lr = lr_at(tc, s);
    opt.update(model, pass.grads, tc, lr);
    // Ten steps at lr 1e-2 with clipping amplify fp32 rounding differences (the step-0 gradients above agree
    // to about 1e-6), hence looser bounds for the trajectory than for one step.
    EXPECT_NEAR(loss, ex.get("step_loss").f32()[s], 5e-4) << "loss at step " << s;
    EXPECT_NEAR(norm, ex.get("step_grad_norm").f32()[s], 1e-2 * ex.get("step_grad_norm").f32()[s])
        << "grad norm at step " << s;
    EXPECT_NEAR(lr, ex.get("step_lr").f32()[s], 1e-7) << "lr at step " << s;
  }
  for (const ParamInfo& p : model.param_table())
    expect_close(model.params.data() + p.offset, ex.get("final." + p.name, p.shape).f32(), p.numel, 5e-3,
                 "final." + p.name);
}

INSTANTIATE_TEST_SUITE_P(Cases, Parity,
                         ::testing::Values("tiny_gqa", "untied_mha", "cycle", "sequence", "middle_cycle",
                                           "middle_sequence", "middle_loop", "inject_add", "inject_concat", "loop_reg",
                                           "mor_expert", "mor_token", "mor_expert_kv_share", "mor_expert_mlp_tanh",
                                           "mor_expert_aux_router"));

}  // namespace
