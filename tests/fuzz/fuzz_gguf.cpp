// libFuzzer target (scripts/fuzz.sh): a GGUF file through recur's reader (src/io/gguf.cpp), which must answer
// with a recur::Error or a parse; a file it accepts must serialize and parse back to the same bytes, and its
// vocabulary (src/io/gguf_vocab.cpp) must read or be refused with a recur::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "recur/error.h"
#include "recur/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  recur::GgufFile file;
  try {
    file = recur::gguf_parse(bytes, "fuzz.gguf");
  } catch (const recur::Error&) {
    return 0;
  }
  std::vector<uint8_t> once = recur::gguf_serialize(file);
  std::vector<uint8_t> twice = recur::gguf_serialize(recur::gguf_parse(once, "fuzz-again.gguf"));
  if (once != twice) std::abort();  // the writer's output must read back exactly
  try {
    recur::gguf_vocabulary(file);
  } catch (const recur::Error&) {
  }
  return 0;
}
