// Token shards: prepare and read back (the split by document, EOS after each, seeded), shard files of both widths,
// the epoch-shuffled windows, corruption, truncation and mismatch errors, and training on shards: a run resumed
// mid-shard equals an uninterrupted one bit for bit, and resuming on other shards is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/json_read.h"
#include "io/checksum.h"
#include "recur/error.h"
#include "recur/shards.h"
#include "recur/train.h"
#include "test_lm_util.h"

using namespace recur;
namespace fs = std::filesystem;

namespace {

// Twelve documents: three text files and nine JSONL lines.
std::vector<std::string> write_documents(const std::string& dir) {
  fs::create_directories(dir + "/texts");
  for (int i = 0; i < 3; i++) std::ofstream(dir + "/texts/" + std::to_string(i) + ".txt") << lm_sample_text(20, i);
  std::ofstream jsonl(dir + "/docs.jsonl");
  for (int i = 0; i < 9; i++) jsonl << nlohmann::json({{"text", lm_sample_text(4, 100 + i)}}).dump() << "\n";
  return {dir + "/texts", dir + "/docs.jsonl"};
}

std::vector<int32_t> all_tokens(const ShardStream& s) {
  std::vector<int32_t> out(s.size());
  if (!out.empty()) s.read(0, out.size(), out.data());
  return out;
}

TEST(Shards, PrepareRoundTrip) {
  std::string dir = temp_dir("shards_round_trip");
  std::vector<std::string> inputs = write_documents(dir);
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  PrepareOptions o;
  o.val_fraction = 0.3, o.shard_tokens = 700;
  PrepareSummary s = prepare_shards(inputs, *bytes, dir + "/out", o);
  EXPECT_EQ(s.documents[0] + s.documents[1], 12);
  EXPECT_GT(s.documents[1], 0);
  EXPECT_GT(s.shards[0], 1);  // several files, read as one stream
  ShardFolder folder = ShardFolder::open(dir + "/out");
  EXPECT_EQ(folder.vocab_size, 256);
  // Every document, followed by EOS, lands whole in one split, in input order.
  std::string joined[2];
  Rng rng(mix_seed(o.seed, 0x5a11));
  for_each_document(inputs, o.documents, [&](std::string_view text, const std::string&) {
    joined[rng.uniform_float() < o.val_fraction ? 1 : 0] += std::string(text) + '\0';
  });
  EXPECT_EQ(bytes->decode(all_tokens(folder.train)), joined[0]);
  EXPECT_EQ(bytes->decode(all_tokens(folder.val)), joined[1]);
  EXPECT_EQ((int64_t)folder.train.size(), s.tokens[0]);
  // Same seed, same shards; another seed, another split.
  prepare_shards(inputs, *bytes, dir + "/again", o);
  EXPECT_EQ(ShardFolder::open(dir + "/again").fingerprint, folder.fingerprint);
  o.seed = 7;
  prepare_shards(inputs, *bytes, dir + "/other", o);
  EXPECT_NE(all_tokens(ShardFolder::open(dir + "/other").val), all_tokens(folder.val));
  EXPECT_NE(error_of([&] { prepare_shards(inputs, *bytes, dir + "/out", o); }).find("already holds"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Shards, SentencePieceShardsCarryTheirTokenizer) {
  std::string dir = temp_dir("shards_sp");
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "sp");
  PrepareOptions o;
  o.val_fraction = 0.25, o.documents.unit = "paragraph";
  std::ofstream(dir + "/book.txt") << lm_sample_text(6, 1) << "\n\n\n"
                                   << lm_sample_text(6, 2) << "\n"
                                   << lm_sample_text(6, 3) << "\n"
                                   << lm_sample_text(6, 4);
  PrepareSummary s = prepare_shards({dir + "/book.txt"}, *sp, dir + "/out", o);
  EXPECT_EQ(s.documents[0] + s.documents[1], 4);  // four paragraphs
  ShardFolder folder = ShardFolder::open(dir + "/out");
  EXPECT_EQ(folder.tokenizer_model, sp->serialized());
  EXPECT_EQ(folder.eos, sp->eos());
  std::vector<int32_t> train = all_tokens(folder.train);
  EXPECT_EQ(std::count(train.begin(), train.end(), sp->eos()), s.documents[0]);
  EXPECT_EQ(fs::file_size(dir + "/out/train_00000.bin"), kShardHeaderBytes + 2 * train.size());  // uint16
  fs::remove(dir + "/out/tokenizer.model");
  EXPECT_NE(error_of([&] { ShardFolder::open(dir + "/out"); }).find("tokenizer.model is missing"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Shards, WindowsVisitEveryWindowOncePerEpoch) {
  std::string dir = temp_dir("shards_windows");
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  PrepareOptions o;
  o.val_fraction = 0, o.shard_tokens = 100;
  prepare_shards(write_documents(dir), *bytes, dir + "/out", o);
  ShardFolder folder = ShardFolder::open(dir + "/out");
  const int T = 16;
  ShardWindows windows(folder.train, T, 3);
  uint64_t n = windows.windows_per_epoch();
  EXPECT_EQ(n, (folder.train.size() - 1) / T);
  std::vector<int32_t> all = all_tokens(folder.train), tokens(T), targets(T);
  std::vector<std::vector<int32_t>> aligned;  // the windows at multiples of T: tokens then the last target
  for (uint64_t k = 0; k < n; k++)
    aligned.emplace_back(all.begin() + (long)(k * T), all.begin() + (long)(k * T + T + 1));
  std::sort(aligned.begin(), aligned.end());
  std::vector<int32_t> first_order;
  for (int epoch = 0; epoch < 2; epoch++) {
    std::vector<std::vector<int32_t>> seen;
    for (uint64_t w = 0; w < n; w++) {
      windows.window(epoch * n + w, tokens.data(), targets.data());
      EXPECT_TRUE(std::equal(tokens.begin() + 1, tokens.end(), targets.begin()));  // targets: the next tokens
      seen.push_back(tokens);
      seen.back().push_back(targets.back());
      if (w < 4) first_order.push_back(tokens[0]);
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, aligned);  // each epoch a permutation of the windows
  }
  EXPECT_NE(std::vector<int32_t>(first_order.begin(), first_order.begin() + 4),
            std::vector<int32_t>(first_order.begin() + 4, first_order.end()));  // reshuffled per epoch
  fs::remove_all(dir);
}

// Writes bytes at `offset` of `file`.
void patch(const std::string& file, size_t offset, const std::string& bytes) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp((std::streamoff)offset);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

TEST(Shards, DamagedShardsAreRefused) {
  std::string dir = temp_dir("shards_damage");
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  PrepareOptions o;
  o.val_fraction = 0.3;
  prepare_shards(write_documents(dir), *bytes, dir + "/clean", o);
  auto damaged = [&](const std::string& name, const std::function<void(const std::string&)>& damage) {
    fs::copy(dir + "/clean", dir + "/" + name);
    damage(dir + "/" + name + "/train_00000.bin");
    return error_of([&] { ShardFolder::open(dir + "/" + name); });
  };
  EXPECT_NE(damaged("flip", [](const std::string& f) { patch(f, kShardHeaderBytes + 5, "#"); }).find("checksum"),
            std::string::npos);
  EXPECT_NE(damaged("cut", [](const std::string& f) { fs::resize_file(f, fs::file_size(f) - 3); }).find("truncated"),
            std::string::npos);
  EXPECT_NE(damaged("stub", [](const std::string& f) { fs::resize_file(f, 10); }).find("shorter than the 64-byte"),
            std::string::npos);
  EXPECT_NE(damaged("magic", [](const std::string& f) { patch(f, 0, "XECURTOK"); }).find("no RECURTOK magic"),
            std::string::npos);
  EXPECT_NE(damaged("version", [](const std::string& f) { patch(f, 8, std::string("\x09", 1)); }).find("version 9"),
            std::string::npos);
  EXPECT_NE(damaged("vocab", [](const std::string& f) { patch(f, 16, std::string("\x00\x02", 2)); }).find("differ"),
            std::string::npos);
  EXPECT_NE(damaged("gone", [](const std::string& f) { fs::remove(f); }).find("cannot open shard"), std::string::npos);
  std::string folder = damaged("folder", [](const std::string& f) { fs::remove(f), fs::create_directory(f); });
  EXPECT_NE(folder.find("train_00000.bin\": it is not a regular file"), std::string::npos) << folder;
  // a token past the vocabulary with a matching checksum (or the checksum skipped) is still refused, naming it
  std::string high = damaged("token", [](const std::string& f) {
    patch(f, kShardHeaderBytes + 2 * 7, std::string("\x00\x01", 2));  // token 7 := 256
    std::string bytes = read_file_checked(f, 1 << 20);
    uint64_t sum = fnv1a64(bytes.data() + kShardHeaderBytes, bytes.size() - kShardHeaderBytes);
    std::string field(8, '\0');
    for (int i = 0; i < 8; i++) field[i] = (char)(sum >> (8 * i));
    patch(f, 40, field);
  });
  EXPECT_NE(high.find("train_00000.bin: token 7 is outside the header's vocabulary of 256"), std::string::npos) << high;
  auto manifest_with = [&](const std::string& name, const std::string& from, const std::string& to) {
    fs::copy(dir + "/clean", dir + "/" + name);
    std::string text = read_file_checked(dir + "/clean/manifest.json", 1 << 20);
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    std::ofstream(dir + "/" + name + "/manifest.json") << text.replace(at, from.size(), to);
    return error_of([&] { ShardFolder::open(dir + "/" + name); });
  };
  // 2^32 + 256 was read as 256 before the range check
  EXPECT_NE(manifest_with("wide", "\"vocab_size\": 256", "\"vocab_size\": 4294967552").find("not a version 1 shard"),
            std::string::npos);
  EXPECT_NE(manifest_with("eos", "\"eos\": 0", "\"eos\": -1").find("not a version 1 shard"), std::string::npos);
  EXPECT_NE(error_of([&] { ShardFolder::open(dir); }).find("not a folder written by recur data prepare"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Shards, SymlinkLoopIsAnErrorNamingThePath) {
  std::string dir = temp_dir("shards_loop");
  fs::create_symlink(dir + "/loop", dir + "/loop");
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  std::string prepare = error_of([&] { prepare_shards({dir + "/loop"}, *bytes, dir + "/out", PrepareOptions{}); });
  EXPECT_NE(prepare.find("cannot examine \"" + dir + "/loop\""), std::string::npos) << prepare;
  EXPECT_FALSE(is_shard_folder(dir + "/loop"));
  std::string corpus = error_of([&] { TextCorpus::load(dir + "/loop", 0.1); });
  EXPECT_NE(corpus.find("cannot examine \"" + dir + "/loop\""), std::string::npos) << corpus;
  fs::remove_all(dir);
}

TEST(Shards, JsonlWithoutTheFieldNamesTheLine) {
  std::string dir = temp_dir("shards_jsonl");
  std::ofstream(dir + "/a.jsonl") << "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n";
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  std::string message = error_of([&] { prepare_shards({dir + "/a.jsonl"}, *bytes, dir + "/out", PrepareOptions{}); });
  EXPECT_NE(message.find("a.jsonl line 2 has no string field \"text\""), std::string::npos) << message;
  fs::remove_all(dir);
}

ModelConfig shard_model() {
  ModelConfig c;
  c.vocab_size = 256, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 64, c.n_layers = 2, c.max_seq_len = 32;
  return c;
}

// Trains to config.steps (stopping at stop_at, resuming from resume_from) on the folder.
void train_on(const ShardFolder& folder, Model& model, const TrainConfig& t, const TrainOptions& base) {
  ShardTraining data(folder, t);
  TrainOptions options = base;
  options.data_position = &data;
  train_run(model, t, data.batches(), data.validation(), options);
}

TEST(Shards, ResumeMidShardEqualsUninterrupted) {
  std::string dir = temp_dir("shards_resume");
  std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  PrepareOptions o;
  o.val_fraction = 0.2, o.shard_tokens = 300;  // several shards; 3 steps of 4 x 32 tokens end inside one
  prepare_shards(write_documents(dir), *bytes, dir + "/data", o);
  ShardFolder folder = ShardFolder::open(dir + "/data");
  TrainConfig t;
  t.batch_size = 4, t.seq_len = 32, t.steps = 8, t.grad_accum = 2, t.warmup_steps = 2, t.eval_every = 4;
  t.eval_batches = 2, t.log_every = 0;
  TrainOptions whole;
  whole.out_dir = dir + "/whole", whole.quiet = true;
  Model a(shard_model());
  a.init_weights(t.seed);
  train_on(folder, a, t, whole);
  TrainOptions first = whole;
  first.out_dir = dir + "/pieces", first.stop_at = 3;
  Model b(shard_model());
  b.init_weights(t.seed);
  train_on(folder, b, t, first);
  Model c(shard_model());  // a fresh process
  TrainOptions second = first;
  second.stop_at = 0, second.resume_from = first.out_dir;
  train_on(folder, c, t, second);
  EXPECT_EQ(a.params, c.params);  // bit for bit
  nlohmann::json state = nlohmann::json::parse(std::ifstream(dir + "/pieces/step_00000003/train_state.json"));
  EXPECT_EQ(state["data"]["window_cursor"], 3 * 2 * 4);
  EXPECT_EQ(state["data"]["fingerprint"], folder.fingerprint);

  o.seed = 99;  // other shards: the checkpoint's position does not belong to them
  prepare_shards(write_documents(dir), *bytes, dir + "/other", o);
  ShardFolder other = ShardFolder::open(dir + "/other");
  Model d(shard_model());
  TrainOptions third = second;
  third.out_dir = dir + "/third";
  fs::copy(dir + "/pieces", third.out_dir, fs::copy_options::recursive);
  third.resume_from = third.out_dir;
  std::string message = error_of([&] { train_on(other, d, t, third); });
  EXPECT_NE(message.find("trained on other shards"), std::string::npos) << message;
  fs::remove_all(dir);
}

}  // namespace
