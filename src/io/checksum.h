// io/checksum.h: the content hashes safetensors files written by recur carry per tensor (src/io/safetensors.cpp),
// so flipped bits in tensor data are found at load. Two schemes: FNV-1a 64 of the whole tensor (files written
// before the metadata key `checksum_scheme`; one serial chain per tensor) and `chunked-v1` (1 MiB chunks hashed
// independently, four word lanes each, then FNV-1a 64 of the chunk hashes), which hashes one tensor on many
// threads. Small and dependency-free: the fuzz targets link it (CMakeLists.txt, RECUR_FUZZ).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace recur {

struct SafeTensorsHeader;  // recur/safetensors.h

uint64_t fnv1a64(const void* data, size_t size);
// The hash as 16 lowercase hex digits, the form stored in the metadata.
std::string hex64(uint64_t value);

// chunked-v1's hash of one chunk: four FNV-style lanes over the little-endian 8-byte words (lane k takes words
// k, k+4, ...: hash = (hash ^ word) * prime), the bytes after the last whole 32-byte block byte-wise into lane 0,
// then FNV-1a 64 of the four lanes (32 little-endian bytes). Each step is a bijection of the lane, so any change
// confined to one word is always detected.
uint64_t chunk_hash(const void* data, size_t size);

enum class ChecksumScheme { none, fnv1a64, chunked };  // none: not verified (no hash, or skipped), only read
constexpr uint64_t kChecksumChunkBytes = uint64_t(1) << 20;

// One tensor to hash: its size in bytes and its scheme.
struct HashedTensor {
  uint64_t size = 0;
  ChecksumScheme scheme = ChecksumScheme::none;
};
// Makes bytes [begin, end) of tensor `tensor` available (reads them from the file if need be) and returns them.
using SpanBytes = std::function<const uint8_t*(size_t tensor, uint64_t begin, uint64_t end)>;

// The hash of every tensor under its scheme (0 for none), spans of it fetched with `bytes_of` on up to `threads`
// plain threads joined before returning (not OpenMP: a pool started while loading would lack the signal mask
// `recur server` sets later). A fnv1a64 tensor is one span, the others are 1 MiB spans. The first exception a
// span throws is rethrown here.
std::vector<uint64_t> tensor_hashes(const std::vector<HashedTensor>& tensors, const SpanBytes& bytes_of, int threads);
// Verifies tensors `names` of `header` against their checksums (each one's spans fetched with `bytes_of`, its
// tensor argument an index into `names`) unless checksums_skipped(); a mismatch throws, naming file and tensor.
// Defined in src/io/safetensors.cpp beside the metadata keys it reads.
void verify_checksums(const SafeTensorsHeader& header, const std::vector<std::string>& names,
                      const SpanBytes& bytes_of);
// The threads loading uses: the cores, at most 4 (hashing and copying are memory-bound beyond that).
int checksum_threads();

}  // namespace recur
