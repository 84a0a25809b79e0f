// libFuzzer target (scripts/fuzz.sh): one serve request line through the reader tools/serve.cpp uses
// (parse_json_strict, then brief_json for the request's name), which must never crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/json_read.h"
#include "recur/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nlohmann::json j = recur::parse_json_strict(std::string_view(reinterpret_cast<const char*>(data), size),
                                                "serve: fuzz line 1", uint64_t(16) << 20);
    if (j.is_object() && j.contains("id")) recur::brief_json(j["id"]);
  } catch (const recur::Error&) {
  }
  return 0;
}
