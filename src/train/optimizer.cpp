// Learning-rate schedules, global grad-norm clipping and AdamW over the model's flat buffers.
#include <cmath>

#include "recur/error.h"
#include "recur/kernels.h"
#include "recur/train.h"

namespace recur {

float lr_at(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * (float)(step + 1) / (float)c.warmup_steps;
  float lr_min = c.lr * c.min_lr_ratio;
  if (c.schedule == "constant") return c.lr;
  if (c.schedule == "cosine") {
    double progress = (double)(step - c.warmup_steps) / (double)std::max<int64_t>(1, c.steps - c.warmup_steps);
    progress = std::min(progress, 1.0);
    return (float)(lr_min + 0.5 * (c.lr - lr_min) * (1.0 + std::cos(M_PI * progress)));
  }
  // wsd: warm-up, stable, linear decay to lr_min over the last decay_frac of the steps
  int64_t decay_start = c.steps - (int64_t)std::llround(c.decay_frac * (double)c.steps);
  if (step < decay_start) return c.lr;
  double frac = std::min(1.0, (double)(step - decay_start + 1) / (double)std::max<int64_t>(1, c.steps - decay_start));
  return (float)(c.lr * (1.0 - frac) + lr_min * frac);
}

void AdamW::init(size_t n_params) {
  m.assign(n_params, 0.0f);
  v.assign(n_params, 0.0f);
  step = 0;
}

void AdamW::update(Model& model, const std::vector<float>& grads, const TrainConfig& c, float lr) {
  check(m.size() == model.params.size() && grads.size() == m.size(), "optimizer state does not match the model size");
  step++;
  for (const ParamInfo& p : model.param_table())
    kernels::adamw_update(model.params.data() + p.offset, grads.data() + p.offset, m.data() + p.offset,
                          v.data() + p.offset, p.numel, lr, c.beta1, c.beta2, c.eps, p.decay ? c.weight_decay : 0.0f,
                          step);
}

float clip_grad_norm(std::vector<float>& grads, float clip) {
  float norm = (float)std::sqrt(kernels::sum_squares(grads.data(), grads.size()));
  if (clip > 0) {
    float coef = clip / (norm + 1e-6f);
    if (coef < 1.0f) kernels::scale_inplace(grads.data(), grads.size(), coef);
  }
  return norm;
}

}  // namespace recur
