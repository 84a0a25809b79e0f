// recur/shards.h: token shards, the tokenized form of a corpus that `recur data prepare` writes and training and
// evaluation memory-map. Documents (text files, JSONL lines) are tokenized, each followed by the tokenizer's EOS,
// assigned to train or validation by a seeded draw per document, and packed into shard files with a versioned
// header; a manifest.json lists them, and the SentencePiece model (if any) is copied beside them. Format: docs/lm.md.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "recur/tokenizer.h"

namespace recur {

struct DocumentOptions {
  std::string field = "text";  // the string field of each JSONL line
  std::string unit = "file";   // a text file is one document (file) or one per blank-line-separated paragraph
};
// Calls fn(text, where) for each document of the inputs, in order: a .jsonl file gives one per non-blank line (its
// string field), any other file one document or one per paragraph, and a folder gives its regular files below it
// in sorted path order. `where` names the file (and line). Errors name the file, the line and the fix.
using DocumentFn = std::function<void(std::string_view text, const std::string& where)>;
void for_each_document(const std::vector<std::string>& inputs, const DocumentOptions& options, const DocumentFn& fn);

inline constexpr char kShardMagic[8] = {'R', 'E', 'C', 'U', 'R', 'T', 'O', 'K'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;
inline constexpr const char* kShardManifest = "manifest.json";

// The 64-byte little-endian header of a shard file: magic "RECURTOK", then these fields, then zeros to 64 bytes.
struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 2;  // 2 (uint16 tokens) when vocab_size <= 65536, else 4 (uint32)
  uint32_t vocab_size = 0;
  int32_t eos = 0;
  uint64_t token_count = 0, documents = 0;
  uint64_t checksum = 0;  // FNV-1a 64 of the token bytes after the header (src/io/checksum.h)
};

struct PrepareOptions {
  DocumentOptions documents;
  double val_fraction = 0.01;  // each document goes to validation with this probability
  uint64_t seed = 1337;
  uint64_t shard_tokens = uint64_t(1) << 26;  // a new shard file once one holds this many tokens
};
struct PrepareSummary {
  int64_t documents[2] = {0, 0}, tokens[2] = {0, 0}, shards[2] = {0, 0};  // [train, val]
};
// Tokenizes the inputs into out_dir (train_NNNNN.bin, val_NNNNN.bin, manifest.json, tokenizer.model).
PrepareSummary prepare_shards(const std::vector<std::string>& inputs, const Tokenizer& tokenizer,
                              const std::string& out_dir, const PrepareOptions& options);

// The shards of one split as one read-only token stream. Each file is memory-mapped; its header, size and checksum
// are verified on opening (RECUR_SKIP_CHECKSUMS=1 skips the checksum).
class ShardStream {
 public:
  ShardStream() = default;
  ShardStream(const std::vector<std::string>& files, const ShardHeader& expected);
  ~ShardStream();
  ShardStream(ShardStream&& other) noexcept;
  ShardStream& operator=(ShardStream&& other) noexcept;
  uint64_t size() const { return total_; }
  // tokens [start, start + n) of the stream into out; the range must lie inside it.
  void read(uint64_t start, size_t n, int32_t* out) const;

 private:
  struct Mapped {
    const uint8_t* base = nullptr;  // the mapping, header included
    size_t bytes = 0;
    uint64_t first = 0, count = 0;  // stream index of the first token, tokens in this file
  };
  std::vector<Mapped> files_;
  uint64_t total_ = 0;
  uint32_t token_bytes_ = 2;
  void map_file(const std::string& file, const ShardHeader& expected, bool verify);
  void unmap();
};

// A folder written by prepare_shards: its manifest, tokenizer and both splits.
struct ShardFolder {
  std::string dir;
  int vocab_size = 0;
  int32_t eos = 0;
  std::string tokenizer_model;  // serialized SentencePiece model; empty for byte-level
  std::string fingerprint;      // FNV-1a 64 of manifest.json, so a checkpoint can tell its data
  ShardStream train, val;
  // Errors name the folder or file and the fix (not a shard folder, bad magic or version, truncated, checksum).
  static ShardFolder open(const std::string& dir);
};
bool is_shard_folder(const std::string& path);

// Training windows over a shard stream: the stream is cut into windows of seq_len + 1 tokens (stride seq_len),
// visited in an order shuffled anew each epoch (seeded by seed and epoch). Window number `cursor` (counting from
// 0 over all epochs) fills one row of a batch.
class ShardWindows {
 public:
  ShardWindows(const ShardStream& stream, int seq_len, uint64_t seed);
  uint64_t windows_per_epoch() const { return n_windows_; }
  // tokens and next-token targets (seq_len each) of window `cursor`.
  void window(uint64_t cursor, int32_t* tokens, int32_t* targets) const;

 private:
  const ShardStream* stream_;
  int seq_len_;
  uint64_t seed_, n_windows_;
  mutable uint64_t epoch_ = UINT64_MAX;
  mutable std::vector<uint64_t> order_;  // the shuffled window order of epoch_
};

}  // namespace recur
