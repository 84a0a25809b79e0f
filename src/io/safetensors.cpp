// safetensors reader/writer with strict validation of the header against the file, and a content hash per tensor
// in the metadata (FNV-1a 64, src/io/checksum.h) written at save and verified at load.
#include "recur/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/json_read.h"
#include "core/memory_limit.h"
#include "io/checksum.h"
#include "recur/error.h"

namespace recur {

using nlohmann::json;

size_t TensorData::numel() const {
  size_t n = 1;
  for (int64_t s : shape) n *= (size_t)s;
  return n;
}
const float* TensorData::f32() const {
  check(dtype == DType::f32, "tensor is not F32");
  return reinterpret_cast<const float*>(bytes.data());
}
const int32_t* TensorData::i32() const {
  check(dtype == DType::i32, "tensor is not I32");
  return reinterpret_cast<const int32_t*>(bytes.data());
}

static std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void SafeTensors::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  TensorData t;
  t.dtype = DType::f32;
  t.shape = std::move(shape);
  t.bytes.resize(t.numel() * 4);
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  if (!has(name)) order.push_back(name);
  tensors[name] = std::move(t);
}

void SafeTensors::add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data) {
  TensorData t;
  t.dtype = DType::i32;
  t.shape = std::move(shape);
  t.bytes.resize(t.numel() * 4);
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  if (!has(name)) order.push_back(name);
  tensors[name] = std::move(t);
}

const TensorData& SafeTensors::get(const std::string& name) const {
  auto it = tensors.find(name);
  check(it != tensors.end(), source, ": tensor \"", name,
        "\" is missing; the file was written for a different model or is incomplete");
  return it->second;
}

const TensorData& SafeTensors::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorData& t = get(name);
  if (t.shape != shape)  // shape_str builds strings, so only on failure
    throw Error(source + ": tensor \"" + name + "\" has shape " + shape_str(t.shape) + " but the model needs " +
                shape_str(shape) + "; use the config the file was saved with");
  return t;
}

namespace {

using Fail = std::function<void(const std::string&)>;
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;  // the limit of the reference implementation
const std::string kChecksumPrefix = "fnv1a64:";            // metadata key of a tensor's content hash

// One header entry: dtype, shape and offsets checked against the data and each other.
TensorData parse_entry(const std::string& name, const json& entry, const uint8_t* data, uint64_t data_size,
                       std::pair<uint64_t, uint64_t>& range, const Fail& fail) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
    fail("entry \"" + name + "\" lacks dtype, shape or data_offsets");
  TensorData t;
  if (!entry["dtype"].is_string()) fail("dtype of \"" + name + "\" is not a string");
  std::string dtype = entry["dtype"].get<std::string>();
  if (dtype == "F32")
    t.dtype = DType::f32;
  else if (dtype == "I32")
    t.dtype = DType::i32;
  else
    fail("tensor \"" + name + "\" has dtype " + dtype.substr(0, 16) + "; recur reads F32 and I32");
  if (!entry["shape"].is_array()) fail("shape of \"" + name + "\" is not a list");
  for (const json& s : entry["shape"]) {
    if (!s.is_number_integer() || s.get<int64_t>() < 0 || s.get<int64_t>() > (int64_t(1) << 40))
      fail("shape of \"" + name + "\" has an invalid dimension");
    t.shape.push_back(s.get<int64_t>());
  }
  const json& off = entry["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail("data_offsets of \"" + name + "\" is not two non-negative integers");
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_size)
    fail("tensor \"" + name + "\" lies outside the data (file truncated?): offsets [" + std::to_string(begin) + ", " +
         std::to_string(end) + ") but only " + std::to_string(data_size) + " data bytes");
  double numel = 1;
  for (int64_t s : t.shape) numel *= (double)s;
  if ((double)(end - begin) != numel * 4)
    fail("tensor \"" + name + "\" has " + std::to_string(end - begin) + " bytes but shape " + shape_str(t.shape) +
         " needs " + std::to_string((uint64_t)(numel * 4)));
  t.bytes.assign(data + begin, data + end);
  range = {begin, end};
  return t;
}

