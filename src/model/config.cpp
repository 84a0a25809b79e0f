// Model configuration: JSON parsing with helpful errors, validation, and the layer schedule that maps each
// layer application onto unique weights (docs/design.md, "Looping and sharing": cycle, sequence, middle variants,
// middle looping).
#include <nlohmann/json.hpp>

#include "core/config_keys.h"
#include "core/json_floats.h"
#include "core/json_read.h"
#include "recur/config.h"
#include "recur/error.h"

namespace recur {

using nlohmann::json;

namespace {

// Value names of the enum keys, in enum order.
const std::vector<std::string> kSharingNames = {"none", "cycle", "sequence", "middle_cycle", "middle_sequence"};
const std::vector<std::string> kInjectionNames = {"none", "add", "concat"};
const std::vector<std::string> kMorRoutingNames = {"none", "expert", "token"};
const std::vector<std::string> kMorRouterNames = {"linear", "mlp"};
const std::vector<std::string> kMorGateNames = {"sigmoid", "tanh"};

bool is_mor_key(const std::string& name) { return name.rfind("mor_", 0) == 0; }

bool is_expert(const ModelConfig& c) { return c.mor_routing == MorRouting::expert; }
bool is_token(const ModelConfig& c) { return c.mor_routing == MorRouting::token; }

// Keys that change nothing outside their scope. Only a value other than the default is refused there, so a
// saved config.json (which writes every key it writes at its value) still loads (docs/mor.md, "Keys that do
// nothing are refused").
const std::vector<KeyScope<ModelConfig>>& key_scopes() {
  static const std::vector<KeyScope<ModelConfig>> scopes = {
      {"n_recursions", [](const ModelConfig& c) { return c.sharing != Sharing::none; },
       "layer sharing (sharing cycle, sequence, middle_cycle or middle_sequence)"},
      {"loop_count", [](const ModelConfig& c) { return c.loop_block > 0; }, "middle looping (loop_block > 0)"},
      {"input_injection", [](const ModelConfig& c) { return c.loop_block > 0; }, "middle looping (loop_block > 0)"},
      {"loop_reg_lambda", [](const ModelConfig& c) { return c.loop_reg_k > 0; },
       "the looping regularizer (loop_reg_k > 0)"},
      {"loop_reg_k", [](const ModelConfig& c) { return c.loop_reg_lambda != 0; },
       "the looping regularizer with a weight (loop_reg_lambda > 0)"},
      {"mor_router", is_expert, "expert-choice routing (mor_routing expert; token choice has one linear router)"},
      {"mor_gate", is_expert, "expert-choice routing (mor_routing expert; token choice weights by its softmax)"},
      {"mor_alpha", is_expert, "expert-choice routing (mor_routing expert; token choice weights by its softmax)"},
      {"mor_capacity", is_expert, "expert-choice routing (mor_routing expert; token choice has no capacities)"},
      {"mor_aux_loss", is_expert, "expert-choice routing (mor_routing expert)"},
      {"mor_aux_router", is_expert, "expert-choice routing (mor_routing expert)"},
      {"mor_balance_loss", is_token, "token-choice routing (mor_routing token)"},
      {"mor_z_loss", [](const ModelConfig& c) { return c.mor(); }, "Mixture-of-Recursions (mor_routing expert|token)"},
      {"mor_kv_sharing", [](const ModelConfig& c) { return c.mor(); },
       "Mixture-of-Recursions (mor_routing expert|token)"},
  };
  return scopes;
}

}  // namespace

const char* sharing_name(Sharing sharing) { return kSharingNames.at((size_t)sharing).c_str(); }
const char* injection_name(InputInjection injection) { return kInjectionNames.at((size_t)injection).c_str(); }

const std::vector<ConfigKey<ModelConfig>>& model_config_keys() {
  using C = ModelConfig;
  static const std::vector<ConfigKey<C>> keys = {
      config_key("vocab_size", &C::vocab_size, "vocabulary size"),
      config_key("d_model", &C::d_model, "model width"),
      config_key("n_heads", &C::n_heads, "attention heads"),
      config_key("n_kv_heads", &C::n_kv_heads, "key/value heads (grouped-query attention; default n_heads)"),
      config_key("d_ff", &C::d_ff, "SwiGLU hidden width"),
      config_key("n_layers", &C::n_layers, "layer applications (effective depth)"),
      config_key("max_seq_len", &C::max_seq_len, "longest sequence (RoPE table)"),
      config_key("tied_embeddings", &C::tied_embeddings, "output head tied to the embedding"),
      config_key("rope_theta", &C::rope_theta, "RoPE base"),
      config_key("norm_eps", &C::norm_eps, "RMSNorm epsilon"),
      config_enum_key("sharing", &C::sharing, kSharingNames,
                      "layer sharing: none | cycle | sequence | middle_cycle | middle_sequence"),
      config_key("n_recursions", &C::n_recursions, "N_r for cycle/sequence/middle sharing"),
      config_key("prelude", &C::prelude, "middle looping: unique layers before the loop"),
      config_key("loop_block", &C::loop_block, "middle looping: layers in the looped block (0: off)"),
      config_key("loop_count", &C::loop_count, "middle looping: times the block is applied"),
      config_key("coda", &C::coda, "middle looping: unique layers after the loop"),
      config_enum_key("input_injection", &C::input_injection, kInjectionNames,
                      "looped block input injection: none | add | concat"),
      config_key("loop_reg_k", &C::loop_reg_k, "looping regularizer block size k (0: off)"),
      config_key("loop_reg_lambda", &C::loop_reg_lambda, "looping regularizer weight λ"),
      config_enum_key("mor_routing", &C::mor_routing, kMorRoutingNames,
                      "Mixture-of-Recursions routing: none | expert | token"),
      config_enum_key("mor_router", &C::mor_router, kMorRouterNames,
                      "expert-choice router: linear | mlp (w2·silu(W1·h))"),
      config_enum_key("mor_gate", &C::mor_gate, kMorGateNames, "expert-choice gate: sigmoid | tanh"),
      config_key("mor_alpha", &C::mor_alpha, "gate scale α"),
      config_key("mor_capacity", &C::mor_capacity,
                 "expert-choice capacity per step, one value per recursion ([]: (N_r-r)/N_r)"),
      config_key("mor_aux_loss", &C::mor_aux_loss, "expert-choice auxiliary BCE coefficient"),
      config_key("mor_balance_loss", &C::mor_balance_loss, "token-choice balancing coefficient"),
      config_key("mor_z_loss", &C::mor_z_loss, "router z-loss coefficient"),
      config_key("mor_kv_sharing", &C::mor_kv_sharing, "later recursions reuse the first recursion's K/V"),
      config_key("mor_aux_router", &C::mor_aux_router,
                 "expert choice: a second linear router per step, trained by the BCE loss, decides at inference"),
  };
  return keys;
}

int ModelConfig::n_unique_layers() const {
  if (loop_block > 0) return prelude + loop_block + coda;
  switch (sharing) {
    case Sharing::none: return n_layers;
    case Sharing::cycle:
    case Sharing::sequence: return n_layers / n_recursions;
    case Sharing::middle_cycle:
    case Sharing::middle_sequence: return (n_layers - 2) / n_recursions + 2;
  }
  return n_layers;
}

std::vector<int> ModelConfig::layer_schedule() const {
  std::vector<int> schedule;
  if (loop_block > 0) {
    for (int i = 0; i < prelude; i++) schedule.push_back(i);
    for (int l = 0; l < loop_count; l++)
      for (int i = 0; i < loop_block; i++) schedule.push_back(prelude + i);
    for (int i = 0; i < coda; i++) schedule.push_back(prelude + loop_block + i);
    return schedule;
  }
  int unique = n_unique_layers();
  for (int l = 0; l < n_layers; l++) {
    switch (sharing) {
      case Sharing::none: schedule.push_back(l); break;
      case Sharing::cycle: schedule.push_back(l % unique); break;
      case Sharing::sequence: schedule.push_back(l / n_recursions); break;
      case Sharing::middle_cycle:
      case Sharing::middle_sequence: {
        int middle = unique - 2;
        if (l == 0)
          schedule.push_back(0);
        else if (l == n_layers - 1)
          schedule.push_back(unique - 1);
        else if (sharing == Sharing::middle_cycle)
          schedule.push_back(1 + (l - 1) % middle);
        else
          schedule.push_back(1 + (l - 1) / n_recursions);
        break;
      }
    }
  }
  return schedule;
}

int ModelConfig::mor_block_begin() const { return sharing == Sharing::middle_cycle ? 1 : 0; }
int ModelConfig::mor_block_size() const {
  return sharing == Sharing::middle_cycle ? n_unique_layers() - 2 : n_unique_layers();
}
float ModelConfig::capacity(int r) const {
  return mor_capacity.empty() ? (float)(n_recursions - r) / (float)n_recursions : mor_capacity[r];
}

void ModelConfig::validate() const {
  // The bound keeps every product of two dimensions inside int64; the memory estimate (src/model/model.cpp) does the
  // rest.
  auto positive = [](int v, const char* key) {
    check(v > 0 && v <= (1 << 24), "config: ", key, " must be a positive integer up to 16777216, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(d_model, "d_model");
  positive(n_heads, "n_heads");
  positive(n_kv_heads, "n_kv_heads");
  positive(d_ff, "d_ff");
  positive(n_layers, "n_layers");
  positive(max_seq_len, "max_seq_len");
  positive(n_recursions, "n_recursions");
  check(d_model % n_heads == 0, "config: d_model (" + std::to_string(d_model) + ") must be divisible by n_heads (" +
                                    std::to_string(n_heads) + "); pick n_heads among its divisors");
  check(head_dim() % 2 == 0, "config: head_dim = d_model/n_heads = " + std::to_string(head_dim()) +
                                 " must be even for RoPE; change d_model or n_heads");
  check(n_heads % n_kv_heads == 0, "config: n_kv_heads (" + std::to_string(n_kv_heads) + ") must divide n_heads (" +
                                       std::to_string(n_heads) + ")");
  check(rope_theta > 0, "config: rope_theta must be > 0");
  check(norm_eps > 0 && norm_eps < 1, "config: norm_eps must be in (0, 1), e.g. 1e-5");
  check(loop_block >= 0 && loop_count >= 1, "config: loop_block must be >= 0 (0: off) and loop_count >= 1, got ",
        loop_block, " and ", loop_count);
  refuse_inert_keys(*this, *this, model_config_keys(), key_scopes(), "config");
  if (loop_reg_k != 0) {
    check(loop_reg_k > 0, "config: loop_reg_k must be >= 0 (0 turns the regularizer off)");
    check(
        sharing == Sharing::none && loop_block == 0,
        "config: the looping regularizer is for non-looped models; set sharing none and loop_block 0, or loop_reg_k 0");
    check(n_layers % loop_reg_k == 0 && n_layers / loop_reg_k >= 2,
          "config: loop_reg_k (" + std::to_string(loop_reg_k) + ") must divide n_layers (" + std::to_string(n_layers) +
              ") into at least two blocks");
    check(loop_reg_lambda >= 0, "config: loop_reg_lambda must be >= 0");
  }
  if (mor()) {
    check((sharing == Sharing::cycle || sharing == Sharing::middle_cycle) && n_recursions >= 2,
          "config: mor_routing needs sharing cycle or middle_cycle with n_recursions >= 2");
    check(mor_capacity.empty() || (int)mor_capacity.size() == n_recursions,
          "config: mor_capacity needs one value per recursion step (" + std::to_string(n_recursions) + ")");
    for (float c : mor_capacity) check(c > 0 && c <= 1, "config: every mor_capacity must be in (0, 1]");
    check(mor_alpha > 0, "config: mor_alpha must be > 0");
    check(!mor_kv_sharing || mor_routing == MorRouting::token || capacity(0) == 1.0f,
          "config: mor_kv_sharing needs mor_capacity[0] = 1 (the first recursion writes K/V for every token)");
    check(mor_aux_loss >= 0 && mor_balance_loss >= 0 && mor_z_loss >= 0, "config: MoR loss coefficients must be >= 0");
  }
  if (loop_block > 0) {
    check(sharing == Sharing::none, "config: loop_block (middle looping) and sharing \"" +
                                        std::string(sharing_name(sharing)) +
                                        "\" exclude each other; set sharing to none");
    check(prelude >= 0 && coda >= 0 && loop_count >= 1, "config: prelude and coda must be >= 0 and loop_count >= 1");
    int64_t looped = (int64_t)prelude + (int64_t)loop_block * loop_count + coda;  // in 64 bits: no overflow
    check(n_layers == looped, "config: n_layers (", n_layers,
          ") must equal prelude + loop_block*loop_count + coda = ", looped);
  } else {
    check(prelude == 0 && coda == 0, "config: prelude/coda need loop_block > 0 (middle looping)");
    if (sharing == Sharing::cycle || sharing == Sharing::sequence)
      check(n_layers % n_recursions == 0, "config: n_layers (" + std::to_string(n_layers) +
                                              ") must be a multiple of n_recursions (" + std::to_string(n_recursions) +
                                              ") for " + sharing_name(sharing) + " sharing");
    if (sharing == Sharing::middle_cycle || sharing == Sharing::middle_sequence)
      check(n_layers > 2 && (n_layers - 2) % n_recursions == 0,
            "config: for " + std::string(sharing_name(sharing)) + " sharing, n_layers - 2 (" +
                std::to_string(n_layers - 2) + ") must be a positive multiple of n_recursions (" +
                std::to_string(n_recursions) + ")");
  }
}

ModelConfig model_config_from_json(const std::string& text) {
  json j = parse_json_strict(text, "config", kMaxConfigBytes);
  check(j.is_object(), "config: the top level must be a JSON object of model settings");
  check_known_keys(j, model_config_keys(), "config");
  ModelConfig c;
  read_keys(c, j, model_config_keys(), "config");
  if (!j.contains("n_kv_heads")) c.n_kv_heads = c.n_heads;  // multi-head attention unless asked otherwise
  c.validate();
  return c;
}

ModelConfig model_config_from_file(const std::string& path) {
  try {
    return model_config_from_json(read_file_checked(path, kMaxConfigBytes));
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + path + ")");
  }
}

std::string model_config_to_json(const ModelConfig& c) {
  // The mor_* keys only when routing is on, so configs of models without MoR read as they always did.
  json j = write_keys<ModelConfig>(c, model_config_keys(),
                                   [&](const ConfigKey<ModelConfig>& key) { return c.mor() || !is_mor_key(key.name); });
  shorten_float32_numbers(j);
  return j.dump(2);
}

}  // namespace recur
