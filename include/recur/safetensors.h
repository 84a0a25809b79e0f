// recur/safetensors.h: reading and writing the safetensors format (8-byte little-endian header length,
// JSON header of dtype/shape/data_offsets plus string metadata, raw little-endian data). Every read is
// checked against the file size and the header; writes go to a temp file renamed into place (atomic).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace recur {

enum class DType { f32, i32 };

struct TensorData {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // numel * 4 bytes, little-endian
  size_t numel() const;
  const float* f32() const;    // throws recur::Error when dtype is not F32
  const int32_t* i32() const;  // throws recur::Error when dtype is not I32
};

struct SafeTensors {
  std::map<std::string, std::string> metadata;
  std::vector<std::string> order;  // tensor names in file order
  std::map<std::string, TensorData> tensors;

  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data);
  bool has(const std::string& name) const { return tensors.count(name) > 0; }
  // The tensor `name`, which must exist with `shape` (throws a recur::Error naming the file and the fix).
  const TensorData& get(const std::string& name) const;
  const TensorData& get(const std::string& name, const std::vector<int64_t>& shape) const;
  std::string source;  // file it was read from, for messages
};

// Parse a whole file. Errors: missing file or not a regular file, truncated header or data, malformed, too deep or
// over-long JSON, unknown dtype, offsets outside the data, overlapping tensors, size/shape mismatch, a tensor whose
// "fnv1a64:<name>" metadata hash does not match (checked unless RECUR_SKIP_CHECKSUMS=1; files without hashes load
// unchecked). The hashes are written by safetensors_serialize and not kept in `metadata`.
SafeTensors safetensors_read(const std::string& path);
SafeTensors safetensors_parse(const std::vector<uint8_t>& file, const std::string& source);
std::vector<uint8_t> safetensors_serialize(const SafeTensors& st);
// Write atomically: path.tmp is written and flushed, then renamed over path.
void safetensors_write(const std::string& path, const SafeTensors& st);

// Shared by every file writer: write `bytes` to path atomically (temp + fsync + rename).
void write_file_atomic(const std::string& path, const void* bytes, size_t size);
std::vector<uint8_t> read_file_bytes(const std::string& path);
// The same two for text files (JSON, reports, pointers); reading refuses files over max_bytes.
void write_text_atomic(const std::string& path, const std::string& text);
std::string read_file_text(const std::string& path, uint64_t max_bytes = uint64_t(1) << 20);

}  // namespace recur
