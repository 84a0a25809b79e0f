// Fixed-order data-parallel shards in one process (--reduce_shards, src/train/data_parallel.cpp): the shards'
// gradients combined equal the whole micro-batch's within float summation order, for a dense model and both MoR
// routings (token choice's balancing loss takes the micro-batch's routing counts, recur/train_pass.h's
// MicroBatchShard, counted by a first forward of each shard).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "recur/distributed.h"
#include "recur/train.h"

using namespace recur;

namespace {

ModelConfig family(const std::string& routing) {
  ModelConfig c;
  c.vocab_size = 256, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48, c.max_seq_len = 24;
  c.n_layers = 4;
  if (!routing.empty()) {
    c.sharing = Sharing::cycle, c.n_recursions = 2;
    c.mor_routing = routing == "expert" ? MorRouting::expert : MorRouting::token;
  }
  c.validate();
  return c;
}

struct Trajectory {
  std::vector<float> losses, grad_norms;
};

// Three steps of two micro-batches of 4 sequences, each micro-batch split into `shards` (0: not split).
Trajectory train(const ModelConfig& config, int shards) {
  std::vector<uint8_t> text(4000);
  for (size_t i = 0; i < text.size(); i++) text[i] = (uint8_t)(i * 7919 % 251);
  TrainConfig t;
  t.batch_size = 4, t.seq_len = 24, t.grad_accum = 2, t.steps = 3, t.warmup_steps = 1, t.reduce_shards = shards;
  Model model(config);
  model.init_weights(t.seed);
  TrainPass pass(model);
  AdamW opt;
  opt.init(model.n_params());
  DataParallel parallel(model, t);
  EXPECT_EQ(parallel.active(), shards > 0);
  Trajectory out;
  for (int s = 0; s < t.steps; s++) {
    StepMetrics step = train_step(model, pass, opt, t, text_batches(text, t), &parallel);
    out.losses.push_back(step.loss), out.grad_norms.push_back(step.grad_norm);
  }
  return out;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) EXPECT_NEAR(a[i], b[i], 1e-5 * std::fabs(a[i])) << what << " of step " << i + 1;
}

}  // namespace

TEST(DataParallel, ShardsEqualTheWholeMicroBatchForEveryFamily) {
  for (std::string routing : {"", "expert", "token"}) {
    ModelConfig config = family(routing);
    Trajectory whole = train(config, 0);
    for (int shards : {2, 4}) {
      Trajectory split = train(config, shards);
      std::string what = (routing.empty() ? "dense" : routing) + ", " + std::to_string(shards) + " shards: ";
      expect_close(whole.losses, split.losses, what + "loss");
      expect_close(whole.grad_norms, split.grad_norms, what + "grad norm");
    }
  }
}
