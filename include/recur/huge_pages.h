// recur/huge_pages.h: an allocator for the large buffers that decoding streams every token (the weights and
// their bf16 copy). Buffers of 2 MiB or more are 2 MiB-aligned and advised to the kernel as transparent huge pages
// (madvise MADV_HUGEPAGE; a no-op where THP is off), so filling them takes a page fault per 2 MiB instead of per
// 4 KiB and streaming them misses the TLB 512 times less often. Smaller buffers come from the heap as usual.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace recur {

void* huge_page_allocate(size_t bytes);  // throws std::bad_alloc
void huge_page_free(void* p) noexcept;

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(huge_page_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { huge_page_free(p); }
  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) { return true; }
};

template <class T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace recur
