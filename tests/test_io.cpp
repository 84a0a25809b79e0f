// File formats and bad input: config validation messages, safetensors round trip and every kind of corruption,
// checkpoint round trip and mismatched/truncated checkpoints. Bad input must give a recur::Error naming the
// problem, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "recur/checkpoint.h"
#include "recur/config.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "recur/train_checkpoint.h"
#include "test_util.h"

using namespace recur;
namespace fs = std::filesystem;

namespace {

// Expects fn to throw recur::Error whose message contains `fragment`.
template <class F>
void expect_error(F fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "message was: " << e.what();
  }
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.d_model = 16, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 24, c.n_layers = 2, c.max_seq_len = 16;
  return c;
}

TEST(Config, RoundTripAndDefaults) {
  ModelConfig c = tiny_config();
  c.sharing = Sharing::middle_cycle;
  c.n_layers = 8;
  c.n_recursions = 3;
  ModelConfig d = model_config_from_json(model_config_to_json(c));
  EXPECT_EQ(model_config_to_json(c), model_config_to_json(d));
  EXPECT_EQ(d.n_unique_layers(), 4);
  EXPECT_EQ(d.layer_schedule(), (std::vector<int>{0, 1, 2, 1, 2, 1, 2, 3}));
  // float32 settings print as their shortest decimal and read back exactly
  EXPECT_NE(model_config_to_json(c).find("\"norm_eps\": 1e-05"), std::string::npos) << model_config_to_json(c);
  EXPECT_EQ(d.norm_eps, c.norm_eps);
  TrainConfig t;
  t.lr = 3e-3f;
  t.beta2 = 0.95f;
  std::string train_json = train_config_to_json(t);
  EXPECT_NE(train_json.find("\"lr\": 0.003,"), std::string::npos) << train_json;
  EXPECT_NE(train_json.find("\"beta2\": 0.95,"), std::string::npos) << train_json;
  TrainConfig t2 = train_config_from_json(train_json);
  EXPECT_EQ(t2.lr, t.lr);
  EXPECT_EQ(t2.beta2, t.beta2);
  ModelConfig e = model_config_from_json(R"({"d_model": 64, "n_heads": 8})");
  EXPECT_EQ(e.n_kv_heads, 8);  // defaults to n_heads
}

TEST(Config, Schedules) {
  ModelConfig c = tiny_config();
  c.n_layers = 6, c.n_recursions = 3;
  c.sharing = Sharing::cycle;
  EXPECT_EQ(c.layer_schedule(), (std::vector<int>{0, 1, 0, 1, 0, 1}));
  c.sharing = Sharing::sequence;
  EXPECT_EQ(c.layer_schedule(), (std::vector<int>{0, 0, 0, 1, 1, 1}));
  c.n_layers = 8, c.sharing = Sharing::middle_sequence;
  EXPECT_EQ(c.layer_schedule(), (std::vector<int>{0, 1, 1, 1, 2, 2, 2, 3}));
  c.sharing = Sharing::none, c.prelude = 1, c.loop_block = 2, c.loop_count = 2, c.coda = 1, c.n_layers = 6;
  EXPECT_EQ(c.layer_schedule(), (std::vector<int>{0, 1, 2, 1, 2, 3}));
}

TEST(Config, BadInputNamesTheProblem) {
  expect_error([] { model_config_from_json("{\"d_model\": 64,"); }, "not valid JSON");
  expect_error([] { model_config_from_json("[1,2]"); }, "JSON object");
  expect_error([] { model_config_from_json(R"({"d_modle": 64})"); }, "unknown key \"d_modle\"");
  expect_error([] { model_config_from_json(R"({"d_model": "big"})"); }, "\"d_model\" must be an integer");
  expect_error([] { model_config_from_json(R"({"d_model": 60, "n_heads": 8})"); }, "divisible by n_heads");
  expect_error([] { model_config_from_json(R"({"n_heads": 4, "n_kv_heads": 3})"); }, "must divide n_heads");
  expect_error([] { model_config_from_json(R"({"n_layers": -1})"); }, "n_layers must be a positive");
  expect_error([] { model_config_from_json(R"({"sharing": "zigzag"})"); }, "unknown sharing");
  expect_error([] { model_config_from_json(R"({"sharing": "cycle", "n_layers": 5, "n_recursions": 2})"); },
               "multiple of n_recursions");
  expect_error([] { model_config_from_json(R"({"loop_block": 2, "loop_count": 3, "n_layers": 5})"); },
               "must equal prelude");
  expect_error([] { model_config_from_file("/nonexistent/config.json"); }, "cannot open");
}

TEST(SafeTensors, RoundTrip) {
  std::string dir = temp_dir("st");
  SafeTensors st;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
  std::vector<int32_t> b = {1, -2, 2147483647};
  st.add_f32("a", {2, 3}, a.data());
  st.add_i32("b", {3}, b.data());
  st.metadata["hello"] = "world";
  safetensors_write(dir + "/x.safetensors", st);
  EXPECT_FALSE(fs::exists(dir + "/x.safetensors.tmp"));
  SafeTensors r = safetensors_read(dir + "/x.safetensors");
  EXPECT_EQ(r.order, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.metadata.at("hello"), "world");
  EXPECT_EQ(std::vector<float>(r.get("a", {2, 3}).f32(), r.get("a").f32() + 6), a);
  EXPECT_EQ(std::vector<int32_t>(r.get("b").i32(), r.get("b").i32() + 3), b);
  EXPECT_EQ(safetensors_serialize(r), safetensors_serialize(st));
  expect_error([&] { r.get("a", {3, 2}); }, "has shape [2, 3]");
  expect_error([&] { r.get("c"); }, "tensor \"c\" is missing");
  fs::remove_all(dir);
}

