// io/checksum.h: FNV-1a 64, the content hash safetensors files written by recur carry per tensor
// (src/io/safetensors.cpp), so flipped bits in tensor data are found at load. Small and dependency-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace recur {

uint64_t fnv1a64(const void* data, size_t size);
// The hash as 16 lowercase hex digits, the form stored in the metadata.
std::string hex64(uint64_t value);

}  // namespace recur
