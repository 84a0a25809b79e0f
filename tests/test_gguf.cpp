// GGUF (recur/gguf.h): export -> serialize -> parse keeps every key and tensor; the exported blocks are the
// schedule's unique layers with Q/K reordered (and the reorder inverted gives recur's weights back); llama.cpp's
// interleaved RoPE on the reordered rows computes recur's rotate-half RoPE; models llama.cpp cannot run are
// refused; byte-level and SentencePiece vocabularies round-trip and a corrupted one is an error naming its key;
// truncated and corrupted files get a recur::Error, never a read past the end.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cli.h"
#include "recur/gguf.h"
#include "recur/kernels.h"
#include "recur/rng.h"
#include "test_lm_util.h"
#include "test_util.h"

using namespace recur;

namespace {

Model random_model(const ModelConfig& c, uint64_t seed) {
  Model m(c);
  Rng rng(seed);
  for (float& w : m.params) w = rng.normal();  // norms too, so a mixed-up tensor shows
  return m;
}

ModelConfig middle_looped() {
  ModelConfig c = tiny_decoder("plain");
  c.n_layers = 8, c.prelude = 1, c.loop_block = 2, c.loop_count = 3, c.coda = 1;
  c.validate();
  return c;
}

// The model with its byte vocabulary.
GgufFile export_bytes(const Model& m, const std::string& name, GgmlType matrices = GgmlType::f32) {
  return gguf_from_model(m, name, gguf_byte_vocabulary(m.config().vocab_size), matrices);
}

std::vector<float> rows(const Model& m, size_t offset, size_t n) {
  return std::vector<float>(m.weights(offset), m.weights(offset) + n);
}

TEST(Gguf, RoundTripKeepsMetadataAndTensors) {
  for (const std::string kind : {"plain", "cycle", "untied_mha"}) {
    Model m = random_model(tiny_decoder(kind), 3);
    GgufFile f = export_bytes(m, kind);
    std::string path = temp_dir("gguf_round_trip") + "/model.gguf";
    gguf_write(path, f);
    GgufFile g = gguf_read(path);
    EXPECT_EQ(g.metadata, f.metadata) << kind;
    ASSERT_EQ(g.tensors.size(), f.tensors.size()) << kind;
    for (size_t i = 0; i < f.tensors.size(); i++) {
      EXPECT_EQ(g.tensors[i].name, f.tensors[i].name);
      EXPECT_EQ(g.tensors[i].dims, f.tensors[i].dims);
      EXPECT_EQ(g.tensors[i].type, f.tensors[i].type);
      EXPECT_EQ(g.tensors[i].bytes, f.tensors[i].bytes) << f.tensors[i].name;
    }
    EXPECT_EQ(gguf_serialize(g), gguf_serialize(f));
    EXPECT_EQ(g.get_string("general.architecture"), "llama");
    EXPECT_EQ(g.get_u32("llama.block_count"), (uint32_t)m.config().n_layers);
    EXPECT_EQ(g.get_u32("llama.attention.head_count_kv"), (uint32_t)m.config().n_kv_heads);
    EXPECT_EQ(g.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    EXPECT_EQ(model_config_from_json(g.get_string("recur.config")).n_layers, m.config().n_layers);
  }
}

// Every block b holds unique layer schedule[b]; un-reordering Q and K gives recur's rows exactly.
void expect_blocks_match(const Model& m, const GgufFile& f) {
  const ModelConfig& c = m.config();
  size_t d = c.d_model, hd = c.head_dim(), F = c.d_ff, q_rows = c.n_heads * hd, kv_rows = c.n_kv_heads * hd;
  ASSERT_EQ(f.get_u32("llama.block_count"), m.schedule().size());
  for (size_t b = 0; b < m.schedule().size(); b++) {
    const LayerOffsets& w = m.layer(m.schedule()[b]);
    std::string pre = "blk." + std::to_string(b) + ".";
    std::vector<float> q = f.tensor(pre + "attn_q.weight").f32(), k = f.tensor(pre + "attn_k.weight").f32();
    EXPECT_EQ(f.tensor(pre + "attn_q.weight").dims, (std::vector<uint64_t>{d, q_rows}));
    EXPECT_EQ(rope_rows_deinterleave(q.data(), c.n_heads, hd, d), rows(m, w.wqkv, q_rows * d)) << pre;
    EXPECT_EQ(rope_rows_deinterleave(k.data(), c.n_kv_heads, hd, d), rows(m, w.wqkv + q_rows * d, kv_rows * d));
    EXPECT_NE(q, rows(m, w.wqkv, q_rows * d));  // the reorder did happen
    EXPECT_EQ(f.tensor(pre + "attn_v.weight").f32(), rows(m, w.wqkv + (q_rows + kv_rows) * d, kv_rows * d));
    EXPECT_EQ(f.tensor(pre + "attn_output.weight").f32(), rows(m, w.wo, d * q_rows));
    EXPECT_EQ(f.tensor(pre + "attn_norm.weight").f32(), rows(m, w.attn_norm, d));
    EXPECT_EQ(f.tensor(pre + "ffn_norm.weight").f32(), rows(m, w.ffn_norm, d));
    EXPECT_EQ(f.tensor(pre + "ffn_gate.weight").f32(), rows(m, w.w_gate_up, F * d));
    EXPECT_EQ(f.tensor(pre + "ffn_up.weight").f32(), rows(m, w.w_gate_up + F * d, F * d));
    EXPECT_EQ(f.tensor(pre + "ffn_down.weight").dims, (std::vector<uint64_t>{F, d}));
    EXPECT_EQ(f.tensor(pre + "ffn_down.weight").f32(), rows(m, w.w_down, d * F));
  }
  EXPECT_EQ(f.tensor("token_embd.weight").f32(), rows(m, m.offsets().embed, c.vocab_size * d));
  EXPECT_EQ(f.tensor("output_norm.weight").f32(), rows(m, m.offsets().final_norm, d));
  if (c.tied_embeddings)
    EXPECT_NE(error_of([&] { f.tensor("output.weight"); }).find("missing"), std::string::npos);
  else
    EXPECT_EQ(f.tensor("output.weight").f32(), rows(m, m.offsets().lm_head, c.vocab_size * d));
}

TEST(Gguf, BlocksAreTheScheduleUnrolled) {
  for (const ModelConfig& c :
       {tiny_decoder("plain"), tiny_decoder("cycle"), tiny_decoder("untied_mha"), middle_looped()}) {
    Model m = random_model(c, 5);
    GgufFile f = gguf_parse(gguf_serialize(export_bytes(m, "x")), "memory");
    expect_blocks_match(m, f);
  }
  Model looped = random_model(middle_looped(), 6);
  EXPECT_EQ(looped.schedule(), (std::vector<int>{0, 1, 2, 1, 2, 1, 2, 3}));
  EXPECT_EQ(export_bytes(looped, "x").tensors.size(), 1 + 9 * 8 + 1u);
}

// llama.cpp's RoPE on (x_2i, x_2i+1) with frequency index i: theta_i = pos · base^(-2i/hd).
void rope_interleaved(float* v, int pos, int hd, float base) {
  for (int i = 0; i < hd / 2; i++) {
    double angle = pos / std::pow((double)base, 2.0 * i / hd);
    float c = (float)std::cos(angle), s = (float)std::sin(angle), a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = a * s + b * c;
  }
}

TEST(Gguf, InterleavedRopeOnReorderedRowsEqualsRotateHalf) {
  const int H = 3, hd = 8, cols = 5;
  Rng rng(9);
  std::vector<float> w(H * hd * cols), x(cols);
  for (float& v : w) v = rng.normal();
  for (float& v : x) v = rng.normal();
  std::vector<float> w2 = rope_rows_interleave(w.data(), H, hd, cols);
  EXPECT_EQ(rope_rows_deinterleave(w2.data(), H, hd, cols), w);
  auto project = [&](const std::vector<float>& m) {
    std::vector<float> y(H * hd, 0.0f);
    for (int r = 0; r < H * hd; r++)
      for (int j = 0; j < cols; j++) y[r] += m[r * cols + j] * x[j];
    return y;
  };
  for (int32_t pos : {0, 1, 7, 200}) {
    std::vector<float> ours = project(w), theirs = project(w2);
    kernels::rope_forward_ref(ours.data(), &pos, 1, H * hd, H, hd, 10000.0f);
    for (int h = 0; h < H; h++) rope_interleaved(theirs.data() + h * hd, pos, hd, 10000.0f);
    std::vector<float> back = rope_rows_deinterleave(theirs.data(), H, hd, 1);
    for (int i = 0; i < H * hd; i++) EXPECT_NEAR(back[i], ours[i], 1e-5f) << "pos " << pos << " row " << i;
  }
}

// F16 and BF16 matrices: every value within half an ulp of the F32 weight (2^-11 and 2^-8 relative; F16's
// subnormals within 2^-25), norms exactly F32, and the file reads back bit for bit.
TEST(Gguf, HalfPrecisionMatricesRoundToNearest) {
  Model m = random_model(tiny_decoder("cycle"), 8);
  for (auto [type, relative] : {std::pair{GgmlType::f16, 0x1p-11f}, std::pair{GgmlType::bf16, 0x1p-8f}}) {
    GgufFile f = export_bytes(m, "x", type);
    GgufFile g = gguf_parse(gguf_serialize(f), "memory");
    EXPECT_EQ(g.get_u32("general.file_type"), type == GgmlType::f16 ? 1u : 32u);
    for (size_t i = 0; i < f.tensors.size(); i++) EXPECT_EQ(g.tensors[i].bytes, f.tensors[i].bytes);
    EXPECT_EQ(g.tensor("blk.1.attn_norm.weight").type, GgmlType::f32);
    GgufFile exact = export_bytes(m, "x");
    for (const char* name : {"token_embd.weight", "blk.3.attn_k.weight", "blk.2.ffn_down.weight"}) {
      EXPECT_EQ(g.tensor(name).type, type);
      std::vector<float> got = g.tensor(name).to_f32(), want = exact.tensor(name).f32();
      ASSERT_EQ(got.size(), want.size());
      for (size_t j = 0; j < got.size(); j++)
        ASSERT_LE(std::fabs(got[j] - want[j]), relative * std::fabs(want[j]) + 0x1p-25f) << name << " " << j;
    }
  }
  GgufFile f;
  const float values[6] = {1.0f, -2.0f, 65504.0f, 1e6f, 0x1p-24f, 1.0f + 0x1p-11f};  // the last: a tie, to even
  f.add_f32("h", {6}, values, GgmlType::f16);
  EXPECT_EQ(f.tensor("h").to_f32(), (std::vector<float>{1.0f, -2.0f, 65504.0f, INFINITY, 0x1p-24f, 1.0f}));
}

TEST(Gguf, VocabularyIsBytes) {
  GgufFile f = export_bytes(Model(tiny_decoder("plain")), "x");
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->strings.size(), 40u);
  EXPECT_EQ(tokens->strings[10], "<0x0A>");
  EXPECT_EQ(tokens->strings[32], "\xe2\x96\x81");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  GgufVocabulary v = gguf_vocabulary(gguf_parse(gguf_serialize(f), "memory"));
  EXPECT_EQ(v, gguf_byte_vocabulary(40));
  EXPECT_EQ(v.types[10], GgufTokenType::byte);
  EXPECT_EQ(v.bos, -1);
  GgufVocabulary wide = gguf_byte_vocabulary(300);
  EXPECT_EQ(wide.tokens[299], "<unused_299>");
  EXPECT_EQ(wide.types[299], GgufTokenType::unused);
}

// A SentencePiece model's vocabulary: its pieces as SentencePiece spells them, scores, llama.cpp types and special
// ids, written and read back; llama.cpp is told to add no BOS and no space prefix (our models have none).
ModelConfig decoder_of_vocab(int vocab_size) {
  ModelConfig c = tiny_decoder("plain");
  c.vocab_size = vocab_size;
  c.validate();
  return c;
}

TEST(Gguf, SentencePieceVocabularyRoundTrips) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  ASSERT_EQ(sp->vocab_size(), 320);
  GgufVocabulary v = cli::gguf_vocabulary_of(*sp, 320);
  EXPECT_EQ(v.tokens[v.unk], "<unk>");
  EXPECT_EQ(v.types[v.unk], GgufTokenType::unknown);
  EXPECT_EQ(v.tokens[v.bos], "<s>");
  EXPECT_EQ(v.types[v.bos], GgufTokenType::control);
  EXPECT_EQ(v.eos, sp->eos());
  EXPECT_EQ(v.tokens[v.eos], "</s>");
  int bytes = 0, spaced = 0;
  for (size_t i = 0; i < v.tokens.size(); i++) {
    bool byte_piece = v.tokens[i].size() == 6 && v.tokens[i].rfind("<0x", 0) == 0;
    EXPECT_EQ(byte_piece, v.types[i] == GgufTokenType::byte) << v.tokens[i];
    bytes += byte_piece;
    spaced += v.tokens[i].rfind("\xe2\x96\x81", 0) == 0 && v.types[i] == GgufTokenType::normal;
  }
  EXPECT_EQ(bytes, 256);
  EXPECT_GT(spaced, 0);
  EXPECT_EQ(v.tokens[sp->encode("a")[0]], "a");
  EXPECT_EQ(v.tokens[sp->encode("A")[0]], "<0x41>");  // not in the training text: a byte piece
  EXPECT_EQ(v.tokens[sp->encode("\x01")[0]], "<0x01>");
  EXPECT_GT(v.scores[sp->encode(" the")[0]], v.scores.back());  // an earlier merge scores higher
  Model m(decoder_of_vocab(320));
  GgufFile g = gguf_parse(gguf_serialize(gguf_from_model(m, "sp", v)), "memory");
  EXPECT_EQ(gguf_vocabulary(g), v);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g.find("tokenizer.ggml.add_space_prefix")->bytes, std::vector<uint8_t>{0});
  EXPECT_EQ(g.find("tokenizer.ggml.add_bos_token")->bytes, std::vector<uint8_t>{0});
  EXPECT_NE(error_of([&] { gguf_from_model(Model(decoder_of_vocab(300)), "x", v); }).find("vocab_size is 300"),
            std::string::npos);
}

