// GGUF v3 reader and writer (llama.cpp's model file, recur/gguf.h). The reader walks the file with a cursor that
// checks every length, count and offset against the bytes left, so a truncated or corrupted file gets an error
// naming the byte offset and is never read past its end.
#include "recur/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kMaxName = 64;    // ggml's GGML_MAX_NAME (terminator included): names up to 63 bytes
constexpr uint64_t kMaxKey = 65535;  // a key longer than this is corruption
constexpr uint32_t kMaxDims = 4;     // GGML_MAX_DIMS

// Bytes per element of a numeric or boolean value type; 0 for string and array.
size_t value_size(GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean: return 1;
    case GgufType::u16:
    case GgufType::i16: return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32: return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64: return 8;
    default: return 0;
  }
}
bool known_value_type(uint32_t t) { return t <= (uint32_t)GgufType::f64; }

size_t element_size(GgmlType t) { return t == GgmlType::f32 ? 4 : 2; }
bool known_tensor_type(uint32_t t) {
  return t == (uint32_t)GgmlType::f32 || t == (uint32_t)GgmlType::f16 || t == (uint32_t)GgmlType::bf16;
}

GgufValue scalar_value(GgufType type, const void* v) {
  GgufValue x;
  x.type = type;
  const uint8_t* p = static_cast<const uint8_t*>(v);
  x.bytes.assign(p, p + value_size(type));
  return x;
}

GgufValue array_value(GgufType elem, const void* v, size_t n) {
  GgufValue x;
  x.type = GgufType::array;
  x.array_type = elem;
  const uint8_t* p = static_cast<const uint8_t*>(v);
  x.bytes.assign(p, p + n * value_size(elem));
  return x;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Reads little-endian values from [data, data + size), refusing to step past the end.
struct Cursor {
  const uint8_t* data;
  uint64_t size, pos = 0;
  const std::string& source;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source + ": " + what + " (at byte " + std::to_string(pos) +
                "); the file is truncated, corrupted or not a GGUF file: export it again");
  }
  void need(uint64_t n, const char* what) const {
    if (n > size - pos)
      fail(std::string("truncated reading ") + what + ": " + std::to_string(n) + " bytes needed, " +
           std::to_string(size - pos) + " left");
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string string(const char* what, uint64_t max_len) {
    uint64_t n = read<uint64_t>(what);
    if (n > max_len) fail(std::string(what) + " of " + std::to_string(n) + " bytes is too long");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    return s;
  }
};

// A value of type `type` (not array); strings up to the bytes left.
void read_element(Cursor& c, GgufType type, GgufValue& v) {
  if (type == GgufType::string) {
    v.strings.push_back(c.string("a string value", c.size));
    return;
  }
  size_t n = value_size(type);
  c.need(n, "a value");
  v.bytes.insert(v.bytes.end(), c.data + c.pos, c.data + c.pos + n);
  c.pos += n;
}

GgufValue read_value(Cursor& c, const std::string& key) {
  GgufValue v;
  uint32_t type = c.read<uint32_t>("a value type");
  if (!known_value_type(type)) c.fail("key \"" + key + "\" has unknown value type " + std::to_string(type));
  v.type = (GgufType)type;
  if (v.type != GgufType::array) {
    read_element(c, v.type, v);
    return v;
  }
  uint32_t elem = c.read<uint32_t>("an array's element type");
  if (!known_value_type(elem)) c.fail("array \"" + key + "\" has unknown element type " + std::to_string(elem));
  if ((GgufType)elem == GgufType::array) c.fail("array \"" + key + "\" holds arrays; recur reads flat arrays only");
  v.array_type = (GgufType)elem;
  uint64_t count = c.read<uint64_t>("an array's length");
  // every element takes at least its size (a string its 8-byte length) of the bytes left
  uint64_t min_size = v.array_type == GgufType::string ? 8 : value_size(v.array_type);
  if (count > (c.size - c.pos) / min_size)
    c.fail("array \"" + key + "\" claims " + std::to_string(count) + " elements, more than the file holds");
  if (v.array_type != GgufType::string) v.bytes.reserve(count * min_size);
  for (uint64_t i = 0; i < count; i++) read_element(c, v.array_type, v);
  return v;
}

