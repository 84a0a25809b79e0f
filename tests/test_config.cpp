// The config tables: every model and training key is in its table, survives the JSON round trip, is listed by
// the unknown-key error, is a CLI flag, and (model keys) matches the PyTorch reference's CONFIG_DEFAULTS.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "cli.h"
#include "core/config_keys.h"
#include "recur/config.h"
#include "recur/error.h"
#include "recur/train.h"
#include "test_util.h"

using namespace recur;
using nlohmann::json;

namespace {

// Valid model configs that together set every key to a value other than its default: MoR with expert and with
// token choice (so the mor_* keys are written), middle looping with input injection, and the looping regularizer.
std::vector<ModelConfig> non_default_model_configs() {
  ModelConfig mor;
  mor.vocab_size = 300, mor.d_model = 64, mor.n_heads = 8, mor.n_kv_heads = 2, mor.d_ff = 100, mor.n_layers = 6;
  mor.max_seq_len = 32, mor.tied_embeddings = false, mor.rope_theta = 500.0f, mor.norm_eps = 1e-6f;
  mor.sharing = Sharing::cycle, mor.n_recursions = 3;
  mor.mor_routing = MorRouting::expert, mor.mor_router = MorRouter::mlp, mor.mor_gate = MorGate::tanh;
  mor.mor_alpha = 0.25f, mor.mor_capacity = {1.0f, 0.5f, 0.25f}, mor.mor_aux_loss = 0.002f;
  mor.mor_z_loss = 1e-4f, mor.mor_kv_sharing = true, mor.mor_aux_router = true;
  ModelConfig token;
  token.sharing = Sharing::cycle, token.n_recursions = 2, token.mor_routing = MorRouting::token;
  token.mor_balance_loss = 0.3f;
  ModelConfig looped;
  looped.n_layers = 6, looped.prelude = 1, looped.loop_block = 2, looped.loop_count = 2, looped.coda = 1;
  looped.input_injection = InputInjection::concat;
  ModelConfig regularized;
  regularized.loop_reg_k = 2, regularized.loop_reg_lambda = 0.5f;
  return {mor, looped, regularized, token};
}

TrainConfig non_default_train_config() {
  TrainConfig t;
  t.batch_size = 3, t.seq_len = 17, t.steps = 77, t.grad_accum = 2, t.schedule = "wsd", t.lr = 2e-3f;
  t.warmup_steps = 7, t.min_lr_ratio = 0.25f, t.decay_frac = 0.3f, t.weight_decay = 0.05f, t.beta1 = 0.8f;
  t.beta2 = 0.9f, t.eps = 1e-7f, t.grad_clip = 0.5f, t.seed = 99, t.eval_every = 11, t.eval_batches = 3;
  t.save_every = 13, t.log_every = 5, t.loop_count_min = 1, t.loop_count_max = 3;
  t.mor_capacity_warmup_steps = 4, t.mor_balance_warmup_steps = 6, t.mor_bias_rate = 2e-3f;
  t.mor_causal_rate = 0.7f;
  t.skip_nonfinite_steps = true, t.precision = Precision::bf16;
  t.reduce_shards = 2, t.param_check_every = 9, t.comm_timeout = 30;
  return t;
}

// Each key has a non-default value in at least one of `configs`, so a test over them covers every key.
template <class Config>
void expect_every_key_non_default(const std::vector<ConfigKey<Config>>& keys, const std::vector<Config>& configs) {
  for (const auto& key : keys) {
    bool differs = false;
    for (const Config& c : configs) differs = differs || key.write(c) != key.write(Config{});
    EXPECT_TRUE(differs) << key.name << " has its default value in every test config";
  }
}

// The command line that sets every key of the table to its value in `config` (an empty list, which no flag
// can say, is the default and left out).
template <class Config>
std::vector<std::string> flags_for(const std::vector<ConfigKey<Config>>& keys, const Config& config) {
  std::vector<std::string> args;
  for (const auto& key : keys) {
    json value = key.write(config);
    if (key.is_list() && value.empty()) continue;
    args.push_back("--" + key.name);
    if (key.is_list())
      for (const json& item : value) args.push_back(value_text(item));
    else
      args.push_back(value_text(value));
  }
  return args;
}

void parse(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  app.parse(args);
}

// reference/model.py's CONFIG_DEFAULTS as JSON, read without importing torch.
json reference_config_defaults() {
  std::string command =
      "python3 -c 'import ast, json, sys\n"
      "tree = ast.parse(open(sys.argv[1]).read())\n"
      "node = [a for a in tree.body if isinstance(a, ast.Assign) and getattr(a.targets[0], \"id\", \"\") == "
      "\"CONFIG_DEFAULTS\"][0]\n"
      "print(json.dumps({k.arg: ast.literal_eval(k.value) for k in node.value.keywords}))' " RECUR_SOURCE_DIR
      "/reference/model.py";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  while (pipe && fgets(buffer, sizeof buffer, pipe)) out += buffer;
  EXPECT_TRUE(pipe && pclose(pipe) == 0) << command;
  return json::parse(out);
}

}  // namespace