TEST(Gguf, CorruptedVocabulariesGetClearErrors) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  GgufVocabulary v = cli::gguf_vocabulary_of(*sp, 320);
  GgufFile good = gguf_from_model(Model(decoder_of_vocab(320)), "sp", v);
  good.source = "bad.gguf";
  std::vector<int32_t> bad_types(320, 1);
  bad_types[7] = 9;
  const std::vector<std::pair<std::function<void(GgufFile&)>, std::string>> cases = {
      {[](GgufFile& f) { f.set("tokenizer.ggml.model", GgufValue::string("gpt2")); }, "\"gpt2\""},
      {[](GgufFile& f) {
         f.set("tokenizer.ggml.scores", GgufValue::f32_array({1, 2}));
       },
       "has 2 elements"},
      {[](GgufFile& f) { f.set("tokenizer.ggml.tokens", GgufValue::u32(3)); }, "\"tokenizer.ggml.tokens\" is not"},
      {[](GgufFile& f) { f.set("tokenizer.ggml.token_type", GgufValue::f32_array(std::vector<float>(320))); },
       "not an array of int32"},
      {[&](GgufFile& f) { f.set("tokenizer.ggml.token_type", GgufValue::i32_array(bad_types)); }, "token 7 is 9"},
      {[](GgufFile& f) { f.set("tokenizer.ggml.bos_token_id", GgufValue::u32(320)); }, "outside the 320 tokens"},
      {[](GgufFile& f) { f.set("llama.vocab_size", GgufValue::u32(321)); }, "llama.vocab_size is 321"},
  };
  for (const auto& [corrupt, fragment] : cases) {
    GgufFile f = good;
    corrupt(f);
    std::string e = error_of([&] { gguf_vocabulary(f); });
    EXPECT_NE(e.find(fragment), std::string::npos) << "expected \"" << fragment << "\", got: " << e;
    EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;
  }
  GgufVocabulary short_scores = v;
  short_scores.scores.pop_back();
  EXPECT_NE(error_of([&] { gguf_set_vocabulary(good, short_scores); }).find("319 scores"), std::string::npos);
  GgufVocabulary bad_eos = v;
  bad_eos.eos = 320;
  EXPECT_NE(error_of([&] { gguf_set_vocabulary(good, bad_eos); }).find("special token id 320"), std::string::npos);
}

