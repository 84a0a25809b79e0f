// safetensors reader/writer with strict validation of the header against the file, and a content hash per tensor
// in the metadata (src/io/checksum.h: chunked-v1 written, chunked-v1 and the older FNV-1a 64 verified at load).
#include "recur/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/json_read.h"
#include "core/memory_limit.h"
#include "io/checksum.h"
#include "recur/error.h"

namespace recur {

using nlohmann::json;

size_t TensorEntry::numel() const {
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

static void add_tensor(SafeTensors& st, const std::string& name, DType dtype, std::vector<int64_t> shape,
                       const void* data) {
  TensorData t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(t.numel() * 4);
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  if (!st.has(name)) st.order.push_back(name);
  st.tensors[name] = std::move(t);
}

void SafeTensors::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  add_tensor(*this, name, DType::f32, std::move(shape), data);
}

void SafeTensors::add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data) {
  add_tensor(*this, name, DType::i32, std::move(shape), data);
}

// The tensor `name` of `tensors` (of a SafeTensors or a header), which must exist [with `shape`].
template <class Tensors>
static const typename Tensors::mapped_type& find_tensor(const Tensors& tensors, const std::string& source,
                                                        const std::string& name, const std::vector<int64_t>* shape) {
  auto it = tensors.find(name);
  check(it != tensors.end(), source, ": tensor \"", name,
        "\" is missing; the file was written for a different model or is incomplete");
  if (shape && it->second.shape != *shape)  // shape_str builds strings, so only on failure
    throw Error(source + ": tensor \"" + name + "\" has shape " + shape_str(it->second.shape) +
                " but the model needs " + shape_str(*shape) + "; use the config the file was saved with");
  return it->second;
}

const TensorData& SafeTensors::get(const std::string& name) const {
  return find_tensor(tensors, source, name, nullptr);
}
const TensorData& SafeTensors::get(const std::string& name, const std::vector<int64_t>& shape) const {
  return find_tensor(tensors, source, name, &shape);
}
const TensorEntry& SafeTensorsHeader::get(const std::string& name) const {
  return find_tensor(entries, source, name, nullptr);
}
const TensorEntry& SafeTensorsHeader::get(const std::string& name, const std::vector<int64_t>& shape) const {
  return find_tensor(entries, source, name, &shape);
}

bool checksums_skipped() {
  const char* skip = std::getenv("RECUR_SKIP_CHECKSUMS");
  return skip && std::string(skip) == "1";
}

namespace {

using Fail = std::function<void(const std::string&)>;
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;  // the limit of the reference implementation
// Metadata of the content hashes: the scheme, and a key per tensor (chunked-v1, or whole-tensor FNV-1a 64 in
// files without a scheme key).
const std::string kSchemeKey = "checksum_scheme", kChunkedScheme = "chunked-v1";
const std::string kChecksumPrefix = "checksum:", kFnvPrefix = "fnv1a64:";

Fail fail_for(const std::string& source) {
  return [source](const std::string& what) {
    throw Error(source + ": not a valid safetensors file (" + what + "); re-create it or restore a good copy");
  };
}

// One header entry: dtype, shape and offsets checked against the data size.
TensorEntry parse_entry(const std::string& name, const json& entry, uint64_t data_size, const Fail& fail) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
    fail("entry \"" + name + "\" lacks dtype, shape or data_offsets");
  TensorEntry t;
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
  t.begin = off[0].get<uint64_t>(), t.end = off[1].get<uint64_t>();
  if (t.begin > t.end || t.end > data_size)
    fail("tensor \"" + name + "\" lies outside the data (file truncated?): offsets [" + std::to_string(t.begin) + ", " +
         std::to_string(t.end) + ") but only " + std::to_string(data_size) + " data bytes");
  double numel = 1;
  for (int64_t s : t.shape) numel *= (double)s;
  if ((double)(t.end - t.begin) != numel * 4)
    fail("tensor \"" + name + "\" has " + std::to_string(t.end - t.begin) + " bytes but shape " + shape_str(t.shape) +
         " needs " + std::to_string((uint64_t)(numel * 4)));
  return t;
}

// Moves the content hashes recur writes into the metadata onto their entries. Files without them (older recur,
// other tools) load unchecked.
void take_checksums(SafeTensorsHeader& h, const Fail& fail) {
  auto scheme = h.metadata.find(kSchemeKey);
  if (scheme != h.metadata.end()) {
    if (scheme->second != kChunkedScheme)
      fail("checksum_scheme \"" + scheme->second.substr(0, 32) + "\" is unknown (written by a newer recur?); " +
           "update recur, or pass --skip_checksums to read it unchecked");
    h.chunked_checksums = true;
    h.metadata.erase(scheme);
  }
  const std::string& prefix = h.chunked_checksums ? kChecksumPrefix : kFnvPrefix;
  for (auto it = h.metadata.begin(); it != h.metadata.end();) {
    if (it->first.rfind(prefix, 0) != 0) {
      ++it;
      continue;
    }
    std::string name = it->first.substr(prefix.size());
    if (!h.has(name)) fail("metadata holds a checksum for tensor \"" + name + "\", which the file lacks");
    h.entries.at(name).checksum = it->second;
    it = h.metadata.erase(it);
  }
}

}  // namespace

