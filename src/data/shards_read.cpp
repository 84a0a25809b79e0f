// Reading token shards: each file memory-mapped read-only and checked (header, size, checksum) when opened, the
// files of a split read as one stream, the manifest checked against the headers, and the epoch-shuffled training
// windows over a stream.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_read.h"
#include "data/shards_format.h"
#include "io/checksum.h"
#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

namespace fs = std::filesystem;

// The little-endian token of `width` (2 or 4) bytes at p.
static uint32_t token_at(const uint8_t* p, uint32_t width) {
  return width == 2 ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
}

// The index of the first of `count` little-endian tokens of `width` bytes at `tokens` that is >= vocab_size, or
// count when there is none.
static uint64_t first_token_outside(const uint8_t* tokens, uint64_t count, uint32_t width, uint32_t vocab_size) {
  for (uint64_t i = 0; i < count; i++) {
    if (token_at(tokens + i * width, width) >= vocab_size) return i;
  }
  return count;
}

ShardStream::ShardStream(const std::vector<std::string>& files, const ShardHeader& expected)
    : token_bytes_(expected.token_bytes) {
  bool verify = std::getenv("RECUR_SKIP_CHECKSUMS") == nullptr;
  try {
    for (const std::string& file : files) map_file(file, expected, verify);
  } catch (...) {
    unmap();  // the files mapped before the bad one
    throw;
  }
}

void ShardStream::map_file(const std::string& file, const ShardHeader& expected, bool verify) {
  check(path_exists(file), "data: cannot open shard ", file, "; prepare the folder again with recur data prepare");
  size_t bytes = (size_t)checked_file_size(file, ~uint64_t(0));  // a regular file
  int fd = ::open(file.c_str(), O_RDONLY);
  check(fd >= 0, "data: cannot open shard ", file, "; prepare the folder again with recur data prepare");
  if (bytes < kShardHeaderBytes) {
    ::close(fd);
    decode_shard_header(nullptr, bytes, file);  // throws: the file is truncated
  }
  void* base = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  check(base != MAP_FAILED, "data: cannot map shard ", file, " (", bytes, " bytes)");
  files_.push_back({(const uint8_t*)base, bytes, total_, 0});
  ShardHeader h = decode_shard_header(files_.back().base, bytes, file);
  check(h.vocab_size == expected.vocab_size && h.eos == expected.eos, file, ": vocab_size ", h.vocab_size, " and eos ",
        h.eos, " differ from the manifest's ", expected.vocab_size, " and ", expected.eos,
        "; the folder mixes shards of different tokenizers: prepare it again");
  size_t body = bytes - kShardHeaderBytes;
  check(body % h.token_bytes == 0 && h.token_count == body / h.token_bytes, file, ": ", bytes,
        " bytes, but its header says ", h.token_count, " tokens of ", h.token_bytes, " bytes after the ",
        kShardHeaderBytes, "-byte header; the file is truncated or damaged: prepare the shards again");
  check(!verify || fnv1a64(files_.back().base + kShardHeaderBytes, body) == h.checksum, file,
        ": the tokens' checksum differs from the header's; the file is damaged: prepare the shards again "
        "(RECUR_SKIP_CHECKSUMS=1 skips the check)");
  uint64_t bad =
      first_token_outside(files_.back().base + kShardHeaderBytes, h.token_count, h.token_bytes, h.vocab_size);
  check(bad == h.token_count, file, ": token ", bad, " is outside the header's vocabulary of ", h.vocab_size,
        "; the file is damaged: prepare the shards again");
  files_.back().count = h.token_count;
  total_ += h.token_count;
}

void ShardStream::unmap() {
  for (Mapped& m : files_)
    if (m.base) munmap((void*)m.base, m.bytes);
  files_.clear();
}
ShardStream::~ShardStream() { unmap(); }
ShardStream::ShardStream(ShardStream&& other) noexcept { *this = std::move(other); }
ShardStream& ShardStream::operator=(ShardStream&& other) noexcept {
  if (this != &other) {
    unmap();
    files_ = std::move(other.files_), total_ = other.total_, token_bytes_ = other.token_bytes_;
    other.files_.clear(), other.total_ = 0;
  }
  return *this;
}

void ShardStream::read(uint64_t start, size_t n, int32_t* out) const {
  check(start + n <= total_, "data: tokens [", start, ", ", start + n, ") are outside the stream of ", total_);
  if (n == 0) return;
  size_t f = 0;
  while (start >= files_[f].first + files_[f].count) f++;
  for (size_t i = 0; i < n; i++, start++) {
    while (start >= files_[f].first + files_[f].count) f++;
    const uint8_t* p = files_[f].base + kShardHeaderBytes + (start - files_[f].first) * token_bytes_;
    out[i] = (int32_t)token_at(p, token_bytes_);
  }
}

bool is_shard_folder(const std::string& path) {
  std::error_code ec;  // a path that cannot be examined is not one; its reader then names the problem
  return fs::is_regular_file(fs::path(path) / kShardManifest, ec);
}