TEST(Gguf, RefusesWhatLlamaCppCannotRun) {
  EXPECT_NE(error_of([] { export_bytes(Model(tiny_decoder("expert")), "x"); }).find("Mixture-of-Recursions"),
            std::string::npos);
  EXPECT_NE(error_of([] { gguf_check_exportable(tiny_decoder("token_kv")); }).find("mor_routing"), std::string::npos);
  EXPECT_NE(error_of([] { gguf_check_exportable(tiny_decoder("middle_loop_concat")); }).find("input_injection concat"),
            std::string::npos);
}

// One key "a" = u32 7 and one F32 tensor "t" of 3 values: the byte offsets below are this layout's.
std::vector<uint8_t> small_file() {
  GgufFile f;
  f.set("a", GgufValue::u32(7));
  float t[3] = {1, 2, 3};
  f.add_f32("t", {3}, t);
  return gguf_serialize(f);
}

template <class T>
std::vector<uint8_t> patched(std::vector<uint8_t> bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(T));
  return bytes;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return error_of([&] { gguf_parse(bytes, "bad.gguf"); });
}

TEST(Gguf, CorruptedFilesGetClearErrors) {
  std::vector<uint8_t> ok = small_file();
  ASSERT_EQ(ok.size(), 128u);
  EXPECT_EQ(gguf_parse(ok, "ok").tensor("t").f32(), (std::vector<float>{1, 2, 3}));
  const std::vector<std::pair<std::vector<uint8_t>, std::string>> cases = {
      {patched<uint32_t>(ok, 0, 0x46554746), "magic"},
      {patched<uint32_t>(ok, 4, 2), "version 2"},
      {patched<uint64_t>(ok, 8, uint64_t(1) << 60), "cannot fit"},
      {patched<uint64_t>(ok, 16, 1000), "cannot fit"},
      {patched<uint64_t>(ok, 24, uint64_t(1) << 62), "too long"},
      {patched<uint32_t>(ok, 33, 13), "unknown value type 13"},
      {patched<uint64_t>(ok, 41, 70), "too long"},
      {patched<uint32_t>(ok, 50, 5), "5 dimensions"},
      {patched<uint64_t>(ok, 54, 0), "invalid dimension"},
      {patched<uint64_t>(ok, 54, 100), "data section"},
      {patched<uint32_t>(ok, 62, 2), "ggml type 2"},
      {patched<uint64_t>(ok, 66, 4), "alignment"},
      {patched<uint64_t>(ok, 66, 64), "data section"},
      {patched<uint64_t>(ok, 66, uint64_t(-32)), "data section"},
  };
  for (const auto& [bytes, fragment] : cases) {
    std::string e = parse_error(bytes);
    EXPECT_NE(e.find(fragment), std::string::npos) << "expected \"" << fragment << "\", got: " << e;
    EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;
  }
  GgufFile f;
  f.set("a", GgufValue::u32(1));
  f.metadata.push_back({"a", GgufValue::u32(2)});
  EXPECT_NE(parse_error(gguf_serialize(f)).find("\"a\" appears twice"), std::string::npos);
  f.metadata = {{"general.alignment", GgufValue::u32(48)}};
  EXPECT_NE(parse_error(gguf_serialize(f)).find("power of two"), std::string::npos);
}