TEST(SafeTensors, CorruptionIsReported) {
  SafeTensors st;
  std::vector<float> a(12, 1.0f);
  st.add_f32("weight", {3, 4}, a.data());
  std::vector<uint8_t> good = safetensors_serialize(st);
  auto header_with = [&](const std::string& json) {
    std::string text = json;
    std::vector<uint8_t> out(8 + text.size() + 48, 0);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(text.size() >> (8 * i));
    std::copy(text.begin(), text.end(), out.begin() + 8);
    return out;
  };
  expect_error([&] { safetensors_parse({1, 2, 3}, "f"); }, "shorter than");
  expect_error([&] { safetensors_parse(std::vector<uint8_t>(good.begin(), good.end() - 5), "f"); }, "outside the data");
  std::vector<uint8_t> huge = good;
  huge[6] = 0xff;
  expect_error([&] { safetensors_parse(huge, "f"); }, "exceeds the file size");
  std::vector<uint8_t> garbled = good;
  garbled[9] = '#';
  expect_error([&] { safetensors_parse(garbled, "f"); }, "not JSON");
  expect_error(
      [&] { safetensors_parse(header_with(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})"), "f"); },
      "dtype F16");
  expect_error(
      [&] { safetensors_parse(header_with(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"), "f"); },
      "needs 12");
  expect_error([&] { safetensors_parse(header_with(R"({"w":{"dtype":"F32","shape":[2]}})"), "f"); }, "lacks");
  expect_error(
      [&] {
        safetensors_parse(header_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
                          "f");
      },
      "overlap");
  expect_error(
      [&] { safetensors_parse(header_with(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"), "f"); },
      "invalid dimension");
}

TEST(Checkpoint, RoundTripAndMismatch) {
  std::string dir = temp_dir("ckpt");
  Model model(tiny_config());
  model.init_weights(5);
  AdamW opt;
  opt.init(model.n_params());
  opt.step = 7;
  opt.m[3] = 0.25f;
  opt.v[5] = 0.5f;
  TrainConfig tc;
  std::string saved = checkpoint_save_training(dir, model, opt, tc);
  EXPECT_EQ(checkpoint_resolve(dir), saved);
  EXPECT_FALSE(fs::exists(saved + ".tmp"));
  Model loaded = checkpoint_load_model(dir);
  EXPECT_EQ(loaded.params, model.params);
  AdamW opt2;
  TrainConfig tc2;
  checkpoint_load_training(dir, loaded, opt2, tc2);
  EXPECT_EQ(opt2.step, 7);
  EXPECT_EQ(opt2.m, opt.m);
  EXPECT_EQ(opt2.v, opt.v);
  EXPECT_EQ(train_config_to_json(tc2), train_config_to_json(tc));

  // a different model shape: weights do not fit
  ModelConfig other = tiny_config();
  other.d_ff = 32;
  Model wrong(other);
  expect_error([&] { load_weights(wrong, saved + "/model.safetensors"); }, "but the model needs");
  AdamW opt3;
  expect_error([&] { checkpoint_load_training(dir, wrong, opt3, tc2); }, "differs from the model");
  // truncated weights file
  auto bytes = read_file_bytes(saved + "/model.safetensors");
  bytes.resize(bytes.size() / 2);
  write_file_atomic(saved + "/model.safetensors", bytes.data(), bytes.size());
  expect_error([&] { checkpoint_load_model(dir); }, "outside the data");
  // a dangling latest pointer, a missing folder
  std::ofstream(dir + "/latest") << "step_99999999\n";
  expect_error([&] { checkpoint_resolve(dir); }, "not a checkpoint folder");
  expect_error([&] { checkpoint_resolve(dir + "/nope"); }, "does not exist");
  fs::remove_all(dir);
}

}  // namespace

namespace {

TEST(Checkpoint, MorBiasRoundTrip) {
  std::string dir = temp_dir("morbias");
  ModelConfig c = tiny_config();
  c.sharing = Sharing::cycle, c.n_layers = 4, c.n_recursions = 2;
  for (MorRouting routing : {MorRouting::token, MorRouting::expert}) {  // balancing bias, causal rule's bias
    c.mor_routing = routing;
    Model model(c);
    model.mor_bias = {0.25f, -0.5f};
    save_weights(model, dir + "/w.safetensors");
    Model loaded(c);
    load_weights(loaded, dir + "/w.safetensors");
    EXPECT_EQ(loaded.mor_bias, model.mor_bias);
    EXPECT_EQ(loaded.params, model.params);
    Model read(c);
    load_weights(read, SafeTensorsFile(dir + "/w.safetensors"));  // the inference load
    EXPECT_EQ(read.mor_bias, model.mor_bias);
  }
  fs::remove_all(dir);
}

}  // namespace
