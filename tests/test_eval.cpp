// recur eval's arithmetic: NLL against a log-likelihood computed by hand from the decoder's logits (an independent
// forward), every token after the first predicted once across windows and batches, and bits per byte; the few-shot
// harness's multiple-choice scores against the same hand log-likelihoods, its generation outputs against a greedy
// continuation by the full forward, its standard errors and its task-file errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "recur/decode.h"
#include "recur/eval.h"
#include "recur/harness.h"
#include "recur/model.h"
#include "recur/rng.h"
#include "recur/tokenizer.h"
#include "recur/train_pass.h"
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
  std::vector<FewShotItem> items = {{"Q: sky? A:", {" blue", " green", " red"}, 0, {}, {}},
                                    {"Q: grass? A:", {" blue", " green"}, 1, {}, {}},
                                    {"Q: fire? A:", {" hot", " cold and wet"}, 0, {}, {}},
                                    {"Q: snow? A:", {" hot", " cold"}, 1, {}, {}}};
  FewShotOptions o;
  o.shots = 2, o.separator = "\n";  // 2 shots of ~20 bytes + the item: longer than max_seq_len 48, so cut
  FewShotResult r = evaluate_fewshot(model, *bytes, {"colours", "", TaskKind::multiple_choice, items}, o);
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
    for (size_t ch = 0; ch < ll.size(); ch++) EXPECT_NEAR(r.item[i].loglik[ch], ll[ch], 1e-4 * std::fabs(ll[ch]));
    bool right = std::max_element(ll.begin(), ll.end()) - ll.begin() == items[i].gold;
    bool right_norm = std::max_element(per_byte.begin(), per_byte.end()) - per_byte.begin() == items[i].gold;
    EXPECT_EQ(r.item[i].correct, right);
    EXPECT_EQ(r.item[i].correct_norm, right_norm);
    acc += right, acc_norm += right_norm;
  }
  EXPECT_EQ(r.items, 4);
  EXPECT_DOUBLE_EQ(r.acc, acc / 4);
  EXPECT_DOUBLE_EQ(r.acc_norm, acc_norm / 4);
}

TEST(FewShot, MalformedItemsNameTheLine) {
  std::string dir = temp_dir("fewshot");
  std::ofstream(dir + "/items.jsonl") << "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n"
                                      << "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 2}\n";
  std::string message = error_of([&] { read_fewshot_task(dir + "/items.jsonl"); });
  EXPECT_NE(message.find("items.jsonl line 2: gold 2 is not an index into its 2 choices"), std::string::npos)
      << message;
  std::ofstream(dir + "/items.jsonl") << "{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n";
  message = error_of([&] { read_fewshot_task(dir + "/items.jsonl"); });
  EXPECT_NE(message.find("line 1 needs"), std::string::npos) << message;
  std::filesystem::remove_all(dir);
}

// The greedy continuation of `tokens` by n steps of the full forward (TrainPass; expert choice with the causal rule),
// each the argmax of the last position's logits: independent of the KV-cache decoder the harness uses.
std::vector<int32_t> hand_greedy(const Model& model, std::vector<int32_t> tokens, int n) {
  TrainPass pass(model);
  pass.set_mor_causal_routing(model.config().mor_routing == MorRouting::expert);
  int V = model.config().vocab_size;
  std::vector<int32_t> out;
  for (int i = 0; i < n; i++) {
    pass.forward(tokens.data(), nullptr, 1, (int)tokens.size());
    const float* last = pass.logits() + (tokens.size() - 1) * V;
    tokens.push_back((int32_t)(std::max_element(last, last + V) - last));
    out.push_back(tokens.back());
  }
  return out;
}

// What the harness must output for `prompt` by the spec: the prompt's last max_seq_len bytes, continued greedily
// while prompt + output fit max_seq_len + 1 tokens and for at most max_gen tokens, cut before the first stop string.
std::string hand_output(const Model& model, const std::string& prompt, const std::vector<std::string>& until,
                        int max_gen) {
  int window = model.config().max_seq_len;
  std::vector<int32_t> tokens;  // byte-level
  for (unsigned char byte : prompt) tokens.push_back(byte);
  if ((int)tokens.size() > window) tokens.erase(tokens.begin(), tokens.end() - window);
  std::vector<int32_t> out = hand_greedy(model, tokens, std::min(max_gen, window + 1 - (int)tokens.size()));
  std::string text(out.begin(), out.end());
  size_t cut = std::string::npos;
  for (const std::string& u : until) cut = std::min(cut, text.find(u));
  return text.substr(0, cut);
}