// Bytes before the tensor data of `f` serialized (32-byte alignment).
size_t header_bytes(const GgufFile& f) {
  size_t data = 0;
  for (const GgufTensor& t : f.tensors) data += (t.bytes.size() + 31) / 32 * 32;
  return gguf_serialize(f).size() - data;
}

TEST(Gguf, TruncatedFilesNeverReadPastTheEnd) {
  GgufFile f = export_bytes(random_model(tiny_decoder("cycle"), 2), "x");
  std::vector<uint8_t> file = gguf_serialize(f);
  size_t tensor_data = header_bytes(f);
  for (size_t n = 0; n + 1 < file.size(); n += n < tensor_data ? 1 : 211) {
    std::vector<uint8_t> prefix(file.begin(), file.begin() + n);
    prefix.shrink_to_fit();  // so AddressSanitizer sees a read past the prefix
    std::string e = parse_error(prefix);
    EXPECT_TRUE(e.find("truncated") != std::string::npos || e.find("data section") != std::string::npos ||
                e.find("cannot fit") != std::string::npos || e.find("more than the file holds") != std::string::npos)
        << n << " bytes: " << e;
  }
}

TEST(Gguf, RandomByteFlipsGiveErrorsOrValidFiles) {
  GgufFile f = export_bytes(Model(tiny_decoder("plain")), "x");
  std::vector<uint8_t> file = gguf_serialize(f);
  size_t header = header_bytes(f);
  Rng rng(4);
  for (int i = 0; i < 3000; i++) {
    std::vector<uint8_t> bad = file;
    for (int j = 0; j < 3; j++) bad[rng.uniform(header)] ^= (uint8_t)(1 + rng.uniform(255));
    try {
      gguf_parse(bad, "flipped");
    } catch (const Error&) {
    }
  }
}

}  // namespace
