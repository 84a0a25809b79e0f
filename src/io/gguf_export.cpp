// A recur model as a llama.cpp `llama` GGUF (recur/gguf.h): hyperparameters, the vocabulary, and one block per
// layer application in schedule order, so a shared layer is written once per use. llama.cpp's block is recur's
// (docs/design.md, "The block") except for RoPE's pairing, which the Q/K row order makes up for.
#include <cstring>

#include "recur/error.h"
#include "recur/gguf.h"

namespace recur {

void gguf_check_exportable(const ModelConfig& c) {
  check(!c.mor(), "export gguf: this is a Mixture-of-Recursions model (mor_routing ",
        c.mor_routing == MorRouting::expert ? "expert" : "token",
        "): its routers give each token its own depth, which llama.cpp's llama architecture cannot run; export a "
        "model without mor_routing");
  check(c.input_injection == InputInjection::none, "export gguf: the model re-injects its input before each loop (",
        "input_injection ", injection_name(c.input_injection),
        "), which llama.cpp's llama architecture cannot run; export a model without input_injection");
}

// rows (n_heads·hd, cols): per head, row s·half + i of `from` <-> row 2i + s of `to`.
static std::vector<float> reorder_rope_rows(const float* w, int n_heads, int hd, int cols, bool to_interleaved) {
  int half = hd / 2;
  std::vector<float> out((size_t)n_heads * hd * cols);
  for (int h = 0; h < n_heads; h++)
    for (int i = 0; i < half; i++)
      for (int s = 0; s < 2; s++) {
        size_t halves = (size_t)h * hd + s * half + i, pairs = (size_t)h * hd + 2 * i + s;
        size_t src = to_interleaved ? halves : pairs, dst = to_interleaved ? pairs : halves;
        std::memcpy(out.data() + dst * cols, w + src * cols, cols * sizeof(float));
      }
  return out;
}

std::vector<float> rope_rows_interleave(const float* w, int n_heads, int head_dim, int cols) {
  return reorder_rope_rows(w, n_heads, head_dim, cols, true);
}
std::vector<float> rope_rows_deinterleave(const float* w, int n_heads, int head_dim, int cols) {
  return reorder_rope_rows(w, n_heads, head_dim, cols, false);
}

namespace {

// llama.cpp's general.file_type (llama.h, LLAMA_FTYPE_*): all F32, mostly F16, mostly BF16.
uint32_t file_type(GgmlType matrices) { return matrices == GgmlType::f32 ? 0 : matrices == GgmlType::f16 ? 1 : 32; }

void add_hyperparameters(GgufFile& f, const Model& m, const std::string& name, GgmlType matrices) {
  const ModelConfig& c = m.config();
  f.set("general.architecture", GgufValue::string("llama"));
  f.set("general.name", GgufValue::string(name));
  f.set("general.file_type", GgufValue::u32(file_type(matrices)));
  f.set("llama.vocab_size", GgufValue::u32(c.vocab_size));
  f.set("llama.context_length", GgufValue::u32(c.max_seq_len));
  f.set("llama.embedding_length", GgufValue::u32(c.d_model));
  f.set("llama.block_count", GgufValue::u32((uint32_t)m.schedule().size()));
  f.set("llama.feed_forward_length", GgufValue::u32(c.d_ff));
  f.set("llama.attention.head_count", GgufValue::u32(c.n_heads));
  f.set("llama.attention.head_count_kv", GgufValue::u32(c.n_kv_heads));
  f.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(c.norm_eps));
  f.set("llama.rope.freq_base", GgufValue::f32(c.rope_theta));
  f.set("llama.rope.dimension_count", GgufValue::u32(c.head_dim()));
  f.set("recur.config", GgufValue::string(model_config_to_json(c)));
  f.set("recur.schedule", GgufValue::u32_array(std::vector<uint32_t>(m.schedule().begin(), m.schedule().end())));
}

// Block `b` of the file from unique layer `u`: the fused q|k|v and gate|up matrices split, Q and K reordered.
void add_block(GgufFile& f, const Model& m, int b, int u, GgmlType type) {
  const ModelConfig& c = m.config();
  const LayerOffsets& w = m.layer(u);
  int64_t d = c.d_model, hd = c.head_dim(), F = c.d_ff, q_rows = c.n_heads * hd, kv_rows = c.n_kv_heads * hd;
  std::string pre = "blk." + std::to_string(b) + ".";
  const float* q = m.weights(w.wqkv);
  const float* k = q + q_rows * d;
  f.add_f32(pre + "attn_norm.weight", {d}, m.weights(w.attn_norm));
  f.add_f32(pre + "attn_q.weight", {q_rows, d}, rope_rows_interleave(q, c.n_heads, hd, d).data(), type);
  f.add_f32(pre + "attn_k.weight", {kv_rows, d}, rope_rows_interleave(k, c.n_kv_heads, hd, d).data(), type);
  f.add_f32(pre + "attn_v.weight", {kv_rows, d}, k + kv_rows * d, type);
  f.add_f32(pre + "attn_output.weight", {d, q_rows}, m.weights(w.wo), type);
  f.add_f32(pre + "ffn_norm.weight", {d}, m.weights(w.ffn_norm));
  f.add_f32(pre + "ffn_gate.weight", {F, d}, m.weights(w.w_gate_up), type);
  f.add_f32(pre + "ffn_up.weight", {F, d}, m.weights(w.w_gate_up) + F * d, type);
  f.add_f32(pre + "ffn_down.weight", {d, F}, m.weights(w.w_down), type);
}

}  // namespace

GgufFile gguf_from_model(const Model& m, const std::string& name, const GgufVocabulary& vocab, GgmlType matrices) {
  const ModelConfig& c = m.config();
  gguf_check_exportable(c);
  check(vocab.tokens.size() == (size_t)c.vocab_size, "export gguf: the vocabulary has ", vocab.tokens.size(),
        " tokens but the model's vocab_size is ", c.vocab_size);
  GgufFile f;
  add_hyperparameters(f, m, name, matrices);
  gguf_set_vocabulary(f, vocab);
  int64_t V = c.vocab_size, d = c.d_model;
  f.add_f32("token_embd.weight", {V, d}, m.weights(m.offsets().embed), matrices);
  for (size_t b = 0; b < m.schedule().size(); b++) add_block(f, m, (int)b, m.schedule()[b], matrices);
  f.add_f32("output_norm.weight", {d}, m.weights(m.offsets().final_norm));
  // tied: llama.cpp reads the head from token_embd when output.weight is absent
  if (!c.tied_embeddings) f.add_f32("output.weight", {V, d}, m.weights(m.offsets().lm_head), matrices);
  return f;
}

}  // namespace recur
