// Transparent-huge-page buffers (see recur/huge_pages.h).
#include "recur/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>

namespace recur {

constexpr size_t kHugePage = size_t(2) << 20;

void* huge_page_allocate(size_t bytes) {
  if (bytes < kHugePage) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (!p) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the buffer is ordinary memory
  return p;
}

void huge_page_free(void* p) noexcept { std::free(p); }

}  // namespace recur
