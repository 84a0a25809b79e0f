// Model configuration: JSON parsing with helpful errors, validation, and the layer schedule that maps each
// layer application onto unique weights (SPEC §2: cycle, sequence, middle variants, middle looping).
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "recur/config.h"
#include "recur/error.h"
#include "../io/json_floats.h"

namespace recur {

using nlohmann::json;

const char* sharing_name(Sharing sharing) {
  switch (sharing) {
    case Sharing::none: return "none";
    case Sharing::cycle: return "cycle";
    case Sharing::sequence: return "sequence";
    case Sharing::middle_cycle: return "middle_cycle";
    case Sharing::middle_sequence: return "middle_sequence";
  }
  return "?";
}

const char* injection_name(InputInjection injection) {
  switch (injection) {
    case InputInjection::none: return "none";
    case InputInjection::add: return "add";
    case InputInjection::concat: return "concat";
  }
  return "?";
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
        if (l == 0) schedule.push_back(0);
        else if (l == n_layers - 1) schedule.push_back(unique - 1);
        else if (sharing == Sharing::middle_cycle) schedule.push_back(1 + (l - 1) % middle);
        else schedule.push_back(1 + (l - 1) / n_recursions);
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
  auto positive = [](int v, const char* key) {
    check(v > 0, std::string("config: ") + key + " must be a positive integer, got " + std::to_string(v));
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
  check(n_heads % n_kv_heads == 0, "config: n_kv_heads (" + std::to_string(n_kv_heads) +
                                       ") must divide n_heads (" + std::to_string(n_heads) + ")");
  check(rope_theta > 0, "config: rope_theta must be > 0");
  check(norm_eps > 0 && norm_eps < 1, "config: norm_eps must be in (0, 1), e.g. 1e-5");
  check(input_injection == InputInjection::none || loop_block > 0,
        "config: input_injection \"" + std::string(injection_name(input_injection)) +
            "\" needs a looped block (loop_block > 0); set input_injection to none or configure middle looping");
  if (loop_reg_k != 0) {
    check(loop_reg_k > 0, "config: loop_reg_k must be >= 0 (0 turns the regularizer off)");
    check(sharing == Sharing::none && loop_block == 0,
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
    check(!mor_aux_router || mor_routing == MorRouting::expert,
          "config: mor_aux_router is for expert choice; set it to false for token choice");
    check(mor_router == MorRouter::linear || mor_routing == MorRouting::expert,
          "config: mor_router mlp is for expert choice; token choice uses one linear router");
    check(!mor_kv_sharing || mor_routing == MorRouting::token || capacity(0) == 1.0f,
          "config: mor_kv_sharing needs mor_capacity[0] = 1 (the first recursion writes K/V for every token)");
    check(mor_aux_loss >= 0 && mor_balance_loss >= 0 && mor_z_loss >= 0, "config: MoR loss coefficients must be >= 0");
  }
  if (loop_block > 0) {
    check(sharing == Sharing::none, "config: loop_block (middle looping) and sharing \"" +
                                        std::string(sharing_name(sharing)) + "\" exclude each other; set sharing to none");
    check(prelude >= 0 && coda >= 0 && loop_count >= 1, "config: prelude and coda must be >= 0 and loop_count >= 1");
    check(n_layers == prelude + loop_block * loop_count + coda,
          "config: n_layers (" + std::to_string(n_layers) + ") must equal prelude + loop_block*loop_count + coda = " +
              std::to_string(prelude + loop_block * loop_count + coda));
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
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(std::string("config: not valid JSON (") + e.what() + "); fix the syntax at the byte it names");
  }
  check(j.is_object(), "config: the top level must be a JSON object of model settings");
  static const std::set<std::string> known = {
      "vocab_size", "d_model", "n_heads", "n_kv_heads", "d_ff", "n_layers", "max_seq_len", "tied_embeddings",
      "rope_theta", "norm_eps", "sharing", "n_recursions", "prelude", "loop_block", "loop_count", "coda",
      "input_injection", "loop_reg_k", "loop_reg_lambda", "mor_routing", "mor_router", "mor_gate", "mor_alpha",
      "mor_capacity", "mor_aux_loss", "mor_balance_loss", "mor_z_loss", "mor_kv_sharing", "mor_aux_router"};
  for (auto it = j.begin(); it != j.end(); ++it)
    check(known.count(it.key()) > 0, "config: unknown key \"" + it.key() + "\"; valid keys are vocab_size, d_model, "
                                     "n_heads, n_kv_heads, d_ff, n_layers, max_seq_len, tied_embeddings, rope_theta, "
                                     "norm_eps, sharing, n_recursions, prelude, loop_block, loop_count, coda, input_injection, "
                                     "loop_reg_k, loop_reg_lambda and the mor_* keys (README)");
  ModelConfig c;
  auto get_int = [&](const char* key, int& out) {
    if (!j.contains(key)) return;
    check(j[key].is_number_integer(), std::string("config: \"") + key + "\" must be an integer, got " + j[key].dump());
    out = j[key].get<int>();
  };
  auto get_float = [&](const char* key, float& out) {
    if (!j.contains(key)) return;
    check(j[key].is_number(), std::string("config: \"") + key + "\" must be a number, got " + j[key].dump());
    out = j[key].get<float>();
  };
  auto get_bool = [&](const char* key, bool& out) {
    if (!j.contains(key)) return;
    check(j[key].is_boolean(), std::string("config: \"") + key + "\" must be true or false");
    out = j[key].get<bool>();
  };
  // A string key naming one of `names`; returns its index, or -1 when absent.
  auto get_choice = [&](const char* key, std::vector<std::string> names) -> int {
    if (!j.contains(key)) return -1;
    std::string all;
    for (auto& n : names) all += (all.empty() ? "" : ", ") + n;
    check(j[key].is_string(), std::string("config: \"") + key + "\" must be one of " + all);
    std::string v = j[key].get<std::string>();
    for (size_t i = 0; i < names.size(); i++)
      if (v == names[i]) return (int)i;
    throw Error(std::string("config: unknown ") + key + " \"" + v + "\"; use one of " + all);
  };
  get_int("vocab_size", c.vocab_size);
  get_int("d_model", c.d_model);
  get_int("n_heads", c.n_heads);
  c.n_kv_heads = c.n_heads;
  get_int("n_kv_heads", c.n_kv_heads);
  get_int("d_ff", c.d_ff);
  get_int("n_layers", c.n_layers);
  get_int("max_seq_len", c.max_seq_len);
  get_bool("tied_embeddings", c.tied_embeddings);
  get_float("rope_theta", c.rope_theta);
  get_float("norm_eps", c.norm_eps);
  if (int v = get_choice("sharing", {"none", "cycle", "sequence", "middle_cycle", "middle_sequence"}); v >= 0)
    c.sharing = (Sharing)v;
  get_int("n_recursions", c.n_recursions);
  get_int("prelude", c.prelude);
  get_int("loop_block", c.loop_block);
  get_int("loop_count", c.loop_count);
  get_int("coda", c.coda);
  if (int v = get_choice("input_injection", {"none", "add", "concat"}); v >= 0) c.input_injection = (InputInjection)v;
  get_int("loop_reg_k", c.loop_reg_k);
  get_float("loop_reg_lambda", c.loop_reg_lambda);
  if (int v = get_choice("mor_routing", {"none", "expert", "token"}); v >= 0) c.mor_routing = (MorRouting)v;
  if (int v = get_choice("mor_gate", {"sigmoid", "tanh"}); v >= 0) c.mor_gate = (MorGate)v;
  if (int v = get_choice("mor_router", {"linear", "mlp"}); v >= 0) c.mor_router = (MorRouter)v;
  get_float("mor_alpha", c.mor_alpha);
  get_float("mor_aux_loss", c.mor_aux_loss);
  get_float("mor_balance_loss", c.mor_balance_loss);
  get_float("mor_z_loss", c.mor_z_loss);
  if (j.contains("mor_capacity")) {
    check(j["mor_capacity"].is_array(), "config: \"mor_capacity\" must be a list of numbers, e.g. [1, 0.67, 0.33]");
    for (const auto& v : j["mor_capacity"]) {
      check(v.is_number(), "config: \"mor_capacity\" must be a list of numbers");
      c.mor_capacity.push_back(v.get<float>());
    }
  }
  get_bool("mor_kv_sharing", c.mor_kv_sharing);
  get_bool("mor_aux_router", c.mor_aux_router);
  c.validate();
  return c;
}

ModelConfig model_config_from_file(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "config: cannot open \"" + path + "\"; check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return model_config_from_json(ss.str());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + path + ")");
  }
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = {{"vocab_size", c.vocab_size}, {"d_model", c.d_model},         {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads}, {"d_ff", c.d_ff},               {"n_layers", c.n_layers},
            {"max_seq_len", c.max_seq_len}, {"tied_embeddings", c.tied_embeddings}, {"rope_theta", c.rope_theta},
            {"norm_eps", c.norm_eps},     {"sharing", sharing_name(c.sharing)}, {"n_recursions", c.n_recursions},
            {"prelude", c.prelude},       {"loop_block", c.loop_block},   {"loop_count", c.loop_count},
            {"coda", c.coda},             {"input_injection", injection_name(c.input_injection)},
            {"loop_reg_k", c.loop_reg_k}, {"loop_reg_lambda", c.loop_reg_lambda}};
  if (c.mor()) {
    const char* routing[] = {"none", "expert", "token"};
    j["mor_routing"] = routing[(int)c.mor_routing];
    j["mor_gate"] = c.mor_gate == MorGate::sigmoid ? "sigmoid" : "tanh";
    j["mor_router"] = c.mor_router == MorRouter::linear ? "linear" : "mlp";
    j["mor_alpha"] = c.mor_alpha;
    j["mor_capacity"] = c.mor_capacity;
    j["mor_aux_loss"] = c.mor_aux_loss;
    j["mor_balance_loss"] = c.mor_balance_loss;
    j["mor_z_loss"] = c.mor_z_loss;
    j["mor_kv_sharing"] = c.mor_kv_sharing;
    j["mor_aux_router"] = c.mor_aux_router;
  }
  shorten_float32_numbers(j);
  return j.dump(2);
}

}  // namespace recur
