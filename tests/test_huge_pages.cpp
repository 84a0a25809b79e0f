// The huge-page allocator (recur/huge_pages.h): large buffers 2 MiB-aligned, small ones from the heap, and a
// vector over it behaving as a vector.
#include "recur/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace recur {
namespace {

TEST(HugePages, LargeBuffersAreAlignedToTwoMebibytes) {
  HugePageVector<float> big(3 << 20, 1.5f);  // 12 MiB
  EXPECT_EQ((uintptr_t)big.data() % (2u << 20), 0u);
  EXPECT_EQ(big.back(), 1.5f);
  HugePageVector<float> copy = big;
  copy[7] = 2;
  EXPECT_EQ(big[7], 1.5f);
  EXPECT_EQ(copy[7], 2.0f);
  HugePageVector<uint16_t> small(10, 3);  // from the heap
  EXPECT_EQ(small[9], 3);
  small.clear();
  small.shrink_to_fit();
  EXPECT_TRUE(small.empty());
}

}  // namespace
}  // namespace recur
