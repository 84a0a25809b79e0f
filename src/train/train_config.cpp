// Training settings: validation with helpful messages and the JSON form stored in checkpoints.
#include <nlohmann/json.hpp>

#include "recur/error.h"
#include "recur/train.h"
#include "../io/json_floats.h"

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
  check(mor_capacity_warmup_steps >= 0 && mor_balance_warmup_steps >= 0 && mor_bias_rate >= 0,
        "train: mor_capacity_warmup_steps, mor_balance_warmup_steps and mor_bias_rate must be >= 0");
  check((loop_count_min == 0 && loop_count_max == 0) || (loop_count_min >= 1 && loop_count_max >= loop_count_min),
        "train: loop_count_min/max must both be 0 (off) or 1 <= loop_count_min <= loop_count_max");
}

std::string train_config_to_json(const TrainConfig& c) {
  json j = {{"batch_size", c.batch_size}, {"seq_len", c.seq_len},     {"steps", c.steps},
            {"grad_accum", c.grad_accum}, {"schedule", c.schedule},   {"lr", c.lr},
            {"warmup_steps", c.warmup_steps}, {"min_lr_ratio", c.min_lr_ratio}, {"decay_frac", c.decay_frac},
            {"weight_decay", c.weight_decay}, {"beta1", c.beta1},     {"beta2", c.beta2},
            {"eps", c.eps},               {"grad_clip", c.grad_clip}, {"seed", c.seed},
            {"eval_every", c.eval_every}, {"eval_batches", c.eval_batches}, {"save_every", c.save_every},
            {"log_every", c.log_every},   {"loop_count_min", c.loop_count_min}, {"loop_count_max", c.loop_count_max},
            {"mor_capacity_warmup_steps", c.mor_capacity_warmup_steps},
            {"mor_balance_warmup_steps", c.mor_balance_warmup_steps}, {"mor_bias_rate", c.mor_bias_rate}};
  shorten_float32_numbers(j);
  return j.dump(2);
}

TrainConfig train_config_from_json(const std::string& text) {
  TrainConfig c;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(std::string("train state: not valid JSON (") + e.what() + ")");
  }
  check(j.is_object(), "train state: expected a JSON object");
  try {
    c.batch_size = j.at("batch_size").get<int>();
    c.seq_len = j.at("seq_len").get<int>();
    c.steps = j.at("steps").get<int64_t>();
    c.grad_accum = j.at("grad_accum").get<int>();
    c.schedule = j.at("schedule").get<std::string>();
    c.lr = j.at("lr").get<float>();
    c.warmup_steps = j.at("warmup_steps").get<int64_t>();
    c.min_lr_ratio = j.at("min_lr_ratio").get<float>();
    c.decay_frac = j.at("decay_frac").get<float>();
    c.weight_decay = j.at("weight_decay").get<float>();
    c.beta1 = j.at("beta1").get<float>();
    c.beta2 = j.at("beta2").get<float>();
    c.eps = j.at("eps").get<float>();
    c.grad_clip = j.at("grad_clip").get<float>();
    c.seed = j.at("seed").get<uint64_t>();
    c.eval_every = j.at("eval_every").get<int64_t>();
    c.eval_batches = j.at("eval_batches").get<int>();
    c.save_every = j.at("save_every").get<int64_t>();
    c.log_every = j.at("log_every").get<int64_t>();
    c.loop_count_min = j.value("loop_count_min", 0);
    c.loop_count_max = j.value("loop_count_max", 0);
    c.mor_capacity_warmup_steps = j.value("mor_capacity_warmup_steps", (int64_t)0);
    c.mor_balance_warmup_steps = j.value("mor_balance_warmup_steps", (int64_t)0);
    c.mor_bias_rate = j.value("mor_bias_rate", 0.0f);
  } catch (const json::exception& e) {
    throw Error(std::string("train state: missing or mistyped setting (") + e.what() + ")");
  }
  c.validate();
  return c;
}

}  // namespace recur
