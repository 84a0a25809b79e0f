// recur/model.h: the Llama-style decoder (SPEC §1) with layer sharing (SPEC §2). Parameters live in one flat
// buffer, gradients in a second with the same layout; a table names every tensor (Llama/HF names).
// forward() keeps the activations backward() needs; backward() adds into the gradient buffer.
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
  bool decay = false;          // weight decay applies (2-D weights), not to norm weights
};

// Offsets of one unique layer's tensors in the flat buffer. q,k,v are adjacent (one fused qkv matrix of
// qkv_dim rows) and so are gate and up (one (2·d_ff, d) matrix): one matrix product each.
struct LayerOffsets {
  size_t attn_norm, wqkv, wo, ffn_norm, w_gate_up, w_down;
};

// Activations of one layer application over N tokens (what backward needs).
struct LayerActivations {
  std::vector<float> xn1, rstd1, qkv, att, lse, mid, xn2, rstd2, gate_up, hidden;
  void resize(size_t N, const ModelConfig& c);
};

// A set of token rows that a block runs on: n_seq sequences of rows, each row with its position.
struct TokenLayout {
  int n_rows = 0;
  std::vector<int32_t> seq_start;  // (n_seq+1)
  std::vector<int32_t> pos;        // (n_rows)
  static TokenLayout dense(int B, int T);  // B sequences of T tokens at positions 0..T-1
  int n_seq() const { return (int)seq_start.size() - 1; }
};

// One recursion step of a Mixture-of-Recursions forward: what ran, on which tokens, and what backward needs.
struct MorStep {
  std::vector<int32_t> candidates;  // expert choice: rows that competed (ascending); z per candidate
  std::vector<float> z;
  std::vector<float> z_aux;         // auxiliary router logits per candidate (mor_aux_router)
  std::vector<float> h_candidates;  // (|candidates|, d) stream rows at the start of the step
  std::vector<float> router_hidden; // MLP router: fc1 output per candidate (|candidates|, 2d)
  std::vector<int32_t> selected;    // rows the block ran on (ascending)
  std::vector<float> gate;          // expert choice: g per selected row
  TokenLayout layout;               // the compacted sub-sequences of the selected rows
  std::vector<std::vector<float>> residual;  // block input and each layer's output, (|selected|, d)
  std::vector<LayerActivations> acts;
};

// One sequence's decoding state: the post-RoPE keys and values of every position it has consumed, per layer
// application (Model::decode_forward), and how many tokens that is.
struct KVCache {
  // per layer application (MoR: per recursion step and block layer; empty for steps that share the first's)
  std::vector<std::vector<float>> kv;     // (rows, 2·kv_dim), each row [k | v]
  std::vector<std::vector<int32_t>> pos;  // the position of each row (MoR: only the tokens that ran the step)
  int length = 0;                         // tokens consumed = the next token's position
  void clear();
  size_t bytes() const;
};
// New tokens of one sequence for a decode step (a prompt prefill, or one sampled token).
struct DecodeChunk {
  KVCache* cache;
  const int32_t* tokens;
  int n;
};
// A token inside the MoR recursion stack while decoding: its sequence, position, next step and stream state.
struct RecursionToken {
  KVCache* cache = nullptr;
  int seq = 0;       // orders tokens: rows of one sequence are kept together, by position
  int32_t pos = 0;
  int step = 0;      // the recursion step it runs next
  int depth = 0;     // token choice: its last step (expert choice decides step by step)
  float gate = 0;    // expert choice: the gate of the step it is about to run
  bool routed = false;  // expert choice: the router of its next step has decided (it continues)
  std::vector<float> h, h1, probs;  // stream (d); token choice: stack input (d), router probabilities (N_r)
};
// Where one sequence of a cached layer call reads and writes K/V: its cache's site (layer application), or
// with shared_site >= 0 only reading that site (recursive KV sharing).
struct CacheSlot {
  KVCache* cache;
  size_t site;
  int shared_site = -1;
};

// Routing statistics of the last forward (SPEC §3), for validation logs.
struct MorStats {
  std::vector<double> active_fraction;  // per step: tokens the block ran on / all tokens
  std::vector<double> depth_load;       // fraction of tokens whose last step is r
  double aux_loss = 0, z_loss = 0, balance_loss = 0;
  // Expert choice: how often the causal decoding rule (continue iff sigmoid(z) >= 0.5) agrees with top-k,
  // over the candidates of the steps that choose (capacity < 1).
  double causal_agreement = 1;
  // Tokens that never got a recursion beyond the ones every token runs (expert: not chosen by any router
  // that had a choice; token: routed to the shallowest depth).
  double dead_token_ratio = 0;
};

