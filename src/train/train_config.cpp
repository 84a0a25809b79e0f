// Training settings: the table of their keys (JSON form stored in checkpoints, CLI flags), and validation with
// helpful messages.
#include <nlohmann/json.hpp>

#include "core/config_keys.h"
#include "core/json_floats.h"
#include "core/json_read.h"
#include "recur/error.h"
#include "recur/train.h"

namespace recur {

using nlohmann::json;

void TrainConfig::validate() const {
  check(batch_size > 0, "train: batch_size must be >= 1");
  check(seq_len > 0, "train: seq_len must be >= 1");
  check(steps > 0, "train: steps must be >= 1");
  check(grad_accum > 0, "train: grad_accum must be >= 1");
  check(schedule == "cosine" || schedule == "wsd" || schedule == "constant",
        "train: unknown schedule \"" + schedule + "\"; use cosine, wsd or constant");
  check(lr > 0 && std::isfinite(lr), "train: lr must be a positive number");
  check(warmup_steps >= 0, "train: warmup_steps must be >= 0");
  check(min_lr_ratio >= 0 && min_lr_ratio <= 1, "train: min_lr_ratio must be in [0, 1]");
  check(decay_frac >= 0 && decay_frac <= 1, "train: decay_frac must be in [0, 1]");
  check(weight_decay >= 0, "train: weight_decay must be >= 0");
  check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "train: beta1 and beta2 must be in [0, 1)");
  check(eps > 0, "train: eps must be > 0");
  check(grad_clip >= 0, "train: grad_clip must be >= 0 (0 disables clipping)");
  check(eval_every >= 0 && save_every >= 0 && log_every >= 0, "train: eval_every, save_every, log_every must be >= 0");
  check(eval_batches > 0, "train: eval_batches must be >= 1");
  check(mor_capacity_warmup_steps >= 0 && mor_balance_warmup_steps >= 0 && mor_bias_rate >= 0 && mor_causal_rate >= 0,
        "train: mor_capacity_warmup_steps, mor_balance_warmup_steps, mor_bias_rate and mor_causal_rate must be >= 0");
  check((loop_count_min == 0 && loop_count_max == 0) || (loop_count_min >= 1 && loop_count_max >= loop_count_min),
        "train: loop_count_min/max must both be 0 (off) or 1 <= loop_count_min <= loop_count_max");
  check(reduce_shards >= 0 && param_check_every >= 0 && comm_timeout > 0,
        "train: reduce_shards and param_check_every must be >= 0, comm_timeout > 0");
}

// Training keys that act only in one routing or layout of the model (like the model keys' scopes in
// src/model/config.cpp).
void TrainConfig::check_acts_on(const ModelConfig& model) const {
  using M = ModelConfig;
  static const std::vector<KeyScope<M>> scopes = {
      {"mor_capacity_warmup_steps", [](const M& m) { return m.mor_routing == MorRouting::expert; },
       "expert-choice routing (mor_routing expert), whose capacities it ramps"},
      {"mor_balance_warmup_steps",
       [](const M& m) { return m.mor_routing == MorRouting::token && m.mor_balance_loss > 0; },
       "token-choice routing with a balancing loss (mor_routing token, mor_balance_loss > 0)"},
      {"mor_bias_rate", [](const M& m) { return m.mor_routing == MorRouting::token; },
       "token-choice routing (mor_routing token)"},
      {"mor_causal_rate", [](const M& m) { return m.mor_routing == MorRouting::expert; },
       "expert-choice routing (mor_routing expert), whose causal rule it calibrates"},
      {"loop_count_min", [](const M& m) { return m.loop_block > 0; }, "middle looping (loop_block > 0)"},
      {"loop_count_max", [](const M& m) { return m.loop_block > 0; }, "middle looping (loop_block > 0)"},
  };
  refuse_inert_keys(*this, model, train_config_keys(), scopes, "train");
}

