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
#include "recur/huge_pages.h"
#include "recur/kernels.h"

namespace recur {

using ParamBuffer = HugePageVector<float>;  // the flat parameter buffer of a Model

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

// The precision of the model's matrix products (recur train/experiment/bench --precision for training,
// sample/serve/server/bench decode for inference; docs/precision.md): f32, or bf16 — both operands of every
// matrix product rounded to bf16 (the weights from a rounded copy, half the bytes each decode step streams),
// products accumulated in f32. Norms, attention, SwiGLU, routers, the loss and the optimizer stay f32.
enum class Precision { f32, bf16 };
Precision precision_from_name(const std::string& name);  // "f32" or "bf16"; anything else throws recur::Error
const char* precision_name(Precision precision);

// How a new Model's weights start: init_weights(0), or zeros for a model whose weights are loaded next (the
// random draws of 85M weights take seconds, all overwritten).
enum class ModelInit { random, zeros };

class Model {
 public:
  explicit Model(const ModelConfig& config, ModelInit init = ModelInit::random);  // validates the config

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& param_table() const { return table_; }
  const ParamInfo& param(const std::string& name) const;  // throws recur::Error for an unknown name
  size_t n_params() const { return params.size(); }
  const WeightOffsets& offsets() const { return offsets_; }
  const LayerOffsets& layer(int unique_index) const { return offsets_.layers[unique_index]; }
  const float* weights(size_t offset) const { return params.data() + offset; }
  // The matrix at `offset` as the GEMM seam (recur/kernels.h) reads it: the bf16 copy when the precision is bf16,
  // else the f32 parameters. Every matrix product of layer.cpp and the head, forward and backward, asks for this
  // view; routers read weights() (their scores stay f32).
  kernels::WeightView matrix(size_t offset) const {
    return bf16_.empty() ? kernels::WeightView(params.data() + offset)
                         : kernels::WeightView::of_bf16(bf16_.data() + offset);
  }
  // bf16 rounds a copy of `params` that matrix() returns from then on: call it again after the parameters change
  // (training does after every optimizer step). f32 drops the copy.
  void set_precision(Precision precision);
  Precision precision() const { return bf16_.empty() ? Precision::f32 : Precision::bf16; }
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

  ParamBuffer params;  // every parameter, one flat buffer (huge pages: decoding streams it every token)
  // MoR routing bias per recursion step, saved with the weights and moved by training after each optimizer step,
  // not by gradients. Token choice: the loss-free balancing bias added to the router scores for the argmax only
  // (token_update_bias, recur/token_choice.h). Expert choice: the causal rule's bias, which calibrates decoding's
  // continue/stop decisions to the capacities of training's top-k (expert_update_bias, recur/expert_choice.h).
  std::vector<float> mor_bias;

 private:
  ModelConfig config_;
  std::vector<ParamInfo> table_;
  WeightOffsets offsets_;
  std::vector<int> schedule_;
  MorStack mor_stack_;
  kernels::RopeTable rope_;
  HugePageVector<uint16_t> bf16_;  // the bf16 copy of params (same layout), or empty
};

}  // namespace recur
