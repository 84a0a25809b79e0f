// A decode step allocates nothing once the decoder's buffers have grown (issue 12), for vanilla and MoR models
// (expert choice, token choice with KV sharing): operator new is counted around steps after a warm-up. Its own
// binary (CMakeLists.txt, recur_alloc_tests), since it replaces the global allocation functions.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "recur/decode.h"
#include "recur/model.h"
#include "test_util.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

// Replaces the global allocation functions of the test binary: malloc/free, counted while `counting` is set.
void* operator new(size_t size) {
  if (counting) allocations++;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace recur;

namespace {

TEST(DecodeAlloc, StepsAfterWarmUpAllocateNothing) {
  for (const char* kind : {"plain", "expert", "token_kv"}) {
    ModelConfig c = tiny_decoder(kind, 32);
    Model m(c);
    m.init_weights(5);
    Decoder decoder(m);
    KVCache c0, c1;
    std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
    std::vector<float> logits;
    decoder.forward({{&c0, prompt.data(), 6}, {&c1, prompt.data(), 3}}, logits);
    std::vector<DecodeChunk> chunks = {{&c0, prompt.data(), 1}, {&c1, prompt.data() + 1, 1}};
    for (int step = 0; step < 4; step++) decoder.forward(chunks, logits);  // warm-up: the buffers grow
    counting = true;
    for (int step = 0; step < 8; step++) decoder.forward(chunks, logits);
    counting = false;
    EXPECT_EQ(allocations.exchange(0), 0) << kind;
  }
}

}  // namespace
