// PyTorch parity: the reference model (reference/model.py) wrote, for each case, a config, initial weights,
// a batch with its logits, loss and every gradient, and a 10-step AdamW run (losses, grad norms, lrs, final
// weights), and the batch's results in bf16. recur must reproduce all of them within fp32 tolerances (bf16: the
// tolerances stated at Bf16LogitsLossAndGradients); each mismatch names the worst element.
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

// Max |a-b| relative to max |b|, the measure of expect_close.
double relative_distance(const float* a, const float* b, size_t n) {
  double worst = 0, scale = 1e-12;
  for (size_t i = 0; i < n; i++) {
    scale = std::max(scale, (double)std::fabs(b[i]));
    worst = std::max(worst, std::fabs((double)a[i] - b[i]));
  }
  return worst / scale;
}

// |a-b| / |b| in the Frobenius norm.
double frobenius_distance(const float* a, const float* b, size_t n) {
  double d = 0, r = 1e-300;
  for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r += (double)b[i] * b[i];
  return std::sqrt(d / r);
}

// recur bf16 (docs/precision.md) against the same batch in PyTorch, two ways:
// - "bf16.": the reference with recur's rule (both operands of each product rounded to bf16, f32 accumulation).
//   The same arithmetic up to f32 summation order, but that order can flip the rounding of an operand lying at a
//   bf16 rounding boundary, and the flipped value (2^-8 away) perturbs everything after it enough to flip more:
//   single roundings are chaotic. So the bound is a fraction of bf16's own effect, in relative Frobenius norm:
//   logits 2e-3 and loss 2e-5 relative (measured at most 5.2e-4 and 4.1e-6), gradients 1e-2 (measured at most 3.9e-3;
//   a few dozen tokens per weight gradient, so each flip moves it by a visible part). The exact rule is tested
//   per product, forward and backward, by Kernels.Linear.
// - "autocast.": the f32 reference under torch.autocast bf16, which also rounds every product's output (and so
//   runs SwiGLU and the logits in bf16). recur rounds a subset of autocast's rounding points, so its distance from
//   f32 is at most autocast's e, and by the triangle inequality its distance from autocast at most 2e, where e is
//   autocast's own distance from the f32 fixture, per tensor (max-norm relative to the largest element). The loss,
//   one number whose errors may cancel by chance, is held to twice the largest logit change instead.
// Routing: every step activates the tokens both PyTorch forms activate (make_parity.py checks they agree).
TEST_P(Parity, Bf16LogitsLossAndGradients) {
  Case k(GetParam());
  Model& model = k.model;
  TrainPass& pass = k.pass;
  const SafeTensors& ex = k.ex;
  model.set_precision(Precision::bf16);
  const TensorData& tokens = ex.get("tokens");
  int B = (int)tokens.shape[0], T = (int)tokens.shape[1];
  size_t n_logits = (size_t)B * T * model.config().vocab_size;
  float loss = pass.forward(tokens.i32(), ex.get("targets").i32(), B, T);
  pass.zero_grad();
  pass.backward();
  double worst_rule = 0, worst_autocast = 0;  // largest distance to the bf16 rule; to autocast in units of e
  auto compare = [&](const std::string& what, const float* got, size_t n, const std::vector<int64_t>& shape,
                     double tolerance) {
    const float* f32 = ex.get(what, shape).f32();
    const float* rule = ex.get("bf16." + what, shape).f32();
    const float* autocast = ex.get("autocast." + what, shape).f32();
    double to_rule = frobenius_distance(got, rule, n), e = relative_distance(autocast, f32, n);
    EXPECT_LE(to_rule, tolerance) << "bf16." << what << ": relative Frobenius distance to the bf16 rule";
    expect_close(got, autocast, n, 2 * e, "autocast." + what);
    EXPECT_GT(relative_distance(got, f32, n), 0) << what << ": recur bf16 computed in f32";
    worst_rule = std::max(worst_rule, to_rule);
    worst_autocast = std::max(worst_autocast, relative_distance(got, autocast, n) / std::max(e, 1e-30));
  };
  compare("logits", pass.logits(), n_logits, {B, T, model.config().vocab_size}, 2e-3);
  // the loss, a mean of log-softmaxes, moves by at most twice the largest logit change
  const float* autocast_logits = ex.get("autocast.logits").f32();
  double logit_change = 0;
  for (size_t i = 0; i < n_logits; i++)
    logit_change = std::max(logit_change, std::fabs((double)pass.logits()[i] - autocast_logits[i]));
  EXPECT_NEAR(loss, ex.get("autocast.loss").f32()[0], 2 * logit_change) << "autocast.loss";
  EXPECT_LE(std::fabs(loss - ex.get("bf16.loss").f32()[0]), 2e-5 * std::fabs(loss)) << "bf16.loss";
  for (const ParamInfo& p : model.param_table())
    compare("grad." + p.name, pass.grads.data() + p.offset, p.numel, p.shape, 1e-2);
  std::printf("%s bf16: at most %.1e from the bf16 rule, %.2f e from autocast\n", GetParam().c_str(), worst_rule,
              worst_autocast);
  if (!ex.has("bf16.mor_depth")) return;
  const TensorData& depth = ex.get("bf16.mor_depth");
  for (int r = 0; r < model.config().n_recursions; r++) {
    int active = 0;
    for (size_t i = 0; i < (size_t)B * T; i++) active += depth.i32()[i] >= r;
    EXPECT_NEAR(pass.mor_stats().active_fraction[r], (double)active / (B * T), 1e-9) << "tokens active at step " << r;
  }
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
