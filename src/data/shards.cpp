// Writing token shards: the header format, a writer that packs documents (each followed by EOS) into files of
// about shard_tokens tokens, and prepare_shards, which splits documents into train and validation by a seeded draw
// per document and writes the manifest.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/shards_format.h"
#include "io/checksum.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "recur/safetensors.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

template <class T>
void put(uint8_t* at, T value) {
  for (size_t i = 0; i < sizeof(T); i++) at[i] = (uint8_t)((uint64_t)value >> (8 * i));
}
template <class T>
T get(const uint8_t* at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); i++) v |= (uint64_t)at[i] << (8 * i);
  return (T)v;
}

}  // namespace

std::array<uint8_t, kShardHeaderBytes> encode_shard_header(const ShardHeader& h) {
  std::array<uint8_t, kShardHeaderBytes> bytes{};
  std::memcpy(bytes.data(), kShardMagic, 8);
  put(&bytes[8], h.version), put(&bytes[12], h.token_bytes), put(&bytes[16], h.vocab_size), put(&bytes[20], h.eos);
  put(&bytes[24], h.token_count), put(&bytes[32], h.documents), put(&bytes[40], h.checksum);
  return bytes;
}

ShardHeader decode_shard_header(const uint8_t* bytes, size_t size, const std::string& file) {
  check(size >= kShardHeaderBytes, file, ": ", size, " bytes, shorter than the ", kShardHeaderBytes,
        "-byte shard header; the file is truncated: prepare the shards again with recur data prepare");
  check(std::memcmp(bytes, kShardMagic, 8) == 0, file,
        ": not a recur token shard (no RECURTOK magic); give a folder written by recur data prepare");
  ShardHeader h;
  h.version = get<uint32_t>(bytes + 8), h.token_bytes = get<uint32_t>(bytes + 12);
  h.vocab_size = get<uint32_t>(bytes + 16), h.eos = get<int32_t>(bytes + 20);
  h.token_count = get<uint64_t>(bytes + 24), h.documents = get<uint64_t>(bytes + 32),
  h.checksum = get<uint64_t>(bytes + 40);
  check(h.version == kShardVersion, file, ": shard format version ", h.version, ", but this recur reads version ",
        kShardVersion, "; prepare the shards again with this recur");
  check(h.vocab_size >= 1 && h.vocab_size <= (1u << 30) && h.token_bytes == shard_token_bytes((int)h.vocab_size), file,
        ": the header's vocab_size ", h.vocab_size, " and token width ", h.token_bytes,
        " disagree; the file is damaged: prepare the shards again");
  check(h.eos >= 0 && (uint32_t)h.eos < h.vocab_size, file, ": the header's eos ", h.eos,
        " is outside the vocabulary; the file is damaged: prepare the shards again");
  return h;
}

