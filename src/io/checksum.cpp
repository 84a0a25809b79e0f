// io/checksum.cpp: FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211), its hex form, the
// chunked-v1 chunk hash, and the parallel driver that fetches and hashes tensors span by span.
#include "io/checksum.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace recur {

constexpr uint64_t kFnvBasis = 14695981039346656037ull, kFnvPrime = 1099511628211ull;

uint64_t fnv1a64(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t hash = kFnvBasis;
  for (size_t i = 0; i < size; i++) hash = (hash ^ p[i]) * kFnvPrime;
  return hash;
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)value);
  return text;
}

uint64_t chunk_hash(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {kFnvBasis, kFnvBasis ^ 1, kFnvBasis ^ 2, kFnvBasis ^ 3};  // lanes start apart
  size_t blocks = size / 32;
  for (size_t b = 0; b < blocks; b++, p += 32)
    for (int k = 0; k < 4; k++) {
      uint64_t word;
      std::memcpy(&word, p + 8 * k, 8);  // little-endian hosts only, like the tensor data itself
      lane[k] = (lane[k] ^ word) * kFnvPrime;
    }
  for (size_t i = blocks * 32; i < size; i++, p++) lane[0] = (lane[0] ^ *p) * kFnvPrime;
  return fnv1a64(lane, sizeof lane);
}

int checksum_threads() { return (int)std::clamp(std::thread::hardware_concurrency(), 1u, 4u); }

namespace {

struct Span {
  size_t tensor;
  uint64_t begin, end;
};

std::vector<Span> spans_of(const std::vector<HashedTensor>& tensors) {
  std::vector<Span> spans;
  for (size_t t = 0; t < tensors.size(); t++) {
    uint64_t step =
        tensors[t].scheme == ChecksumScheme::fnv1a64 ? std::max<uint64_t>(tensors[t].size, 1) : kChecksumChunkBytes;
    for (uint64_t begin = 0; begin < tensors[t].size; begin += step)
      spans.push_back({t, begin, std::min(tensors[t].size, begin + step)});
  }
  return spans;
}

}  // namespace

std::vector<uint64_t> tensor_hashes(const std::vector<HashedTensor>& tensors, const SpanBytes& bytes_of, int threads) {
  std::vector<Span> spans = spans_of(tensors);
  std::vector<uint64_t> span_hash(spans.size());
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_lock;
  auto work = [&] {
    try {
      for (size_t i; (i = next++) < spans.size();) {
        const Span& s = spans[i];
        const uint8_t* bytes = bytes_of(s.tensor, s.begin, s.end);
        ChecksumScheme scheme = tensors[s.tensor].scheme;
        if (scheme == ChecksumScheme::fnv1a64) span_hash[i] = fnv1a64(bytes, s.end - s.begin);
        if (scheme == ChecksumScheme::chunked) span_hash[i] = chunk_hash(bytes, s.end - s.begin);
      }
    } catch (...) {
      std::lock_guard<std::mutex> hold(failure_lock);
      if (!failure) failure = std::current_exception();
      next = spans.size();  // the others stop at their next span
    }
  };
  std::vector<std::thread> workers((size_t)std::clamp(threads, 1, (int)std::max<size_t>(spans.size(), 1)) - 1);
  for (std::thread& w : workers) w = std::thread(work);
  work();
  for (std::thread& w : workers) w.join();
  if (failure) std::rethrow_exception(failure);
  // a tensor's hash: its one fnv1a64 span, or FNV-1a 64 of its chunk hashes in order (an empty tensor: of none)
  std::vector<uint64_t> hashes(tensors.size());
  std::vector<std::vector<uint64_t>> chunks(tensors.size());
  for (size_t i = 0; i < spans.size(); i++) chunks[spans[i].tensor].push_back(span_hash[i]);
  for (size_t t = 0; t < tensors.size(); t++) {
    if (tensors[t].scheme == ChecksumScheme::fnv1a64) hashes[t] = chunks[t].empty() ? fnv1a64("", 0) : chunks[t][0];
    if (tensors[t].scheme == ChecksumScheme::chunked)
      hashes[t] = fnv1a64(chunks[t].data(), chunks[t].size() * sizeof(uint64_t));
  }
  return hashes;
}

}  // namespace recur