TEST(ConfigTable, ModelKeysMatchTheReference) {
  json reference = reference_config_defaults();
  std::set<std::string> reference_keys, table_keys;
  for (const auto& item : reference.items()) reference_keys.insert(item.key());
  for (const auto& key : model_config_keys()) table_keys.insert(key.name);
  EXPECT_EQ(table_keys, reference_keys);
  for (const auto& key : model_config_keys()) {
    if (!reference.contains(key.name)) continue;
    json ours = key.write(ModelConfig{}), theirs = reference[key.name];
    if (theirs.is_null())  // None: the rule a default-constructed (empty) list stands for
      EXPECT_EQ(ours, json::array()) << key.name;
    else if (theirs.is_number())
      EXPECT_NEAR(ours.get<double>(), theirs.get<double>(), 1e-6 * std::max(1.0, std::fabs(theirs.get<double>())))
          << key.name;
    else
      EXPECT_EQ(ours, theirs) << key.name;
  }
}

TEST(ConfigTable, EveryModelKeySurvivesTheJsonRoundTrip) {
  std::vector<ModelConfig> configs = non_default_model_configs();
  expect_every_key_non_default(model_config_keys(), configs);
  for (const ModelConfig& c : configs) {
    std::string text = model_config_to_json(c);
    ModelConfig back = model_config_from_json(text);
    EXPECT_EQ(model_config_to_json(back), text);
    for (const auto& key : model_config_keys()) EXPECT_EQ(key.write(back), key.write(c)) << key.name;
  }
  // mor_* keys are written only for MoR models
  EXPECT_NE(model_config_to_json(configs[0]).find("\"mor_aux_router\": true"), std::string::npos);
  EXPECT_EQ(model_config_to_json(ModelConfig{}).find("mor_"), std::string::npos);
}

TEST(ConfigTable, UnknownKeyErrorListsEveryKey) {
  std::string message = error_of([] { model_config_from_json(R"({"d_model": 64, "widht": 3})"); });
  EXPECT_NE(message.find("unknown key \"widht\""), std::string::npos) << message;
  for (const auto& key : model_config_keys()) EXPECT_NE(message.find(key.name), std::string::npos) << key.name;
}

TEST(ConfigTable, WrongTypesNameTheKey) {
  auto expect = [](const std::string& text, const std::string& fragment) {
    std::string message = error_of([&] { model_config_from_json(text); });
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  };
  expect(R"({"n_layers": 2.5})", "\"n_layers\" must be an integer");
  expect(R"({"rope_theta": "big"})", "\"rope_theta\" must be a number");
  expect(R"({"tied_embeddings": 1})", "\"tied_embeddings\" must be true or false");
  expect(R"({"sharing": 2})", "\"sharing\" must be one of none, cycle");
  expect(R"({"mor_router": "deep"})", "unknown mor_router \"deep\"; use one of linear, mlp");
  expect(R"({"mor_capacity": 0.5})", "\"mor_capacity\" must be a list of numbers");
  json train = json::parse(train_config_to_json(TrainConfig{}));
  train["seed"] = -1;
  std::string message = error_of([&] { train_config_from_json(train.dump()); });
  EXPECT_NE(message.find("\"seed\" must be a non-negative integer"), std::string::npos) << message;
}