class Model {
 public:
  explicit Model(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& param_table() const { return table_; }
  const ParamInfo& param(const std::string& name) const;  // throws recur::Error for an unknown name
  size_t n_params() const { return params.size(); }
  void init_weights(uint64_t seed);  // N(0, 0.02) for matrices and embeddings, 1 for norm weights
  void zero_grad();

  // tokens, targets (B,T); targets < 0 are ignored. Returns the mean loss over the counted targets and keeps
  // what backward needs. With targets == nullptr only logits are computed.
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T);
  // Adds d(mean loss)/d(params) into grads. Requires a forward with targets just before.
  void backward();
  const float* logits() const { return logits_.data(); }  // (B*T, vocab) of the last forward
  int n_targets() const { return n_targets_; }            // counted targets in the last forward
  float last_regularizer() const { return regularizer_; } // regularizer + router losses in the last loss
  float last_cross_entropy() const { return cross_entropy_; }  // the last loss without them

  // Looping-inspired regularizer (SPEC §2) of the current weights; with accumulate_grad its gradient is
  // added into grads. 0 when loop_reg_k is 0.
  float loop_regularizer(bool accumulate_grad);
  // Mixture-of-Recursions: statistics of the last forward; the token-choice balancing bias (SPEC §3,
  // loss-free balancing: added to the router scores for the argmax only, updated by update_mor_bias).
  MorStats mor_stats() const;
  std::vector<float> mor_bias;
  void update_mor_bias(float rate);
  // Training warm-ups: capacity_progress in [0,1] moves each c_r from 1 to its target (cosine);
  // balance_scale multiplies the token-choice balancing loss.
  void set_mor_warmup(double capacity_progress, double balance_scale);
  // Expert choice at inference: a token continues at step r iff its BCE-trained router logit is >= 0 (the
  // causal rule; steps with capacity 1 take every candidate) instead of the top-k over the whole sequence,
  // which needs future tokens. Decoding always routes this way; forward() does while this is on.
  void set_mor_causal_routing(bool on);

  // Run the looped block L times from now on (a model trained at one loop count evaluated at another, or a
  // loop count sampled per training step). Requires loop_block > 0.
  void set_loop_count(int L);

