// libFuzzer target (scripts/fuzz.sh): a model config.json (parse, key tables, validation, layer schedule) must
// return or throw recur::Error, never crash, hang or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/config.h"
#include "recur/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recur::ModelConfig c = recur::model_config_from_json(std::string(reinterpret_cast<const char*>(data), size));
    if (c.n_layers <= 4096) c.layer_schedule();  // the schedule of a valid config
    recur::model_config_from_json(recur::model_config_to_json(c));
  } catch (const recur::Error&) {
  }
  return 0;
}
