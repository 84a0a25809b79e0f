// libFuzzer target (scripts/fuzz.sh): a shard folder's manifest.json (docs/lm.md) beside two valid shards that the
// real writer (prepare_shards) made once at start-up; ShardFolder::open (src/data/shards_read.cpp) must throw
// recur::Error or open the folder with its manifest's vocabulary, never crash or trip a sanitizer.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "recur/error.h"
#include "recur/shards.h"

static std::string folder;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  folder = std::filesystem::temp_directory_path().string() + "/recur_fuzz_manifest_" + std::to_string(getpid());
  std::filesystem::create_directories(folder);
  std::ofstream(folder + "/a.txt") << "In the beginning God created the heaven and the earth.\n";
  recur::PrepareOptions options;
  options.val_fraction = 0.5;
  std::vector<std::string> documents(8, folder + "/a.txt");
  recur::prepare_shards(documents, *recur::make_byte_tokenizer(), folder, options);
  std::atexit([] { std::filesystem::remove_all(folder); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::ofstream(folder + "/manifest.json", std::ios::binary)
      .write(reinterpret_cast<const char*>(data), (std::streamsize)size);
  try {
    recur::ShardFolder opened = recur::ShardFolder::open(folder);
    if (opened.vocab_size != 256 || opened.train.size() + opened.val.size() == 0) std::abort();
  } catch (const recur::Error&) {
  }
  return 0;
}