  // Incremental decoding (src/infer/decode.cpp): runs each chunk's tokens at the positions after its cache,
  // attending to the cache, and appends their keys/values to it. logits (total new tokens, vocab) in chunk
  // order. Equals forward() over the whole sequences; for MoR, forward() with causal routing (expert choice:
  // set_mor_causal_routing), each recursion step caching the K/V of the tokens that ran it (or, with KV
  // sharing, the steps after the first attending to the first step's cache).
  // MoR: block_passes and block_rows, when given, count the passes of the shared block and the rows they ran.
  void decode_forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits,
                      int64_t* block_passes = nullptr, int64_t* block_rows = nullptr);
  // MoR decoding one stage at a time, for continuous depth-wise batching (src/infer/serve.cpp): tokens at
  // different recursion steps run the shared block in one batch. decode_forward is enter, advance until every
  // token left the stack, leave.
  //   mor_enter: embeddings and the unique first layer of the chunks' tokens (token choice: their depths).
  //   mor_advance: routes each active token at its own step, runs one block pass on those that continue,
  //     and moves the tokens that finished their last step into `exited`.
  //   mor_leave: the unique last layer, final norm and head of tokens sorted by (seq, pos): logits (n, vocab).
  std::vector<RecursionToken> mor_enter(const std::vector<DecodeChunk>& chunks);
  int mor_advance(std::vector<RecursionToken*>& active, std::vector<RecursionToken*>& exited);  // rows run
  void mor_leave(const std::vector<RecursionToken*>& tokens, std::vector<float>& logits);

  // Forward/backward of one layer application on the token rows of `layout` (for MoR, a gathered subset).
  // x_in, x_out (N,d). backward: dx (N,d) holds d x_out on entry and d x_in on return.
  // With `shared`, the layer computes only queries and attends to another application's keys/values
  // (recursive KV sharing); their gradients are added into shared->dqkv. `extra_dqkv` (N, qkv_dim) adds
  // gradients that later applications sent to this application's keys/values.
  struct SharedKV {
    const float* qkv;           // (Nk, qkv_dim) post-RoPE keys and values of the first recursion
    const TokenLayout* layout;  // their rows
    float* dqkv;                // gradient accumulator, same shape
  };
  void layer_forward(int layer, const TokenLayout& layout, const float* x_in, float* x_out, LayerActivations& acts,
                     const SharedKV* shared = nullptr);
  void layer_backward(int layer, const TokenLayout& layout, const float* x_in, const LayerActivations& acts,
                      float* dx, const SharedKV* shared = nullptr, const float* extra_dqkv = nullptr);

  // FLOPs of the last forward as it ran (every layer application on the rows it actually ran on, attention
  // over the key pairs it actually scored, routers, head): what MoR's skipped tokens save.
  double last_forward_flops() const;
  // Bytes of activation memory held for backward by the last forward (the buffers MoR shrinks).
  size_t activation_bytes() const;

  // Model FLOPs per token of a forward at sequence length T (matmuls + attention over the causal half);
  // a training step costs three times that. For MoR, the expected cost at the configured capacities
  // (token choice: at balanced load), with recursive KV sharing's saved K/V projections.
  double forward_flops_per_token(int T) const;
  double train_flops_per_token(int T) const { return 3.0 * forward_flops_per_token(T); }

  std::vector<float> params, grads;

 private:
  // layer_forward in two parts, so that decoding can attend to a KV cache in between: RMSNorm + fused
  // projection + RoPE into a.qkv, then the o-projection, residual and MLP from a.att.
  void attention_inputs(int u, const TokenLayout& layout, const float* x_in, LayerActivations& a, bool queries_only);
  void layer_output(int u, int N, const float* x_in, float* x_out, LayerActivations& a);
  // One layer (unique index u) over the new rows of each layout sequence s, attending to and extending the
  // cache site of slots[s].
  void cached_layer_forward(int u, const TokenLayout& layout, const std::vector<CacheSlot>& slots, const float* x_in,
                            float* x_out, LayerActivations& a);
  // Checks the chunks, lays out their tokens at the positions after their caches and advances the caches.
  TokenLayout decode_layout(const std::vector<DecodeChunk>& chunks, std::vector<int32_t>& tokens);
  void final_logits(const float* x, int N, std::vector<float>& logits);  // final norm + head
  kernels::AttentionShape attention_shape(const TokenLayout& q_layout, const TokenLayout& k_layout, int q_stride) const;
  // Input injection before layer application `app`: the slot index, or -1 where none happens.
  int injection_slot(size_t app) const;
  void inject_forward(int slot, const float* h, const float* e, int N);
  void inject_backward(int slot, float* dx, float* de, int N);
  // Mixture-of-Recursions over the stream (N,d) in place; returns the router losses added to the loss.
  double mor_forward(float* stream, int N);
  void layer_stack_forward(int N);  // embeddings -> every layer application (residual_, acts_)
  void layer_stack_backward(int N);
  double mor_stack_forward(int N);
  void mor_stack_backward(int N);
  const float* stack_output() const;  // input of the final norm
  void mor_backward(float* dstream, int N);
  void run_block_forward(MorStep& step, const float* stream);
  void run_block_backward(MorStep& step, float* dx);
  void router_forward(int r, MorStep& step);  // step.z from step.h_candidates
  float expert_gate(float z) const;  // g = α·sigmoid(z) or α·tanh(z)
  // Token choice: router probabilities p (N_r) of stream row h and the log-sum-exp of its logits; returns the
  // depth, argmax of logits + mor_bias.
  int token_choice_route(const float* h, float* p, double& lse) const;
  void expert_route(std::vector<RecursionToken*>& tokens, std::vector<RecursionToken*>& exited);
  size_t mor_first_site() const;  // decoding cache site of the first recursion step's first block layer
  void router_backward(int r, MorStep& step, const float* dz, float* dh_candidates);
  const LayerOffsets& layer(int unique_index) const { return layers_[unique_index]; }

  ModelConfig config_;
  std::vector<ParamInfo> table_;
  std::vector<LayerOffsets> layers_;
  std::vector<int> schedule_;
  size_t embed_offset_ = 0, norm_offset_ = 0, lm_head_offset_ = 0, adapter_offset_ = 0;
  size_t router_offset_ = 0;                           // token choice: (N_r, d)
  std::vector<std::pair<size_t, size_t>> router_offsets_;  // expert choice per step: w (or fc1, fc2)
  std::vector<size_t> aux_router_offsets_;                 // expert choice auxiliary routers, per step
  kernels::RopeTable rope_;

  // State of the last forward (sized lazily for the largest batch seen).
  int B_ = 0, T_ = 0, n_targets_ = 0;
  float regularizer_ = 0, cross_entropy_ = 0;
  TokenLayout layout_;
  std::vector<int32_t> tokens_, targets_;
  std::vector<std::vector<float>> residual_;  // n_layers+1 buffers (N,d): input of each application + output
  std::vector<LayerActivations> acts_;        // one per application
  std::vector<std::vector<float>> injected_;  // per injection slot: the block input after injection (N,d)
  std::vector<std::vector<float>> concat_;    // per injection slot (concat): [h; e] (N,2d)
  std::vector<MorStep> mor_steps_;            // per recursion step
  std::vector<float> mor_stream_;             // (N,d) the stream through the recursion steps
  std::vector<float> mor_h1_, mor_probs_;     // token choice: stack input (N,d), router probabilities (N,N_r)
  std::vector<float> mor_lse_;                // token choice: log-sum-exp of each row's router logits
  std::vector<int32_t> mor_depth_;            // token choice: last step per row
  MorStats mor_stats_;
  double mor_capacity_progress_ = 1.0, mor_balance_scale_ = 1.0;
  bool mor_causal_routing_ = false;
  std::vector<std::vector<float>> mor_shared_dqkv_;  // KV sharing: per block layer, gradients sent to step 0
  std::vector<float> final_norm_, final_rstd_, logits_, dlogits_, losses_;
  // Gradient scratch reused across layers.
  std::vector<float> dx_, dxn_, dqkv_, datt_, dgate_up_, dhidden_, dinput_, dconcat_;
};

}  // namespace recur