struct TensorInfo {
  GgufTensor tensor;
  uint64_t offset = 0, nbytes = 0;
};

TensorInfo read_tensor_info(Cursor& c, std::set<std::string>& names) {
  TensorInfo info;
  GgufTensor& t = info.tensor;
  t.name = c.string("a tensor name", kMaxName - 1);
  if (!names.insert(t.name).second) c.fail("tensor \"" + t.name + "\" appears twice");
  uint32_t n_dims = c.read<uint32_t>("a tensor's dimension count");
  if (n_dims == 0 || n_dims > kMaxDims)
    c.fail("tensor \"" + t.name + "\" has " + std::to_string(n_dims) + " dimensions; GGUF allows 1 to 4");
  uint64_t numel = 1;
  for (uint32_t i = 0; i < n_dims; i++) {
    uint64_t d = c.read<uint64_t>("a tensor dimension");
    if (d == 0 || d > (uint64_t(1) << 40) || numel > (uint64_t(1) << 40) / d)
      c.fail("tensor \"" + t.name + "\" has an invalid dimension " + std::to_string(d));
    numel *= d;
    t.dims.push_back(d);
  }
  uint32_t type = c.read<uint32_t>("a tensor type");
  if (!known_tensor_type(type))
    c.fail("tensor \"" + t.name + "\" has ggml type " + std::to_string(type) + "; recur reads F32, F16 and BF16");
  t.type = (GgmlType)type;
  info.offset = c.read<uint64_t>("a tensor offset");
  info.nbytes = numel * element_size(t.type);
  return info;
}

// The tensors' bytes from the data section [data_start, size): aligned, inside it, and not overlapping.
void read_tensor_data(Cursor& c, std::vector<TensorInfo>& infos, uint64_t data_start, uint32_t alignment, GgufFile& f) {
  uint64_t data_size = c.size - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (TensorInfo& info : infos) {
    const std::string& name = info.tensor.name;
    if (info.offset % alignment != 0)
      c.fail("tensor \"" + name + "\" starts at data offset " + std::to_string(info.offset) +
             ", not a multiple of the alignment " + std::to_string(alignment));
    if (info.offset > data_size || info.nbytes > data_size - info.offset)
      c.fail("tensor \"" + name + "\" needs data bytes [" + std::to_string(info.offset) + ", " +
             std::to_string(info.offset + info.nbytes) + ") but the data section has " + std::to_string(data_size));
    ranges.push_back({info.offset, info.offset + info.nbytes});
    const uint8_t* begin = c.data + data_start + info.offset;
    info.tensor.bytes.assign(begin, begin + info.nbytes);
    f.tensors.push_back(std::move(info.tensor));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); i++)
    if (ranges[i].first < ranges[i - 1].second)
      c.fail("two tensors overlap at data offset " + std::to_string(ranges[i].first));
}

}  // namespace

GgufValue GgufValue::u32(uint32_t v) { return scalar_value(GgufType::u32, &v); }
GgufValue GgufValue::f32(float v) { return scalar_value(GgufType::f32, &v); }
GgufValue GgufValue::boolean(bool v) {
  uint8_t b = v ? 1 : 0;
  return scalar_value(GgufType::boolean, &b);
}
GgufValue GgufValue::string(const std::string& v) {
  GgufValue x;
  x.type = GgufType::string;
  x.strings = {v};
  return x;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::array;
  x.array_type = GgufType::string;
  x.strings = std::move(v);
  return x;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) { return array_value(GgufType::f32, v.data(), v.size()); }
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) { return array_value(GgufType::i32, v.data(), v.size()); }
GgufValue GgufValue::u32_array(const std::vector<uint32_t>& v) {
  return array_value(GgufType::u32, v.data(), v.size());
}

