// recur/expert_choice.h: Mixture-of-Recursions expert-choice routing (docs/design.md, "Mixture-of-Recursions"),
// the one home of its rules, used by the training forward, the causal forward and the decoder alike.
// Per recursion step r a router scores the step's candidates, z = w_r·h (or an MLP d→2d→1); training keeps
// the top-k_r of each sequence, inference the causal rule; a selected token is updated h ← h + g(z)·Block(h).
#pragma once
#include <cstdint>
#include <vector>

#include "recur/model.h"

namespace recur {

// Router logits of step r for n stream rows h (n,d): z (n), and with mor_aux_router the auxiliary router's
// z_aux (n); the MLP router keeps its fc1 output `hidden` (n, 2d) for backward.
struct ExpertScores {
  std::vector<float> z, z_aux, hidden;
  // The logit trained by the BCE loss to predict selection: the auxiliary router's, or the router's own.
  const std::vector<float>& bce_logits(const ModelConfig& c) const { return c.mor_aux_router ? z_aux : z; }
};
void expert_route(const Model& m, int step, const float* h, int n, ExpertScores& out);
// dz, dz_aux (n) -> router weight gradients added into grads, and dh (n,d) += dz·∂z/∂h (the auxiliary router
// reads a detached input: it learns, the stream gets nothing from it).
void expert_route_backward(const Model& m, float* grads, int step, const float* h, int n, const ExpertScores& s,
                           const float* dz, const float* dz_aux, float* dh);

// The update of a token the block ran on: h ← h + g·y, y = Block(h) (d).
inline void expert_mix(float gate, const float* y, float* h, int d) {
  for (int k = 0; k < d; k++) h[k] += gate * y[k];
}

float expert_gate(const ModelConfig& c, float z);       // g = α·sigmoid(z), or α·tanh(z)
float expert_gate_grad(const ModelConfig& c, float z);  // dg/dz

// The causal rule of inference: at a step of capacity c_r < 1 a token continues iff its BCE-trained logit plus
// the step's bias (Model::mor_bias) is >= 0 (a step of capacity 1 takes every candidate). It needs no future
// token, unlike the top-k.
bool expert_continues(double capacity, float z_bce, float bias);
// Calibration of the causal rule to training's capacities, after an optimizer step: per step r,
// bias_r -= rate · σ_r · e_r, with e_r = (candidates the causal rule would continue − candidates top-k chose) /
// candidates and σ_r the standard deviation of the candidates' BCE logits, from the step's training forward. It
// settles where the causal rule continues as many tokens as the top-k does; the σ makes its step independent of
// the logits' scale (about 0.4·rate of the gap per update for normal logits).
// The forward's sums per step r, each divided by the tokens so that shards add up: (excess, candidates, Σz, Σz²).
constexpr int kCausalSums = 4;
void expert_add_causal_sums(const std::vector<float>& z_bce, const std::vector<char>& chosen, float bias, int tokens,
                            double* sums);
void expert_update_bias(Model& m, const std::vector<double>& causal_sums, float rate);

// Training's rule: per sequence (rows grouped by sequence of length T), the `capacity` candidates with the
// highest z (ties: the lower position first). chosen (n) is set to 1 for them.
void expert_select_top_k(const std::vector<int32_t>& candidates, const float* z, int T, int capacity,
                         std::vector<char>& chosen);
// The capacity k_r = max(1, floor(c_r·T)) of step r at warm-up progress in [0,1] (cosine from 1 to c_r).
double expert_capacity_fraction(const ModelConfig& c, int step, double warmup_progress);

// Dead tokens (docs/mor.md): per token 0 = never a candidate of a step whose router had a choice (capacity < 1),
// 1 = such a candidate but never selected there, 2 = selected by such a step, under the rule the pass used (top-k
// in training, the causal rule in a causal pass). The ratio: tokens at 1 over tokens at 1 or 2 (0 if none).
enum : char { kNoChoice = 0, kNotChosen = 1, kChosen = 2 };
double expert_dead_token_ratio(const std::vector<char>& router_choice);

// Router losses of one step, averaged over its n candidates and added into `total` (a forward sums its steps):
// the auxiliary BCE on the BCE logit (target: chosen) and the z-loss on z.
struct ExpertLosses {
  double bce = 0, z = 0;
};
void expert_router_losses(const ModelConfig& c, const ExpertScores& s, const std::vector<char>& chosen,
                          ExpertLosses& total);
// Their gradients, added into dz and dz_aux (n), so that the gate's can join.
void expert_router_loss_grads(const ModelConfig& c, const ExpertScores& s, const std::vector<char>& chosen, float* dz,
                              float* dz_aux);

}  // namespace recur
