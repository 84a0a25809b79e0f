// recur/train.h: training settings, learning-rate schedules, the AdamW optimizer over the flat buffers, and
// the training loop (progress line, JSONL metrics, periodic validation, atomic checkpoints, exact resume).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "recur/data.h"
#include "recur/model.h"
#include "recur/shards.h"
#include "recur/train_pass.h"

namespace recur {

struct TrainConfig {
  int batch_size = 16;
  int seq_len = 256;
  int64_t steps = 1000;
  int grad_accum = 1;               // micro-batches per optimizer step
  std::string schedule = "cosine";  // cosine | wsd | constant (all after linear warm-up)
  float lr = 3e-3f;
  int64_t warmup_steps = 100;
  float min_lr_ratio = 0.1f;  // final lr = lr * min_lr_ratio
  float decay_frac = 0.2f;    // wsd: linear decay over the last decay_frac of the steps
  float weight_decay = 0.1f;  // decoupled, on 2-D weights only
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float grad_clip = 1.0f;  // global grad-norm clip; 0 disables
  uint64_t seed = 1337;
  int64_t eval_every = 100;  // validation every N steps (0: only at the end)
  int eval_batches = 8;
  int64_t save_every = 0;  // checkpoint every N steps (0: only at the end)
  int64_t log_every = 10;
  // Looped models: draw the loop count of each step uniformly from [loop_count_min, loop_count_max]
  // (seeded by seed and step); 0 keeps the config's loop_count. Evaluation uses the config's loop_count.
  int loop_count_min = 0, loop_count_max = 0;
  // Mixture-of-Recursions: cosine warm-up of the expert-choice capacities from 1 to their targets, linear
  // warm-up of the token-choice balancing loss, and loss-free balancing (bias step per optimizer step, 0: off).
  int64_t mor_capacity_warmup_steps = 0, mor_balance_warmup_steps = 0;
  float mor_bias_rate = 0.0f;
  // Expert choice: the causal rule's calibration rate (expert_update_bias, recur/expert_choice.h; 0: off, so
  // decoding keeps the router's own threshold sigmoid(z) >= 0.5).
  float mor_causal_rate = 0.5f;
  // A step whose gradients or update are non-finite is skipped (weights and moments kept) instead of stopping the
  // run; the count is logged.
  bool skip_nonfinite_steps = false;
  // The matrix products' precision (Model::set_precision, docs/precision.md): bf16 rounds both operands of every
  // product to bf16 and accumulates in f32; weights, gradients and AdamW moments stay f32.
  Precision precision = Precision::f32;
  // Several ranks (docs/distributed.md): reduce_shards > 0 splits each micro-batch into that many shards whose
  // gradients are summed in a fixed order, bit-identical on any rank count dividing it (0: one shard per rank and
  // an MPI all-reduce); parameters are compared across ranks every param_check_every steps (0: never); a
  // collective waiting longer than comm_timeout seconds stops the job.
  int reduce_shards = 0;
  int64_t param_check_every = 50;
  float comm_timeout = 300;
  void validate() const;
  // A MoR or looping key set (to a value other than its default) for a model it does nothing in is refused.
  void check_acts_on(const ModelConfig& model) const;
};
template <class Config>
struct ConfigKey;  // core/config_keys.h
// Every training setting: it drives the JSON form below (train_state.json) and the training CLI flags.
const std::vector<ConfigKey<TrainConfig>>& train_config_keys();
std::string train_config_to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const std::string& text);

// Learning rate for 0-based optimizer step `step` (the same formula as reference/model.py lr_at).
float lr_at(const TrainConfig& config, int64_t step);

// AdamW matching torch.optim.AdamW; moments in two flat buffers with the parameter layout.
struct AdamW {
  std::vector<float> m, v;
  int64_t step = 0;  // optimizer steps taken
  void init(size_t n_params);
  // One update of the model's parameters from grads (same layout) with learning rate lr; weight decay only on
  // tensors whose ParamInfo.decay is set.
  void update(Model& model, const std::vector<float>& grads, const TrainConfig& config, float lr);
};

// Global L2 norm of the gradients; when clip > 0 and the norm exceeds it, scales them to norm clip.
// Returns the norm before clipping (as torch.nn.utils.clip_grad_norm_ does).
float clip_grad_norm(std::vector<float>& grads, float clip);

struct StepMetrics {
  int64_t step = 0;      // 1-based count of optimizer steps done
  bool skipped = false;  // non-finite, skipped (skip_nonfinite_steps)
  float loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0;
  double flops = 0;     // training FLOPs the step ran: 3 × the forwards' TrainPass::last_forward_flops()
  double reduce_s = 0;  // of several ranks: wall time of the gradient reduction (incl. waiting for the slowest)
};

