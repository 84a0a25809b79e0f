// Guards of a training run (issue 17 in docs/design.md's "Conventions" sense: bad input or a diverging run ends with
// a clear message, never with a NaN checkpoint): the non-finite check around each AdamW update and the memory
// estimate made before a run allocates its buffers.
#include <cmath>
#include <cstdio>

#include "core/memory_limit.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/train.h"

namespace recur {

namespace {

// The first of parameters, gradients' effect (moments) that holds NaN/Inf after an update: (what, tensor) or null.
const ParamInfo* first_bad_state(const Model& model, const AdamW& opt, const char*& what) {
  what = "parameter";
  if (const ParamInfo* p = first_nonfinite(model, model.params.data())) return p;
  what = "AdamW moment of";
  if (const ParamInfo* p = first_nonfinite(model, opt.m.data())) return p;
  return first_nonfinite(model, opt.v.data());
}

[[noreturn]] void stop_nonfinite(int64_t step, const std::string& what, const std::string& tensor) {
  throw Error(
      "train: at step " + std::to_string(step) + " the " + what + " tensor \"" + tensor +
      "\" became non-finite (NaN/Inf); nothing of it was saved and `latest` still names the last good checkpoint. "
      "Lower --lr, raise --warmup_steps or --grad_clip, or pass --skip_nonfinite_steps true to skip such "
      "steps");
}

}  // namespace

bool guarded_update(Model& model, const std::vector<float>& grads, AdamW& opt, const TrainConfig& c, float lr,
                    float grad_norm) {
  int64_t step = opt.step + 1;
  bool skip = c.skip_nonfinite_steps;
  if (!std::isfinite(grad_norm))
    if (const ParamInfo* bad = first_nonfinite(model, grads.data())) {
      if (!skip) stop_nonfinite(step, "gradient", bad->name);
      std::fprintf(stderr, "train: step %lld skipped: gradient of \"%s\" is non-finite\n", (long long)step,
                   bad->name.c_str());
      opt.step++;  // the step is spent (its batch is not retried), the weights and moments stay as they were
      return false;
    }
  ParamBuffer params;  // the state before the update, to restore a skipped step
  std::vector<float> m, v;
  if (skip) params = model.params, m = opt.m, v = opt.v;
  opt.update(model, grads, c, lr);
  const char* what = nullptr;
  const ParamInfo* bad = first_bad_state(model, opt, what);
  if (!bad) return true;
  if (!skip) stop_nonfinite(step, what, bad->name);
  std::fprintf(stderr, "train: step %lld skipped: it made the %s tensor \"%s\" non-finite\n", (long long)step, what,
               bad->name.c_str());
  model.params = std::move(params), opt.m = std::move(m), opt.v = std::move(v);
  return false;
}

void check_training_memory(const Model& model, const TrainConfig& c) {
  const ModelConfig& m = model.config();
  double tokens = (double)c.batch_size * c.seq_len, layers = m.n_layers;
  // parameters, gradients and two moments; per layer application the kept activations and attention weights;
  // logits and their gradient. An estimate of TrainPass's buffers (src/model/train_pass.cpp), not a bound.
  double bytes = 16.0 * (double)model.n_params() + 4.0 * tokens * layers * (12.0 * m.d_model + 3.0 * m.d_ff) +
                 4.0 * c.batch_size * m.n_heads * (double)c.seq_len * c.seq_len * layers + 8.0 * tokens * m.vocab_size;
  check_fits_memory(bytes, "train: the model, its optimizer state and the activations of one micro-batch",
                    "lower --batch_size or --seq_len (use --grad_accum for the same tokens per step) or the model "
                    "size");
}

}  // namespace recur
