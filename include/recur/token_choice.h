// recur/token_choice.h: Mixture-of-Recursions token-choice routing (docs/design.md, "Mixture-of-Recursions"),
// the one home of its rules, used by the training forward and the decoder alike. One router on the recursion
// stack's input h¹ picks each token's depth i = argmax(W h¹ + bias); the token runs steps 0..i, and at its last
// step h = h¹ + p_i·Block(h). It is causal by construction: the depth depends on the token alone.
#pragma once
#include <cstdint>
#include <vector>

#include "recur/model.h"

namespace recur {

// Router probabilities p (N_r) of stack-input row h and the log-sum-exp of its logits; returns the depth,
// the argmax of logits + the model's balancing bias (the bias steers the choice only, not p).
int token_route(const Model& m, const float* h, float* p, double& lse);

// The stream update of step `step` for a token of depth `depth`: at its last step h = h¹ + p_depth·y, earlier
// steps h = y (y = Block(h), all (d)). Returns whether the token leaves the stack after this step.
bool token_mix(int step, int depth, const float* p, const float* h1, const float* y, float* h, int d);
// The backward of token_mix: dh (d) is the gradient of the mixed h; gives dy (d), and at the last step adds
// dh into dh1 and <dh, y> into dp[depth].
void token_mix_backward(int step, int depth, const float* p, const float* y, const float* dh, float* dy, float* dh1,
                        float* dp, int d);

// Tokens routed to each depth of N tokens, then N: the micro-batch statistics of the balancing loss (summed over
// the shards of a data-parallel micro-batch, recur/train_pass.h's MicroBatchShard).
std::vector<double> token_route_counts(const int32_t* depth, int N, int n_recursions);
// Balancing loss Σ_i P_i f_i (P_i mean probability, f_i = N_r × fraction routed to i) and z-loss mean lse²
// over N tokens; f is the routed fraction per depth, from `counts` (token_route_counts of the whole micro-batch).
// mean_scale multiplies both means (1 for a whole micro-batch; MicroBatchShard for a shard of one).
struct TokenLosses {
  double balance = 0, z = 0;
  std::vector<double> fraction;  // per depth
};
TokenLosses token_router_losses(const ModelConfig& c, const float* probs, const float* lse, int N,
                                const std::vector<double>& counts, double mean_scale);
// Backward of the router for N tokens: dp (N, N_r) holds the gradient of the probabilities from the mixes;
// the balancing loss (scaled by balance_scale) and the z-loss, both times mean_scale, are added, and the result
// flows through the softmax into the router weight's gradient and dh1 (N,d).
void token_route_backward(const Model& m, float* grads, const float* h1, const float* probs, const float* lse,
                          const std::vector<double>& fraction, double balance_scale, double mean_scale, float* dp,
                          float* dh1, int N);

// Loss-free balancing: bias_i += rate · sign(mean load − load_i) after an optimizer step.
void token_update_bias(Model& m, const std::vector<double>& depth_load, float rate);

}  // namespace recur