uint64_t GgufTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

namespace {

// IEEE half precision, rounded to nearest even (subnormals kept, overflow to infinity).
uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
  int exp = (int)((x >> 23) & 0xff), e = exp - 127 + 15;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e < -10) return (uint16_t)sign;
  int shift = e <= 0 ? 14 - e : 13;  // a subnormal result keeps the implicit bit in its mantissa
  uint32_t m = e <= 0 ? mant | 0x800000 : mant;
  uint32_t half = (e <= 0 ? 0 : (uint32_t)e << 10) | (m >> shift), rest = m & ((1u << shift) - 1);
  uint32_t midway = 1u << (shift - 1);
  if (rest > midway || (rest == midway && (half & 1))) half++;  // a carry rounds up into the exponent
  return (uint16_t)(sign | half);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    float v = std::ldexp((float)mant, -24);
    return sign ? -v : v;
  }
  uint32_t x = sign | (exp == 31 ? 0x7f800000 : (exp - 15 + 127) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);  // NaN stays NaN
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace

std::vector<float> GgufTensor::to_f32() const {
  if (type == GgmlType::f32) return f32();
  std::vector<float> v(bytes.size() / 2);
  for (size_t i = 0; i < v.size(); i++) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    v[i] = type == GgmlType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
  return v;
}

std::vector<float> GgufTensor::f32() const {
  check(type == GgmlType::f32, "gguf: tensor \"", name, "\" is not F32");
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

void GgufFile::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata)
    if (k == key) {
      v = std::move(value);
      return;
    }
  metadata.emplace_back(key, std::move(value));
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

// The value of `key`, which must be a scalar of `type`.
static const GgufValue& typed(const GgufFile& f, const std::string& key, GgufType type, const char* type_name) {
  const GgufValue* v = f.find(key);
  check(v != nullptr, f.source, ": key \"", key, "\" is missing; the file was not written for this model type");
  check(v->type == type, f.source, ": key \"", key, "\" is not a ", type_name);
  return *v;
}

uint32_t GgufFile::get_u32(const std::string& key) const {
  uint32_t x;
  std::memcpy(&x, typed(*this, key, GgufType::u32, "uint32").bytes.data(), 4);
  return x;
}
float GgufFile::get_f32(const std::string& key) const {
  float x;
  std::memcpy(&x, typed(*this, key, GgufType::f32, "float32").bytes.data(), 4);
  return x;
}
const std::string& GgufFile::get_string(const std::string& key) const {
  return typed(*this, key, GgufType::string, "string").strings[0];
}

void GgufFile::add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data, GgmlType type) {
  GgufTensor t;
  t.name = name;
  t.type = type;
  t.dims.assign(shape.rbegin(), shape.rend());
  t.bytes.resize(t.numel() * element_size(type));
  if (type == GgmlType::f32) std::memcpy(t.bytes.data(), data, t.bytes.size());
  for (uint64_t i = 0; type != GgmlType::f32 && i < t.numel(); i++) {
    uint16_t h = type == GgmlType::f16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
    std::memcpy(t.bytes.data() + 2 * i, &h, 2);
  }
  tensors.push_back(std::move(t));
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  for (const GgufTensor& t : tensors)
    if (t.name == name) return t;
  throw Error(source + ": tensor \"" + name + "\" is missing; the file was written for another model");
}

uint32_t GgufFile::alignment() const {
  const GgufValue* a = find("general.alignment");
  if (!a) return kDefaultAlignment;
  return get_u32("general.alignment");
}

