// Incremental decoding: logits from a KV cache (prefill, then one token at a time, several sequences in one
// batch) equal the full forward's, for plain, shared, middle-looped and input-injected models; bad use errors;
// top-p sampling draws only from the smallest set of likely tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "recur/decode.h"
#include "recur/error.h"
#include "recur/model.h"
#include "recur/rng.h"
#include "recur/sample.h"
#include "recur/train_pass.h"
#include "test_util.h"

using namespace recur;

namespace {

std::vector<int32_t> random_tokens(int n, int V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)rng.uniform(V);
  return t;
}

double max_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(Decode, CachedLogitsEqualFullForward) {
  for (const char* kind : {"plain", "cycle", "middle_loop_concat", "untied_mha"}) {
    ModelConfig c = tiny_decoder(kind);
    Model m(c);
    m.init_weights(3);
    TrainPass pass(m);
    Decoder decoder(m);
    const int T = 16, V = c.vocab_size;
    std::vector<int32_t> s0 = random_tokens(T, V, 1), s1 = random_tokens(T, V, 2);
    pass.forward(s0.data(), nullptr, 1, T);
    std::vector<float> full0(pass.logits(), pass.logits() + (size_t)T * V);
    pass.forward(s1.data(), nullptr, 1, T);
    std::vector<float> full1(pass.logits(), pass.logits() + (size_t)T * V);

    // sequence 0: prefill 5, then 1 token at a time; sequence 1 joins later with a prefill of 9, batched with it
    KVCache c0, c1;
    std::vector<float> logits;
    decoder.forward({{&c0, s0.data(), 5}}, logits);
    EXPECT_LT(max_diff(logits.data(), full0.data(), 5 * V), 1e-4) << kind;
    for (int t = 5; t < T; t++) {
      std::vector<DecodeChunk> chunks = {{&c0, s0.data() + t, 1}};
      int t1 = c1.length;
      if (t == 7)
        chunks.push_back({&c1, s1.data(), 9});
      else if (t > 7 && t1 < T)
        chunks.push_back({&c1, s1.data() + t1, 1});
      decoder.forward(chunks, logits);
      EXPECT_LT(max_diff(logits.data(), full0.data() + (size_t)t * V, V), 1e-4) << kind << " t " << t;
      if (chunks.size() == 2) {
        int n1 = chunks[1].n;
        EXPECT_LT(max_diff(logits.data() + V, full1.data() + (size_t)t1 * V, (size_t)n1 * V), 1e-4) << kind;
      }
    }
    EXPECT_EQ(c0.length, T);
    EXPECT_GT(c0.bytes(), 0u);
  }
}

TEST(Decode, RejectsBadUse) {
  Model m(tiny_decoder("plain"));
  m.init_weights(1);
  Decoder decoder(m);
  std::vector<int32_t> t = random_tokens(17, 40, 1);
  KVCache cache;
  std::vector<float> logits;
  EXPECT_THROW(decoder.forward({{&cache, t.data(), 17}}, logits), Error);  // past max_seq_len
  EXPECT_EQ(cache.length, 0);
  std::vector<int32_t> bad = {3, 99};
  EXPECT_THROW(decoder.forward({{&cache, bad.data(), 2}}, logits), Error);  // outside the vocabulary
  EXPECT_THROW(decoder.forward({}, logits), Error);
}