// AdamW's update guarded against non-finite values: gradients (when grad_norm is not finite) are checked before, the
// parameters and moments after. A non-finite step throws a recur::Error naming the step and the first bad tensor,
// or, with skip_nonfinite_steps, is undone (the step counter still advances) and false is returned.
bool guarded_update(Model& model, const std::vector<float>& grads, AdamW& opt, const TrainConfig& config, float lr,
                    float grad_norm);
// Refuses a run whose estimated memory (parameters, gradients, moments, activations) exceeds this machine's.
void check_training_memory(const Model& model, const TrainConfig& config);

// Training data as a function of (step, micro_step) only, so a resumed run sees exactly the same batches.
using BatchSource = std::function<Batch(int64_t step, int micro_step)>;
// Validation: named metrics to log (e.g. val_loss, accuracy per difficulty), called every eval_every steps
// with the training pass (its forward runs the model being trained; its buffers are already sized).
using EvalMetrics = std::vector<std::pair<std::string, double>>;
using Evaluator = std::function<EvalMetrics(TrainPass&)>;

// Validation on fixed batches: batch_at(i) for i < config.eval_batches, the same on every call; val_loss (and the
// MoR routing statistics averaged over the forwards and, for expert choice, val_loss_causal). Of several ranks,
// each runs its share of the batches and the sums are all-reduced (a collective: every rank calls it).
Evaluator batch_validation(std::function<Batch(int i)> batch_at, const TrainConfig& config);
// Windows of a byte corpus for config.seed (training) and a fixed set of validation windows.
BatchSource text_batches(const std::vector<uint8_t>& text, const TrainConfig& config);
Evaluator text_validation(const std::vector<uint8_t>& val_text, const TrainConfig& config);

// A data source whose position is state: saved in each checkpoint's train_state.json ("data") and given back on
// resume, so the resumed run continues where the data left off.
struct DataPosition {
  virtual ~DataPosition() = default;
  // The position after `step` optimizer steps, as a JSON object.
  virtual std::string save(int64_t step) const = 0;
  // Continue from `saved` (written by save(step)); an Error when it belongs to other data.
  virtual void restore(const std::string& saved, int64_t step) = 0;
};

// Training on token shards (recur/shards.h): each row of a batch is the next window of the epoch-shuffled order of
// the train split (ShardWindows, seeded by config.seed); the window cursor is the data position. Validation runs on
// fixed windows of the validation split. `folder` must outlive this.
class ShardTraining final : public DataPosition {
 public:
  ShardTraining(const ShardFolder& folder, const TrainConfig& config);
  BatchSource batches() const;
  Evaluator validation() const;
  std::string save(int64_t step) const override;
  void restore(const std::string& saved, int64_t step) override;

 private:
  const ShardFolder& folder_;
  TrainConfig config_;
  ShardWindows windows_;
  uint64_t base_cursor_ = 0;  // the window cursor at optimizer step base_step_
  int64_t base_step_ = 0;
};

// What the micro-batches of one step sum to: losses, FLOPs, tokens; the routing load of the last micro-batch.
struct StepTotals {
  double loss = 0, flops = 0, reduce_s = 0;
  int64_t tokens = 0;
  std::vector<double> depth_load, causal_sums;  // MoR: of the last micro-batch (MorStats)
};
class DataParallel;  // recur/distributed.h

// One optimizer step of `pass`'s model: grad_accum micro-batches, forward, backward, clip, AdamW. With an active
// `parallel`, the micro-batches are shared among the ranks and the gradients reduced (recur/distributed.h).
StepMetrics train_step(Model& model, TrainPass& pass, AdamW& opt, const TrainConfig& config, const BatchSource& batches,
                       DataParallel* parallel = nullptr);

struct TrainOptions {
  std::string out_dir;      // checkpoints and metrics.jsonl go here
  std::string resume_from;  // a checkpoint (or an out_dir with one); empty: start fresh
  int64_t stop_at = 0;      // stop (with a checkpoint) after this step, to train in pieces; 0: run to the end
  bool quiet = false;
  DataPosition* data_position = nullptr;  // the data's position, when it is state (token shards)
  std::string tokenizer_model;            // serialized SentencePiece model copied into each checkpoint; empty: bytes
};

// Totals of a run from its out_dir/metrics.jsonl, every segment of a resumed run included (the last row of a
// step counts: a resumed run repeats the steps after its last checkpoint).
struct RunTotals {
  int64_t steps = 0;
  double seconds = 0, flops = 0;
};
RunTotals read_run_totals(const std::string& out_dir);
// out_dir/metrics.jsonl opened for appending; an unterminated last row (a kill mid-write) is dropped first.
void open_metrics_for_append(const std::string& out_dir, std::ofstream& metrics);

// The whole run: resumes if asked, trains to config.steps, validates, checkpoints. Returns the last metrics.
StepMetrics train_run(Model& model, const TrainConfig& config, const BatchSource& batches, const Evaluator& evaluate,
                      const TrainOptions& options);

}  // namespace recur
