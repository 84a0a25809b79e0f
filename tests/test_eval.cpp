// recur eval's arithmetic: NLL against a log-likelihood computed by hand from the decoder's logits (an independent
// forward), every token after the first predicted once across windows and batches, and bits per byte.
#include <gtest/gtest.h>

#include <cmath>

#include "recur/decode.h"
#include "recur/eval.h"
#include "recur/model.h"
#include "recur/rng.h"
#include "test_util.h"

using namespace recur;

namespace {

// -ln p(stream[t+1] | stream[w0..t]) summed over the window [w0, w0 + n], by a KV-cache decode and log-softmax.
double hand_nll(const Model& model, const std::vector<int32_t>& stream, size_t w0, int n) {
  Decoder decoder(model);
  KVCache cache;
  std::vector<float> logits;
  decoder.forward({{&cache, stream.data() + w0, n}}, logits);
  int V = model.config().vocab_size;
  double nll = 0;
  for (int t = 0; t < n; t++) {
    const float* row = logits.data() + (size_t)t * V;
    double max = row[0], sum = 0;
    for (int v = 1; v < V; v++) max = std::max<double>(max, row[v]);
    for (int v = 0; v < V; v++) sum += std::exp(row[v] - max);
    nll += -(row[stream[w0 + t + 1]] - max - std::log(sum));
  }
  return nll;
}

TEST(Eval, NllEqualsHandComputedLogLikelihood) {
  ModelConfig c = tiny_decoder("plain", 16);
  Model model(c);
  model.init_weights(3);
  Rng rng(8);
  std::vector<int32_t> stream(41);
  for (int32_t& t : stream) t = (int32_t)rng.uniform(c.vocab_size);
  std::vector<int32_t> token_bytes(c.vocab_size);
  for (int v = 0; v < c.vocab_size; v++) token_bytes[v] = v % 3 + 1;
  TokenReader read = [&](uint64_t start, size_t n, int32_t* out) {
    std::copy(stream.begin() + (long)start, stream.begin() + (long)(start + n), out);
  };
  EvalOptions o;
  o.seq_len = 8, o.batch_size = 3;  // windows [0,8] [8,16] [16,24] | [24,32] [32,40], no shorter rest
  for (int max_tokens : {0, 37}) {  // 37 tokens: four windows and a rest of 4 predictions
    o.max_tokens = max_tokens;
    LmEvalResult r = evaluate_lm(model, read, stream.size(), token_bytes, o);
    int n = max_tokens ? max_tokens : (int)stream.size();
    double expected = 0;
    int64_t bytes = 0;
    for (int w0 = 0; w0 + 1 < n; w0 += 8) expected += hand_nll(model, stream, w0, std::min(8, n - 1 - w0));
    for (int t = 1; t < n; t++) bytes += token_bytes[stream[t]];
    EXPECT_EQ(r.tokens, n - 1);
    EXPECT_EQ(r.windows, (n - 1 + 7) / 8);
    EXPECT_EQ(r.bytes, bytes);
    EXPECT_NEAR(r.nll_sum, expected, 1e-4 * expected);
    EXPECT_NEAR(r.nll(), expected / (n - 1), 1e-4);
    EXPECT_NEAR(r.perplexity(), std::exp(expected / (n - 1)), 1e-3);
    EXPECT_NEAR(r.bits_per_byte(), expected / std::log(2.0) / (double)bytes, 1e-5);
  }
}

TEST(Eval, BitsPerByteArithmetic) {
  LmEvalResult r;
  r.tokens = 100, r.bytes = 400, r.nll_sum = 100 * std::log(16.0);  // perplexity 16: 4 bits a token, 1 per byte
  EXPECT_NEAR(r.nll(), std::log(16.0), 1e-12);
  EXPECT_NEAR(r.perplexity(), 16.0, 1e-9);
  EXPECT_NEAR(r.bits_per_byte(), 1.0, 1e-12);
}

TEST(Eval, TokensOutsideTheVocabularyAreRefused) {
  Model model(tiny_decoder("plain", 16));
  model.init_weights(3);
  std::vector<int32_t> stream = {1, 2, 300, 4};
  TokenReader read = [&](uint64_t start, size_t n, int32_t* out) {
    std::copy(stream.begin() + (long)start, stream.begin() + (long)(start + n), out);
  };
  std::vector<int32_t> token_bytes(40, 1);
  std::string message = error_of([&] { evaluate_lm(model, read, stream.size(), token_bytes, EvalOptions{}); });
  EXPECT_NE(message.find("token 300 is outside the model's vocabulary of 40"), std::string::npos) << message;
}

}  // namespace
