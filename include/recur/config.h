// recur/config.h: the model configuration (docs/design.md, "The model"), its JSON form and its validation.
// A config value has one name everywhere: the JSON key, the CLI flag and the struct field are the same.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace recur {

// How the n_layers layer applications map onto unique weights (docs/design.md, "Looping and sharing").
enum class Sharing { none, cycle, sequence, middle_cycle, middle_sequence };
// What re-enters the looped block before each iteration after the first (e: the block's first input):
// h + e, or W·[h; e] with one shared adapter W (d, 2d).
enum class InputInjection { none, add, concat };
enum class MorRouting { none, expert, token };
enum class MorGate { sigmoid, tanh };
enum class MorRouter { linear, mlp };  // expert-choice router: w·h, or w2·silu(W1·h) with W1 (2d, d)

struct ModelConfig {
  int vocab_size = 256;
  int d_model = 256;
  int n_heads = 4;
  int n_kv_heads = 4;
  int d_ff = 688;
  int n_layers = 4;  // layer applications (effective depth)
  int max_seq_len = 256;
  bool tied_embeddings = true;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  // Parameter sharing: n_layers applications over fewer unique layers.
  Sharing sharing = Sharing::none;
  int n_recursions = 1;  // N_r for cycle/sequence/middle_* sharing
  // Middle looping (docs/design.md, "Looping and sharing"): prelude unique layers, a block of loop_block layers applied
  // loop_count times, coda unique layers. Active when loop_block > 0; then sharing must be none.
  int prelude = 0;
  int loop_block = 0;
  int loop_count = 1;
  int coda = 0;
  InputInjection input_injection = InputInjection::none;
  // Looping-inspired regularizer (docs/design.md, "Looping and sharing") for a non-looped model seen as n_layers/k
  // blocks of k layers: λ · mean over parameter groups of (1 - mean cosine between layer ik+j and (i+1)k+j). 0: off.
  int loop_reg_k = 0;
  float loop_reg_lambda = 0.0f;
  // Mixture-of-Recursions (docs/design.md, "Mixture-of-Recursions"): routers give each token its own number of
  // recursion steps through the shared block of cycle or middle_cycle sharing (n_recursions steps at most).
  MorRouting mor_routing = MorRouting::none;
  MorRouter mor_router = MorRouter::linear;
  MorGate mor_gate = MorGate::sigmoid;
  float mor_alpha = 0.1f;           // gate scale: g = alpha * sigmoid(z) (or tanh)
  std::vector<float> mor_capacity;  // expert choice: c_r per step; empty = (N_r - r)/N_r
  float mor_aux_loss = 1e-3f;       // expert choice: BCE on router logits (selected = 1)
  float mor_balance_loss = 0.1f;    // token choice: sum_i P_i f_i
  float mor_z_loss = 1e-5f;         // router z-loss
  bool mor_kv_sharing = false;      // later recursions attend to the first recursion's K/V
  // Expert choice: a second linear router per step trained by the BCE loss on detached inputs (the main router
  // then gets no BCE); its sign is the causal continue/stop rule at inference.
  bool mor_aux_router = false;

  bool mor() const { return mor_routing != MorRouting::none; }
  int mor_block_begin() const;  // first unique layer of the recursion block
  int mor_block_size() const;   // unique layers in the block
  float capacity(int r) const;

  int head_dim() const { return d_model / n_heads; }
  int qkv_dim() const { return (n_heads + 2 * n_kv_heads) * head_dim(); }
  // Unique layer index used by each of the n_layers applications.
  std::vector<int> layer_schedule() const;
  int n_unique_layers() const;
  // Throws recur::Error naming the offending key and a valid alternative.
  void validate() const;
};

template <class Config>
struct ConfigKey;  // core/config_keys.h
// Every key of the model config, in the order the CLI help lists them: it drives the JSON reading and writing
// below and the `recur train` flags.
const std::vector<ConfigKey<ModelConfig>>& model_config_keys();

ModelConfig model_config_from_json(const std::string& json_text);  // validates
ModelConfig model_config_from_file(const std::string& path);
std::string model_config_to_json(const ModelConfig& config);  // pretty-printed
const char* sharing_name(Sharing sharing);
const char* injection_name(InputInjection injection);

}  // namespace recur