// The shard files a manifest lists for one split, each entry checked for its form.
static std::vector<std::string> split_files(const nlohmann::json& manifest, const char* split, const std::string& dir,
                                            const std::string& path) {
  check(manifest.contains(split) && manifest[split].is_array(), path, ": no \"", split,
        "\" list; the manifest is damaged: prepare the folder again");
  std::vector<std::string> files;
  for (const nlohmann::json& entry : manifest[split]) {
    check(entry.is_object() && entry.contains("file") && entry["file"].is_string(), path, ": a \"", split,
          "\" entry has no file name; the manifest is damaged: prepare the folder again");
    std::string name = entry["file"].get<std::string>();
    check(name.find('/') == std::string::npos && name != ".." && !name.empty(), path, ": the shard name \"", name,
          "\" is not a plain file name; the manifest is damaged");
    files.push_back(dir + "/" + name);
  }
  return files;
}

ShardFolder ShardFolder::open(const std::string& dir) {
  std::string path = dir + "/" + kShardManifest;
  check(is_shard_folder(dir), "data: ", dir, " has no ", kShardManifest,
        "; it is not a folder written by recur data prepare");
  std::string text = read_file_checked(path, uint64_t(64) << 20);
  nlohmann::json manifest = parse_json_strict(text, path, uint64_t(64) << 20);
  auto integer_in = [&](const char* key, int64_t lo, int64_t hi) {
    return manifest.contains(key) && manifest[key].is_number_integer() && manifest[key].get<int64_t>() >= lo &&
           manifest[key].get<int64_t>() <= hi;
  };
  check(manifest.is_object() && integer_in("version", kShardVersion, kShardVersion) &&
            integer_in("vocab_size", 1, int64_t(1) << 30) && integer_in("eos", 0, int64_t(1) << 30),
        path, ": not a version ", kShardVersion, " shard manifest with vocab_size and eos; prepare the folder again");
  ShardFolder folder;
  folder.dir = dir;
  folder.vocab_size = manifest["vocab_size"].get<int>();
  folder.eos = manifest["eos"].get<int32_t>();
  folder.fingerprint = hex64(fnv1a64(text.data(), text.size()));
  std::string tokenizer_path = dir + "/" + kTokenizerFile;
  std::unique_ptr<Tokenizer> tokenizer =
      path_exists(tokenizer_path) ? load_tokenizer(tokenizer_path) : make_byte_tokenizer();
  folder.tokenizer_model = tokenizer->serialized();
  std::string want = manifest.value("tokenizer_checksum", std::string());
  check(hex64(fnv1a64(folder.tokenizer_model.data(), folder.tokenizer_model.size())) == want, dir, ": ", kTokenizerFile,
        folder.tokenizer_model.empty() ? " is missing" : " differs from the one the shards were made with",
        "; prepare the folder again");
  check(tokenizer->vocab_size() == folder.vocab_size && tokenizer->eos() == folder.eos, path,
        ": vocab_size or eos differs from the tokenizer's; prepare the folder again");
  ShardHeader expected;
  expected.vocab_size = (uint32_t)folder.vocab_size, expected.eos = folder.eos;
  expected.token_bytes = shard_token_bytes(folder.vocab_size);
  folder.train = ShardStream(split_files(manifest, "train", dir, path), expected);
  folder.val = ShardStream(split_files(manifest, "val", dir, path), expected);
  return folder;
}

ShardWindows::ShardWindows(const ShardStream& stream, int seq_len, uint64_t seed)
    : stream_(&stream),
      seq_len_(seq_len),
      seed_(seed),
      n_windows_(stream.size() > 0 ? (stream.size() - 1) / seq_len : 0) {
  check(seq_len >= 1 && n_windows_ >= 1, "data: the shards hold ", stream.size(),
        " tokens, fewer than one window of seq_len ", seq_len, " + 1; use more text or a smaller --seq_len");
}

void ShardWindows::window(uint64_t cursor, int32_t* tokens, int32_t* targets) const {
  uint64_t epoch = cursor / n_windows_;
  if (epoch != epoch_) {  // Fisher-Yates over the windows, seeded by (seed, epoch)
    order_.resize(n_windows_);
    for (uint64_t i = 0; i < n_windows_; i++) order_[i] = i;
    Rng rng(mix_seed(seed_ ^ 0x5a4d, epoch));
    for (uint64_t i = n_windows_ - 1; i > 0; i--) std::swap(order_[i], order_[rng.uniform(i + 1)]);
    epoch_ = epoch;
  }
  std::vector<int32_t> span(seq_len_ + 1);
  stream_->read(order_[cursor % n_windows_] * seq_len_, span.size(), span.data());
  std::copy(span.begin(), span.end() - 1, tokens);
  std::copy(span.begin() + 1, span.end(), targets);
}

}  // namespace recur