// MoR decoding routes causally; forward() with causal routing must give the same logits, and the caches of
// the deeper steps hold only the tokens that ran them.
TEST(Decode, MorCachedLogitsEqualCausalForward) {
  struct Case {
    const char* name;
    MorRouting routing;
    Sharing sharing;
    bool kv_sharing, aux_router, mlp_tanh;
  };
  for (Case k : {Case{"expert", MorRouting::expert, Sharing::middle_cycle, false, false, false},
                 Case{"expert_kv", MorRouting::expert, Sharing::cycle, true, false, false},
                 Case{"expert_aux_mlp", MorRouting::expert, Sharing::middle_cycle, false, true, true},
                 Case{"token", MorRouting::token, Sharing::middle_cycle, false, false, false},
                 Case{"token_kv", MorRouting::token, Sharing::cycle, true, false, false}}) {
    ModelConfig c = tiny_decoder("plain");
    c.sharing = k.sharing, c.n_recursions = 3, c.n_layers = k.sharing == Sharing::cycle ? 3 : 5;
    c.mor_routing = k.routing, c.mor_kv_sharing = k.kv_sharing, c.mor_aux_router = k.aux_router;
    if (k.mlp_tanh) c.mor_router = MorRouter::mlp, c.mor_gate = MorGate::tanh;
    c.validate();
    Model m(c);
    m.init_weights(7);
    for (float& w : m.params) w *= 4;  // logits and router scores far from ties, so that routing is robust
    // token choice's balancing bias, or the expert-choice causal rule's
    m.mor_bias =
        k.routing == MorRouting::token ? std::vector<float>{0.05f, 0.0f, -0.05f} : std::vector<float>{0.0f, 0.2f, 0.1f};
    TrainPass pass(m);
    Decoder decoder(m);
    pass.set_mor_causal_routing(true);
    const int T = 16, V = c.vocab_size;
    std::vector<int32_t> s0 = random_tokens(T, V, 5), s1 = random_tokens(T, V, 6);
    std::vector<int32_t> both = s0;
    both.insert(both.end(), s1.begin(), s1.end());
    pass.forward(both.data(), nullptr, 2, T);
    std::vector<float> full(pass.logits(), pass.logits() + (size_t)2 * T * V);
    MorStats stats = pass.mor_stats();
    EXPECT_GT(stats.active_fraction[2], 0.0) << k.name;  // the deepest step runs on some tokens
    EXPECT_LT(stats.active_fraction[2], 1.0) << k.name;  // and not on all

    KVCache c0, c1;
    std::vector<float> logits;
    decoder.forward({{&c0, s0.data(), 6}, {&c1, s1.data(), 3}}, logits);
    EXPECT_LT(max_diff(logits.data(), full.data(), 6 * V), 1e-4) << k.name;
    EXPECT_LT(max_diff(logits.data() + 6 * V, full.data() + (size_t)T * V, 3 * V), 1e-4) << k.name;
    for (int t = 6; t < T; t++) {
      int t1 = c1.length;
      decoder.forward({{&c0, s0.data() + t, 1}, {&c1, s1.data() + t1, 1}}, logits);
      EXPECT_LT(max_diff(logits.data(), full.data() + (size_t)t * V, V), 1e-4) << k.name << " t " << t;
      EXPECT_LT(max_diff(logits.data() + V, full.data() + (size_t)(T + t1) * V, V), 1e-4) << k.name << " t " << t;
    }
    int rest = T - c1.length;  // sequence 1 finishes with a prefill-sized chunk
    decoder.forward({{&c1, s1.data() + c1.length, rest}}, logits);
    EXPECT_LT(max_diff(logits.data(), full.data() + (size_t)(2 * T - rest) * V, (size_t)rest * V), 1e-4) << k.name;
    // the last step's cache (first block layer) holds exactly the tokens that reached it
    size_t last_site = (k.sharing == Sharing::middle_cycle ? 1 : 0) + 2 * c.mor_block_size();
    size_t rows = k.kv_sharing ? 0 : (size_t)std::lround(stats.active_fraction[2] * 2 * T);
    EXPECT_EQ(c0.pos[last_site].size() + c1.pos[last_site].size(), rows) << k.name;
  }
}