// Checks and removes the content hashes recur writes into the metadata. Files without them (older recur, other
// tools) load unchecked; RECUR_SKIP_CHECKSUMS=1 skips the check for speed. The tensors hash in parallel (FNV-1a
// is one serial chain per tensor, so an 85M-parameter file takes a core about 0.4 s); the first mismatch in
// name order is reported.
void verify_checksums(SafeTensors& st, const Fail& fail) {
  const char* skip = std::getenv("RECUR_SKIP_CHECKSUMS");
  bool verify = !(skip && std::string(skip) == "1");
  std::vector<std::pair<const TensorData*, std::string>> checked;  // tensor, expected hash
  std::vector<std::string> names;
  for (auto it = st.metadata.begin(); it != st.metadata.end();) {
    if (it->first.rfind(kChecksumPrefix, 0) != 0) {
      ++it;
      continue;
    }
    std::string name = it->first.substr(kChecksumPrefix.size());
    if (!st.has(name)) fail("metadata holds a checksum for tensor \"" + name + "\", which the file lacks");
    checked.push_back({&st.tensors.at(name), it->second});
    names.push_back(name);
    it = st.metadata.erase(it);
  }
  if (!verify) return;
  // Plain threads, joined here, not OpenMP: a pool started while loading would outlive the load without the
  // signal mask that `recur server` sets up later for its own threads.
  std::vector<char> good(checked.size());
  std::atomic<size_t> next{0};
  auto hash_some = [&] {
    for (size_t i; (i = next++) < checked.size();) {
      const TensorData& t = *checked[i].first;
      good[i] = hex64(fnv1a64(t.bytes.data(), t.bytes.size())) == checked[i].second;
    }
  };
  std::vector<std::thread> workers(std::min(3u, std::max(1u, std::thread::hardware_concurrency())) - 1);
  for (std::thread& w : workers) w = std::thread(hash_some);
  hash_some();
  for (std::thread& w : workers) w.join();
  for (size_t i = 0; i < checked.size(); i++)
    if (!good[i])
      fail("tensor \"" + names[i] + "\" does not match its checksum (flipped bits, a damaged copy); set " +
           "RECUR_SKIP_CHECKSUMS=1 only to read it anyway");
}

}  // namespace

SafeTensors safetensors_parse(const std::vector<uint8_t>& file, const std::string& source) {
  Fail fail = [&](const std::string& what) {
    throw Error(source + ": not a valid safetensors file (" + what + "); re-create it or restore a good copy");
  };
  if (file.size() < 8) fail("shorter than its 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | file[i];
  if (header_len > file.size() - 8) fail("header length " + std::to_string(header_len) + " exceeds the file size");
  std::string_view header_text(reinterpret_cast<const char*>(file.data()) + 8, header_len);
  json header;
  try {
    header = parse_json_strict(header_text, "header", kMaxHeaderBytes);
  } catch (const Error& e) {
    fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  SafeTensors st;
  st.source = source;
  uint64_t data_size = file.size() - 8 - header_len;
  const uint8_t* data = file.data() + 8 + header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail("metadata value for \"" + m.key() + "\" is not a string");
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::pair<uint64_t, uint64_t> range;
    st.tensors[name] = parse_entry(name, entry, data, data_size, range, fail);
    ranges.push_back(range);
    by_offset.push_back({range.first, name});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); i++)
    if (ranges[i].first < ranges[i - 1].second) fail("two tensors overlap in the data");
  std::sort(by_offset.begin(), by_offset.end());
  for (auto& [offset, name] : by_offset) st.order.push_back(name);
  verify_checksums(st, fail);
  return st;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  uint64_t size = checked_file_size(path, machine_memory_bytes() ? machine_memory_bytes() : UINT64_MAX);
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot open \"", path, "\"; check its permissions");
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), (std::streamsize)size);
  check((uint64_t)in.gcount() == size, "cannot read \"", path, "\" completely (it changed while being read?)");
  return bytes;
}

std::string read_file_text(const std::string& path, uint64_t max_bytes) { return read_file_checked(path, max_bytes); }

SafeTensors safetensors_read(const std::string& path) { return safetensors_parse(read_file_bytes(path), path); }

std::vector<uint8_t> safetensors_serialize(const SafeTensors& st) {
  json header = json::object();
  uint64_t offset = 0;
  for (const std::string& name : st.order) {
    const TensorData& t = st.tensors.at(name);
    header[name] = {{"dtype", t.dtype == DType::f32 ? "F32" : "I32"},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::map<std::string, std::string> metadata = st.metadata;
  for (const std::string& name : st.order) {
    const TensorData& t = st.tensors.at(name);
    metadata[kChecksumPrefix + name] = hex64(fnv1a64(t.bytes.data(), t.bytes.size()));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  std::vector<uint8_t> out(8 + text.size() + offset);
  uint64_t len = text.size();
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(len >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const std::string& name : st.order) {
    const TensorData& t = st.tensors.at(name);
    std::memcpy(p, t.bytes.data(), t.bytes.size());
    p += t.bytes.size();
  }
  return out;
}

void write_file_atomic(const std::string& path, const void* bytes, size_t size) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  check(fd >= 0, "cannot write \"", tmp, "\": ", std::strerror(errno), "; check the directory exists and is writable");
  const char* p = static_cast<const char*>(bytes);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("writing \"" + tmp + "\" failed: " + why + " (disk full?)");
    }
    p += n;
    left -= (size_t)n;
  }
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error("could not move \"" + tmp + "\" into place as \"" + path + "\": " + std::strerror(errno));
  }
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

void safetensors_write(const std::string& path, const SafeTensors& st) {
  std::vector<uint8_t> bytes = safetensors_serialize(st);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace recur