TEST(ConfigTable, EveryModelKeyIsAFlag) {
  for (const ModelConfig& c : non_default_model_configs()) {
    CLI::App app;
    cli::ModelFlags flags;
    flags.add(&app);
    parse(app, flags_for(model_config_keys(), c));
    EXPECT_EQ(model_config_to_json(flags.resolve()), model_config_to_json(c));
  }
  CLI::App app;
  cli::ModelFlags flags;
  flags.add(&app);
  for (const auto& key : model_config_keys())
    EXPECT_NE(app.get_option("--" + key.name)->get_description().find("[default: " + key.default_text() + "]"),
              std::string::npos)
        << key.name;
}

TEST(ConfigTable, ModelFlagsOverrideAConfigFile) {
  std::string dir = temp_dir("config_flags");
  std::ofstream(dir + "/model.json") << R"({"d_model": 64, "n_heads": 4, "n_kv_heads": 2, "n_layers": 3})";
  auto resolve = [&](std::vector<std::string> args) {
    CLI::App app;
    cli::ModelFlags flags;
    flags.add(&app);
    args.insert(args.begin(), {"--config", dir + "/model.json"});
    parse(app, args);
    return flags.resolve();
  };
  ModelConfig kept = resolve({"--d_model", "128"});
  EXPECT_EQ(kept.d_model, 128);
  EXPECT_EQ(kept.n_kv_heads, 2);
  EXPECT_EQ(kept.n_layers, 3);
  EXPECT_EQ(resolve({"--n_heads", "8"}).n_kv_heads, 8);  // n_kv_heads follows a given n_heads
  EXPECT_EQ(resolve({"--n_heads", "8", "--n_kv_heads", "4"}).n_kv_heads, 4);
  std::filesystem::remove_all(dir);
}

TEST(ConfigTable, EveryTrainKeySurvivesJsonAndIsAFlag) {
  TrainConfig t = non_default_train_config();
  expect_every_key_non_default(train_config_keys(), {t});
  std::string text = train_config_to_json(t);
  EXPECT_EQ(train_config_to_json(train_config_from_json(text)), text);
  TrainConfig parsed;
  CLI::App app;
  cli::add_train_flags(&app, parsed);
  parse(app, flags_for(train_config_keys(), t));
  EXPECT_EQ(train_config_to_json(parsed), text);
}

TEST(ConfigTable, OlderTrainStatesStillRead) {
  json state = json::parse(train_config_to_json(non_default_train_config()));
  for (const char* later : {"loop_count_min", "loop_count_max", "mor_capacity_warmup_steps", "mor_balance_warmup_steps",
                            "mor_bias_rate", "mor_causal_rate"})
    state.erase(later);
  TrainConfig old = train_config_from_json(state.dump());
  EXPECT_EQ(old.batch_size, 3);
  EXPECT_EQ(old.loop_count_max, 0);
  EXPECT_EQ(old.mor_bias_rate, 0.0f);
  EXPECT_EQ(old.mor_causal_rate, TrainConfig().mor_causal_rate);
  state.erase("batch_size");
  std::string message = error_of([&] { train_config_from_json(state.dump()); });
  EXPECT_NE(message.find("missing setting \"batch_size\""), std::string::npos) << message;
}

TEST(ConfigTable, KeysOutsideTheirScopeAreRefused) {
  auto expect = [](const std::string& text, const std::string& key, const std::string& scope) {
    std::string message = error_of([&] { model_config_from_json(text); });
    EXPECT_NE(message.find("config: " + key + " = "), std::string::npos) << message;
    EXPECT_NE(message.find("does nothing here: it acts only in " + scope), std::string::npos) << message;
  };
  std::string token = R"({"sharing": "cycle", "n_recursions": 2, "mor_routing": "token", )";
  expect(token + R"("mor_alpha": 0.5})", "mor_alpha", "expert-choice routing");
  expect(token + R"("mor_gate": "tanh"})", "mor_gate", "expert-choice routing");
  expect(token + R"("mor_capacity": [1, 0.5]})", "mor_capacity", "expert-choice routing");
  expect(token + R"("mor_aux_loss": 0.01})", "mor_aux_loss", "expert-choice routing");
  expect(token + R"("mor_router": "mlp"})", "mor_router", "expert-choice routing");
  expect(token + R"("mor_aux_router": true})", "mor_aux_router", "expert-choice routing");
  std::string expert = R"({"sharing": "cycle", "n_recursions": 2, "mor_routing": "expert", )";
  expect(expert + R"("mor_balance_loss": 0.5})", "mor_balance_loss", "token-choice routing");
  expect(R"({"mor_z_loss": 0.1})", "mor_z_loss", "Mixture-of-Recursions");
  expect(R"({"mor_kv_sharing": true})", "mor_kv_sharing", "Mixture-of-Recursions");
  expect(R"({"mor_alpha": 0.2})", "mor_alpha", "expert-choice routing");
  expect(R"({"n_recursions": 2})", "n_recursions", "layer sharing");
  expect(R"({"loop_count": 3})", "loop_count", "middle looping");
  expect(R"({"input_injection": "add"})", "input_injection", "middle looping");
  expect(R"({"loop_reg_lambda": 1})", "loop_reg_lambda", "the looping regularizer");
  expect(R"({"n_layers": 4, "loop_reg_k": 2})", "loop_reg_k", "the looping regularizer with a weight");
  // the error names the value and the default to go back to
  std::string message = error_of([&] { model_config_from_json(token + R"("mor_alpha": 0.5})"); });
  EXPECT_NE(message.find("mor_alpha = 0.5"), std::string::npos) << message;
  EXPECT_NE(message.find("set it to its default 0.1"), std::string::npos) << message;
}

