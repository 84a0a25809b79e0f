// libFuzzer target (scripts/fuzz.sh): the training settings of a train_state.json (train_config_from_json, the
// reader src/train/train_checkpoint.cpp uses) must return or throw recur::Error, never crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/error.h"
#include "recur/train.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recur::TrainConfig c = recur::train_config_from_json(std::string(reinterpret_cast<const char*>(data), size));
    recur::train_config_from_json(recur::train_config_to_json(c));
  } catch (const recur::Error&) {
  }
  return 0;
}
