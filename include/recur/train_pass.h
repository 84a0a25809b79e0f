// recur/train_pass.h: the training forward and backward of a Model as straight-line code (embed, each layer
// application in schedule order, or the Mixture-of-Recursions stack, final norm, head, loss), with the
// activations backward needs, the gradient buffer (same layout as Model::params; backward adds into it, so
// shared weights receive the sum over their uses) and scratch. The Model itself is only read.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "recur/expert_choice.h"
#include "recur/layer.h"
#include "recur/model.h"

namespace recur {

// One recursion step of a Mixture-of-Recursions forward: what ran, on which tokens, and what backward needs.
struct MorStep {
  std::vector<int32_t> candidates;           // expert choice: rows that competed (ascending)
  ExpertScores scores;                       // expert choice: router logits per candidate
  std::vector<char> chosen;                  // expert choice: per candidate, whether it was selected
  std::vector<float> h_candidates;           // (|candidates|, d) stream rows at the start of the step
  std::vector<int32_t> selected;             // rows the block ran on (ascending)
  std::vector<float> gate;                   // expert choice: g per selected row
  TokenLayout layout;                        // the compacted sub-sequences of the selected rows
  std::vector<std::vector<float>> residual;  // block input and each layer's output, (|selected|, d)
  std::vector<LayerActivations> acts;
};

// Routing statistics of the last forward, for validation logs.
struct MorStats {
  std::vector<double> active_fraction;  // per step: tokens the block ran on / all tokens
  std::vector<double> depth_load;       // fraction of tokens whose last step is r
  double aux_loss = 0, z_loss = 0, balance_loss = 0;
  // Expert choice: how often the causal decoding rule (recur/expert_choice.h) agrees with top-k, over the
  // candidates of the steps that choose (capacity < 1).
  double causal_agreement = 1;
  // Expert choice under top-k: per step the sums that expert_update_bias calibrates the causal rule by
  // (expert_add_causal_sums, recur/expert_choice.h; kCausalSums per step, zeros at a step of capacity 1).
  std::vector<double> causal_sums;
  // Tokens that never got a recursion beyond the ones every token runs (expert: not chosen by any router
  // that had a choice; token: routed to the shallowest depth).
  double dead_token_ratio = 0;
};

// The forward of one shard of a data-parallel micro-batch (src/train/data_parallel.cpp). The router losses are
// means over the micro-batch's tokens, and token choice's balancing loss is a product of two micro-batch
// statistics, so a shard needs the micro-batch's routing: route_counts turns this shard's token_route_counts
// into the micro-batch's (a collective under MPI). mean_scale = the shard's share of the micro-batch's rows /
// its weight in the micro-batch's loss: the router losses' means are multiplied by it, so that the weighted
// sum over the shards is the micro-batch's mean (1 when targets are counted evenly over the rows).
struct MicroBatchShard {
  std::function<std::vector<double>(const std::vector<double>& own)> route_counts;
  double mean_scale = 1;
};

class TrainPass {
 public:
  explicit TrainPass(const Model& model);
  const Model& model() const { return model_; }

  // tokens, targets (B,T); targets < 0 are ignored. Returns the mean loss over the counted targets (plus the
  // regularizer and router losses) and keeps what backward needs. With targets == nullptr only logits.
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T);
  // Adds d(loss)/d(params) into grads. Requires a forward with targets just before.
  void backward();
  void zero_grad();
  std::vector<float> grads;

  const float* logits() const { return logits_.data(); }       // (B*T, vocab) of the last forward
  int n_targets() const { return n_targets_; }                 // counted targets in the last forward
  float last_regularizer() const { return regularizer_; }      // regularizer + router losses in the last loss
  float last_cross_entropy() const { return cross_entropy_; }  // the last loss without them
  const MorStats& mor_stats() const { return mor_.stats; }
  // FLOPs of the last forward as it ran (every layer application on the rows it actually ran on, attention
  // over the key pairs it actually scored, routers, head): what MoR's skipped tokens save.
  double last_forward_flops() const;
  // Bytes of activation memory held for backward by the last forward (the buffers MoR shrinks).
  size_t activation_bytes() const;

  // Training warm-ups: capacity_progress in [0,1] moves each c_r from 1 to its target (cosine);
  // balance_scale multiplies the token-choice balancing loss.
  void set_mor_warmup(double capacity_progress, double balance_scale);
  // Expert choice with the causal rule of decoding (expert_continues) instead of the top-k over the whole
  // sequence, which needs future tokens: a forward that equals decoding.
  void set_mor_causal_routing(bool on) { mor_.causal = on; }
  // The next forwards are of a shard of a micro-batch; MicroBatchShard{} (the default) for a whole one.
  void set_micro_batch_shard(MicroBatchShard shard) { mor_.shard = std::move(shard); }

 private:
  struct MorState {
    std::vector<MorStep> steps;                   // per recursion step
    std::vector<float> stream;                    // (N,d) the stream through the recursion steps
    std::vector<float> h1, probs, lse;            // token choice: stack input (N,d), router probabilities (N,N_r), lse
    std::vector<int32_t> depth;                   // token choice: last step per row
    std::vector<double> fraction;                 // token choice: routed fraction per depth
    std::vector<std::vector<float>> shared_dqkv;  // KV sharing: per block layer, gradients sent to step 0
    MorStats stats;
    MicroBatchShard shard;
    double capacity_progress = 1.0, balance_scale = 1.0;
    bool causal = false;
  };

  void check_inputs(const int32_t* tokens, int B, int T) const;
  float loss(const int32_t* targets, double router_loss);
  void layer_stack_forward(int N);
  void layer_stack_backward(int N);
  const float* stack_output() const;  // input of the final norm
  double mor_stack_forward(int N);
  void mor_stack_backward(int N);
  double expert_forward(float* stream, int N);
  void expert_step_forward(int r, float* stream, int N, std::vector<char>& router_choice, double agreement[2],
                           ExpertLosses& router_losses);
  void expert_backward(float* dstream);
  double token_forward(float* stream, int N);
  void token_backward(float* dstream, int N);
  void run_block_forward(int r, const float* stream);
  void run_block_backward(int r, float* dx);

  const Model& model_;
  int B_ = 0, T_ = 0, n_targets_ = 0;
  float regularizer_ = 0, cross_entropy_ = 0;
  TokenLayout layout_;
  std::vector<int32_t> tokens_, targets_;
  std::vector<std::vector<float>> residual_;  // input of each application, then the output
  std::vector<LayerActivations> acts_;        // one per application
  std::vector<std::vector<float>> injected_;  // per injection slot: the block input after injection (N,d)
  std::vector<std::vector<float>> concat_;    // per injection slot (concat): [h; e] (N,2d)
  MorState mor_;
  std::vector<float> final_norm_, final_rstd_, logits_, dlogits_, losses_;
  LayerGradScratch scratch_;
  std::vector<float> dx_, dxn_, dinput_, dconcat_;
};

// Looping-inspired regularizer (docs/design.md, "Looping and sharing") of the model's weights: for a
// non-looped model seen as n_layers/k blocks of k layers, λ · mean over parameter groups of (1 − mean cosine
// between layer ik+j and (i+1)k+j). With grads its gradient is added there. 0 when loop_reg_k is 0.
float loop_regularizer(const Model& model, float* grads);

}  // namespace recur
