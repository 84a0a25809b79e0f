// recur eval's arithmetic: NLL against a log-likelihood computed by hand from the decoder's logits (an independent
// forward), every token after the first predicted once across windows and batches, and bits per byte.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "recur/decode.h"
#include "recur/eval.h"
#include "recur/model.h"
#include "recur/rng.h"
#include "recur/tokenizer.h"
#include "test_util.h"

using namespace recur;

namespace {

// ln p(tokens[t+1] | tokens[0..t]) for each t, by a KV-cache decode and a log-softmax computed here.
std::vector<double> hand_logprobs(const Model& model, const std::vector<int32_t>& tokens) {
  Decoder decoder(model);
  KVCache cache;
  std::vector<float> logits;
  int n = (int)tokens.size() - 1, V = model.config().vocab_size;
  decoder.forward({{&cache, tokens.data(), n}}, logits);
  std::vector<double> out;
  for (int t = 0; t < n; t++) {
    const float* row = logits.data() + (size_t)t * V;
    double max = row[0], sum = 0;
    for (int v = 1; v < V; v++) max = std::max<double>(max, row[v]);
    for (int v = 0; v < V; v++) sum += std::exp(row[v] - max);
    out.push_back(row[tokens[t + 1]] - max - std::log(sum));
  }
  return out;
}

// -ln p summed over the n predictions of the window stream[w0 .. w0 + n].
double hand_nll(const Model& model, const std::vector<int32_t>& stream, size_t w0, int n) {
  std::vector<double> lp = hand_logprobs(model, {stream.begin() + (long)w0, stream.begin() + (long)w0 + n + 1});
  double nll = 0;
  for (double v : lp) nll -= v;
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

TEST(FewShot, ShotsAreSeededDistinctOthers) {
  FewShotOptions o;
  o.shots = 3;
  for (size_t i = 0; i < 6; i++) {
    std::vector<size_t> shots = fewshot_indices(6, i, o);
    ASSERT_EQ(shots.size(), 3u);
    EXPECT_EQ(std::count(shots.begin(), shots.end(), i), 0);
    EXPECT_EQ(std::set<size_t>(shots.begin(), shots.end()).size(), 3u);
    EXPECT_EQ(fewshot_indices(6, i, o), shots);  // seeded
  }
  FewShotOptions other = o;
  other.seed = 99;
  int differ = 0;
  for (size_t i = 0; i < 6; i++) differ += fewshot_indices(6, i, o) != fewshot_indices(6, i, other);
  EXPECT_GT(differ, 0);
  o.shots = 6;
  EXPECT_NE(error_of([&] { fewshot_indices(6, 0, o); }).find("needs more than that many items"), std::string::npos);
}

TEST(FewShot, ScoresEqualHandComputedLogLikelihood) {
  ModelConfig c = tiny_decoder("plain", 48);
  c.vocab_size = 256;
  Model model(c);
  model.init_weights(5);
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  std::vector<FewShotItem> items = {{"Q: sky? A:", {" blue", " green", " red"}, 0},
                                    {"Q: grass? A:", {" blue", " green"}, 1},
                                    {"Q: fire? A:", {" hot", " cold and wet"}, 0},
                                    {"Q: snow? A:", {" hot", " cold"}, 1}};
  FewShotOptions o;
  o.shots = 2, o.separator = "\n";  // 2 shots of ~20 bytes + the item: longer than max_seq_len 48, so cut
  FewShotResult r = evaluate_fewshot(model, *bytes, items, o);
  double acc = 0, acc_norm = 0;
  for (size_t i = 0; i < items.size(); i++) {
    std::string prompt;
    for (size_t k : fewshot_indices(items.size(), i, o))
      prompt += items[k].context + items[k].choices[items[k].gold] + "\n";
    prompt += items[i].context;
    std::vector<double> ll, per_byte;
    for (const std::string& choice : items[i].choices) {
      std::vector<int32_t> seq = bytes->encode(prompt + choice);
      if (seq.size() > 49) seq.erase(seq.begin(), seq.end() - 49);  // the last max_seq_len + 1 tokens
      std::vector<double> lp = hand_logprobs(model, seq);
      ll.push_back(0);
      for (size_t t = lp.size() - choice.size(); t < lp.size(); t++) ll.back() += lp[t];
      per_byte.push_back(ll.back() / (double)choice.size());
    }
    for (size_t ch = 0; ch < ll.size(); ch++) EXPECT_NEAR(r.loglik[i][ch], ll[ch], 1e-4 * std::fabs(ll[ch]));
    acc += std::max_element(ll.begin(), ll.end()) - ll.begin() == items[i].gold;
    acc_norm += std::max_element(per_byte.begin(), per_byte.end()) - per_byte.begin() == items[i].gold;
  }
  EXPECT_EQ(r.items, 4);
  EXPECT_DOUBLE_EQ(r.acc, acc / 4);
  EXPECT_DOUBLE_EQ(r.acc_norm, acc_norm / 4);
}

TEST(FewShot, MalformedItemsNameTheLine) {
  std::string dir = temp_dir("fewshot");
  std::ofstream(dir + "/items.jsonl") << "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n"
                                      << "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 2}\n";
  std::string message = error_of([&] { read_fewshot_jsonl(dir + "/items.jsonl"); });
  EXPECT_NE(message.find("items.jsonl line 2: gold 2 is not an index into its 2 choices"), std::string::npos)
      << message;
  std::ofstream(dir + "/items.jsonl") << "{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n";
  message = error_of([&] { read_fewshot_jsonl(dir + "/items.jsonl"); });
  EXPECT_NE(message.find("line 1 needs"), std::string::npos) << message;
  std::filesystem::remove_all(dir);
}

}  // namespace
