// libFuzzer target (scripts/fuzz.sh): safetensors_parse on arbitrary bytes must return or throw recur::Error,
// never crash, hang or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "recur/error.h"
#include "recur/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recur::safetensors_parse(std::vector<uint8_t>(data, data + size), "fuzz");
  } catch (const recur::Error&) {
  }
  return 0;
}
