// libFuzzer target (scripts/fuzz.sh): a token shard file (the format of src/data/shards_format.h) opened by
// ShardStream (src/data/shards_read.cpp) must throw recur::Error or give a stream whose every token lies inside the
// header's vocabulary; the last input byte's low bit turns the checksum check off (RECUR_SKIP_CHECKSUMS), so the
// fuzzer also reaches the checks behind it.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "data/shards_format.h"
#include "recur/error.h"
#include "recur/shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = [] {
    std::string path = "/tmp/recur_fuzz_shard_" + std::to_string(getpid()) + ".bin";
    std::atexit([] { std::remove(("/tmp/recur_fuzz_shard_" + std::to_string(getpid()) + ".bin").c_str()); });
    return path;
  }();
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(data), (std::streamsize)size);
  if (size > 0 && (data[size - 1] & 1))
    setenv("RECUR_SKIP_CHECKSUMS", "1", 1);
  else
    unsetenv("RECUR_SKIP_CHECKSUMS");
  try {
    recur::ShardHeader header = recur::decode_shard_header(data, size, file);
    recur::ShardStream stream({file}, header);
    std::vector<int32_t> tokens(stream.size());
    stream.read(0, tokens.size(), tokens.data());
    for (int32_t t : tokens)
      if (t < 0 || (uint32_t)t >= header.vocab_size) std::abort();  // the reader must have refused the file
    if (stream.size() >= 2) {
      recur::ShardWindows windows(stream, 1, 7);
      std::vector<int32_t> row(1), next(1);
      windows.window(windows.windows_per_epoch() + 1, row.data(), next.data());
    }
  } catch (const recur::Error&) {
  }
  return 0;
}
