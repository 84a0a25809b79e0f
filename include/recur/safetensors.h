// recur/safetensors.h: reading and writing the safetensors format (8-byte little-endian header length,
// JSON header of dtype/shape/data_offsets plus string metadata, raw little-endian data). Every read is
// checked against the file size and the header; writes go to a temp file renamed into place (atomic).
// SafeTensorsFile reads tensors straight into the caller's buffers (loading a model copies the weights once).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace recur {

enum class DType { f32, i32 };

// A tensor as the header describes it: dtype, shape, its byte range in the data section, its content hash.
struct TensorEntry {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // bytes [begin, end) of the data section
  std::string checksum;         // 16 hex digits from the metadata, or empty when the file has none for it
  size_t numel() const;
};

// A tensor with its bytes, as safetensors_parse returns it and safetensors_serialize writes it.
struct TensorData : TensorEntry {
  std::vector<uint8_t> bytes;  // numel * 4 bytes, little-endian
  const float* f32() const;    // throws recur::Error when dtype is not F32
  const int32_t* i32() const;  // throws recur::Error when dtype is not I32
};

// Everything of a file but its data. The checksum keys are taken out of `metadata` into the entries.
struct SafeTensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<std::string> order;  // tensor names in file order
  std::map<std::string, TensorEntry> entries;
  uint64_t data_start = 0;         // file offset of the data section
  bool chunked_checksums = false;  // checksum_scheme chunked-v1 (src/io/checksum.h), else whole-tensor FNV-1a 64
  std::string source;              // file it was read from, for messages
  bool has(const std::string& name) const { return entries.count(name) > 0; }
  // The entry `name`, which must exist [with `shape`] (throws a recur::Error naming the file and the fix).
  const TensorEntry& get(const std::string& name) const;
  const TensorEntry& get(const std::string& name, const std::vector<int64_t>& shape) const;
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

// Checksums are verified unless RECUR_SKIP_CHECKSUMS=1 (the global flag --skip_checksums sets it).
bool checksums_skipped();

// The header length in a file's first 8 bytes, checked against the file size.
uint64_t safetensors_header_length(const uint8_t* first8, uint64_t file_size, const std::string& source);
// The header (the JSON text after the length) of a file of `file_size` bytes, checked against that size. Errors:
// malformed, too deep or over-long JSON, unknown dtype or checksum_scheme, offsets outside the data, overlapping
// tensors, size/shape mismatch, a checksum for a tensor the file lacks.
SafeTensorsHeader safetensors_parse_header(std::string_view text, uint64_t file_size, const std::string& source);

// Parse a whole file. Errors: those of the header, a file shorter than its header, a tensor whose content hash
// does not match (checked unless checksums_skipped(); files without hashes load unchecked). safetensors_serialize
// writes checksum_scheme chunked-v1 with a "checksum:<name>" hash per tensor; files of older recur carry
// "fnv1a64:<name>" (FNV-1a 64 of the whole tensor) and still verify.
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

// An open safetensors file whose header is read and checked; tensor data is read on demand with pread at each
// tensor's offset, straight into the caller's buffer, and verified against its checksum as it lands.
class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);  // errors as safetensors_read's, for the header
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;
  const SafeTensorsHeader& header() const { return header_; }
  // Reads each (name, buffer of the tensor's numel floats) pair: the tensor must exist and be F32. Reads and
  // hashes 1 MiB spans on checksum threads; a checksum mismatch or a short read throws, naming file and tensor.
  void read_f32(const std::vector<std::pair<std::string, float*>>& reads) const;

 private:
  int fd_ = -1;
  SafeTensorsHeader header_;
};

}  // namespace recur