Model byte_model(const std::string& kind, int max_seq_len) {
  ModelConfig c = tiny_decoder(kind, max_seq_len);
  c.vocab_size = 256;
  Model model(c);
  model.init_weights(11);
  for (float& w : model.params) w *= 4;  // logits and router scores far from ties (as in tests/test_decode.cpp)
  return model;
}

// Item i's prompt written by hand: its shots as context + target + blank line, then its context.
std::string hand_prompt(const FewShotTask& task, size_t i, const FewShotOptions& o) {
  std::string prompt;
  for (size_t k : fewshot_indices(task.items.size(), i, o))
    prompt += task.items[k].context + task.items[k].target + "\n\n";
  return prompt + task.items[i].context;
}

FewShotTask generation_task() {
  FewShotTask task{"gen", "", TaskKind::generation, {}};
  for (std::string context : {"Q: 1+1? A:", "Q: sky? A:", "Q: two words? A:", "Q: x? A:"})
    task.items.push_back({context, {}, 0, " answer " + context.substr(3, 2), {}});
  return task;
}

// Outputs equal the hand continuation with shots, cut by a stop string taken from that continuation (so it surely
// occurs, at byte 3 or before), by max_gen_tokens, and by max_seq_len (prompt cut from the left included).
TEST(FewShot, GenerationEqualsHandGreedyContinuation) {
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  for (std::string kind : {"plain", "expert"}) {
    SCOPED_TRACE(kind);
    Model model = byte_model(kind, 64);
    FewShotTask task = generation_task();
    FewShotOptions o;
    o.shots = 1, o.max_gen_tokens = 8;
    std::vector<std::string> expected;
    for (size_t i = 0; i < task.items.size(); i++) {
      std::string full = hand_output(model, hand_prompt(task, i, o), {}, 8);
      ASSERT_EQ(full.size(), 8u);
      task.items[i].until = {full.substr(3, 2), "\x01never\x02"};
      expected.push_back(hand_output(model, hand_prompt(task, i, o), task.items[i].until, 8));
      EXPECT_LE(expected.back().size(), 3u);
    }
    FewShotResult r = evaluate_fewshot(model, *bytes, task, o);
    ASSERT_EQ(r.items, 4);
    for (size_t i = 0; i < 4; i++) EXPECT_EQ(r.item[i].output, expected[i]) << "stop string, item " << i;
    o.max_gen_tokens = 5;  // no stop string: 5 tokens
    for (FewShotItem& item : task.items) item.until = {};
    r = evaluate_fewshot(model, *bytes, task, o);
    for (size_t i = 0; i < 4; i++) {
      EXPECT_EQ(r.item[i].output.size(), 5u);
      EXPECT_EQ(r.item[i].output, hand_output(model, hand_prompt(task, i, o), {}, 5)) << "max tokens, item " << i;
    }
    o.shots = 0, o.max_gen_tokens = 32;  // prompts of 61 and 69 bytes: 4 tokens, then 1 after the prompt's cut
    task.items = {{std::string(61, 'a'), {}, 0, "t", {}}, {"b" + std::string(68, 'c'), {}, 0, "t", {}}};
    r = evaluate_fewshot(model, *bytes, task, o);
    EXPECT_EQ(r.item[0].output.size(), 4u);
    EXPECT_EQ(r.item[1].output.size(), 1u);
    for (size_t i = 0; i < 2; i++)
      EXPECT_EQ(r.item[i].output, hand_output(model, task.items[i].context, {}, 32)) << "max_seq_len, item " << i;
  }
}

