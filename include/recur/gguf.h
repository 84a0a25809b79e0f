// recur/gguf.h: GGUF v3, llama.cpp's model file (magic "GGUF", version, tensor and key counts, typed key/value
// metadata, tensor infos, aligned raw data), and the export of a recur model as a llama.cpp `llama` model:
// unrolled (one block per layer application), Q/K rows reordered for llama.cpp's interleaved RoPE, the
// checkpoint's vocabulary (bytes, or its SentencePiece pieces). Every read is checked against the file's end
// (README.md, "File formats").
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "recur/model.h"

namespace recur {

// GGUF metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12
};
// Tensor element types recur reads and writes (ggml's numbering).
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, bf16 = 30 };

// One metadata value: a scalar, a string, or an array of one non-array type.
struct GgufValue {
  GgufType type = GgufType::u32;
  GgufType array_type = GgufType::u8;  // the elements' type when type is array
  std::vector<uint8_t> bytes;          // numbers and booleans, little-endian (one for a scalar, n for an array)
  std::vector<std::string> strings;    // a string (one), or a string array's elements
  bool operator==(const GgufValue&) const = default;

  static GgufValue u32(uint32_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(const std::string& v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue i32_array(const std::vector<int32_t>& v);
  static GgufValue u32_array(const std::vector<uint32_t>& v);
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (a row-major (rows, cols) matrix is {cols, rows})
  GgmlType type = GgmlType::f32;
  std::vector<uint8_t> bytes;  // little-endian
  uint64_t numel() const;
  std::vector<float> f32() const;     // throws recur::Error unless type is f32
  std::vector<float> to_f32() const;  // any type, widened exactly
};

struct GgufFile {
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order
  std::vector<GgufTensor> tensors;                          // in file order
  std::string source;                                       // file it was read from, for messages

  void set(const std::string& key, GgufValue value);  // replaces or appends
  const GgufValue* find(const std::string& key) const;
  // Typed lookups: throw recur::Error naming the file and the key when it is missing or of another type.
  uint32_t get_u32(const std::string& key) const;
  float get_f32(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  // Appends a row-major tensor of `shape` (outermost first) from F32 values, stored as `type` (F16 and BF16 rounded
  // to nearest even; out of F16's range: infinity).
  void add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data,
               GgmlType type = GgmlType::f32);
  const GgufTensor& tensor(const std::string& name) const;  // throws recur::Error when absent
  uint32_t alignment() const;                               // general.alignment, 32 when absent
};

// Parse a whole file. Errors (recur::Error naming the file and the byte offset): bad magic or version, any count,
// length or offset that runs past the end, unknown value or tensor types, nested arrays, duplicate keys or
// tensor names, more than 4 dimensions, misaligned or overlapping tensor data, a bad general.alignment.
GgufFile gguf_parse(const std::vector<uint8_t>& file, const std::string& source);
GgufFile gguf_read(const std::string& path);
std::vector<uint8_t> gguf_serialize(const GgufFile& file);
void gguf_write(const std::string& path, const GgufFile& file);  // atomically (temp file, then rename)

// A vocabulary as llama.cpp's `llama` (SentencePiece, "SPM") tokenizer reads it from tokenizer.ggml.*: one token
// per id, spelled as SentencePiece does (U+2581 for a space, "<0x41>" for a byte piece), its score (merges
// prefer the higher) and llama.cpp token type, and the special ids (-1: none).
enum class GgufTokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
struct GgufVocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<GgufTokenType> types;
  int32_t bos = -1, eos = -1, unk = -1;
  bool operator==(const GgufVocabulary&) const = default;
};
// Ids below 256 are bytes as "<0xXX>" (the space as the piece U+2581, as llama.cpp's tokenizer writes spaces),
// ids from 256 on unused; no special ids.
GgufVocabulary gguf_byte_vocabulary(int vocab_size);
// Writes it as tokenizer.ggml.* (model "llama", no BOS or EOS added, no space prefix); throws recur::Error when its
// arrays differ in length or a special id is outside them.
void gguf_set_vocabulary(GgufFile& file, const GgufVocabulary& vocab);
// Reads tokenizer.ggml.* back: recur::Error naming the file and key for a missing key, another model than "llama",
// arrays of the wrong type or length (llama.vocab_size), an unknown token type or a special id outside the tokens.
GgufVocabulary gguf_vocabulary(const GgufFile& file);

// Throws recur::Error saying why llama.cpp's `llama` architecture cannot run this model (MoR routing, input
// injection), or returns.
void gguf_check_exportable(const ModelConfig& config);
// The model as a llama.cpp `llama` GGUF: blk.i for the i-th layer application (Model::schedule()), attn_q/attn_k
// rows interleaved (rope_rows_interleave), q/k/v and gate/up split, output.weight only when untied, `vocab` (one
// token per model id), and recur.config / recur.schedule for the record. `name`: general.name. The matrices
// (embedding and projections) are stored as `matrices`, the norm weights always as F32 (as llama.cpp's converter does).
GgufFile gguf_from_model(const Model& model, const std::string& name, const GgufVocabulary& vocab,
                         GgmlType matrices = GgmlType::f32);

// recur's RoPE rotates (x_i, x_{i+half}) of each head (rotate-half); llama.cpp's `llama` rotates (x_2i, x_2i+1).
// Reordering a projection's rows per head (rows (n_heads·head_dim, cols)) so that new row 2i is old row i and
// new row 2i+1 is old row i+half makes the second compute what the first does (convert_hf_to_gguf.py's permute).
std::vector<float> rope_rows_interleave(const float* w, int n_heads, int head_dim, int cols);
std::vector<float> rope_rows_deinterleave(const float* w, int n_heads, int head_dim, int cols);  // the inverse

}  // namespace recur