// Keys a train_state.json has held since the first one are required; the later ones default when absent, so
// older checkpoints still resume.
const std::vector<ConfigKey<TrainConfig>>& train_config_keys() {
  using C = TrainConfig;
  auto always = [](ConfigKey<C> key) {
    key.required = true;
    return key;
  };
  // train_state.json of runs that do not use it stays as before
  auto omitted_when_default = [](ConfigKey<C> key) {
    key.omit_default = true;
    return key;
  };
  static const std::vector<ConfigKey<C>> keys = {
      always(config_key("batch_size", &C::batch_size, "sequences per micro-batch")),
      always(config_key("seq_len", &C::seq_len, "tokens per sequence")),
      always(config_key("steps", &C::steps, "optimizer steps in total")),
      always(config_key("grad_accum", &C::grad_accum, "micro-batches per optimizer step")),
      always(config_key("schedule", &C::schedule, "lr schedule after warm-up: cosine | wsd | constant")),
      always(config_key("lr", &C::lr, "peak learning rate")),
      always(config_key("warmup_steps", &C::warmup_steps, "linear warm-up steps")),
      always(config_key("min_lr_ratio", &C::min_lr_ratio, "final lr as a fraction of --lr")),
      always(config_key("decay_frac", &C::decay_frac, "wsd: fraction of steps in the final linear decay")),
      always(config_key("weight_decay", &C::weight_decay, "AdamW decoupled weight decay (2-D weights only)")),
      always(config_key("beta1", &C::beta1, "AdamW beta1")),
      always(config_key("beta2", &C::beta2, "AdamW beta2")),
      always(config_key("eps", &C::eps, "AdamW epsilon")),
      always(config_key("grad_clip", &C::grad_clip, "global grad-norm clip (0: off)")),
      always(config_key("seed", &C::seed, "seed for initialization and data windows")),
      always(config_key("eval_every", &C::eval_every, "validate every N steps (0: at the end)")),
      always(config_key("eval_batches", &C::eval_batches, "validation batches")),
      always(config_key("save_every", &C::save_every, "checkpoint every N steps (0: at the end)")),
      always(config_key("log_every", &C::log_every, "progress line every N steps")),
      config_key("loop_count_min", &C::loop_count_min,
                 "looped models: sample each step's loop count from [min, max] (0: off)"),
      config_key("loop_count_max", &C::loop_count_max, "upper end of the sampled loop count"),
      config_key("mor_capacity_warmup_steps", &C::mor_capacity_warmup_steps,
                 "MoR: cosine warm-up of capacities from 1 to target (0: off)"),
      config_key("mor_balance_warmup_steps", &C::mor_balance_warmup_steps,
                 "MoR: linear warm-up of the balancing loss (0: off)"),
      config_key("mor_bias_rate", &C::mor_bias_rate,
                 "MoR token choice: loss-free balancing bias step (1e-3 is typical; 0: off)"),
      config_key("mor_causal_rate", &C::mor_causal_rate,
                 "MoR expert choice: step of the causal rule's bias towards training's capacities (0: off)"),
      omitted_when_default(config_key("skip_nonfinite_steps", &C::skip_nonfinite_steps,
                                      "skip a step whose gradients or update are NaN/Inf instead of stopping")),
      omitted_when_default(config_enum_key("precision", &C::precision, {"f32", "bf16"},
                                           "matrix products: f32, or bf16 operands accumulated in f32 (weights, "
                                           "gradients and optimizer state stay f32)")),
      config_key("reduce_shards", &C::reduce_shards,
                 "ranks: gradient shards per micro-batch summed in fixed order, bit-identical for any rank count "
                 "dividing it (0: one per rank, all-reduce)"),
      config_key("param_check_every", &C::param_check_every, "ranks: compare parameters every N steps (0: off)"),
      config_key("comm_timeout", &C::comm_timeout, "ranks: seconds a collective may wait before the job stops"),
  };
  return keys;
}

std::string train_config_to_json(const TrainConfig& c) {
  json j = write_keys(c, train_config_keys());
  shorten_float32_numbers(j);
  return j.dump(2);
}

TrainConfig train_config_from_json(const std::string& text) {
  json j = parse_json_strict(text, "train state", kMaxConfigBytes);
  check(j.is_object(), "train state: expected a JSON object");
  TrainConfig c;
  read_keys(c, j, train_config_keys(), "train state");
  c.validate();
  return c;
}

}  // namespace recur