// Exact match: the output and the target equal with surrounding whitespace stripped; --max_items scores a prefix
// whose shots still come from every item.
TEST(FewShot, ExactMatchStripsWhitespaceAndMaxItemsKeepsShots) {
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  Model model = byte_model("plain", 40);
  FewShotTask task = generation_task();
  FewShotOptions o;
  o.max_gen_tokens = 6;
  for (size_t i = 0; i < 4; i++) {  // 0 shots: the targets do not change the prompts
    std::string out = hand_output(model, task.items[i].context, task.items[i].until, 6);
    task.items[i].target = i % 2 ? out + "x" : " \t" + out + "\n";  // right, wrong, right, wrong
  }
  FewShotResult r = evaluate_fewshot(model, *bytes, task, o);
  EXPECT_DOUBLE_EQ(r.exact_match, 0.5);
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(r.item[i].correct, i % 2 == 0) << "item " << i;
  o.shots = 1, o.max_items = 1;  // item 0's one shot is one of items 1..3, though only item 0 is scored
  FewShotResult first = evaluate_fewshot(model, *bytes, task, o);
  ASSERT_EQ(first.items, 1);
  EXPECT_EQ(first.item[0].output, hand_output(model, hand_prompt(task, 0, o), task.items[0].until, 6));
}

// sqrt(p(1-p)/(n-1)) against hand values, and against lm-evaluation-harness's formula (the sample standard
// deviation of the 0/1 scores over sqrt(n)) computed from scores.
TEST(FewShot, StandardErrorsEqualHandValues) {
  EXPECT_NEAR(fraction_stderr(0.75, 4), 0.25, 1e-12);        // sqrt(3/16 / 3)
  EXPECT_NEAR(fraction_stderr(0.5, 5), 0.25, 1e-12);         // sqrt(1/4 / 4)
  EXPECT_NEAR(fraction_stderr(1.0 / 3, 3), 1.0 / 3, 1e-12);  // sqrt(2/9 / 2)
  EXPECT_EQ(fraction_stderr(0, 10), 0);
  EXPECT_TRUE(std::isnan(fraction_stderr(1, 1)));
  std::vector<int> scores = {1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1};
  double n = (double)scores.size(), mean = 0, squares = 0;
  for (int x : scores) mean += x / n;
  for (int x : scores) squares += (x - mean) * (x - mean);
  EXPECT_NEAR(fraction_stderr(mean, (int64_t)n), std::sqrt(squares / (n - 1)) / std::sqrt(n), 1e-12);
}

// Each bad task file is an error naming the file, the line and the fix.
TEST(FewShot, BadTaskFilesNameTheLineAndTheFix) {
  std::string dir = temp_dir("fewshot_bad");
  std::string mc = "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n";
  std::string gen = "{\"context\": \"a\", \"target\": \" b\"}\n";
  std::string path = dir + "/task.jsonl";
  auto read = [&](const std::string& lines) {
    std::ofstream(path) << lines;
    return read_fewshot_task(path);
  };
  EXPECT_ERROR(read(gen + "\n" + mc),
               "task.jsonl line 3 is a multiple_choice item but line 1 is generation; one file holds one kind: put "
               "the multiple_choice items in a file of their own");
  EXPECT_ERROR(read(gen + "{\"context\": \"a\", \"target\": 7}\n"), "task.jsonl line 2: \"target\" must be a text");
  for (std::string target : {"\"\"", "\" \\n\""})
    EXPECT_ERROR(read("{\"context\": \"a\", \"target\": " + target + "}\n"),
                 "line 1: the target is empty (or only whitespace); give the expected output");
  for (std::string until : {"\"\\n\"", "[\"\"]", "[\"x\", 3]"})
    EXPECT_ERROR(read("{\"context\": \"a\", \"target\": \"b\", \"until\": " + until + "}\n"),
                 "line 1: \"until\" must be a list of non-empty texts");
  EXPECT_ERROR(read("{\"context\": \"a\", \"target\": \"b\", \"choices\": [\"b\", \"c\"], \"gold\": 0}\n"),
               "line 1 needs");
  FewShotTask task = read(gen);
  EXPECT_EQ(task.name, "task");
  EXPECT_EQ(task.kind, TaskKind::generation);
  EXPECT_EQ(task.items[0].until, std::vector<std::string>{"\n"});
  std::filesystem::create_directories(dir + "/other");
  std::ofstream(dir + "/other/task.jsonl") << mc;
  EXPECT_ERROR(read_fewshot_tasks({path, dir + "/other/task.jsonl"}),
               "are both task \"task\" (a task is named by its file's stem); rename one of them");
  std::filesystem::remove_all(dir);
}

}  // namespace