namespace {

// Packs documents into <dir>/<split>_NNNNN.bin files; each file is written as .tmp and renamed when complete.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, const Tokenizer& tokenizer, uint64_t shard_tokens)
      : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens) {
    header_.vocab_size = (uint32_t)tokenizer.vocab_size();
    header_.token_bytes = shard_token_bytes(tokenizer.vocab_size());
    header_.eos = tokenizer.eos();
  }
  void add(std::vector<int32_t> tokens) {
    tokens.push_back(header_.eos);
    if (!file_) open();
    std::vector<uint8_t> bytes(tokens.size() * header_.token_bytes);
    for (size_t i = 0; i < tokens.size(); i++)
      for (uint32_t b = 0; b < header_.token_bytes; b++)
        bytes[i * header_.token_bytes + b] = (uint8_t)(tokens[i] >> (8 * b));
    check(std::fwrite(bytes.data(), 1, bytes.size(), file_) == bytes.size(), "data: cannot write ", path_);
    for (uint8_t b : bytes) checksum_ = (checksum_ ^ b) * 1099511628211ull;  // FNV-1a 64, continued
    header_.token_count += tokens.size(), header_.documents++;
    if (header_.token_count >= shard_tokens_) close();
  }
  // Closes the last file; returns the manifest entries of every file written.
  nlohmann::json finish() {
    if (file_) close();
    return files_;
  }
  ~ShardWriter() {
    if (file_) std::fclose(file_);
  }

 private:
  void open() {
    char name[32];
    std::snprintf(name, sizeof name, "%s_%05d.bin", split_.c_str(), (int)files_.size());
    path_ = dir_ + "/" + name;
    file_ = std::fopen((path_ + ".tmp").c_str(), "wb");
    check(file_ != nullptr, "data: cannot write ", path_, ".tmp; check the --out folder");
    std::array<uint8_t, kShardHeaderBytes> zeros{};
    check(std::fwrite(zeros.data(), 1, zeros.size(), file_) == zeros.size(), "data: cannot write ", path_);
    header_.token_count = header_.documents = 0;
    checksum_ = 14695981039346656037ull;
  }
  void close() {
    header_.checksum = checksum_;
    std::array<uint8_t, kShardHeaderBytes> bytes = encode_shard_header(header_);
    bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(bytes.data(), 1, bytes.size(), file_) == bytes.size();
    ok = std::fclose(file_) == 0 && ok;
    file_ = nullptr;
    check(ok, "data: cannot write ", path_, "; is the disk full?");
    fs::rename(path_ + ".tmp", path_);
    files_.push_back({{"file", fs::path(path_).filename().string()},
                      {"tokens", header_.token_count},
                      {"documents", header_.documents},
                      {"checksum", hex64(header_.checksum)}});
  }
  std::string dir_, split_, path_;
  uint64_t shard_tokens_;
  ShardHeader header_;
  FILE* file_ = nullptr;
  uint64_t checksum_ = 0;
  nlohmann::json files_ = nlohmann::json::array();
};

}  // namespace

PrepareSummary prepare_shards(const std::vector<std::string>& inputs, const Tokenizer& tokenizer,
                              const std::string& out_dir, const PrepareOptions& o) {
  check(o.val_fraction >= 0 && o.val_fraction < 1, "data prepare: --val_fraction must be in [0, 1)");
  check(o.shard_tokens >= 1, "data prepare: --shard_tokens must be >= 1");
  check(!fs::exists(out_dir + "/" + kShardManifest), "data prepare: ", out_dir,
        " already holds prepared shards; remove it or choose another --out");
  fs::create_directories(out_dir);
  ShardWriter writers[2] = {{out_dir, "train", tokenizer, o.shard_tokens}, {out_dir, "val", tokenizer, o.shard_tokens}};
  PrepareSummary summary;
  Rng rng(mix_seed(o.seed, 0x5a11));
  for_each_document(inputs, o.documents, [&](std::string_view text, const std::string&) {
    int split = rng.uniform_float() < o.val_fraction ? 1 : 0;
    std::vector<int32_t> tokens = tokenizer.encode(text);
    summary.documents[split]++, summary.tokens[split] += (int64_t)tokens.size() + 1;
    writers[split].add(std::move(tokens));
  });
  nlohmann::json manifest = {
      {"format", "recur token shards"},
      {"version", kShardVersion},
      {"tokenizer", tokenizer.describe()},
      {"vocab_size", tokenizer.vocab_size()},
      {"eos", tokenizer.eos()},
      {"tokenizer_checksum", hex64(fnv1a64(tokenizer.serialized().data(), tokenizer.serialized().size()))},
      {"seed", o.seed},
      {"val_fraction", o.val_fraction},
      {"train", writers[0].finish()},
      {"val", writers[1].finish()}};
  summary.shards[0] = (int64_t)manifest["train"].size(), summary.shards[1] = (int64_t)manifest["val"].size();
  check(summary.tokens[0] > 0,
        "data prepare: no document went to the training split; give more documents or a "
        "smaller --val_fraction");
  save_tokenizer(tokenizer, out_dir);
  write_text_atomic(out_dir + "/" + kShardManifest, manifest.dump(2) + "\n");  // last: the folder is complete
  return summary;
}

}  // namespace recur
