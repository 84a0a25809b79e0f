// Training on token shards behind the same seam as the byte corpus (BatchSource, Evaluator), plus the window
// cursor as the data position kept in checkpoints: row b of micro-batch m of optimizer step s is window
// base_cursor + ((s - base_step) * grad_accum + m) * batch_size + b of the epoch-shuffled order.
#include <nlohmann/json.hpp>

#include "recur/error.h"
#include "recur/rng.h"
#include "recur/train.h"

namespace recur {

ShardTraining::ShardTraining(const ShardFolder& folder, const TrainConfig& config)
    : folder_(folder), config_(config), windows_(folder.train, config.seq_len, config.seed) {}

BatchSource ShardTraining::batches() const {
  return [this](int64_t step, int micro) {
    const TrainConfig& c = config_;
    Batch batch;
    batch.batch_size = c.batch_size, batch.seq_len = c.seq_len;
    batch.tokens.resize((size_t)c.batch_size * c.seq_len);
    batch.targets.resize(batch.tokens.size());
    uint64_t first = base_cursor_ + ((uint64_t)(step - base_step_) * c.grad_accum + micro) * c.batch_size;
    for (int b = 0; b < c.batch_size; b++)
      windows_.window(first + b, &batch.tokens[(size_t)b * c.seq_len], &batch.targets[(size_t)b * c.seq_len]);
    return batch;
  };
}

Evaluator ShardTraining::validation() const {
  const ShardStream& val = folder_.val;
  check(val.size() >= 3, "train: ", folder_.dir, " has ", val.size(),
        " validation tokens; prepare it with a larger --val_fraction (or more documents)");
  int seq_len = (int)std::min<uint64_t>(config_.seq_len, val.size() - 1);
  TrainConfig c = config_;
  // Fixed windows (not the training seed's), so every run on this folder is validated on the same tokens.
  return batch_validation(
      [&val, c, seq_len](int i) {
        Batch batch;
        batch.batch_size = c.batch_size, batch.seq_len = seq_len;
        std::vector<int32_t> span(seq_len + 1);
        Rng rng(mix_seed(0xE7A1, (uint64_t)i));
        for (int b = 0; b < c.batch_size; b++) {
          val.read(rng.uniform(val.size() - seq_len), span.size(), span.data());
          batch.tokens.insert(batch.tokens.end(), span.begin(), span.end() - 1);
          batch.targets.insert(batch.targets.end(), span.begin() + 1, span.end());
        }
        return batch;
      },
      c);
}

std::string ShardTraining::save(int64_t step) const {
  uint64_t cursor = base_cursor_ + (uint64_t)(step - base_step_) * config_.grad_accum * config_.batch_size;
  nlohmann::json position = {{"source", "shards"},
                             {"fingerprint", folder_.fingerprint},
                             {"seq_len", config_.seq_len},
                             {"window_cursor", cursor},
                             {"windows_per_epoch", windows_.windows_per_epoch()},
                             {"epoch", cursor / windows_.windows_per_epoch()}};
  return position.dump();
}

void ShardTraining::restore(const std::string& saved, int64_t step) {
  nlohmann::json position = nlohmann::json::parse(saved);
  check(position.value("source", "") == "shards" && position.contains("window_cursor") &&
            position["window_cursor"].is_number_unsigned(),
        "resume: the checkpoint's data position is not a shard position; resume with the data it was trained on");
  check(position.value("fingerprint", "") == folder_.fingerprint,
        "resume: the checkpoint was trained on other "
        "shards than ",
        folder_.dir, " (their manifest differs); resume with the same --data folder");
  check(position.value("seq_len", 0) == config_.seq_len, "resume: the checkpoint's windows have seq_len ",
        position.value("seq_len", 0), "; resume with the same --seq_len");
  base_cursor_ = position["window_cursor"].get<uint64_t>();
  base_step_ = step;
}

}  // namespace recur
