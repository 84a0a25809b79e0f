// Readers of outside input (issue 17): JSON depth, size and strictness limits, exact integers, file type checks,
// memory estimates before allocating, config.json against the weights' metadata, and the per-tensor checksum.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config_keys.h"
#include "core/json_read.h"
#include "io/checksum.h"
#include "recur/checkpoint.h"
#include "recur/config.h"
#include "recur/error.h"
#include "recur/model.h"
#include "recur/safetensors.h"
#include "recur/train.h"
#include "test_util.h"

using namespace recur;
namespace fs = std::filesystem;

namespace {

ModelConfig small() {
  ModelConfig c;
  c.d_model = 16, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 24, c.n_layers = 2, c.max_seq_len = 16;
  return c;
}

TEST(Readers, JsonDepthSizeAndStrictness) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_ERROR(model_config_from_json("{\"d_model\": " + deep + "}"), "nested deeper than 64");
  EXPECT_ERROR(train_config_from_json("{\"seq_len\": " + deep + "}"), "train state: JSON nested deeper");
  EXPECT_ERROR(model_config_from_json(std::string("{\"d_model\": 64}\0{\"x\": 1}", 24)), "a NUL byte at offset 15");
  EXPECT_ERROR(model_config_from_json("{\"d_model\": 64} {}"), "not valid JSON");
  EXPECT_ERROR(model_config_from_json("{\"rope_theta\": 1e999}"), "config: not valid JSON");
  EXPECT_ERROR(parse_json_strict(std::string(2000, ' '), "x", 1000), "x: 2000 bytes of JSON exceed the limit");
  EXPECT_EQ(brief_json(nlohmann::json::parse(std::string(200, '[') + std::string(200, ']'))), "a list of 1 items");
}

TEST(Readers, IntegersAreExact) {
  EXPECT_ERROR(model_config_from_json(R"({"d_model": 4294967360})"), "\"d_model\" is 4294967360, outside");
  EXPECT_ERROR(model_config_from_json(R"({"d_model": 64.0})"), "\"d_model\" must be an integer");
  EXPECT_ERROR(model_config_from_json(R"({"n_layers": 3, "loop_block": -1})"), "loop_block must be >= 0");
  EXPECT_ERROR(model_config_from_json(R"({"n_layers": 3, "loop_count": -2})"), "loop_count >= 1");
  // loop_block*loop_count overflows int: computed in 64 bits
  EXPECT_ERROR(model_config_from_json(R"({"n_layers": 0, "loop_block": 65536, "loop_count": 65536})"),
               "n_layers must be a positive integer");
  EXPECT_ERROR(model_config_from_json(R"({"n_layers": 1, "loop_block": 65536, "loop_count": 65536})"), "= 4294967296");
  int64_t step = 0;  // train_state.json's step goes through the same reader
  EXPECT_ERROR(read_json_value(nlohmann::json(1.5), step, "train state", "step"), "\"step\" must be an integer");
}

TEST(Readers, FilesAreRegularAndBounded) {
  std::string dir = temp_dir("readers");
  Model model(small());
  std::string saved = checkpoint_save_model(dir, model, 1);
  fs::remove(saved + "/model.safetensors");
  fs::create_directories(saved + "/model.safetensors");
  EXPECT_ERROR(checkpoint_load_model(dir), "model.safetensors\": it is not a regular file");
  fs::create_directories(dir + "/cfg.json");
  EXPECT_ERROR(model_config_from_file(dir + "/cfg.json"), "cfg.json\": it is not a regular file");
  std::ofstream(dir + "/big.json") << std::string((1 << 20) + 1, ' ');
  EXPECT_ERROR(model_config_from_file(dir + "/big.json"), "more than the 1048576");
  fs::remove_all(dir);
}

TEST(Readers, SizesAreEstimatedBeforeAllocating) {
  ModelConfig huge = small();
  huge.d_model = 1 << 20, huge.n_heads = 1 << 10, huge.n_kv_heads = 1 << 10, huge.d_ff = 1 << 20;
  huge.n_layers = 64;
  EXPECT_ERROR(Model m(huge), "need an estimated");
  // a checkpoint's config.json that does not match its weights is refused before the model is built
  std::string dir = temp_dir("bigcfg");
  Model model(small());
  std::string saved = checkpoint_save_model(dir, model, 1);
  ModelConfig wide = small();
  wide.d_model = 100000, wide.n_heads = 2, wide.n_kv_heads = 1;
  std::ofstream(saved + "/config.json") << model_config_to_json(wide);
  EXPECT_ERROR(checkpoint_load_model(dir), "config.json differs from the config stored in model.safetensors");
  fs::remove_all(dir);
}

TEST(Readers, ChecksumsFindFlippedBits) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);  // the FNV-1a 64 test vectors
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(hex64(fnv1a64("foobar", 6)), "85944171f73967e8");
  SafeTensors st;
  float values[4] = {1, 2, 3, 4};
  st.add_f32("w", {4}, values);
  std::vector<uint8_t> bytes = safetensors_serialize(st);
  EXPECT_TRUE(safetensors_parse(bytes, "f").metadata.empty());  // the hashes are not handed to callers
  bytes[bytes.size() - 3] ^= 0x10;
  EXPECT_ERROR(safetensors_parse(bytes, "f"), "\"w\" does not match its checksum");
  setenv("RECUR_SKIP_CHECKSUMS", "1", 1);
  EXPECT_EQ(safetensors_parse(bytes, "f").tensors.at("w").numel(), 4u);
  unsetenv("RECUR_SKIP_CHECKSUMS");
  // a file without hashes (older recur, other tools) loads unchecked
  std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string file =
      std::string(1, (char)header.size()) + std::string(7, '\0') + header + std::string("\0\0\x80\x3f", 4);
  std::vector<uint8_t> plain(file.begin(), file.end());
  EXPECT_EQ(safetensors_parse(plain, "f").tensors.at("w").f32()[0], 1.0f);
}

}  // namespace