TEST(ConfigTable, TrainingKeysOutsideTheirScopeAreRefused) {
  ModelConfig token = model_config_from_json(R"({"sharing": "cycle", "n_recursions": 2, "mor_routing": "token"})");
  ModelConfig expert = model_config_from_json(R"({"sharing": "cycle", "n_recursions": 2, "mor_routing": "expert"})");
  ModelConfig looped = model_config_from_json(R"({"n_layers": 4, "loop_block": 2, "loop_count": 2})");
  ModelConfig plain;
  auto expect = [](const TrainConfig& t, const ModelConfig& m, const std::string& key, const std::string& scope) {
    std::string message = error_of([&] { t.check_acts_on(m); });
    EXPECT_NE(message.find("train: " + key + " = "), std::string::npos) << message;
    EXPECT_NE(message.find("does nothing here: it acts only in " + scope), std::string::npos) << message;
  };
  TrainConfig capacity, balance, bias, causal, loops;
  capacity.mor_capacity_warmup_steps = 10;
  balance.mor_balance_warmup_steps = 10;
  bias.mor_bias_rate = 1e-3f;
  causal.mor_causal_rate = 0.9f;
  loops.loop_count_min = 1, loops.loop_count_max = 3;
  expect(capacity, token, "mor_capacity_warmup_steps", "expert-choice routing");
  expect(balance, expert, "mor_balance_warmup_steps", "token-choice routing with a balancing loss");
  expect(bias, plain, "mor_bias_rate", "token-choice routing");
  expect(causal, token, "mor_causal_rate", "expert-choice routing");
  expect(loops, token, "loop_count_min", "middle looping");
  // where they act they are taken, and the defaults are taken everywhere
  EXPECT_NO_THROW(capacity.check_acts_on(expert));
  EXPECT_NO_THROW(balance.check_acts_on(token));
  EXPECT_NO_THROW(bias.check_acts_on(token));
  EXPECT_NO_THROW(causal.check_acts_on(expert));
  EXPECT_NO_THROW(loops.check_acts_on(looped));
  EXPECT_NO_THROW(TrainConfig{}.check_acts_on(plain));
}

TEST(ConfigTable, KeysAtTheirDefaultLoadOutsideTheirScope) {
  // what a saved config.json of a token-choice model holds: every mor_* key, the expert-only ones at their default
  ModelConfig token;
  token.sharing = Sharing::cycle, token.n_recursions = 2, token.mor_routing = MorRouting::token;
  json saved = json::parse(model_config_to_json(token));
  EXPECT_TRUE(saved.contains("mor_alpha") && saved.contains("mor_capacity") && saved.contains("mor_gate"));
  EXPECT_EQ(model_config_to_json(model_config_from_json(saved.dump())), saved.dump(2));
  // and a plain config that spells out the defaults of the looping and MoR keys
  ModelConfig plain = model_config_from_json(
      R"({"n_recursions": 1, "loop_count": 1, "input_injection": "none", "loop_reg_lambda": 0, "mor_alpha": 0.1,
          "mor_capacity": [], "mor_balance_loss": 0.1, "mor_kv_sharing": false})");
  EXPECT_FALSE(plain.mor());
}
