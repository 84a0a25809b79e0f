// The server's request parser and completion text (src/server/api.h): good requests parse to engine requests
// (text prompts in the model's tokenizer), bad ones raise an ApiError naming the field, and a bounded mutation
// loop over request bodies finds no crash (the completion text: tests/test_text_stream.cpp).
#include <gtest/gtest.h>

#include <chrono>

#include "recur/rng.h"
#include "server/api.h"
#include "test_lm_util.h"

using namespace recur;
using namespace recur::server;

namespace {

ModelConfig byte_model() {
  ModelConfig c;
  c.vocab_size = 256, c.max_seq_len = 64;
  return c;
}

const Tokenizer& bytes() {
  static std::unique_ptr<Tokenizer> tokenizer = make_byte_tokenizer();
  return *tokenizer;
}

std::string param_of(const std::string& body) {
  try {
    parse_completion(body, byte_model(), bytes(), 1);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return e.param.empty() ? "(none)" : e.param;
  }
  return "(accepted)";
}

}  // namespace

TEST(ServerApi, ParsesCompletionRequests) {
  CompletionParams p = parse_completion(
      R"({"model": "m", "prompt": "ab", "max_tokens": 5, "temperature": 0.5, "top_k": 3, "top_p": 0.9,
          "seed": 12, "stop": ["\n", "x"], "n": 1, "stream": true, "user": "u", "ignore_eos": true})",
      byte_model(), bytes(), 1);
  EXPECT_EQ(p.prompt, (std::vector<int32_t>{97, 98}));
  EXPECT_EQ(p.sampling.max_new_tokens, 5);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.9f);
  EXPECT_EQ(p.sampling.seed, 12u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"\n", "x"}));
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.ignore_eos);
  p = parse_completion(R"({"prompt": [1, 2, 3], "stop": null})", byte_model(), bytes(), 1);
  EXPECT_EQ(p.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(p.sampling.max_new_tokens, 16);
  EXPECT_FALSE(p.stream);
  EXPECT_FALSE(p.ignore_eos);
}

TEST(ServerApi, ErrorsNameTheField) {
  EXPECT_EQ(param_of("{"), "(none)");
  EXPECT_EQ(param_of("[1]"), "(none)");
  EXPECT_EQ(param_of(R"({"prompt": "a", "bogus": 1})"), "bogus");
  EXPECT_EQ(param_of(R"({"prompt": 5})"), "prompt");
  EXPECT_EQ(param_of(R"({"prompt": ""})"), "prompt");
  EXPECT_EQ(param_of(R"({"prompt": [-1]})"), "prompt");
  EXPECT_EQ(param_of(R"({"prompt": "a", "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(param_of(R"({"prompt": "a", "max_tokens": 1.5})"), "max_tokens");
  EXPECT_EQ(param_of(R"({"prompt": "a", "temperature": -1})"), "temperature");
  EXPECT_EQ(param_of(R"({"prompt": "a", "top_p": 0})"), "top_p");
  EXPECT_EQ(param_of(R"({"prompt": "a", "top_k": 257})"), "top_k");
  EXPECT_EQ(param_of(R"({"prompt": "a", "seed": -3})"), "seed");
  EXPECT_EQ(param_of(R"({"prompt": "a", "seed": 18446744073709551615})"), "seed");
  EXPECT_EQ(param_of(R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})"), "stop");
  EXPECT_EQ(param_of(R"({"prompt": "a", "stop": ""})"), "stop");
  EXPECT_EQ(param_of(R"({"prompt": "a", "stream": 1})"), "stream");
  EXPECT_EQ(param_of(R"({"prompt": "a", "ignore_eos": "yes"})"), "ignore_eos");
  EXPECT_EQ(param_of(R"({"prompt": "a", "model": 1})"), "model");
  EXPECT_EQ(param_of(R"({"prompt": "a", "n": 2})"), "n");
  EXPECT_EQ(param_of(R"({"prompt": "a", "max_tokens": 64})"), "(accepted)");
  EXPECT_EQ(param_of(R"({"prompt": "ab", "max_tokens": 64})"), "max_tokens");
  std::string long_prompt = R"({"prompt": [1)";
  for (int i = 0; i < 64; i++) long_prompt += ", 1";
  EXPECT_EQ(param_of(long_prompt + "]}"), "prompt");  // 65 tokens: longer than the context alone
  try {
    parse_completion(R"({"prompt": [5, 256]})", byte_model(), bytes(), 1);
    ADD_FAILURE() << "token 256 was accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.message, "token id 256 in 'prompt' is outside the model's vocabulary (ids 0 to 255)");
  }
}

TEST(ServerApi, TextPromptsUseTheModelsTokenizer) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  ModelConfig config = byte_model();
  config.vocab_size = sp->vocab_size();
  CompletionParams p = parse_completion(R"({"prompt": "the earth and café"})", config, *sp, 1);
  EXPECT_EQ(p.prompt, sp->encode("the earth and café"));
  EXPECT_LT(p.prompt.size(), std::string("the earth and café").size());  // pieces, not bytes
  EXPECT_EQ(parse_completion(R"({"prompt": [3, 319]})", config, *sp, 1).prompt, (std::vector<int32_t>{3, 319}));
  EXPECT_THROW(parse_completion(R"({"prompt": [320]})", config, *sp, 1), ApiError);
}

// Mutations of valid bodies (byte flips, insertions, deletions, splices of JSON fragments) must only ever be
// accepted or answered with an ApiError; bounded to a few seconds so the sanitizer build stays quick.
TEST(ServerApi, FuzzedBodiesNeverCrashTheParser) {
  const std::vector<std::string> seeds = {
      R"({"prompt": "And God said", "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"]})",
      R"({"prompt": [1, 2, 300], "seed": 4, "stream": true, "n": 1})", R"({"content": "h\u00e9"})",
      R"({"tokens": [104, 195, 169]})"};
  const std::vector<std::string> fragments = {"{",       "}",          "[",        "]",     "\"",
                                              ",",       ":",          "null",     "1e999", "-0",
                                              "\\u0000", "\"prompt\"", "\"stop\"", "[[[[",  "18446744073709551616",
                                              "\xff"};
  Rng rng(2024);
  auto start = std::chrono::steady_clock::now();
  int runs = 0, accepted = 0;
  for (; runs < 200000 && std::chrono::steady_clock::now() - start < std::chrono::seconds(5); runs++) {
    std::string body = seeds[rng.uniform(seeds.size())];
    for (int m = 0, n = 1 + (int)rng.uniform(4); m < n; m++) {
      size_t at = rng.uniform(body.size() + 1);
      switch (rng.uniform(4)) {
        case 0:
          if (at < body.size()) body[at] = (char)rng.uniform(256);
          break;
        case 1: body.insert(at, fragments[rng.uniform(fragments.size())]); break;
        case 2: body.erase(at, rng.uniform(4)); break;
        default: body.insert(at, body.substr(rng.uniform(body.size()), rng.uniform(8))); break;
      }
    }
    for (int endpoint = 0; endpoint < 3; endpoint++) {
      try {
        if (endpoint == 0) parse_completion(body, byte_model(), bytes(), 1);
        if (endpoint == 1) Utf8Decoder().decode(parse_tokenize(body), true);
        if (endpoint == 2) Utf8Decoder().decode(bytes().decode(parse_detokenize(body, byte_model())), true);
        accepted++;
      } catch (const ApiError& e) {
        EXPECT_GE(e.status, 400);
      }
    }
  }
  EXPECT_GT(runs, 1000);
  EXPECT_GT(accepted, 0);
}
