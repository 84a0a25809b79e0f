// Helpers shared by the test suites.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "recur/config.h"
#include "recur/error.h"

// The message of the recur::Error that fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const recur::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Expects `statement` to throw a recur::Error whose message holds `fragment` (gtest's EXPECT_NE, printing it).
#define EXPECT_ERROR(statement, fragment)                                           \
  do {                                                                              \
    std::string message = error_of([&] { statement; });                             \
    EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message; \
  } while (0)

// A fresh, empty scratch folder for one test (name and pid keep parallel runs apart).
inline std::string temp_dir(const std::string& name) {
  std::string dir =
      std::filesystem::temp_directory_path().string() + "/recur_test_" + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A tiny decoder (vocab 40, d 32, GQA 4/2) for decoding tests: "plain", "cycle", "middle_loop_concat",
// "untied_mha", or MoR "expert" (middle_cycle, N_r 3) and "token_kv" (cycle, N_r 3, KV sharing).
inline recur::ModelConfig tiny_decoder(const std::string& kind, int max_seq_len = 16) {
  using namespace recur;
  ModelConfig c;
  c.vocab_size = 40, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 48, c.max_seq_len = max_seq_len;
  if (kind == "cycle") c.sharing = Sharing::cycle, c.n_layers = 4, c.n_recursions = 2;
  if (kind == "middle_loop_concat")
    c.n_layers = 6, c.prelude = 1, c.loop_block = 2, c.loop_count = 2, c.coda = 1,
    c.input_injection = InputInjection::concat;
  if (kind == "untied_mha") c.tied_embeddings = false, c.n_kv_heads = 4;
  if (kind == "expert")
    c.sharing = Sharing::middle_cycle, c.n_layers = 5, c.n_recursions = 3, c.mor_routing = MorRouting::expert;
  if (kind == "token_kv")
    c.sharing = Sharing::cycle, c.n_layers = 3, c.n_recursions = 3, c.mor_routing = MorRouting::token,
    c.mor_kv_sharing = true;
  c.validate();
  return c;
}