TEST(Decode, GreedyGenerationMatchesFullForwardAndShiftsContext) {
  Model m(tiny_decoder("middle_loop_concat"));
  m.init_weights(4);
  std::vector<int32_t> prompt = random_tokens(4, 40, 9);
  SampleOptions greedy;
  greedy.temperature = 0, greedy.max_new_tokens = 12;
  std::vector<int32_t> cached = generate(m, prompt, greedy), seq = prompt;
  TrainPass pass(m);
  for (int i = 0; i < 12; i++) {  // the same by full forwards (16 positions: no context shift yet)
    int T = (int)seq.size();
    pass.forward(seq.data(), nullptr, 1, T);
    const float* last = pass.logits() + (size_t)(T - 1) * 40;
    seq.push_back((int32_t)(std::max_element(last, last + 40) - last));
  }
  EXPECT_EQ(cached, std::vector<int32_t>(seq.begin() + 4, seq.end()));
  greedy.max_new_tokens = 40;  // past max_seq_len: the context shifts
  EXPECT_EQ(generate(m, prompt, greedy).size(), 40u);
}

TEST(Sample, TopPKeepsTheSmallestLikelySet) {
  // probabilities 0.5, 0.3, 0.15, 0.05 (temperature 1): top_p 0.7 keeps the first two, top_p 1 all four
  std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SampleOptions o;
  o.temperature = 1, o.top_k = 0, o.top_p = 0.7f;
  Rng rng(3);
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 4000; i++) counts[sample_token(logits.data(), 4, o, rng)]++;
  EXPECT_EQ(counts[0] + counts[2], 0);
  EXPECT_NEAR(counts[1] / 4000.0, 0.5 / 0.8, 0.03);
  o.top_p = 1;
  for (int i = 0; i < 4000; i++) counts[sample_token(logits.data(), 4, o, rng)]++;
  EXPECT_GT(counts[2], 0);
  o.top_p = 0.01f;  // always at least the most likely token
  for (int i = 0; i < 50; i++) EXPECT_EQ(sample_token(logits.data(), 4, o, rng), 1);
}

// bf16 (recur/model.h, set_precision): decoding runs the same bf16 products as the training forward (one rule,
// recur/kernels.h WeightView), so their logits agree up to f32 summation order (which can flip the rounding of an
// operand at a bf16 rounding boundary: one term of one product moves by 2^-8 of itself; 2e-4 of the scale here,
// ten times below bf16's own distance to f32), and stays near f32 decoding. Each
// operand of a product moves by at most 2^-8 of itself, so each product by at most about 2^-7 of Σ|w·x|; to first
// order the logits move by at most (products on the path: 4 per layer application + the head) · 2^-7 of their scale.
TEST(Decode, Bf16AgreesWithTrainingForwardAndF32) {
  for (const char* kind : {"plain", "cycle", "untied_mha"}) {
    ModelConfig c = tiny_decoder(kind);
    Model m(c);
    m.init_weights(3);
    const int T = 12, V = c.vocab_size;
    std::vector<int32_t> s = random_tokens(T, V, 4);
    auto decode = [&](const Model& model) {  // prefill 4, then one token at a time
      Decoder decoder(model);
      KVCache cache;
      std::vector<float> logits, all;
      decoder.forward({{&cache, s.data(), 4}}, logits);
      all = logits;
      for (int t = 4; t < T; t++) {
        decoder.forward({{&cache, s.data() + t, 1}}, logits);
        all.insert(all.end(), logits.begin(), logits.end());
      }
      return all;
    };
    std::vector<float> f32 = decode(m);
    m.set_precision(Precision::bf16);
    EXPECT_EQ(m.precision(), Precision::bf16);
    std::vector<float> bf16 = decode(m);
    TrainPass pass(m);
    pass.forward(s.data(), nullptr, 1, T);
    double scale = 0;
    for (float x : f32) scale = std::max(scale, (double)std::fabs(x));
    EXPECT_LT(max_diff(bf16.data(), pass.logits(), f32.size()), 2e-4 * scale) << kind;
    double tolerance = (4.0 * c.n_layers + 1) * 2 / 256;
    double error = max_diff(bf16.data(), f32.data(), f32.size()) / scale;
    EXPECT_LT(error, tolerance) << kind;
    EXPECT_GT(error, 0) << kind << ": bf16 decoding ran f32 products";
    std::printf("%s: bf16 logits within %.2e of f32 (relative to the largest logit; bound %.2e)\n", kind, error,
                tolerance);
  }
}
