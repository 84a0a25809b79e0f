// io/checksum.cpp: FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211) and its hex form.
#include "io/checksum.h"

#include <cstdio>

namespace recur {

uint64_t fnv1a64(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < size; i++) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)value);
  return text;
}

}  // namespace recur
