// Loading safetensors for inference (issue 12): the chunked-v1 checksum finds flipped bits in every chunk and in
// every bit of a word, files of the older whole-tensor FNV-1a 64 scheme still verify, and SafeTensorsFile reads
// tensors straight into caller buffers with the same checks as the in-memory parser.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "io/checksum.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "test_util.h"

using namespace recur;

namespace {

// A file of the given header JSON text and data bytes.
std::vector<uint8_t> file_of(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> file(8);
  for (int i = 0; i < 8; i++) file[i] = (uint8_t)(header.size() >> (8 * i));
  file.insert(file.end(), header.begin(), header.end());
  file.insert(file.end(), data.begin(), data.end());
  return file;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// n floats that differ from each other
std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = std::sin(0.001f * (float)i);
  return v;
}

TEST(SafetensorsLoad, ChunkHashSeesEveryBitAndWordOrder) {
  std::vector<uint8_t> bytes(77);  // two 32-byte blocks and a 13-byte tail
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = (uint8_t)(i * 37 + 11);
  uint64_t base = chunk_hash(bytes.data(), bytes.size());
  for (size_t bit = 0; bit < 8 * bytes.size(); bit++) {
    bytes[bit / 8] ^= (uint8_t)(1 << (bit % 8));
    EXPECT_NE(chunk_hash(bytes.data(), bytes.size()), base) << "bit " << bit;
    bytes[bit / 8] ^= (uint8_t)(1 << (bit % 8));
  }
  std::vector<uint8_t> swapped = bytes;  // words 0 and 1 (lanes 0 and 1) exchanged
  std::memcpy(swapped.data(), bytes.data() + 8, 8);
  std::memcpy(swapped.data() + 8, bytes.data(), 8);
  EXPECT_NE(chunk_hash(swapped.data(), swapped.size()), base);
  EXPECT_NE(chunk_hash(bytes.data(), 76), base);  // the length counts
}

TEST(SafetensorsLoad, ChunkedChecksumsFindFlipsInEveryChunk) {
  size_t n = 3 * (kChecksumChunkBytes / 4) + 5;  // three whole 1 MiB chunks and a short one
  std::vector<float> w = ramp(n);
  SafeTensors st;
  st.add_f32("w", {(int64_t)n}, w.data());
  st.add_f32("b", {3}, w.data());
  std::vector<uint8_t> file = safetensors_serialize(st);
  SafeTensors back = safetensors_parse(file, "f");
  EXPECT_TRUE(back.metadata.empty());  // scheme and hashes are not handed to callers
  EXPECT_EQ(std::memcmp(back.tensors.at("w").f32(), w.data(), n * 4), 0);
  size_t data_start = file.size() - (n + 3) * 4;
  size_t w_start = data_start + (back.order[0] == "w" ? 0 : 12);
  for (size_t offset : {size_t(0), kChecksumChunkBytes + 3, 2 * kChecksumChunkBytes - 1, n * 4 - 1}) {
    file[w_start + offset] ^= 0x04;
    EXPECT_ERROR(safetensors_parse(file, "f"), "f: not a valid safetensors file (tensor \"w\" does not match");
    file[w_start + offset] ^= 0x04;
  }
  // the same hashes on one thread and on several
  std::vector<HashedTensor> tensors = {{n * 4, ChecksumScheme::chunked}, {4, ChecksumScheme::fnv1a64}};
  auto bytes_of = [&](size_t t, uint64_t begin, uint64_t) {
    return reinterpret_cast<const uint8_t*>(w.data()) + (t == 0 ? begin : 0);
  };
  EXPECT_EQ(tensor_hashes(tensors, bytes_of, 1), tensor_hashes(tensors, bytes_of, 3));
  EXPECT_EQ(tensor_hashes(tensors, bytes_of, 1)[1], fnv1a64(w.data(), 4));
}

TEST(SafetensorsLoad, OlderFnvFilesStillVerify) {
  float values[2] = {1.5f, -2};
  std::vector<uint8_t> data(8);
  std::memcpy(data.data(), values, 8);
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"fnv1a64:w":")" +
                       hex64(fnv1a64(values, 8)) + R"(","format":"recur"}})";
  std::vector<uint8_t> file = file_of(header, data);
  SafeTensors st = safetensors_parse(file, "old");
  EXPECT_EQ(st.tensors.at("w").f32()[1], -2.0f);
  EXPECT_EQ(st.metadata, (std::map<std::string, std::string>{{"format", "recur"}}));
  file.back() ^= 0x80;
  EXPECT_ERROR(safetensors_parse(file, "old"), "tensor \"w\" does not match its checksum");
  std::string dir = temp_dir("fnv_file");
  write_bytes(dir + "/old.safetensors", file);
  float out[2];
  EXPECT_ERROR(SafeTensorsFile(dir + "/old.safetensors").read_f32({{"w", out}}), "\"w\" does not match");
  // a scheme this reader does not know is refused, not read unchecked
  std::string newer =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"checksum_scheme":"v9"}})";
  EXPECT_ERROR(safetensors_parse(file_of(newer, data), "new"), "checksum_scheme \"v9\" is unknown");
}

TEST(SafetensorsLoad, FileReadsStraightIntoBuffers) {
  std::string dir = temp_dir("st_file");
  std::string path = dir + "/w.safetensors";
  size_t n = kChecksumChunkBytes / 4 + 7;  // two spans
  std::vector<float> a = ramp(n), b = {3, 4, 5};
  SafeTensors st;
  st.add_f32("a", {(int64_t)n}, a.data());
  st.add_f32("b", {3}, b.data());
  st.add_i32("ids", {1}, std::vector<int32_t>{7}.data());
  st.metadata["note"] = "kept";
  safetensors_write(path, st);
  std::vector<float> got_a(n), got_b(3);
  {
    SafeTensorsFile file(path);
    EXPECT_EQ(file.header().metadata.at("note"), "kept");
    EXPECT_EQ(file.header().get("a", {(int64_t)n}).numel(), n);
    file.read_f32({{"a", got_a.data()}, {"b", got_b.data()}});
    EXPECT_EQ(got_a, a);
    EXPECT_EQ(got_b, b);
    EXPECT_ERROR(file.read_f32({{"ids", got_b.data()}}), "tensor \"ids\" must be F32");
    EXPECT_ERROR(file.read_f32({{"c", got_b.data()}}), "tensor \"c\" is missing");
  }
  std::vector<uint8_t> bytes = read_file_bytes(path);
  size_t a_at = bytes.size() - (n + 3 + 1) * 4 + kChecksumChunkBytes + 2;  // in a's second span
  bytes[a_at] ^= 0x01;
  write_bytes(path, bytes);
  EXPECT_ERROR(SafeTensorsFile(path).read_f32({{"a", got_a.data()}}), "w.safetensors: not a valid safetensors file");
  setenv("RECUR_SKIP_CHECKSUMS", "1", 1);  // what --skip_checksums sets
  SafeTensorsFile(path).read_f32({{"a", got_a.data()}});
  unsetenv("RECUR_SKIP_CHECKSUMS");
  EXPECT_NE(got_a, a);
  bytes.resize(bytes.size() - 6);
  write_bytes(path, bytes);
  EXPECT_ERROR(SafeTensorsFile{path}, "lies outside the data (file truncated?)");
  write_bytes(path, {1, 2, 3});
  EXPECT_ERROR(SafeTensorsFile{path}, "shorter than its 8-byte header length");
  EXPECT_ERROR(SafeTensorsFile{dir}, "not a regular file");
}

}  // namespace
