// recur/model.h: the trained model that training, decoding, serving and export all read: the config, one flat
// buffer of parameters with a table naming every tensor (Llama/HF names), and the layer schedule that maps
// each layer application onto its unique weights (docs/design.md, "Looping and sharing").
// It holds no forward state: a TrainPass (recur/train_pass.h) or a Decoder (recur/decode.h) runs it, so many
// threads can share one Model read-only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "recur/config.h"
#include "recur/kernels.h"

namespace recur {

struct ParamInfo {
  std::string name;            // e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // into the flat buffer
  size_t numel = 0;
  bool decay = false;  // weight decay applies (2-D weights), not to norm weights
};

// Offsets of one unique layer's tensors in the flat buffer. q,k,v are adjacent (one fused qkv matrix of
// qkv_dim rows) and so are gate and up (one (2·d_ff, d) matrix): one matrix product each.
struct LayerOffsets {
  size_t attn_norm, wqkv, wo, ffn_norm, w_gate_up, w_down;
};

// Offsets of the tensors outside the layers. Expert choice has one router per recursion step: w (1, d), or
// for the MLP router fc1 (2d, d) and fc2 (1, 2d); an auxiliary router (1, d) per step with mor_aux_router.
struct WeightOffsets {
  size_t embed = 0, final_norm = 0, lm_head = 0;
  size_t adapter = 0;                                                // input injection "concat": W (d, 2d)
  size_t token_router = 0;                                           // token choice: (N_r, d)
  std::vector<LayerOffsets> layers;                                  // per unique layer
  std::vector<size_t> expert_router, expert_router_fc2, aux_router;  // per recursion step
};

// How a Mixture-of-Recursions model stacks its layers: unique layers before the recursion (Middle-Cycle: the
// first), the shared block applied up to n_recursions times, unique layers after it (Middle-Cycle: the last).
// This is the one place that knows which layers are outside the recursion; training, decoding and FLOP
// counting all read it. A decoding cache has one site per layer application, numbered in this order.
struct MorStack {
  std::vector<int> prelude, coda;  // unique layer indices
  int block_begin = 0, block_size = 0, n_recursions = 0;
  size_t recursion_site(int step, int block_layer) const {
    return prelude.size() + (size_t)step * block_size + block_layer;
  }
  size_t coda_site(size_t i) const { return prelude.size() + (size_t)n_recursions * block_size + i; }
};

class Model {
 public:
  explicit Model(const ModelConfig& config);  // validates the config; weights as init_weights(0)

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& param_table() const { return table_; }
  const ParamInfo& param(const std::string& name) const;  // throws recur::Error for an unknown name
  size_t n_params() const { return params.size(); }
  const WeightOffsets& offsets() const { return offsets_; }
  const LayerOffsets& layer(int unique_index) const { return offsets_.layers[unique_index]; }
  const float* weights(size_t offset) const { return params.data() + offset; }
  // Unique layer index of each layer application, in order.
  const std::vector<int>& schedule() const { return schedule_; }
  const MorStack& mor_stack() const { return mor_stack_; }
  const kernels::RopeTable& rope() const { return rope_; }
  // Input injection before layer application `app`: the injection's index, or -1 where none happens.
  int injection_slot(size_t app) const;

  void init_weights(uint64_t seed);  // N(0, 0.02) for matrices and embeddings, 1 for norm weights
  // Run the looped block L times from now on (a model trained at one loop count evaluated at another, or a
  // loop count sampled per training step). Requires loop_block > 0.
  void set_loop_count(int L);

  // Model FLOPs per token of a forward at sequence length T (matmuls + attention over the causal half);
  // a training step costs three times that. For MoR, the expected cost at the configured capacities
  // (token choice: at balanced load), with recursive KV sharing's saved K/V projections.
  double forward_flops_per_token(int T) const;
  double train_flops_per_token(int T) const { return 3.0 * forward_flops_per_token(T); }

  std::vector<float> params;
  // Token choice: the loss-free balancing bias added to the router scores for the argmax only; trained by
  // token_choice_update_bias (recur/token_choice.h), saved with the weights, read by decoding.
  std::vector<float> mor_bias;

 private:
  ModelConfig config_;
  std::vector<ParamInfo> table_;
  WeightOffsets offsets_;
  std::vector<int> schedule_;
  MorStack mor_stack_;
  kernels::RopeTable rope_;
};

}  // namespace recur