GgufFile gguf_parse(const std::vector<uint8_t>& file, const std::string& source) {
  GgufFile f;
  f.source = source;
  Cursor c{file.data(), file.size(), 0, source};
  if (c.read<uint32_t>("the magic") != kMagic) c.fail("does not start with the magic \"GGUF\"");
  uint32_t version = c.read<uint32_t>("the version");
  if (version != kVersion) c.fail("has GGUF version " + std::to_string(version) + "; recur reads version 3");
  uint64_t n_tensors = c.read<uint64_t>("the tensor count"), n_kv = c.read<uint64_t>("the key count");
  // a key/value takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 8 + 4 + 8
  if (n_kv > (c.size - c.pos) / 13 || n_tensors > (c.size - c.pos) / 32)
    c.fail(std::to_string(n_kv) + " keys and " + std::to_string(n_tensors) + " tensors cannot fit in the file");
  std::set<std::string> keys;
  for (uint64_t i = 0; i < n_kv; i++) {
    std::string key = c.string("a key", kMaxKey);
    if (!keys.insert(key).second) c.fail("key \"" + key + "\" appears twice");
    f.metadata.emplace_back(key, read_value(c, key));
  }
  uint32_t alignment = kDefaultAlignment;
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::u32) c.fail("general.alignment is not a uint32");
    alignment = f.alignment();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 20))
      c.fail("general.alignment " + std::to_string(alignment) + " is not a power of two up to 2^20");
  }
  std::vector<TensorInfo> infos;
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; i++) infos.push_back(read_tensor_info(c, names));
  uint64_t data_start = align_up(c.pos, alignment);
  if (n_tensors > 0) c.need(data_start - c.pos, "the padding before the tensor data");
  read_tensor_data(c, infos, std::min<uint64_t>(data_start, c.size), alignment, f);
  return f;
}

GgufFile gguf_read(const std::string& path) { return gguf_parse(read_file_bytes(path), path); }

namespace {

struct Writer {
  std::vector<uint8_t> out;
  template <class T>
  void put(T v) {
    size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) { out.resize(align_up(out.size(), alignment), 0); }
};

void put_value(Writer& w, const GgufValue& v) {
  w.put<uint32_t>((uint32_t)v.type);
  GgufType elem = v.type == GgufType::array ? v.array_type : v.type;
  if (v.type == GgufType::array) {
    w.put<uint32_t>((uint32_t)elem);
    w.put<uint64_t>(elem == GgufType::string ? v.strings.size() : v.bytes.size() / value_size(elem));
  }
  if (elem == GgufType::string)
    for (const std::string& s : v.strings) w.put_string(s);
  else
    w.out.insert(w.out.end(), v.bytes.begin(), v.bytes.end());
}

}  // namespace

std::vector<uint8_t> gguf_serialize(const GgufFile& f) {
  uint32_t alignment = f.alignment();
  Writer w;
  w.put<uint32_t>(kMagic);
  w.put<uint32_t>(kVersion);
  w.put<uint64_t>(f.tensors.size());
  w.put<uint64_t>(f.metadata.size());
  for (const auto& [key, value] : f.metadata) {
    w.put_string(key);
    put_value(w, value);
  }
  uint64_t offset = 0;
  for (const GgufTensor& t : f.tensors) {
    check(t.name.size() < kMaxName, "gguf: tensor name \"", t.name, "\" is longer than 63 bytes");
    w.put_string(t.name);
    w.put<uint32_t>((uint32_t)t.dims.size());
    for (uint64_t d : t.dims) w.put<uint64_t>(d);
    w.put<uint32_t>((uint32_t)t.type);
    w.put<uint64_t>(offset);
    offset = align_up(offset + t.bytes.size(), alignment);
  }
  w.pad_to(alignment);
  for (const GgufTensor& t : f.tensors) {
    w.out.insert(w.out.end(), t.bytes.begin(), t.bytes.end());
    w.pad_to(alignment);
  }
  return w.out;
}

void gguf_write(const std::string& path, const GgufFile& f) {
  std::vector<uint8_t> bytes = gguf_serialize(f);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace recur