uint64_t safetensors_header_length(const uint8_t* first8, uint64_t file_size, const std::string& source) {
  Fail fail = fail_for(source);
  if (file_size < 8) fail("shorter than its 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | first8[i];
  if (header_len > file_size - 8) fail("header length " + std::to_string(header_len) + " exceeds the file size");
  // before any buffer of that length is made (the file loader reads the header into one)
  if (header_len > kMaxHeaderBytes)
    fail("header of " + std::to_string(header_len) + " bytes exceeds the limit of " + std::to_string(kMaxHeaderBytes));
  return header_len;
}

SafeTensorsHeader safetensors_parse_header(std::string_view text, uint64_t file_size, const std::string& source) {
  Fail fail = fail_for(source);
  json header;
  try {
    header = parse_json_strict(text, "header", kMaxHeaderBytes);
  } catch (const Error& e) {
    fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  SafeTensorsHeader h;
  h.source = source;
  h.data_start = 8 + text.size();
  uint64_t data_size = file_size - h.data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail("metadata value for \"" + m.key() + "\" is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const TensorEntry& t = h.entries[name] = parse_entry(name, entry, data_size, fail);
    ranges.push_back({t.begin, t.end});
    by_offset.push_back({t.begin, name});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); i++)
    if (ranges[i].first < ranges[i - 1].second) fail("two tensors overlap in the data");
  std::sort(by_offset.begin(), by_offset.end());
  for (auto& [offset, name] : by_offset) h.order.push_back(name);
  take_checksums(h, fail);
  return h;
}

void verify_checksums(const SafeTensorsHeader& header, const std::vector<std::string>& names,
                      const SpanBytes& bytes_of) {
  std::vector<HashedTensor> hashed;
  for (const std::string& name : names) {
    const TensorEntry& t = header.get(name);
    ChecksumScheme scheme = t.checksum.empty() || checksums_skipped() ? ChecksumScheme::none
                            : header.chunked_checksums                ? ChecksumScheme::chunked
                                                                      : ChecksumScheme::fnv1a64;
    hashed.push_back({t.end - t.begin, scheme});
  }
  std::vector<uint64_t> hashes = tensor_hashes(hashed, bytes_of, checksum_threads());
  for (size_t i = 0; i < names.size(); i++)
    if (hashed[i].scheme != ChecksumScheme::none && hex64(hashes[i]) != header.get(names[i]).checksum)
      fail_for(header.source)("tensor \"" + names[i] + "\" does not match its checksum (flipped bits, a damaged " +
                              "copy); pass --skip_checksums (or set RECUR_SKIP_CHECKSUMS=1) only to read it anyway");
}

SafeTensors safetensors_parse(const std::vector<uint8_t>& file, const std::string& source) {
  uint64_t header_len = safetensors_header_length(file.data(), file.size(), source);
  SafeTensorsHeader header = safetensors_parse_header(
      std::string_view(reinterpret_cast<const char*>(file.data()) + 8, header_len), file.size(), source);
  SafeTensors st;
  st.source = source;
  st.metadata = header.metadata;
  st.order = header.order;
  for (const std::string& name : header.order) {
    const TensorEntry& entry = header.entries.at(name);
    TensorData& t = st.tensors[name];
    static_cast<TensorEntry&>(t) = entry;
    const uint8_t* data = file.data() + header.data_start;
    t.bytes.assign(data + entry.begin, data + entry.end);
  }
  verify_checksums(header, header.order, [&](size_t tensor, uint64_t begin, uint64_t) {
    return st.tensors.at(header.order[tensor]).bytes.data() + begin;
  });
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
  std::vector<HashedTensor> hashed;
  for (const std::string& name : st.order)
    hashed.push_back({st.tensors.at(name).bytes.size(), ChecksumScheme::chunked});
  std::vector<uint64_t> hashes = tensor_hashes(
      hashed, [&](size_t t, uint64_t begin, uint64_t) { return st.tensors.at(st.order[t]).bytes.data() + begin; },
      checksum_threads());
  metadata[kSchemeKey] = kChunkedScheme;
  for (size_t i = 0; i < st.order.size(); i++) metadata[kChecksumPrefix + st.order[i]] = hex64(hashes[i]);
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
